//! What the Kafka clients report about themselves — broker connections, the consumer's
//! assignment, each partition's fetch state and lag — kept for `/readyz`, `/api/v1/status` and
//! the metrics. Updated from librdkafka callbacks (statistics every `statistics.interval.ms`,
//! rebalances, errors), which must never block: every method here is a short lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Which client a callback is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Consumer,
    Producer,
}

/// One assigned partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    /// True once librdkafka knows where to fetch from and is fetching.
    pub fetching: bool,
    /// Records between the consumer's position and the high watermark, when known.
    pub lag: Option<i64>,
    /// The offset after the last record the bridge routed (or where it starts), when known.
    pub position: Option<i64>,
    /// The partition's high watermark, when known.
    pub high_watermark: Option<i64>,
}

impl PartitionStatus {
    fn refresh_lag(&mut self) {
        self.lag = match (self.position, self.high_watermark) {
            (Some(position), Some(high)) => Some((high - position).max(0)),
            _ => None,
        };
    }
}

#[derive(Default)]
struct Inner {
    /// Brokers with an open connection, per client; `None` when that client does not exist,
    /// 0 until its first statistics.
    consumer_brokers_up: Option<usize>,
    producer_brokers_up: Option<usize>,
    /// Whether each client has any connection up, the bootstrap one included: after a long
    /// outage librdkafka re-bootstraps, forgets the brokers it had learned and keeps only the
    /// bootstrap connection until a request needs more, so an idle client is connected (and
    /// Kafka reachable) while it counts no learned broker.
    consumer_connected: bool,
    producer_connected: bool,
    assignment: BTreeMap<(String, i32), PartitionStatus>,
    /// Topics the consumer subscribed to.
    topics: Vec<String>,
    last_error: Option<(String, Instant)>,
    /// The last error that says why the clients are failing: not a summary such as "all
    /// brokers are down", nor a consumer's copy of an error without its reason. Readiness
    /// shows it rather than such a later, vaguer error.
    last_cause: Option<(String, Instant)>,
    /// When each kind of error (see [`log_key`]) was last logged.
    logged: BTreeMap<String, Instant>,
    /// Whether snapshot channels have been rebuilt from Kafka (true when there are none).
    snapshots_loaded: bool,
    /// Partitions whose start position is resolved but not committed yet (a new group that
    /// routed nothing): committed by the consumer thread so a restart resumes from there.
    initial_commits: Vec<(String, i32, i64)>,
    /// Partitions already given an initial commit.
    initially_committed: std::collections::BTreeSet<(String, i32)>,
    /// A fatal client error: the client cannot recover without a restart.
    fatal: Option<String>,
    /// Partitions per subscribed topic, from the consumer's metadata (statistics).
    partition_counts: BTreeMap<String, usize>,
}

/// Shared, cheap to read status of the Kafka side.
pub struct KafkaStatus {
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
    /// Whether an operator asked to pause outbound delivery (`POST /api/v1/pause`).
    pause: watch::Sender<bool>,
    /// What the consumer thread has applied.
    pause_applied: watch::Sender<bool>,
    /// Why the Kafka side can no longer work (a fatal client error, a dead client thread):
    /// the supervisor shuts the bridge down on it.
    failure: watch::Sender<Option<String>>,
}

/// How often the same client error is logged again.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

