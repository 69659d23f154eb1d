//! The Kafka side as one part the application starts and stops: the inbound producer, the
//! reader for replays, the outbound consumer and its helper threads (lag monitor, snapshot
//! loader). It owns its own stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::consumer::{start_consumer, ConsumerHandle};
use super::producer::Producer;
use super::reader::{load_snapshots, monitor_lag, RangeReader};
use super::session_registry::read_registry;
use super::status::KafkaStatus;
use super::StartError;
use crate::config::Plan;
use crate::inbound::RecordWriter;
use crate::outbound::{RangeRead, RecordSink};
use crate::sessions::{RegistryLog, Sessions};

pub(crate) struct KafkaSide {
    status: Arc<KafkaStatus>,
    producer: Option<Producer>,
    reader: Arc<RangeReader>,
    consumer: Option<ConsumerHandle>,
    /// The lag monitor, snapshot loader and session registry threads, and their stop flag.
    threads: Vec<JoinHandle<()>>,
    threads_stop: Arc<AtomicBool>,
}

/// What the consumer feeds.
pub(crate) struct Outlets {
    /// Topics of the outbound channels, and where their records go.
    pub topics: Vec<String>,
    pub sink: Arc<dyn RecordSink>,
    /// Topics read from the beginning at start to rebuild snapshots, and where.
    pub snapshot_topics: Vec<String>,
    pub snapshot_sink: Arc<dyn RecordSink>,
}

impl KafkaSide {
    /// The clients that need no outlet: the producer (when something publishes) and the
    /// replay reader.
    pub fn new(plan: &Plan, status: Arc<KafkaStatus>) -> Result<Self, StartError> {
        let config = &plan.config;
        let producer = if config.inbound.is_empty()
            && config.server.api_keys.is_empty()
            && plan.session_registry_topic().is_none()
        {
            None
        } else {
            Some(Producer::new(plan, status.clone())?)
        };
        Ok(KafkaSide {
            reader: Arc::new(RangeReader::new(plan)),
            status,
            producer,
            consumer: None,
            threads: Vec::new(),
            threads_stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Where publishes are written; `None` when nothing publishes.
    pub fn writer(&self) -> Option<Arc<dyn RecordWriter>> {
        self.producer
            .clone()
            .map(|p| Arc::new(p) as Arc<dyn RecordWriter>)
    }

    pub fn reader(&self) -> Arc<dyn RangeRead> {
        self.reader.clone()
    }

    /// Where this instance writes its sessions' records (`auth.session_registry`); `None`
    /// when the plan has no registry. Needs a Tokio runtime (delivery reports are awaited
    /// on it).
    pub fn session_registry_log(
        &self,
        plan: &Plan,
        failures: prometheus::IntCounter,
    ) -> Option<Box<dyn RegistryLog>> {
        let topic = plan.session_registry_topic()?;
        let producer = self.producer.as_ref()?;
        Some(Box::new(producer.registry_writer(topic, failures)))
    }

    /// Starts reading the registry topic into `sessions` (when the plan has one).
    pub fn start_session_registry(
        &mut self,
        plan: &Plan,
        sessions: Arc<Sessions>,
    ) -> Result<(), StartError> {
        let Some(topic) = plan.session_registry_topic() else {
            return Ok(());
        };
        self.threads.push(
            read_registry(plan, topic.to_owned(), sessions, self.threads_stop.clone())
                .map_err(StartError::Thread)?,
        );
        Ok(())
    }

    /// Starts the consumer, the lag monitor and the snapshot loader (each only when needed).
    pub fn start_consuming(&mut self, plan: &Plan, outlets: Outlets) -> Result<(), StartError> {
        if outlets.topics.is_empty() {
            return Ok(());
        }
        self.consumer = Some(start_consumer(
            plan,
            outlets.topics,
            outlets.sink,
            self.status.clone(),
        )?);
        self.threads.push(
            monitor_lag(plan, self.status.clone(), self.threads_stop.clone())
                .map_err(StartError::Thread)?,
        );
        // Snapshots are rebuilt from the beginning of their topics, beside the live consumer.
        if !outlets.snapshot_topics.is_empty() {
            self.status.expect_snapshots();
            self.threads.push(
                load_snapshots(
                    plan,
                    outlets.snapshot_topics,
                    outlets.snapshot_sink,
                    self.status.clone(),
                    self.threads_stop.clone(),
                )
                .map_err(StartError::Thread)?,
            );
        }
        Ok(())
    }

    /// Stops the consumer (committing what was routed) and flushes the producer, side by side,
    /// giving up at `deadline`: the consumer's final commit waits for the broker without a
    /// limit of its own (librdkafka), so it must not hold up the flush. Whatever is still stuck
    /// at the deadline is abandoned (the process does not wait for it either).
    pub async fn stop(self, deadline: Instant) {
        let KafkaSide {
            producer,
            consumer,
            threads,
            threads_stop,
            ..
        } = self;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let consumer = tokio::task::spawn_blocking(move || {
            threads_stop.store(true, Ordering::Release);
            for thread in threads {
                let _ = thread.join();
            }
            if let Some(consumer) = consumer {
                consumer.stop();
            }
        });
        let producer = tokio::task::spawn_blocking(move || {
            if let Some(producer) = producer {
                if let Err(e) = producer.flush(remaining) {
                    tracing::warn!(error = %e, in_flight = producer.in_flight(), "producer flush incomplete");
                }
            }
        });
        let remaining = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
        if tokio::time::timeout(remaining, async {
            let _ = tokio::join!(consumer, producer);
        })
        .await
        .is_err()
        {
            tracing::warn!(
                "shutdown deadline reached while stopping kafka clients (broker unreachable?): \
                 offsets routed since the last commit will be routed again after a restart"
            );
        }
    }
}
