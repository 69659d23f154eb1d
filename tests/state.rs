//! Snapshot, history and resume against a real broker and bridge: snapshots rebuilt from Kafka
//! across restarts, tombstones, resume with no duplicate and no gap (also while records keep
//! coming), resume served from Kafka beyond memory, gaps, `history: N`, memory bounds.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{create_topic, Client, TestBridge, TestProducer, DEADLINE};
use rdkafka::config::ClientConfig;
use serde_json::{json, Value};

fn balances(topic: &str, extra: &str) -> String {
    common::fixture("balances_by_key.yaml", &[("TOPIC", topic)]) + extra
}

/// A client that remembers the last offset seen per partition, as the JS client does.
struct Tracker {
    positions: BTreeMap<i32, i64>,
    seqs: Vec<i64>,
}

impl Tracker {
    fn new() -> Self {
        Tracker {
            positions: BTreeMap::new(),
            seqs: Vec::new(),
        }
    }

    fn saw(&mut self, frame: &Value) {
        assert_eq!(frame["type"], "message", "{frame}");
        let partition = frame["partition"].as_i64().unwrap() as i32;
        let offset = frame["offset"].as_i64().unwrap();
        if let Some(previous) = self.positions.insert(partition, offset) {
            assert!(
                offset > previous,
                "duplicate or out of order: {previous} then {offset}"
            );
        }
        self.seqs.push(frame["data"]["seq"].as_i64().unwrap());
    }

    fn resume(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .positions
            .iter()
            .map(|(p, o)| (p.to_string(), json!(o)))
            .collect();
        Value::Object(map)
    }

    async fn read(&mut self, client: &mut Client, count: usize) {
        for _ in 0..count {
            let frame = client.expect("message").await;
            self.saw(&frame);
        }
    }
}

