//! `auth.session_registry` on Kafka: the writer of this instance's session records (through the
//! shared producer, never waiting for Kafka) and the reader of everyone's: a consumer of its
//! own, assigned every partition of the topic from the beginning, which hands each record to
//! the registry of sessions and says when it has read what the topic held at start. Partitions
//! added to the topic later are not read until a restart.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

use super::consumer::BridgeContext;
use super::reader::reader_config;
use crate::config::Plan;
use crate::sessions::{RegistryLog, Sessions};

const POLL: Duration = Duration::from_millis(100);
/// Between attempts to start reading (the topic missing, Kafka unreachable).
const RETRY: Duration = Duration::from_secs(1);
/// How long a record may wait in the producer for delivery.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes this instance's session records.
pub(crate) struct RegistryWriter {
    pub(super) producer: rdkafka::producer::FutureProducer<BridgeContext>,
    pub(super) topic: String,
    /// Delivery reports are awaited there (records are appended from session tasks and from
    /// the reader's thread alike).
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) failures: IntCounter,
}

impl RegistryLog for RegistryWriter {
    fn append(&self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).key(&key);
        if let Some(value) = &value {
            record = record.payload(value);
        }
        let failed = |failures: &IntCounter, error: &KafkaError| {
            failures.inc();
            tracing::warn!(error = %error, "session registry: a session's record could not be written; other instances will not count it (kafka_ws_bridge_session_registry_write_failures_total)");
        };
        match self
            .producer
            .send_result(record)
            .map_err(|(error, _)| error)
        {
            Ok(delivery) => {
                let failures = self.failures.clone();
                self.runtime.spawn(async move {
                    match tokio::time::timeout(WRITE_TIMEOUT, delivery).await {
                        Ok(Ok(Ok(_))) => {}
                        Ok(Ok(Err((error, _)))) => failed(&failures, &error),
                        Ok(Err(_)) | Err(_) => failed(&failures, &KafkaError::Canceled),
                    }
                });
            }
            Err(error) => failed(&self.failures, &error),
        }
    }
}

/// Starts the thread that reads the registry topic into `sessions` until `stop`.
pub(crate) fn read_registry(
    plan: &Plan,
    topic: String,
    sessions: Arc<Sessions>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let config = reader_config(plan, "sessions");
    std::thread::Builder::new()
        .name("session-registry".into())
        .spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::Acquire) {
                match follow(&config, &topic, &sessions, &stop, started) {
                    Ok(()) => return,
                    Err(why) => {
                        tracing::warn!(topic = %topic, error = %why, "session registry: cannot read its topic; retrying");
                        sessions.registry_unavailable(why);
                        let until = Instant::now() + RETRY;
                        while Instant::now() < until && !stop.load(Ordering::Acquire) {
                            std::thread::sleep(POLL);
                        }
                    }
                }
            }
        })
}

/// Reads `topic` from the beginning, then live, until `stop`. Fails only before reading.
fn follow(
    config: &rdkafka::config::ClientConfig,
    topic: &str,
    sessions: &Sessions,
    stop: &AtomicBool,
    started: Instant,
) -> Result<(), String> {
    let consumer: BaseConsumer = config.create().map_err(|e| e.to_string())?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .map_err(|e| format!("metadata of {topic}: {e}"))?;
    let partitions: Vec<i32> = match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() => t.partitions().iter().map(|p| p.id()).collect(),
        Some(t) => {
            return Err(format!(
                "topic {topic}: {:?} (kafka-ws-bridge create-topics creates it)",
                t.error().expect("checked")
            ))
        }
        None => Vec::new(),
    };
    if partitions.is_empty() {
        return Err(format!(
            "topic {topic} is not in Kafka's metadata: does it exist? (kafka-ws-bridge create-topics creates it)"
        ));
    }
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        assignment
            .add_partition_offset(topic, *partition, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    // Partitions read up to their end at least once; all of them: loaded.
    let mut at_end = BTreeSet::new();
    let mut loaded = false;
    let mut records = 0u64;
    while !stop.load(Ordering::Acquire) {
        match consumer.poll(POLL) {
            Some(Ok(message)) => {
                records += 1;
                sessions.apply_registry_record(message.key(), message.payload());
            }
            Some(Err(KafkaError::PartitionEOF(partition))) if !loaded => {
                at_end.insert(partition);
                if at_end.len() == partitions.len() {
                    loaded = true;
                    tracing::info!(topic = %topic, records, elapsed_ms = started.elapsed().as_millis() as u64, "session registry: read up to its end");
                    sessions.registry_loaded();
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => tracing::debug!(topic = %topic, error = %e, "session registry read"),
        }
    }
    Ok(())
}
