//! The consumer stage per partition, in parallel: with `kafka.consumer_threads` above one, the
//! polling thread copies each record once into one buffer and hands it to the lane of its
//! partition; every lane is a thread that routes its partitions' records in order (decode, key,
//! the shared delivery, the hub, the sessions' queues). Records of one partition always take
//! the same lane, so their order is kept; different partitions are routed at once.
//!
//! A record its sink cannot route yet ([`Routed::Later`]: its schema is being fetched) stops
//! its partition: the lane pauses the partition in librdkafka, keeps the record and whatever of
//! that partition was handed to it afterwards, and hands them to the sink again, in order, with
//! a growing back-off; once they are routed it resumes the partition. Other partitions of the
//! lane flow meanwhile.
//!
//! The polling thread hands over a whole poll's worth of records per lane at once (up to
//! [`HANDOFF`]), so a lane thread wakes once per batch rather than once per record. The lanes'
//! queues are bounded ([`QUEUED_BATCHES`]): a lane that waits for slow sessions holds the
//! polling thread back, as routing on the polling thread did.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::TopicPartitionList;

use super::consumer::{
    apply_pause, commit_initial_positions, store, BridgeContext, DiesLoudly, POLL_TIMEOUT,
    RETRY_FIRST, RETRY_MAX,
};
use crate::outbound::{Record, RecordSink, Routed};

/// Most records handed to one lane in one batch.
pub(super) const HANDOFF: usize = 256;
/// Batches a lane may have waiting before the polling thread waits for it.
const QUEUED_BATCHES: usize = 16;
/// How long a lane waits for records before it looks at its held partitions again.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// Where a text lies in [`Copied::bytes`]: start and end.
type Range = (u32, u32);

/// A record copied out of librdkafka's buffer: key, value and headers in one allocation.
pub(super) struct Copied {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    bytes: Vec<u8>,
    key: Option<Range>,
    value: Option<Range>,
    /// Name range, and value range when the header has a value.
    headers: Vec<(Range, Option<Range>)>,
}

impl Copied {
    pub(super) fn of(message: &BorrowedMessage<'_>, topic: Arc<str>) -> Copied {
        let headers = message.headers();
        let size = message.key().map_or(0, <[u8]>::len)
            + message.payload().map_or(0, <[u8]>::len)
            + headers.map_or(0, |list| {
                list.iter()
                    .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
                    .sum()
            });
        let mut bytes = Vec::with_capacity(size);
        let mut put = |data: &[u8]| {
            let start = bytes.len() as u32;
            bytes.extend_from_slice(data);
            (start, bytes.len() as u32)
        };
        let key = message.key().map(&mut put);
        let value = message.payload().map(&mut put);
        let headers = headers.map_or_else(Vec::new, |list| {
            list.iter()
                .map(|h| (put(h.key.as_bytes()), h.value.map(&mut put)))
                .collect()
        });
        Copied {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            bytes,
            key,
            value,
            headers,
        }
    }

    fn range(&self, (start, end): Range) -> &[u8] {
        &self.bytes[start as usize..end as usize]
    }

    /// Lends the record to the sink; `spare` is a header buffer reused from record to record.
    fn with_record<T>(
        &self,
        spare: &mut Vec<(&'static str, Option<&'static [u8]>)>,
        f: impl FnOnce(&Record<'_>) -> T,
    ) -> T {
        let mut headers = super::consumer::reuse(std::mem::take(spare));
        headers.extend(self.headers.iter().map(|(name, value)| {
            (
                // Copied from a `&str`: the range holds whole UTF-8 text.
                std::str::from_utf8(self.range(*name)).unwrap_or_default(),
                value.map(|v| self.range(v)),
            )
        }));
        let result = f(&Record {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.map(|k| self.range(k)),
            value: self.value.map(|v| self.range(v)),
            headers: &headers,
        });
        *spare = super::consumer::reuse(headers);
        result
    }
}

/// What the polling thread sends a lane.
pub(super) enum Job {
    Records(Vec<Copied>),
    /// Partitions revoked: what the lane holds of them is dropped (their new owner reads it
    /// again from the last commit).
    Revoked(Vec<(String, i32)>),
}

/// Partitions some lane holds back behind a record that waits ([`Routed::Later`]); the polling
/// thread leaves them paused when an operator resumes delivery.
pub(super) type HeldPartitions = Arc<Mutex<HashSet<(String, i32)>>>;

/// The lanes of one consumer.
pub(super) struct Lanes {
    senders: Vec<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
    /// Records gathered for each lane during one poll.
    gathered: Vec<Vec<Copied>>,
    pub(super) held: HeldPartitions,
}

impl Lanes {
    pub(super) fn start(
        count: usize,
        consumer: &Arc<BaseConsumer<BridgeContext>>,
        sink: &Arc<dyn RecordSink>,
    ) -> std::io::Result<Lanes> {
        let held = HeldPartitions::default();
        let mut senders = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for number in 0..count {
            let (sender, receiver) = sync_channel(QUEUED_BATCHES);
            let lane = Lane {
                consumer: consumer.clone(),
                sink: sink.clone(),
                held: held.clone(),
                waiting: HashMap::new(),
                spare: Vec::new(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("kafka-lane-{number}"))
                    .spawn(move || lane.run(receiver))?,
            );
            senders.push(sender);
        }
        Ok(Lanes {
            gathered: (0..count).map(|_| Vec::new()).collect(),
            senders,
            threads,
            held,
        })
    }

