//! Kafka side of the benchmark: topic creation, the paced producer that offers records to the
//! bridges, the plain-consumer latency floor and the plain-producer baseline of scenario e.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, FutureProducer, FutureRecord, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::{json, Value};

use crate::hist::Hist;
use crate::procstat::{now_us, CpuMeter};
use crate::ws::find_u64;

/// Settings of every client kwb-load creates, before its own.
pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c.set("client.id", "kwb-load");
    c.set("log_level", "4");
    c
}

pub async fn create_topics(
    bootstrap: &str,
    topics: &[String],
    partitions: i32,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap)
        .create()
        .map_err(|e| format!("admin client: {e}"))?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .map_err(|e| format!("create topics: {e}"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(format!("create topic {topic}: {code}")),
        }
    }
    Ok(())
}

/// A record value of about `size` bytes: `{"ts":<µs>,"seq":<n>,"pad":"xxx…"}`.
pub fn record_value(out: &mut Vec<u8>, ts: u64, seq: u64, size: usize) {
    use std::io::Write;
    out.clear();
    let _ = write!(out, "{{\"ts\":{ts},\"seq\":{seq},\"pad\":\"");
    let pad = size.saturating_sub(out.len() + 2).max(1);
    out.extend(std::iter::repeat_n(b'x', pad));
    out.extend_from_slice(b"\"}");
}

#[derive(Default)]
pub struct DeliveryCounts {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

pub struct CountingContext(pub Arc<DeliveryCounts>);

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The load producer: offers timestamped records at a fixed rate.
pub struct Pacer {
    producer: ThreadedProducer<CountingContext>,
    pub counts: Arc<DeliveryCounts>,
    topic: String,
    size: usize,
    /// by_key load: records are keyed `k0 .. k{keys-1}`, round robin.
    keys: Option<u64>,
    pub seq: u64,
    value: Vec<u8>,
    key: String,
    pub queue_full: u64,
    /// Records stamped within `window` (µs since the epoch, end excluded) are counted.
    pub window: (u64, u64),
    pub in_window: u64,
    /// When set, every record carries the header `centrifugo-channels` (Centrifugo's Kafka
    /// consumer reads its target channels from it): this value on broadcast load, the record's
    /// key on keyed load. Set for every peer of a run, so all of them read the same records.
    pub channels_header: Option<String>,
}

/// The header Centrifugo's Kafka consumer (publication data mode) takes channels from.
pub const CENTRIFUGO_CHANNELS_HEADER: &str = "centrifugo-channels";

pub struct PaceReport {
    pub produced: u64,
    pub secs: f64,
    /// Largest shortfall behind the schedule, in records (the producer could not keep up).
    pub max_behind: u64,
}

impl Pacer {
    pub fn new(
        bootstrap: &str,
        topic: &str,
        size: usize,
        keys: Option<u64>,
    ) -> Result<Pacer, String> {
        Self::with_config(bootstrap, topic, size, keys, 1)
    }

    /// The same pacer with another linger.ms.
    pub fn with_linger(self, bootstrap: &str, linger_ms: u32) -> Result<Pacer, String> {
        Self::with_config(bootstrap, &self.topic, self.size, self.keys, linger_ms)
    }

    fn with_config(
        bootstrap: &str,
        topic: &str,
        size: usize,
        keys: Option<u64>,
        linger_ms: u32,
    ) -> Result<Pacer, String> {
        let counts = Arc::new(DeliveryCounts::default());
        let producer = base_config(bootstrap)
            .set("linger.ms", linger_ms.to_string())
            .set("queue.buffering.max.messages", "2000000")
            .set("queue.buffering.max.kbytes", "2097151")
            .set("message.timeout.ms", "30000")
            .create_with_context(CountingContext(counts.clone()))
            .map_err(|e| format!("producer: {e}"))?;
        Ok(Pacer {
            producer,
            counts,
            topic: topic.to_owned(),
            size,
            keys,
            seq: 0,
            value: Vec::with_capacity(size + 64),
            key: String::new(),
            queue_full: 0,
            window: (u64::MAX, u64::MAX),
            in_window: 0,
            channels_header: None,
        })
    }

    /// The same pacer, its records carrying the `centrifugo-channels` header (see the field).
    pub fn with_channels_header(mut self, channel: Option<String>) -> Pacer {
        self.channels_header = channel;
        self
    }

