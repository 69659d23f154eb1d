//! The outbound consumer: one per instance, group `<prefix>.<instance_id>`, subscribed to every
//! channel's topic. It runs on its own OS thread, polling librdkafka and handing each record
//! to the [`RecordSink`] synchronously — routing waits only for sessions that fell behind (at most
//! the writer grace), so the thread needs no async runtime and adds no per-record task overhead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;

use super::status::{KafkaStatus, Role};
use super::{consumer_config, StartError};
use crate::config::Plan;
use crate::outbound::{Record, RecordSink};

/// librdkafka callbacks of both clients: forwarded to tracing and to [`KafkaStatus`].
pub(super) struct BridgeContext {
    pub(super) role: Role,
    pub(super) status: Arc<KafkaStatus>,
}

impl ClientContext for BridgeContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // A failed broker connection is logged by librdkafka at error level ("FAIL") and
        // reported to `error` below with the same text; logged there, at most once in a while.
        let error_level = matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
        );
        if facility == "FAIL" && error_level {
            return tracing::debug!(target: "librdkafka", client = ?self.role, facility, "{message}");
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", client = ?self.role, facility, "{message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", client = ?self.role, facility, "{message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", client = ?self.role, facility, "{message}")
            }
        }
    }

    fn stats(&self, statistics: Statistics) {
        self.status.on_stats(self.role, &statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.status.on_error(self.role, &error, reason);
    }
}

impl ConsumerContext for BridgeContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &TopicPartitionList| {
            list.elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect::<Vec<_>>()
        };
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(partitions = list.count(), "partitions assigned");
                self.status.on_assign(partitions(list));
                if self.status.paused() {
                    if let Err(e) = consumer.pause(list) {
                        tracing::warn!(error = %e, "cannot pause newly assigned partitions");
                    }
                }
            }
            Rebalance::Revoke(list) => {
                tracing::info!(partitions = list.count(), "partitions revoked");
                self.status.on_revoke(partitions(list));
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "consumer rebalance failed"),
        }
    }
}

/// The running consumer thread.
pub struct ConsumerHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ConsumerHandle {
    /// Stops polling, commits the offsets of the records handed out, leaves the group and
    /// waits for the thread. Blocking: call from a blocking context.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the consumer thread panicked");
            }
        }
    }
}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// How long one poll waits for a record; bounds how fast the thread notices a stop or pause.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// Creates the consumer, subscribes to `topics` and starts the polling thread.
pub fn start_consumer(
    plan: &Plan,
    topics: Vec<String>,
    sink: Arc<dyn RecordSink>,
    status: Arc<KafkaStatus>,
) -> Result<ConsumerHandle, StartError> {
    let consumer: BaseConsumer<BridgeContext> =
        consumer_config(plan).create_with_context(BridgeContext {
            role: Role::Consumer,
            status: status.clone(),
        })?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(|source| StartError::Subscribe {
            topics: topics.clone(),
            source,
        })?;
    status.register(Role::Consumer);
    status.set_topics(topics);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("kafka-consumer".into())
        .spawn(move || poll_loop(consumer, sink, stop_flag))?;
    Ok(ConsumerHandle {
        stop,
        thread: Some(thread),
    })
}

fn poll_loop(
    consumer: BaseConsumer<BridgeContext>,
    sink: Arc<dyn RecordSink>,
    stop: Arc<AtomicBool>,
) {
    // One header buffer for the thread's life; each record borrows it afresh.
    let mut spare: Vec<(&'static str, Option<&'static [u8]>)> = Vec::new();
    let status = consumer.context().status.clone();
    // A consumer thread that dies (a panic while routing) leaves the bridge without outbound
    // delivery: the supervisor must hear of it and stop the process.
    let _alive = DiesLoudly(status.clone());
    let mut pause = status.pause_requests();
    while !stop.load(Ordering::Acquire) {
        if pause.has_changed().unwrap_or(false) {
            let paused = *pause.borrow_and_update();
            apply_pause(&consumer, paused);
            status.pause_applied(paused);
        }
        match consumer.poll(POLL_TIMEOUT) {
            Some(Ok(message)) => {
                let mut headers = reuse(std::mem::take(&mut spare));
                if let Some(list) = message.headers() {
                    headers.extend(list.iter().map(|h| (h.key, h.value)));
                }
                let record = Record {
                    topic: message.topic(),
                    partition: message.partition(),
                    offset: message.offset(),
                    timestamp: message.timestamp().to_millis(),
                    key: message.key(),
                    value: message.payload(),
                    headers: &headers,
                };
                sink.record(&record);
                spare = reuse(headers);
            }
            Some(Err(e)) => consumer.context().status.on_consume_error(&e),
            None => {}
        }
        commit_initial_positions(&consumer);
    }
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing consumed since the last commit (or no assignment) is not a problem.
        tracing::debug!(error = %e, "final offset commit");
    }
    tracing::info!("consumer stopped");
}

/// Pauses or resumes fetching of every assigned partition.
/// Reports the consumer thread's death by panic to the supervisor.
struct DiesLoudly(Arc<KafkaStatus>);

impl Drop for DiesLoudly {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .fail("the kafka consumer thread died (panic): outbound delivery stopped".into());
        }
    }
}

fn apply_pause(consumer: &BaseConsumer<BridgeContext>, pause: bool) {
    let assignment = match consumer.assignment() {
        Ok(assignment) => assignment,
        Err(e) => return tracing::warn!(error = %e, "cannot read the assignment"),
    };
    let result = if pause {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    match result {
        Ok(()) => tracing::info!(
            paused = pause,
            partitions = assignment.count(),
            "outbound delivery {}",
            if pause { "paused" } else { "resumed" }
        ),
        Err(e) => tracing::warn!(error = %e, "cannot pause or resume the consumer"),
    }
}

/// A new group that has routed nothing yet has no committed offset: commit where it starts, so
/// that after a restart it resumes there (with `latest` it would otherwise skip every record
/// produced while it was down).
fn commit_initial_positions(consumer: &BaseConsumer<BridgeContext>) {
    let pending = consumer.context().status.take_initial_commits();
    if pending.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for (topic, partition, offset) in &pending {
        if let Err(e) =
            list.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*offset))
        {
            tracing::warn!(topic = %topic, partition, error = %e, "initial commit");
        }
    }
    match consumer.commit(&list, CommitMode::Async) {
        Ok(()) => tracing::debug!(
            partitions = pending.len(),
            "committed start positions of a new group"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot commit start positions"),
    }
}

/// Empties a vector and reuses its allocation for elements of another lifetime (the standard
/// library collects an empty `into_iter().map()` in place).
fn reuse<'b>(mut v: Vec<(&str, Option<&[u8]>)>) -> Vec<(&'b str, Option<&'b [u8]>)> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector is empty"))
        .collect()
}