    /// Gathers a record for its partition's lane; [`Lanes::hand_over`] sends what was gathered.
    pub(super) fn gather(&mut self, record: Copied) {
        let lane = lane_of(&record.topic, record.partition, self.senders.len());
        self.gathered[lane].push(record);
    }

    /// Whether some lane has [`HANDOFF`] records gathered.
    pub(super) fn full(&self) -> bool {
        self.gathered.iter().any(|g| g.len() >= HANDOFF)
    }

    /// Sends each lane what was gathered for it; waits while a lane's queue is full.
    pub(super) fn hand_over(&mut self) {
        for (sender, gathered) in self.senders.iter().zip(&mut self.gathered) {
            if !gathered.is_empty() {
                let batch = std::mem::replace(gathered, Vec::with_capacity(HANDOFF));
                // A lane ends only when its sender is dropped, or by panic (reported by it).
                let _ = sender.send(Job::Records(batch));
            }
        }
    }

    /// Tells every lane which partitions were revoked.
    pub(super) fn revoke(&self, revoked: &[(String, i32)]) {
        for sender in &self.senders {
            let _ = sender.send(Job::Revoked(revoked.to_vec()));
        }
    }

    /// Routes what was handed over, then stops the lanes and waits for them.
    pub(super) fn stop(mut self) {
        self.hand_over();
        self.senders.clear();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a consumer lane panicked");
            }
        }
    }
}

/// The polling thread's loop with the consumer stage in lanes ([`Lanes`]): this thread only polls, copies
/// and hands over; the lanes route and store offsets.
pub(super) fn poll_into_lanes(
    consumer: Arc<BaseConsumer<BridgeContext>>,
    mut lanes: Lanes,
    stop: Arc<AtomicBool>,
) {
    let status = consumer.context().status.clone();
    let _alive = DiesLoudly(status.clone());
    let mut pause = status.pause_requests();
    // Each topic's name once, shared by its records.
    let mut topics: Vec<Arc<str>> = Vec::new();
    let mut topic = |name: &str| match topics.iter().find(|t| &***t == name) {
        Some(known) => known.clone(),
        None => {
            topics.push(Arc::from(name));
            topics[topics.len() - 1].clone()
        }
    };
    while !stop.load(Ordering::Acquire) {
        if pause.has_changed().unwrap_or(false) {
            let paused = *pause.borrow_and_update();
            let held = lanes.held.lock().clone();
            apply_pause(&consumer, paused, |topic, partition| {
                held.contains(&(topic.to_owned(), partition))
            });
            status.pause_applied(paused);
        }
        let revoked = std::mem::take(&mut *consumer.context().revoked.lock());
        if !revoked.is_empty() {
            lanes.revoke(&revoked);
        }
        let mut timeout = POLL_TIMEOUT;
        // What one poll has ready, up to a hand-off per lane, goes to the lanes together.
        loop {
            match consumer.poll(timeout) {
                Some(Ok(message)) => {
                    let name = topic(message.topic());
                    lanes.gather(Copied::of(&message, name));
                }
                Some(Err(e)) => status.on_consume_error(&e),
                None => break,
            }
            timeout = Duration::ZERO;
            if lanes.full() {
                break;
            }
        }
        lanes.hand_over();
        commit_initial_positions(&consumer);
    }
    lanes.stop();
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, "final offset commit");
    }
    tracing::info!("consumer stopped");
}

/// The lane of a partition: the same for every record of it.
pub(super) fn lane_of(topic: &str, partition: i32, lanes: usize) -> usize {
    let topic_hash = topic
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (topic_hash.wrapping_add(partition as u64) % lanes as u64) as usize
}