    /// Produces one record stamped now; false when librdkafka's queue is full.
    pub fn send_one(&mut self) -> bool {
        self.send_at(now_us())
    }

    /// Produces one record stamped `ts` (µs since the epoch: the time it was scheduled to be
    /// sent, see pace.rs); false when librdkafka's queue is full.
    pub fn send_at(&mut self, ts: u64) -> bool {
        use std::fmt::Write;
        record_value(&mut self.value, ts, self.seq, self.size);
        let mut record = BaseRecord::to(&self.topic).payload(&self.value[..]);
        if let Some(keys) = self.keys {
            self.key.clear();
            let _ = write!(self.key, "k{}", self.seq % keys);
            record = record.key(self.key.as_bytes());
        }
        if let Some(channel) = &self.channels_header {
            let value = if self.keys.is_some() {
                self.key.as_bytes()
            } else {
                channel.as_bytes()
            };
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: CENTRIFUGO_CHANNELS_HEADER,
                value: Some(value),
            }));
        }
        match self.producer.send(record) {
            Ok(()) => {
                self.seq += 1;
                if ts >= self.window.0 && ts < self.window.1 {
                    self.in_window += 1;
                }
                true
            }
            Err(_) => {
                self.queue_full += 1;
                false
            }
        }
    }

    /// Produces at `rate` records/s for `dur`, in 1 ms ticks, on the caller's runtime. Record
    /// `n` is stamped with its scheduled time (`start + n / rate`), not the time it was sent:
    /// a late tick shows as latency (see pace.rs, which does the same on its own thread).
    pub async fn run(&mut self, rate: f64, dur: Duration) -> PaceReport {
        let start = Instant::now();
        let start_us = now_us();
        let mut produced: u64 = 0;
        let mut max_behind = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let elapsed = start.elapsed();
            if elapsed >= dur {
                break;
            }
            let due = (elapsed.as_secs_f64() * rate) as u64 + 1;
            // Never more than 50 ms worth in one tick: a stalled tick should not burst.
            let cap = produced + ((rate * 0.05) as u64).max(1);
            while produced < due.min(cap) {
                if !self.send_at(start_us + crate::pace::offset_us(produced, rate)) {
                    break;
                }
                produced += 1;
            }
            max_behind = max_behind.max(due.saturating_sub(produced));
        }
        PaceReport {
            produced,
            secs: start.elapsed().as_secs_f64(),
            max_behind,
        }
    }

    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }
}

/// Scenario "floor": a plain librdkafka consumer (BaseConsumer polled on its own thread, the
/// bridge's consumer settings) on the same broker, produce → receive latency.
pub async fn floor(
    bootstrap: &str,
    topic: &str,
    rate: f64,
    warmup: Duration,
    duration: Duration,
    fetch_wait_ms: u32,
    size: usize,
) -> Result<Value, String> {
    let group = format!("kwb-floor-{}", now_us());
    let consumer: BaseConsumer = base_config(bootstrap)
        .set("group.id", &group)
        .set("auto.offset.reset", "latest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .set("session.timeout.ms", "10000")
        .set("statistics.interval.ms", "1000")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| format!("subscribe: {e}"))?;

    struct Shared {
        hist: std::sync::Mutex<Hist>,
        win_start: AtomicU64,
        win_end: AtomicU64,
        received: AtomicU64,
        in_window: AtomicU64,
        stop: std::sync::atomic::AtomicBool,
    }
    let shared = Arc::new(Shared {
        hist: std::sync::Mutex::new(Hist::default()),
        win_start: AtomicU64::new(u64::MAX),
        win_end: AtomicU64::new(u64::MAX),
        received: AtomicU64::new(0),
        in_window: AtomicU64::new(0),
        stop: std::sync::atomic::AtomicBool::new(false),
    });
    let s2 = shared.clone();
    let thread = std::thread::spawn(move || {
        while !s2.stop.load(Ordering::Relaxed) {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let now = now_us();
                if let Some(ts) = m.payload().and_then(|p| find_u64(p, b"\"ts\"")) {
                    s2.received.fetch_add(1, Ordering::Relaxed);
                    if ts >= s2.win_start.load(Ordering::Relaxed)
                        && ts < s2.win_end.load(Ordering::Relaxed)
                    {
                        s2.in_window.fetch_add(1, Ordering::Relaxed);
                        s2.hist.lock().unwrap().record(now.saturating_sub(ts));
                    }
                }
            }
        }
    });

    let mut pacer = Pacer::new(bootstrap, topic, size, None)?;
    // Wait until the consumer gets records (group joined, positions resolved).
    let deadline = Instant::now() + Duration::from_secs(60);
    while shared.received.load(Ordering::Relaxed) == 0 {
        if Instant::now() > deadline {
            shared.stop.store(true, Ordering::Relaxed);
            return Err("floor: the consumer received nothing within 60 s".into());
        }
        pacer.send_one();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t0 = now_us() + warmup.as_micros() as u64;
    let t1 = t0 + duration.as_micros() as u64;
    shared.win_start.store(t0, Ordering::Relaxed);
    shared.win_end.store(t1, Ordering::Relaxed);
    let produced_before = pacer.seq;
    let report = pacer.run(rate, warmup + duration).await;
    let _ = produced_before;
    // Drain: wait for the window's records.
    let expected = (rate * duration.as_secs_f64()) as u64;
    let deadline = Instant::now() + Duration::from_secs(5);
    while shared.in_window.load(Ordering::Relaxed) < expected.saturating_sub(1)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let _ = thread.join();
    let hist = shared.hist.lock().unwrap().clone();
    let mut out = hist.summary_ms();
    out["scenario"] = json!("floor");
    out["rate"] = json!(rate);
    out["fetch_wait_ms"] = json!(fetch_wait_ms);
    out["produced"] = json!(report.produced);
    out["received_in_window"] = json!(shared.in_window.load(Ordering::Relaxed));
    out["expected_in_window"] = json!(expected);
    Ok(out)
}

