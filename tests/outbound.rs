//! Kafka → WebSocket against a real broker: broadcast and keyed delivery, frame contents,
//! undecodable records.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::{create_topic, Client, TestBridge, TestProducer};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_subscriber_of_the_channel_and_nobody_else() {
    let news = create_topic("news", 1).await;
    let other = create_topic("other", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nchannels:\n  - {{name: news, topic: {news}, subscribe: {{allow: anonymous}}}}\n  - {{name: other, topic: {other}, subscribe: {{allow: anonymous}}}}\n"
    ))
    .await;
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        let mut client = bridge.connect().await;
        let subscribed = client.subscribe("news", None).await;
        assert_eq!(subscribed["channel"], "news");
        assert_eq!(subscribed["snapshot"], Value::Null);
        subscribers.push(client);
    }
    let mut bystander = bridge.connect().await;
    bystander.subscribe("other", None).await;
    let mut idle = bridge.connect().await;

    let producer = TestProducer::new();
    let mut produced = Vec::new();
    for i in 0..50 {
        let value = json!({"n": i, "text": "hello"}).to_string();
        let (partition, offset) = producer
            .send(
                &news,
                None,
                Some(&format!("k{i}")),
                value.as_bytes(),
                &[("trace", "t-1")],
            )
            .await;
        produced.push((partition, offset));
    }
    for client in &mut subscribers {
        for (i, (partition, offset)) in produced.iter().enumerate() {
            let frame = client.expect("message").await;
            assert_eq!(frame["channel"], "news");
            assert_eq!(frame["data"], json!({"n": i, "text": "hello"}));
            assert_eq!(
                (frame["partition"].as_i64(), frame["offset"].as_i64()),
                (Some(*partition as i64), Some(*offset))
            );
            assert!(
                frame["timestamp"].as_i64().unwrap() > 1_600_000_000_000,
                "{frame}"
            );
            assert_eq!(frame["headers"], json!({"trace": "t-1"}));
            assert!(
                frame.get("key").is_none(),
                "no key configured, none sent: {frame}"
            );
        }
    }
    // Every record has been fanned out to all subscribers; anything queued for the others
    // would arrive before their pong.
    assert_eq!(bystander.drain_until_pong().await, Vec::<Value>::new());
    assert_eq!(idle.drain_until_pong().await, Vec::<Value>::new());
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_messages_delivered_total{channel=\"news\"}")
            .await,
        150.0
    );
    // Each write carries one frame or several (subscribed, pongs and the 150 messages, written
    // in batches): at least one write, and no more writes than frames.
    let writes = bridge.metric("kafka_ws_bridge_socket_writes_total").await;
    assert!(
        (3.0..=150.0 + 3.0 * 3.0 + 5.0).contains(&writes),
        "socket writes: {writes}"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_key_delivers_exactly_each_keys_records_in_partition_order() {
    by_key_in_partition_order(None).await;
}

/// The same with the consumer stage in four lanes (`kafka.consumer_threads: 4`), one partition
/// each: every key's records still reach its sessions, each exactly once and in partition order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_key_in_parallel_lanes_keeps_every_keys_records_in_partition_order() {
    by_key_in_partition_order(Some(4)).await;
}