async fn produce_seq(producer: &TestProducer, topic: &str, key: &str, range: std::ops::Range<i64>) {
    for seq in range {
        producer
            .send(
                topic,
                None,
                Some(key),
                json!({"seq": seq}).to_string().as_bytes(),
                &[],
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_comes_from_kafka_survives_restarts_and_follows_tombstones() {
    let topic = create_topic("snap", 3).await;
    let producer = TestProducer::new();
    producer
        .send(&topic, None, Some("C-1"), br#"{"balance": 1}"#, &[])
        .await;
    let (partition, offset) = producer
        .send(&topic, None, Some("C-1"), br#"{"balance": 2}"#, &[])
        .await;
    producer
        .send(&topic, None, Some("C-2"), br#"{"balance": 9}"#, &[])
        .await;
    let config = balances(&topic, "    snapshot: true\n");
    let mut expected = json!({"data": {"balance": 2}, "partition": partition, "offset": offset});
    for start in 0..2 {
        // A fresh bridge each time (new consumer group at `latest`): the snapshot can only come
        // from reading the topic.
        let bridge = TestBridge::start(&config).await;
        let mut client = bridge.connect().await;
        let subscribed = client.subscribe("balances", Some("C-1")).await;
        assert_eq!(subscribed["snapshot"], expected, "start {start}");
        assert_eq!(
            client.subscribe("balances", Some("C-404")).await["snapshot"],
            Value::Null
        );
        // Snapshot then live: only newer records follow.
        producer
            .send(
                &topic,
                None,
                Some("C-1"),
                format!("{{\"balance\": {}}}", 3 + start).as_bytes(),
                &[],
            )
            .await;
        let live = client.expect("message").await;
        assert_eq!(live["data"]["balance"], 3 + start);
        assert!(live["offset"].as_i64().unwrap() > expected["offset"].as_i64().unwrap());
        expected =
            json!({"data": live["data"], "partition": live["partition"], "offset": live["offset"]});
        bridge.stop().await;
    }
    // A tombstone removes the key, live and after a restart.
    let tombstone = rdkafka::producer::FutureRecord::<str, [u8]>::to(&topic).key("C-1");
    let plain: rdkafka::producer::FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .create()
        .unwrap();
    plain
        .send(tombstone, Duration::from_secs(10))
        .await
        .unwrap();
    let bridge = TestBridge::start(&config).await;
    let mut client = bridge.connect().await;
    assert_eq!(
        client.subscribe("balances", Some("C-1")).await["snapshot"],
        Value::Null
    );
    assert_eq!(
        client.subscribe("balances", Some("C-2")).await["snapshot"]["data"]["balance"],
        9
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_exactly_what_was_missed() {
    let topic = create_topic("resume", 3).await;
    let bridge = TestBridge::start(&balances(&topic, "    history: 2000\n")).await;
    let producer = TestProducer::new();
    let mut tracker = Tracker::new();
    let mut client = bridge.connect().await;
    client.subscribe("balances", Some("K")).await;
    produce_seq(&producer, &topic, "K", 0..50).await;
    tracker.read(&mut client, 50).await;
    drop(client);

    // Offline: 1,000 records, all routed by the bridge before the client comes back.
    produce_seq(&producer, &topic, "K", 50..1050).await;
    bridge
        .wait_metric(
            &format!("kafka_ws_bridge_records_consumed_total{{topic=\"{topic}\"}}"),
            1050.0,
        )
        .await;
    let mut client = bridge.connect().await;
    client.send(json!({"type": "subscribe", "id": "r", "channel": "balances", "key": "K", "resume": tracker.resume()})).await;
    let subscribed = client.expect("subscribed").await;
    assert_eq!(
        (subscribed["replayed"].as_i64(), subscribed["gap"].as_bool()),
        (Some(1000), Some(false)),
        "{subscribed}"
    );
    tracker.read(&mut client, 1000).await;
    // Live delivery continues right after the replay: `positions` says so.
    let (partition, last) = tracker
        .positions
        .iter()
        .next_back()
        .map(|(p, o)| (*p, *o))
        .unwrap();
    assert_eq!(
        subscribed["positions"][partition.to_string()],
        last,
        "{subscribed}"
    );
    produce_seq(&producer, &topic, "K", 1050..1060).await;
    tracker.read(&mut client, 10).await;
    assert_eq!(
        tracker.seqs,
        (0..1060).collect::<Vec<_>>(),
        "the full sequence, no duplicate, no gap"
    );
    assert_eq!(client.drain_until_pong().await, Vec::<Value>::new());
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_while_records_keep_arriving_has_no_gap_at_the_handover() {
    let topic = create_topic("race", 1).await;
    // Small history so that part of the replay must come from Kafka while live runs on.
    let bridge = TestBridge::start(&balances(&topic, "    history: 50\n")).await;
    let mut tracker = Tracker::new();
    let mut client = bridge.connect().await;
    client.subscribe("balances", Some("K")).await;
    let producer = TestProducer::new();
    produce_seq(&producer, &topic, "K", 0..20).await;
    tracker.read(&mut client, 20).await;
    drop(client);
    produce_seq(&producer, &topic, "K", 20..500).await;

    // Keep producing during the re-subscribe.
    let topic_bg = topic.clone();
    let background = tokio::spawn(async move {
        let producer = TestProducer::new();
        produce_seq(&producer, &topic_bg, "K", 500..1000).await;
    });
    let mut client = bridge.connect().await;
    client.send(json!({"type": "subscribe", "id": "r", "channel": "balances", "key": "K", "resume": tracker.resume()})).await;
    let subscribed = client.expect("subscribed").await;
    assert_eq!(subscribed["gap"], false, "{subscribed}");
    background.await.unwrap();
    while tracker.seqs.len() < 1000 {
        let frame = client.expect("message").await;
        tracker.saw(&frame);
    }
    assert_eq!(tracker.seqs, (0..1000).collect::<Vec<_>>());
    assert_eq!(client.drain_until_pong().await, Vec::<Value>::new());
    assert!(
        bridge
            .metric(
                "kafka_ws_bridge_replayed_messages_total{channel=\"balances\",source=\"kafka\"}"
            )
            .await
            > 0.0,
        "part of the replay came from Kafka"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_beyond_memory_is_served_from_kafka() {
    let topic = create_topic("beyond", 1).await;
    let producer = TestProducer::new();
    // Records produced before the bridge existed: memory has never seen them.
    produce_seq(&producer, &topic, "K", 0..300).await;
    let bridge = TestBridge::start(&balances(&topic, "    history: 10\n")).await;
    let mut client = bridge.connect().await;
    client.send(json!({"type": "subscribe", "id": "r", "channel": "balances", "key": "K", "resume": {"0": 99}})).await;
    let subscribed = client.expect("subscribed").await;
    assert_eq!(
        (subscribed["replayed"].as_i64(), subscribed["gap"].as_bool()),
        (Some(200), Some(false)),
        "{subscribed}"
    );
    let mut tracker = Tracker::new();
    tracker.read(&mut client, 200).await;
    assert_eq!(tracker.seqs, (100..300).collect::<Vec<_>>());
    produce_seq(&producer, &topic, "K", 300..305).await;
    tracker.read(&mut client, 5).await;
    assert_eq!(tracker.seqs, (100..305).collect::<Vec<_>>());
    assert_eq!(
        bridge
            .metric(
                "kafka_ws_bridge_replayed_messages_total{channel=\"balances\",source=\"kafka\"}"
            )
            .await,
        200.0
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_before_the_earliest_retained_offset_reports_a_gap() {
    // A broker of its own that applies retention every second.
    let broker = common::OwnBroker::start_with_fast_retention();
    let bootstrap = broker.bootstrap();
    // Kafka deletes whole segments: segment.ms rolls a new one when a record's timestamp is more
    // than 10 minutes past the segment's first, so the old records end in a segment of their own.
    let topic = common::create_topic_at(
        &bootstrap,
        "retention",
        1,
        &[
            ("cleanup.policy", "delete"),
            ("retention.ms", "600000"),
            ("segment.ms", "600000"),
        ],
    )
    .await;
    let producer = TestProducer::at(&bootstrap);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // 200 records an hour old (past the 10-minute retention), then 100 fresh ones.
    for seq in 0..300 {
        let at = if seq < 200 { now - 3_600_000 } else { now };
        producer
            .send_at(
                &topic,
                0,
                "K",
                json!({"seq": seq}).to_string().as_bytes(),
                at,
            )
            .await;
    }
    // The broker applies retention by itself.
    common::wait_for(
        "retention applied",
        DEADLINE,
        async || match common::watermarks_at(&bootstrap, &topic, 0) {
            (low, _) if low >= 200 => Ok(()),
            watermarks => Err(format!("retention not applied: watermarks {watermarks:?}")),
        },
    )
    .await;
    assert_eq!(
        common::watermarks_at(&bootstrap, &topic, 0),
        (200, 300),
        "the log now starts at offset 200"
    );

    let bridge = TestBridge::start_text(&common::config_text_at(
        &bootstrap,
        &balances(&topic, "    history: 10\n"),
    ))
    .await;
    let mut client = bridge.connect().await;
    client.send(json!({"type": "subscribe", "id": "g", "channel": "balances", "key": "K", "resume": {"0": 49}})).await;
    let subscribed = client.expect("subscribed").await;
    assert_eq!(subscribed["gap"], true, "{subscribed}");
    assert_eq!(
        subscribed["replayed"], 100,
        "what there is: offsets 200..300"
    );
    let mut tracker = Tracker::new();
    tracker.read(&mut client, 100).await;
    assert_eq!(tracker.seqs, (200..300).collect::<Vec<_>>());
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_replay_gaps_total{channel=\"balances\"}")
            .await,
        1.0
    );

    // A resume longer than server.replay_max_records also starts later and says so.
    bridge.stop().await;
    let bridge = TestBridge::start_text(&common::config_text_at(
        &bootstrap,
        &balances(&topic, "    history: 10\n").replace(
            "auth: {mode: none}\n",
            "auth: {mode: none}\nserver: {replay_max_records: 30}\n",
        ),
    ))
    .await;
    let mut client = bridge.connect().await;
    client.send(json!({"type": "subscribe", "id": "l", "channel": "balances", "key": "K", "resume": {"0": 219}})).await;
    let subscribed = client.expect("subscribed").await;
    assert_eq!(
        (subscribed["replayed"].as_i64(), subscribed["gap"].as_bool()),
        (Some(30), Some(true)),
        "{subscribed}"
    );
    let mut tracker = Tracker::new();
    tracker.read(&mut client, 30).await;
    assert_eq!(
        tracker.seqs,
        (270..300).collect::<Vec<_>>(),
        "the newest part, contiguous with live"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_request_returns_the_newest_records_then_live() {
    let topic = create_topic("history", 3).await;
    let producer = TestProducer::new();
    produce_seq(&producer, &topic, "K", 0..30).await;
    produce_seq(&producer, &topic, "other", 0..30).await;
    // Memory holds 5 per key: the other 15 asked for come from Kafka.
    let bridge = TestBridge::start(&balances(&topic, "    history: 5\n")).await;
    let mut client = bridge.connect().await;
    client.send(json!({"type": "subscribe", "id": "h", "channel": "balances", "key": "K", "history": 20})).await;
    let subscribed = client.expect("subscribed").await;
    assert_eq!(subscribed["replayed"], 20, "{subscribed}");
    let mut tracker = Tracker::new();
    tracker.read(&mut client, 20).await;
    assert_eq!(
        tracker.seqs,
        (10..30).collect::<Vec<_>>(),
        "the newest 20, oldest first"
    );
    produce_seq(&producer, &topic, "K", 30..33).await;
    tracker.read(&mut client, 3).await;
    assert_eq!(tracker.seqs, (10..33).collect::<Vec<_>>());

    // Now memory holds enough (5): a small request is served from it alone.
    let before = bridge
        .metric("kafka_ws_bridge_replayed_messages_total{channel=\"balances\",source=\"kafka\"}")
        .await;
    let mut small = bridge.connect().await;
    small.send(json!({"type": "subscribe", "id": "h2", "channel": "balances", "key": "K", "history": 3})).await;
    assert_eq!(small.expect("subscribed").await["replayed"], 3);
    let mut tracker = Tracker::new();
    tracker.read(&mut small, 3).await;
    assert_eq!(tracker.seqs, vec![30, 31, 32]);
    let after = bridge
        .metric("kafka_ws_bridge_replayed_messages_total{channel=\"balances\",source=\"kafka\"}")
        .await;
    assert_eq!(before, after, "no Kafka read");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_history_and_snapshot_of_every_key() {
    let topic = create_topic("feed", 2).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nchannels:\n  - {{name: feed, topic: {topic}, key: {{from: record_key}}, snapshot: true, history: 100, subscribe: {{allow: anonymous}}}}\n"
    ))
    .await;
    let producer = TestProducer::new();
    for (key, seq) in [("a", 0), ("b", 1), ("a", 2), ("c", 3)] {
        producer
            .send(
                &topic,
                None,
                Some(key),
                json!({"seq": seq}).to_string().as_bytes(),
                &[],
            )
            .await;
    }
    let mut watcher = bridge.connect().await;
    watcher.subscribe("feed", None).await;
    producer
        .send(&topic, None, Some("d"), br#"{"seq": 4}"#, &[])
        .await;
    watcher.expect("message").await;
    bridge
        .wait_metric("kafka_ws_bridge_state_keys{channel=\"feed\"}", 4.0)
        .await;

    // A new subscriber first gets the latest value of every key.
    let mut client = bridge.connect().await;
    let subscribed = client.subscribe("feed", None).await;
    assert_eq!(subscribed["replayed"], 4, "{subscribed}");
    let mut latest = BTreeMap::new();
    for _ in 0..4 {
        let frame = client.expect("message").await;
        latest.insert(
            frame["key"].as_str().unwrap().to_owned(),
            frame["data"]["seq"].as_i64().unwrap(),
        );
    }
    assert_eq!(
        latest,
        BTreeMap::from([
            ("a".into(), 2),
            ("b".into(), 1),
            ("c".into(), 3),
            ("d".into(), 4)
        ])
    );
    // Resume on a broadcast channel: everything after the positions given.
    let mut resumed = bridge.connect().await;
    resumed
        .send(json!({"type": "subscribe", "id": "r", "channel": "feed", "resume": {}}))
        .await;
    let subscribed = resumed.expect("subscribed").await;
    assert_eq!(
        subscribed["replayed"], 5,
        "everything memory holds since the bridge started: {subscribed}"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keys_stay_within_the_memory_bounds() {
    const KEYS: usize = 10_000;
    const MAX_KEYS: usize = 4_000;
    let topic = create_topic("many-keys", 3).await;
    let bridge = TestBridge::start(&balances(&topic, &format!("    snapshot: true\n    history: 2\n    max_keys: {MAX_KEYS}\n    max_bytes: 2000000\n"))).await;
    let producer = std::sync::Arc::new(TestProducer::new());
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let producer = producer.clone();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            for k in (worker..KEYS).step_by(8) {
                producer
                    .send(
                        &topic,
                        None,
                        Some(&format!("key-{k}")),
                        json!({"k": k, "pad": "x".repeat(100)})
                            .to_string()
                            .as_bytes(),
                        &[],
                    )
                    .await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let consumed = format!("kafka_ws_bridge_records_consumed_total{{topic=\"{topic}\"}}");
    bridge.wait_metric(&consumed, KEYS as f64).await;
    let keys = bridge
        .metric("kafka_ws_bridge_state_keys{channel=\"balances\"}")
        .await;
    let bytes = bridge
        .metric("kafka_ws_bridge_state_bytes{channel=\"balances\"}")
        .await;
    let evicted = bridge
        .metric("kafka_ws_bridge_state_evicted_keys_total{channel=\"balances\"}")
        .await;
    println!("10k keys: held {keys} keys, {bytes} bytes, evicted {evicted}");
    assert!(
        keys <= MAX_KEYS as f64 && bytes <= 2_000_000.0,
        "keys {keys}, bytes {bytes}"
    );
    assert_eq!(
        keys + evicted,
        KEYS as f64,
        "every key held or counted as evicted"
    );
    // The newest keys are held, the oldest-updated ones were dropped.
    let mut client = bridge.connect().await;
    let recent = client.subscribe("balances", Some("key-9999")).await;
    assert_eq!(recent["snapshot"]["data"]["k"], 9999);
    bridge.stop().await;
}