impl KafkaStatus {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        metrics.snapshots_loaded.set(1);
        KafkaStatus {
            inner: Mutex::new(Inner {
                snapshots_loaded: true,
                ..Inner::default()
            }),
            metrics,
            pause: watch::Sender::new(false),
            pause_applied: watch::Sender::new(false),
            failure: watch::Sender::new(None),
        }
    }

    /// Snapshots will be loaded: not ready until [`Self::set_snapshots_loaded`].
    pub fn expect_snapshots(&self) {
        self.inner.lock().snapshots_loaded = false;
        self.metrics.snapshots_loaded.set(0);
    }

    pub(super) fn set_snapshots_loaded(&self) {
        self.inner.lock().snapshots_loaded = true;
        self.metrics.snapshots_loaded.set(1);
    }

    pub fn snapshots_loaded(&self) -> bool {
        self.inner.lock().snapshots_loaded
    }

    /// A client exists: it counts for [`Self::reachable`] from now on.
    pub(super) fn register(&self, role: Role) {
        let mut inner = self.inner.lock();
        match role {
            Role::Consumer => inner.consumer_brokers_up = Some(0),
            Role::Producer => inner.producer_brokers_up = Some(0),
        }
    }

    pub(super) fn set_topics(&self, topics: Vec<String>) {
        self.inner.lock().topics = topics;
    }

    pub(super) fn on_stats(&self, role: Role, stats: &Statistics) {
        let up = stats
            .brokers
            .values()
            .filter(|b| b.nodeid >= 0 && b.state == "UP")
            .count();
        let connected = stats.brokers.values().any(|b| b.state == "UP");
        let mut inner = self.inner.lock();
        match role {
            Role::Consumer => {
                inner.consumer_brokers_up = Some(up);
                inner.consumer_connected = connected;
            }
            Role::Producer => {
                inner.producer_brokers_up = Some(up);
                inner.producer_connected = connected;
            }
        }
        let brokers_up = inner
            .consumer_brokers_up
            .into_iter()
            .chain(inner.producer_brokers_up)
            .min()
            .unwrap_or(0);
        self.metrics.kafka_brokers_up.set(brokers_up as i64);
        if role != Role::Consumer {
            return;
        }
        for topic in stats.topics.values() {
            let count = topic.partitions.keys().filter(|p| **p >= 0).count();
            if count > 0 {
                inner.partition_counts.insert(topic.topic.clone(), count);
            }
        }
        for topic in stats.topics.values() {
            for partition in topic.partitions.values() {
                let key = (topic.topic.clone(), partition.partition);
                if !inner.assignment.contains_key(&key) {
                    continue;
                }
                let fetching = partition.fetch_state == "active";
                // Where the group should resume: after the last routed record, else where
                // fetching starts.
                let start = if partition.stored_offset >= 0 {
                    partition.stored_offset
                } else {
                    partition.next_offset
                };
                if fetching
                    && partition.committed_offset < 0
                    && start >= 0
                    && !inner.initially_committed.contains(&key)
                {
                    inner.initially_committed.insert(key.clone());
                    inner.initial_commits.push((key.0.clone(), key.1, start));
                }
                let Some(status) = inner.assignment.get_mut(&key) else {
                    continue;
                };
                status.fetching = fetching;
                // The bridge's position: the offset after the last record it handled (stored),
                // else the group's committed offset, else (nothing consumed yet, e.g. a fresh
                // group at `latest`) where the consumer fetches from.
                status.position = [
                    partition.stored_offset,
                    partition.committed_offset,
                    if fetching { partition.next_offset } else { -1 },
                ]
                .into_iter()
                .find(|offset| *offset >= 0);
                // librdkafka learns the high watermark from fetch responses only; the lag
                // monitor's watermark queries keep it current when fetching stalls or is paused.
                if partition.hi_offset >= 0 {
                    status.high_watermark = status.high_watermark.max(Some(partition.hi_offset));
                }
                status.refresh_lag();
                self.publish_lag(status);
            }
        }
    }

    /// The high watermark of an assigned partition, as queried by the lag monitor.
    pub(super) fn on_high_watermark(&self, topic: &str, partition: i32, high: i64) {
        let mut inner = self.inner.lock();
        if let Some(status) = inner.assignment.get_mut(&(topic.to_owned(), partition)) {
            status.high_watermark = status.high_watermark.max(Some(high));
            status.refresh_lag();
            self.publish_lag(status);
        }
    }

    fn publish_lag(&self, status: &PartitionStatus) {
        if let Some(lag) = status.lag {
            self.metrics
                .consumer_lag
                .with_label_values(&[&status.topic, &status.partition.to_string()])
                .set(lag);
        }
    }

    /// Asks the consumer to pause (or resume) outbound delivery.
    pub fn request_pause(&self, paused: bool) {
        self.pause.send_replace(paused);
    }

    /// Whether delivery should be paused (what was asked).
    pub fn paused(&self) -> bool {
        *self.pause.borrow()
    }

    /// The consumer thread's view of pause requests.
    pub(super) fn pause_requests(&self) -> watch::Receiver<bool> {
        self.pause.subscribe()
    }

    /// The consumer applied a pause or resume.
    pub(super) fn pause_applied(&self, paused: bool) {
        self.pause_applied.send_replace(paused);
    }

    /// Resolves once the consumer has applied `paused`.
    pub async fn pause_settled(&self, paused: bool) {
        let mut applied = self.pause_applied.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = applied.wait_for(|applied| *applied == paused).await;
    }

    /// The Kafka side can no longer work: the bridge must shut down and exit with an error
    /// (the first reason is kept).
    pub fn fail(&self, reason: String) {
        self.failure.send_if_modified(|failure| {
            if failure.is_some() {
                return false;
            }
            *failure = Some(reason);
            true
        });
    }

    /// Resolves with the reason once [`Self::fail`] was called.
    pub async fn failed(&self) -> String {
        let mut failure = self.failure.subscribe();
        let reason = failure
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|reason| reason.clone());
        match reason {
            Some(reason) => reason,
            // The sender lives as long as `self`: never.
            None => std::future::pending().await,
        }
    }

    pub(super) fn on_assign(&self, partitions: Vec<(String, i32)>) {
        let mut inner = self.inner.lock();
        for (topic, partition) in partitions {
            inner.assignment.insert(
                (topic.clone(), partition),
                PartitionStatus {
                    topic,
                    partition,
                    fetching: false,
                    lag: None,
                    position: None,
                    high_watermark: None,
                },
            );
        }
        self.metrics.rebalances.inc();
        self.metrics
            .assigned_partitions
            .set(inner.assignment.len() as i64);
    }

    pub(super) fn on_revoke(&self, partitions: Vec<(String, i32)>) {
        let mut inner = self.inner.lock();
        for (topic, partition) in partitions {
            inner.assignment.remove(&(topic.clone(), partition));
            let _ = self
                .metrics
                .consumer_lag
                .remove_label_values(&[&topic, &partition.to_string()]);
        }
        self.metrics.rebalances.inc();
        self.metrics
            .assigned_partitions
            .set(inner.assignment.len() as i64);
    }

    /// Records a client error (librdkafka's error callback: the error and its reason); logs it
    /// unless an error of the same kind was logged within [`ERROR_LOG_INTERVAL`], by either
    /// client. librdkafka reports a failing connection again at every reconnect attempt, with
    /// a reason that differs only in its timings, so the same text is not the same error.
    pub(super) fn on_error(&self, role: Role, error: &KafkaError, reason: &str) {
        self.record_error(role, error, Some(reason));
    }

    /// Records an error the consumer's poll returned. These repeat, without their reason, the
    /// errors the error callback reported just before (an authentication failure comes as both);
    /// logged only when no error of the same kind was.
    pub(super) fn on_consume_error(&self, error: &KafkaError) {
        self.record_error(Role::Consumer, error, None);
    }

    /// Returns whether the error was logged.
    fn record_error(&self, role: Role, error: &KafkaError, reason: Option<&str>) -> bool {
        let message = match reason {
            Some(reason) => format!("{error}: {reason}"),
            None => format!("{error}: while consuming"),
        };
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let fatal = matches!(error, KafkaError::MessageConsumptionFatal(_))
            || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::Fatal);
        if fatal {
            tracing::error!(client = ?role, error = %message, "fatal kafka client error: restart this instance (two instances with the same instance_id fence each other)");
            inner.fatal = Some(message.clone());
            self.fail(format!("fatal kafka client error: {message}"));
        }
        let key = log_key(error, &message);
        let summary =
            error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown);
        if reason.is_some() && !summary {
            inner.last_cause = Some((message.clone(), now));
        }
        let recent = |inner: &Inner, key: &str| {
            inner
                .logged
                .get(key)
                .is_some_and(|at| now.duration_since(*at) < ERROR_LOG_INTERVAL)
        };
        // A consumer's copy stands aside for the error it copies (same kind, with a reason).
        let copy_key = format!("{key} (consumer)");
        let log = match reason {
            Some(_) => !recent(&inner, &key),
            None => !recent(&inner, &key) && !recent(&inner, &copy_key),
        };
        if log && !fatal {
            tracing::warn!(client = ?role, error = %message, "kafka client error");
        }
        if log {
            inner
                .logged
                .insert(if reason.is_some() { key } else { copy_key }, now);
        }
        inner.last_error = Some((message, now));
        log
    }

    /// True when every client has at least one connection up, a bootstrap one included
    /// (vacuously true when the config needs no client), and none failed fatally.
    pub fn reachable(&self) -> bool {
        let inner = self.inner.lock();
        let consumer = inner.consumer_brokers_up.is_none() || inner.consumer_connected;
        let producer = inner.producer_brokers_up.is_none() || inner.producer_connected;
        inner.fatal.is_none() && consumer && producer
    }

    /// Positions to commit for partitions a new group has not committed yet.
    pub(super) fn take_initial_commits(&self) -> Vec<(String, i32, i64)> {
        std::mem::take(&mut self.inner.lock().initial_commits)
    }

    /// Subscribed topics not fully assigned to this instance, with how many of how many
    /// partitions it holds (of unknown total before the first metadata).
    pub fn incompletely_assigned(&self) -> Vec<(String, usize, Option<usize>)> {
        let inner = self.inner.lock();
        inner
            .topics
            .iter()
            .filter_map(|t| {
                let held = inner
                    .assignment
                    .keys()
                    .filter(|(topic, _)| topic == t)
                    .count();
                let total = inner.partition_counts.get(t).copied();
                let complete = held > 0 && total.is_none_or(|total| held >= total);
                (!complete).then(|| (t.clone(), held, total))
            })
            .collect()
    }

    /// Assigned partitions whose fetch position is not resolved yet.
    pub fn partitions_not_fetching(&self) -> usize {
        self.inner
            .lock()
            .assignment
            .values()
            .filter(|p| !p.fetching)
            .count()
    }

    /// The current assignment with lag, in topic/partition order.
    pub fn partitions(&self) -> Vec<PartitionStatus> {
        self.inner.lock().assignment.values().cloned().collect()
    }

    /// Why the clients are failing, for status pages: the last error that says why, unless it
    /// is much older than the last error of any kind.
    pub fn last_error(&self) -> Option<String> {
        let inner = self.inner.lock();
        match (&inner.last_cause, &inner.last_error) {
            (Some((cause, at)), Some((_, last)))
                if last.duration_since(*at) < ERROR_LOG_INTERVAL =>
            {
                Some(cause.clone())
            }
            (_, last) => last.as_ref().map(|(e, _)| e.clone()),
        }
    }
}

/// What makes two errors the same for logging: librdkafka's error code (the texts differ from
/// one reconnect attempt to the next), else the text.
fn log_key(error: &KafkaError, message: &str) -> String {
    match error.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests;