async fn by_key_in_partition_order(lanes: Option<u16>) {
    const KEYS: usize = 20;
    const SESSIONS_PER_KEY: usize = 3;
    const RECORDS: usize = 2000;
    let topic = create_topic("balances", 4).await;
    let mut text = common::config_text(&common::fixture(
        "balances_by_key.yaml",
        &[("TOPIC", &topic)],
    ));
    if let Some(lanes) = lanes {
        // This test's own lane count, whatever KWB_CONSUMER_THREADS says.
        text = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("consumer_threads:"))
            .collect::<Vec<_>>()
            .join("\n");
        text = text.replace(
            "\n  consumer_properties:",
            &format!("\n  consumer_threads: {lanes}\n  consumer_properties:"),
        );
        assert!(text.contains("consumer_threads"), "{text}");
    }
    let bridge = TestBridge::start_text(&text).await;
    if let Some(lanes) = lanes {
        // The bridge runs in this process: its lane threads are this process's threads.
        let names: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_owned())
            .collect();
        for lane in 0..lanes {
            assert!(
                names.contains(&format!("kafka-lane-{lane}")),
                "lane {lane} runs: {names:?}"
            );
        }
    }
    let mut sessions: Vec<(String, Client)> = Vec::new();
    for k in 0..KEYS {
        let key = format!("C-{k}");
        for _ in 0..SESSIONS_PER_KEY {
            let mut client = bridge.connect().await;
            let subscribed = client.subscribe("balances", Some(&key)).await;
            assert_eq!(subscribed["key"], key.as_str());
            sessions.push((key.clone(), client));
        }
    }

    // Produce concurrently from a few tasks so records of a key land interleaved with others.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            let producer = TestProducer::new();
            let mut sent = Vec::new();
            for i in (worker..RECORDS).step_by(4) {
                let key = format!("C-{}", i % KEYS);
                let value = json!({"customer": key, "seq": i}).to_string();
                let (partition, offset) = producer
                    .send(&topic, None, Some(&key), value.as_bytes(), &[])
                    .await;
                sent.push((key, partition, offset));
            }
            sent
        }));
    }
    let mut expected: HashMap<String, Vec<(i32, i64)>> = HashMap::new();
    for task in tasks {
        for (key, partition, offset) in task.await.unwrap() {
            expected.entry(key).or_default().push((partition, offset));
        }
    }
    for list in expected.values_mut() {
        list.sort();
    }

    let mut delivered = 0;
    for (key, client) in &mut sessions {
        let want = &expected[key.as_str()];
        let mut got = Vec::new();
        let mut last_offset: HashMap<i64, i64> = HashMap::new();
        while got.len() < want.len() {
            let frame = client.expect("message").await;
            assert_eq!(
                frame["key"],
                key.as_str(),
                "a session got another key's record: {frame}"
            );
            assert_eq!(frame["data"]["customer"], key.as_str());
            let partition = frame["partition"].as_i64().unwrap();
            let offset = frame["offset"].as_i64().unwrap();
            if let Some(previous) = last_offset.insert(partition, offset) {
                assert!(
                    offset > previous,
                    "partition {partition} out of order: {previous} then {offset}"
                );
            }
            got.push((partition as i32, offset));
        }
        got.sort();
        assert_eq!(&got, want, "session of {key} got the wrong set of records");
        assert_eq!(
            client.drain_until_pong().await,
            Vec::<Value>::new(),
            "nothing more for {key}"
        );
        delivered += got.len();
    }
    let elapsed = started.elapsed();
    assert_eq!(delivered, RECORDS * SESSIONS_PER_KEY);
    println!(
        "by_key: {RECORDS} records to {} sessions, {delivered} deliveries in {:.2?} ({:.0} deliveries/s, produce included)",
        KEYS * SESSIONS_PER_KEY,
        elapsed,
        delivered as f64 / elapsed.as_secs_f64()
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_headers_and_values_and_formats() {
    let topic = create_topic("mixed", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nchannels:\n\
           - {{name: by-header, topic: {topic}, format: text, deliver: by_key, key: {{from: header, name: customerId}}, subscribe: {{allow: anonymous, keys: any}}}}\n\
           - {{name: by-value, topic: {topic}, format: json, deliver: by_key, key: {{from: value, pointer: /customer/id}}, subscribe: {{allow: anonymous, keys: any}}}}\n\
           - {{name: raw, topic: {topic}, format: base64, subscribe: {{allow: anonymous}}}}\n"
    ))
    .await;
    let mut client = bridge.connect().await;
    client.subscribe("by-header", Some("C-7")).await;
    client.subscribe("by-value", Some("C-7")).await;
    client.subscribe("raw", None).await;
    let producer = TestProducer::new();
    let value = json!({"customer": {"id": "C-7"}, "amount": 10}).to_string();
    producer
        .send(
            &topic,
            None,
            None,
            value.as_bytes(),
            &[("customerId", "C-7")],
        )
        .await;
    let mut by_channel = HashMap::new();
    for _ in 0..3 {
        let frame = client.expect("message").await;
        by_channel.insert(frame["channel"].as_str().unwrap().to_owned(), frame);
    }
    assert_eq!(
        by_channel["by-header"]["data"],
        value.as_str(),
        "text format: a JSON string"
    );
    assert_eq!(by_channel["by-header"]["key"], "C-7");
    assert_eq!(by_channel["by-value"]["data"]["amount"], 10);
    assert_eq!(by_channel["by-value"]["key"], "C-7");
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(by_channel["raw"]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, value.as_bytes());
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_records_are_counted_and_do_not_stall_the_consumer() {
    let topic = create_topic("json", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nchannels:\n  - {{name: events, topic: {topic}, subscribe: {{allow: anonymous}}}}\n"
    ))
    .await;
    let mut client = bridge.connect().await;
    client.subscribe("events", None).await;
    let producer = TestProducer::new();
    producer.send(&topic, None, None, b"{\"n\":1}", &[]).await;
    producer
        .send(&topic, None, None, b"{this is not json", &[])
        .await;
    producer.send(&topic, None, None, b"\xff\xfe", &[]).await;
    producer.send(&topic, None, None, b"{\"n\":2}", &[]).await;
    assert_eq!(client.expect("message").await["data"]["n"], 1);
    assert_eq!(client.expect("message").await["data"]["n"], 2);
    assert_eq!(
        bridge
            .metric(
                "kafka_ws_bridge_messages_dropped_total{channel=\"events\",reason=\"undecodable\"}"
            )
            .await,
        2.0
    );
    let consumed = format!("kafka_ws_bridge_records_consumed_total{{topic=\"{topic}\"}}");
    assert_eq!(bridge.metric(&consumed).await, 4.0);
    bridge.stop().await;
}