/// Scenario e's reference: a plain rdkafka FutureProducer with the bridge's producer settings
/// (acks=all, idempotent, linger.ms=1), `inflight` sends outstanding at any time.
pub async fn plain_produce(
    bootstrap: &str,
    topic: &str,
    inflight: usize,
    warmup: Duration,
    duration: Duration,
    size: usize,
    properties: &[String],
) -> Result<Value, String> {
    let mut config = base_config(bootstrap);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "5000");
    for p in properties {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("--property {p}: expected name=value"))?;
        config.set(k, v);
    }
    let producer: FutureProducer = config.create().map_err(|e| format!("producer: {e}"))?;
    let producer = Arc::new(producer);
    let hist = Arc::new(std::sync::Mutex::new(Hist::default()));
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let t0 = now_us() + warmup.as_micros() as u64;
    let t1 = t0 + duration.as_micros() as u64;
    let gen_cpu = CpuMeter::start(Some(std::process::id()));
    let mut tasks = Vec::new();
    for worker in 0..inflight {
        let producer = producer.clone();
        let topic = topic.to_owned();
        let (hist, acked, failed) = (hist.clone(), acked.clone(), failed.clone());
        tasks.push(tokio::task::spawn_local(async move {
            let mut value = Vec::with_capacity(size + 64);
            let session = format!("plain-producer-session-{worker:016}");
            let mut seq: u64 = 0;
            loop {
                let sent = now_us();
                if sent >= t1 {
                    break;
                }
                record_value(&mut value, sent, seq, size);
                let id = seq.to_string();
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "bridge-session",
                        value: Some(session.as_bytes()),
                    })
                    .insert(Header {
                        key: "correlation-id",
                        value: Some(id.as_bytes()),
                    });
                let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(&topic)
                    .payload(&value[..])
                    .headers(headers);
                let result = producer.send(record, Duration::from_secs(5)).await;
                let done = now_us();
                match result {
                    Ok(_) => {
                        if sent >= t0 && sent < t1 {
                            acked.fetch_add(1, Ordering::Relaxed);
                            hist.lock().unwrap().record(done - sent);
                        }
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                seq += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let cpu = gen_cpu.percent();
    let hist = hist.lock().unwrap().clone();
    let n = acked.load(Ordering::Relaxed);
    let mut out = json!({
        "scenario": "plain_producer",
        "inflight": inflight,
        "properties": properties,
        "acks_per_sec": (n as f64 / duration.as_secs_f64()).round(),
        "failed": failed.load(Ordering::Relaxed),
        "generator_cpu_pct": cpu,
    });
    out["ack_latency"] = hist.summary_ms();
    Ok(out)
}
