//! The outbound consumer: one per instance, group `<prefix>.<instance_id>`, subscribed to every
//! channel's topic. It runs on its own OS thread, polling librdkafka and handing each record
//! to the [`RecordSink`] synchronously — routing waits only for sessions that fell behind (at most
//! the writer grace), so the thread needs no async runtime and adds no per-record task overhead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;

use super::lanes::{poll_into_lanes, Lanes};
use super::status::{KafkaStatus, Role};
use super::{consumer_config, StartError};
use crate::config::Plan;
use crate::outbound::{OwnedRecord, Record, RecordSink, Routed};

/// librdkafka callbacks of both clients: forwarded to tracing and to [`KafkaStatus`].
pub(super) struct BridgeContext {
    pub(super) role: Role,
    pub(super) status: Arc<KafkaStatus>,
    /// Partitions revoked since the consumer thread last looked: a record it holds back for
    /// one of them is dropped (whoever gets the partition reads it again from the commit).
    pub(super) revoked: Mutex<Vec<(String, i32)>>,
}

impl BridgeContext {
    pub(super) fn new(role: Role, status: Arc<KafkaStatus>) -> Self {
        BridgeContext {
            role,
            status,
            revoked: Mutex::new(Vec::new()),
        }
    }
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
                let revoked = partitions(list);
                self.revoked.lock().extend(revoked.iter().cloned());
                self.status.on_revoke(revoked);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "consumer rebalance failed"),
        }
    }
}

/// The running consumer thread.
pub(crate) struct ConsumerHandle {
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
pub(super) const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// Creates the consumer, subscribes to `topics` and starts the polling thread.
pub(crate) fn start_consumer(
    plan: &Plan,
    topics: Vec<String>,
    sink: Arc<dyn RecordSink>,
    status: Arc<KafkaStatus>,
) -> Result<ConsumerHandle, StartError> {
    let lanes = plan.config.kafka.lanes();
    let consumer: BaseConsumer<BridgeContext> = consumer_config(plan)
        .create_with_context(BridgeContext::new(Role::Consumer, status.clone()))?;
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
    let thread = std::thread::Builder::new().name("kafka-consumer".into());
    let thread = if lanes > 1 {
        tracing::info!(
            lanes,
            "the consumer stage runs in parallel lanes, one per set of partitions"
        );
        let consumer = Arc::new(consumer);
        let lanes = Lanes::start(lanes, &consumer, &sink)?;
        thread.spawn(move || poll_into_lanes(consumer, lanes, stop_flag))?
    } else {
        thread.spawn(move || poll_loop(consumer, sink, stop_flag))?
    };
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
    let mut waiting = Waiting::default();
    while !stop.load(Ordering::Acquire) {
        if pause.has_changed().unwrap_or(false) {
            let paused = *pause.borrow_and_update();
            apply_pause(&consumer, paused, |topic, partition| {
                waiting.held.contains_key(&(topic.to_owned(), partition))
            });
            status.pause_applied(paused);
        }
        waiting.forget_revoked(&consumer.context().revoked);
        waiting.retry(&consumer, &*sink, *pause.borrow());
        match consumer.poll(waiting.poll_timeout()) {
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
                match sink.record(&record) {
                    Routed::Done => store(&consumer, record.topic, record.partition, record.offset),
                    Routed::Later => waiting.hold(&consumer, &record),
                }
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
pub(super) struct DiesLoudly(pub(super) Arc<KafkaStatus>);

impl Drop for DiesLoudly {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .fail("the kafka consumer thread died (panic): outbound delivery stopped".into());
        }
    }
}

pub(super) fn apply_pause(
    consumer: &BaseConsumer<BridgeContext>,
    pause: bool,
    held: impl Fn(&str, i32) -> bool,
) {
    let mut assignment = match consumer.assignment() {
        Ok(assignment) => assignment,
        Err(e) => return tracing::warn!(error = %e, "cannot read the assignment"),
    };
    if !pause {
        // Partitions holding a record back stay paused until it is routed.
        let mut kept = TopicPartitionList::new();
        for element in assignment.elements() {
            if !held(element.topic(), element.partition()) {
                kept.add_partition(element.topic(), element.partition());
            }
        }
        assignment = kept;
    }
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
pub(super) fn commit_initial_positions(consumer: &BaseConsumer<BridgeContext>) {
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
pub(super) fn reuse<'b>(mut v: Vec<(&str, Option<&[u8]>)>) -> Vec<(&'b str, Option<&'b [u8]>)> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector is empty"))
        .collect()
}

/// Marks a record routed: the next commit may go past it. Offsets are stored by hand
/// (`enable.auto.offset.store: false`), so a record held back is never committed over.
pub(super) fn store(
    consumer: &BaseConsumer<BridgeContext>,
    topic: &str,
    partition: i32,
    offset: i64,
) {
    if let Err(e) = consumer.store_offset(topic, partition, offset) {
        // A partition revoked meanwhile: its new owner reads from the last commit.
        tracing::debug!(topic, partition, offset, error = %e, "offset not stored");
    }
}

/// First and longest wait before a held record is handed to the sink again.
pub(super) const RETRY_FIRST: Duration = Duration::from_millis(20);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(1);

/// Records the sink could not route yet, one per partition (the partition is paused behind it).
#[derive(Default)]
struct Waiting {
    held: HashMap<(String, i32), Held>,
}

struct Held {
    record: OwnedRecord,
    retry_at: Instant,
    backoff: Duration,
}

impl Waiting {
    /// Keeps `record` and pauses its partition: what was fetched after it is discarded by
    /// librdkafka and fetched again from the next position once the partition resumes.
    fn hold(&mut self, consumer: &BaseConsumer<BridgeContext>, record: &Record<'_>) {
        let mut list = TopicPartitionList::new();
        list.add_partition(record.topic, record.partition);
        if let Err(e) = consumer.pause(&list) {
            tracing::warn!(topic = record.topic, partition = record.partition, error = %e, "cannot pause a partition behind a waiting record");
        }
        tracing::debug!(
            topic = record.topic,
            partition = record.partition,
            offset = record.offset,
            "record waits for its schema"
        );
        self.held.insert(
            (record.topic.to_owned(), record.partition),
            Held {
                record: OwnedRecord {
                    partition: record.partition,
                    offset: record.offset,
                    timestamp: record.timestamp,
                    key: record.key.map(<[u8]>::to_vec),
                    value: record.value.map(<[u8]>::to_vec),
                    headers: record
                        .headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), v.map(<[u8]>::to_vec)))
                        .collect(),
                },
                retry_at: Instant::now() + RETRY_FIRST,
                backoff: RETRY_FIRST,
            },
        );
    }

