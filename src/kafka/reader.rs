//! Reading ranges of a topic on consumers of their own — never the live one: to serve `resume`
//! and `history` requests that reach further back than memory, and to rebuild snapshots at
//! start by reading snapshot topics from the beginning up to the high watermarks seen then.
//!
//! Reads are blocking librdkafka work; they run on the blocking thread pool, at most
//! [`READERS`] at once, each on a consumer kept for reuse.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Semaphore;

use super::status::KafkaStatus;
use super::{client_config, Client};
use crate::config::Plan;
use crate::hub::{Fetched, Need};
use crate::outbound::{OwnedRecord, RangeRead, ReadFuture, RecordSink, Routed};

/// Reads that may run at once.
const READERS: usize = 2;
/// How long one read may take before it gives up with what it has.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// Serves range reads.
pub(crate) struct RangeReader {
    config: ClientConfig,
    idle: Arc<Mutex<Vec<BaseConsumer>>>,
    permits: Arc<Semaphore>,
}

impl RangeReader {
    pub fn new(plan: &Plan) -> Self {
        RangeReader {
            config: reader_config(plan, "replay"),
            idle: Arc::new(Mutex::new(Vec::new())),
            permits: Arc::new(Semaphore::new(READERS)),
        }
    }
}

impl RangeRead for RangeReader {
    /// Reads `need` from `topic` on a consumer of its own, at most `limit` records.
    fn read(&self, topic: &str, need: Need, limit: usize) -> ReadFuture {
        let permits = self.permits.clone();
        let idle = self.idle.clone();
        let config = self.config.clone();
        let topic = topic.to_owned();
        Box::pin(async move {
            let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
            tokio::task::spawn_blocking(move || {
                let consumer = match idle.lock().pop() {
                    Some(consumer) => consumer,
                    None => config.create::<BaseConsumer>().map_err(|e| e.to_string())?,
                };
                let result = read_blocking(&consumer, &topic, &need, limit);
                if consumer.unassign().is_ok() {
                    idle.lock().push(consumer);
                }
                result
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}

pub(super) fn reader_config(plan: &Plan, purpose: &str) -> ClientConfig {
    let mut config = client_config(plan, Client::Consumer, &[("fetch.wait.max.ms", "50")]);
    // Assigned partitions only: the group is never joined and nothing is committed.
    config.set("group.id", format!("{}.{purpose}", plan.group_id()));
    config.set("enable.auto.commit", "false");
    config.set("enable.auto.offset.store", "false");
    config.set("enable.partition.eof", "true");
    config.set("statistics.interval.ms", "0");
    config
}

fn read_blocking(
    consumer: &BaseConsumer,
    topic: &str,
    need: &Need,
    limit: usize,
) -> Result<Fetched<OwnedRecord>, String> {
    let timeout = Duration::from_secs(5);
    let watermarks = |partition: i32| {
        consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| format!("watermarks of {topic}/{partition}: {e}"))
    };
    let mut result = Fetched::default();
    let mut ranges: BTreeMap<i32, Range<i64>> = BTreeMap::new();
    match need {
        Need::Ranges(wanted) => {
            let mut budget = limit as i64;
            for missing in wanted {
                let (partition, from, until) = (missing.partition, missing.from, missing.until);
                let (low, high) = watermarks(partition)?;
                let end = until.unwrap_or(high).min(high);
                let mut start = from.max(low);
                if from < low {
                    result.gap = true;
                }
                if end - start > budget {
                    start = end - budget;
                    result.gap = true;
                }
                budget -= (end - start).max(0);
                ranges.insert(partition, start.min(end)..end);
            }
        }
        Need::Tails(before) => {
            let metadata = consumer
                .fetch_metadata(Some(topic), timeout)
                .map_err(|e| format!("metadata of {topic}: {e}"))?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic)
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            let each = (limit / partitions.len().max(1)).max(1) as i64;
            for partition in partitions {
                let (low, high) = watermarks(partition)?;
                let end = before.get(&partition).copied().unwrap_or(high).min(high);
                ranges.insert(partition, (end - each).max(low).min(end)..end);
            }
        }
    }
    result.covered = ranges.clone();
    let deadline = Instant::now() + READ_TIMEOUT;
    let abort = || (Instant::now() >= deadline).then(|| format!("reading {topic} timed out"));
    read_ranges(consumer, topic, &ranges, abort, |record| {
        result.records.push(record)
    })?;
    Ok(result)
}

/// Assigns the non-empty ranges and polls until each is read, or `abort` gives a reason to
/// stop (checked between polls).
fn read_ranges(
    consumer: &BaseConsumer,
    topic: &str,
    ranges: &BTreeMap<i32, Range<i64>>,
    abort: impl Fn() -> Option<String>,
    mut each: impl FnMut(OwnedRecord),
) -> Result<(), String> {
    let mut pending: HashMap<i32, i64> = ranges
        .iter()
        .filter(|(_, r)| r.start < r.end)
        .map(|(p, r)| (*p, r.end))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let mut assignment = TopicPartitionList::new();
    for (partition, range) in ranges.iter().filter(|(p, _)| pending.contains_key(p)) {
        assignment
            .add_partition_offset(topic, *partition, Offset::Offset(range.start))
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    while !pending.is_empty() {
        if let Some(reason) = abort() {
            return Err(reason);
        }
        match consumer.poll(POLL) {
            Some(Ok(message)) => {
                let partition = message.partition();
                let Some(&end) = pending.get(&partition) else {
                    continue;
                };
                if message.offset() < end {
                    each(OwnedRecord {
                        partition,
                        offset: message.offset(),
                        timestamp: message.timestamp().to_millis(),
                        key: message.key().map(<[u8]>::to_vec),
                        value: message.payload().map(<[u8]>::to_vec),
                        headers: message
                            .headers()
                            .map(|h| {
                                h.iter()
                                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    });
                }
                if message.offset() + 1 >= end {
                    pending.remove(&partition);
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                pending.remove(&partition);
            }
            Some(Err(e)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::OffsetOutOfRange) => {
                return Err(format!("reading {topic}: {e}"));
            }
            Some(Err(e)) => tracing::debug!(error = %e, "range read"),
            None => {
                // Offsets may be missing at the end (compaction, transaction markers).
                if let Ok(positions) = consumer.position() {
                    for element in positions.elements() {
                        if let (Offset::Offset(at), Some(end)) =
                            (element.offset(), pending.get(&element.partition()))
                        {
                            if at >= *end {
                                pending.remove(&element.partition());
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reads every snapshot topic from its beginning up to the high watermarks seen at start,
/// handing each record to `sink`, then marks snapshots loaded. Retries while Kafka is
/// unreachable; gives up only when `stop` is set.
pub(crate) fn load_snapshots(
    plan: &Plan,
    topics: Vec<String>,
    sink: Arc<dyn RecordSink>,
    status: Arc<KafkaStatus>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let config = reader_config(plan, "snapshots");
    std::thread::Builder::new()
        .name("snapshot-loader".into())
        .spawn(move || {
            let started = Instant::now();
            let mut loaded = 0u64;
            for topic in &topics {
                loop {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    match load_topic(&config, topic, &*sink, &stop) {
                        Ok(count) => {
                            loaded += count;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(topic = %topic, error = %e, "loading snapshots; retrying");
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    }
                }
            }
            tracing::info!(records = loaded, elapsed_ms = started.elapsed().as_millis() as u64, "snapshots loaded");
            status.set_snapshots_loaded();
        })
}

fn load_topic(
    config: &ClientConfig,
    topic: &str,
    sink: &dyn RecordSink,
    stop: &AtomicBool,
) -> Result<u64, String> {
    let consumer: BaseConsumer = config.create().map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(5);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("metadata: {e}"))?;
    let topic_metadata = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or("topic missing from metadata")?;
    if let Some(e) = topic_metadata.error() {
        return Err(format!("{e:?}"));
    }
    let mut ranges = BTreeMap::new();
    for partition in topic_metadata.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition.id(), timeout)
            .map_err(|e| format!("watermarks: {e}"))?;
        ranges.insert(partition.id(), low..high);
    }
    let mut count = 0;
    // No deadline: a large topic takes as long as it takes; only shutting down ends it.
    let abort = || stop.load(Ordering::Acquire).then(|| "stopped".to_owned());
    read_ranges(&consumer, topic, &ranges, abort, |record| {
        count += 1;
        // A record whose schema is still being fetched is handed again until it is routed:
        // snapshots are loaded in order, and this thread has nothing else to do meanwhile.
        let mut backoff = Duration::from_millis(20);
        while record.with_record(topic, |r| sink.record(r)) == Routed::Later {
            if stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    })?;
    Ok(count)
}

/// How often the lag monitor queries high watermarks.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// Queries the high watermark of every assigned partition once a second, so that the lag
/// gauge stays current even when fetching stalls or is paused (librdkafka's own statistics
/// learn watermarks from fetch responses only).
pub(crate) fn monitor_lag(
    plan: &Plan,
    status: Arc<KafkaStatus>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let config = reader_config(plan, "lag");
    std::thread::Builder::new()
        .name("kafka-lag".into())
        .spawn(move || {
            let consumer: BaseConsumer = match config.create() {
                Ok(consumer) => consumer,
                Err(e) => return tracing::warn!(error = %e, "lag monitor cannot start"),
            };
            let mut next = Instant::now();
            while !stop.load(Ordering::Acquire) {
                if Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                next = Instant::now() + LAG_INTERVAL;
                for partition in status.partitions() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    match consumer.fetch_watermarks(
                        &partition.topic,
                        partition.partition,
                        LAG_INTERVAL,
                    ) {
                        Ok((_, high)) => {
                            status.on_high_watermark(&partition.topic, partition.partition, high)
                        }
                        Err(e) => tracing::debug!(error = %e, "watermark query"),
                    }
                }
            }
        })
}