/// Records held back on one partition: the first waits for the sink, the others behind it.
struct Waiting {
    records: VecDeque<Copied>,
    retry_at: Instant,
    backoff: Duration,
}

struct Lane {
    consumer: Arc<BaseConsumer<BridgeContext>>,
    sink: Arc<dyn RecordSink>,
    held: HeldPartitions,
    waiting: HashMap<(Arc<str>, i32), Waiting>,
    spare: Vec<(&'static str, Option<&'static [u8]>)>,
}

impl Lane {
    fn run(mut self, jobs: Receiver<Job>) {
        let _alive = DiesLoudly(self.consumer.context().status.clone());
        loop {
            let wait = self
                .waiting
                .values()
                .map(|w| w.retry_at.saturating_duration_since(Instant::now()))
                .min()
                .map_or(IDLE_WAIT, |d| d.min(IDLE_WAIT));
            match jobs.recv_timeout(wait) {
                Ok(Job::Records(records)) => {
                    for record in records {
                        self.route(record);
                    }
                }
                Ok(Job::Revoked(revoked)) => {
                    for (topic, partition) in revoked {
                        let key = (Arc::<str>::from(topic.as_str()), partition);
                        if self.waiting.remove(&key).is_some() {
                            self.held.lock().remove(&(topic, partition));
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Stopping: what waits is not committed and is read again after a restart.
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.retry();
        }
    }

    /// Routes a record, or queues it behind its partition's waiting records.
    fn route(&mut self, record: Copied) {
        let key = (record.topic.clone(), record.partition);
        if let Some(waiting) = self.waiting.get_mut(&key) {
            waiting.records.push_back(record);
            return;
        }
        let sink = &*self.sink;
        match record.with_record(&mut self.spare, |r| sink.record(r)) {
            Routed::Done => store(
                &self.consumer,
                &record.topic,
                record.partition,
                record.offset,
            ),
            Routed::Later => {
                self.pause(&record.topic, record.partition);
                self.waiting.insert(
                    key,
                    Waiting {
                        records: VecDeque::from([record]),
                        retry_at: Instant::now() + RETRY_FIRST,
                        backoff: RETRY_FIRST,
                    },
                );
            }
        }
    }

    /// Hands each held partition's records to the sink again, in order, once their time has come.
    fn retry(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let now = Instant::now();
        let sink = self.sink.clone();
        let mut done = Vec::new();
        for (key, waiting) in &mut self.waiting {
            if waiting.retry_at > now {
                continue;
            }
            while let Some(record) = waiting.records.front() {
                match record.with_record(&mut self.spare, |r| sink.record(r)) {
                    Routed::Done => {
                        store(&self.consumer, &key.0, key.1, record.offset);
                        waiting.records.pop_front();
                    }
                    Routed::Later => break,
                }
            }
            if waiting.records.is_empty() {
                done.push(key.clone());
            } else {
                waiting.backoff = (waiting.backoff * 2).min(RETRY_MAX);
                waiting.retry_at = now + waiting.backoff;
            }
        }
        for (topic, partition) in done {
            self.waiting.remove(&(topic.clone(), partition));
            self.held.lock().remove(&(topic.to_string(), partition));
            if !self.consumer.context().status.paused() {
                let mut list = TopicPartitionList::new();
                list.add_partition(&topic, partition);
                if let Err(e) = self.consumer.resume(&list) {
                    tracing::warn!(topic = %topic, partition, error = %e, "cannot resume a partition");
                }
            }
        }
    }

    /// Pauses a partition behind a waiting record: what librdkafka fetched after what was polled
    /// is discarded and fetched again once it resumes; what was polled already waits here.
    fn pause(&self, topic: &str, partition: i32) {
        self.held.lock().insert((topic.to_owned(), partition));
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, partition);
        if let Err(e) = self.consumer.pause(&list) {
            tracing::warn!(topic, partition, error = %e, "cannot pause a partition behind a waiting record");
        }
        tracing::debug!(topic, partition, "record waits for its schema");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_always_takes_the_same_lane_and_partitions_spread() {
        for lanes in 1..=8 {
            let mut used = HashSet::new();
            for partition in 0..64 {
                let lane = lane_of("orders", partition, lanes);
                assert!(lane < lanes);
                assert_eq!(lane, lane_of("orders", partition, lanes));
                used.insert(lane);
            }
            assert_eq!(used.len(), lanes, "64 partitions use all {lanes} lanes");
        }
    }
}