    /// Hands every held record whose time has come to the sink again; a routed one resumes
    /// its partition (unless delivery is paused by an operator).
    fn retry(
        &mut self,
        consumer: &BaseConsumer<BridgeContext>,
        sink: &dyn RecordSink,
        paused: bool,
    ) {
        if self.held.is_empty() {
            return;
        }
        let now = Instant::now();
        self.held.retain(|(topic, partition), held| {
            if held.retry_at > now {
                return true;
            }
            match held.record.with_record(topic, |record| sink.record(record)) {
                Routed::Later => {
                    held.backoff = (held.backoff * 2).min(RETRY_MAX);
                    held.retry_at = now + held.backoff;
                    true
                }
                Routed::Done => {
                    store(consumer, topic, *partition, held.record.offset);
                    if !paused {
                        let mut list = TopicPartitionList::new();
                        list.add_partition(topic, *partition);
                        if let Err(e) = consumer.resume(&list) {
                            tracing::warn!(topic = %topic, partition, error = %e, "cannot resume a partition");
                        }
                    }
                    false
                }
            }
        });
    }

    /// Drops what is held for partitions revoked since the last look.
    fn forget_revoked(&mut self, revoked: &Mutex<Vec<(String, i32)>>) {
        let revoked = std::mem::take(&mut *revoked.lock());
        for partition in revoked {
            self.held.remove(&partition);
        }
    }

    /// How long the next poll may wait: not past the next retry.
    fn poll_timeout(&self) -> Duration {
        let next = self.held.values().map(|h| h.retry_at).min();
        match next {
            Some(at) => at
                .saturating_duration_since(Instant::now())
                .min(POLL_TIMEOUT),
            None => POLL_TIMEOUT,
        }
    }
}
