//! WebSocket → Kafka against a real broker: publish, ack after delivery, record contents,
//! concurrency.

mod common;

use std::collections::HashSet;

use common::{create_topic, read_topic, TestBridge};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_is_acked_with_the_records_partition_and_offset() {
    let commands = create_topic("commands", 3).await;
    let by_account = create_topic("by-account", 3).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\ninbound:\n  - {{channel: commands, topic: {commands}, allow: anonymous}}\n  - {{channel: transfers, topic: {by_account}, key: {{pointer: /accountId}}, allow: anonymous}}\n"
    ))
    .await;
    let mut client = bridge.connect().await;
    client
        .send_text(r#"{"type":"publish","id":"p1","channel":"commands","data":{"op": "RetrieveAccounts", "n": 1.50},"headers":{"tenant":"acme"}}"#)
        .await;
    let ack = client.expect("ack").await;
    assert_eq!(ack["id"], "p1");
    assert_eq!(ack["topic"], commands.as_str());
    client
        .send(json!({"type": "publish", "id": "p2", "channel": "transfers", "data": {"accountId": "A-42", "amount": 5}}))
        .await;
    let keyed_ack = client.expect("ack").await;

    let record = &read_topic(&commands, 1).await[0];
    assert_eq!(
        (record.partition as i64, record.offset),
        (
            ack["partition"].as_i64().unwrap(),
            ack["offset"].as_i64().unwrap()
        )
    );
    assert_eq!(
        record.value, r#"{"op": "RetrieveAccounts", "n": 1.50}"#,
        "data is produced byte for byte"
    );
    assert_eq!(record.key, None, "key: none");
    assert_eq!(record.header("correlation-id"), Some("p1"));
    assert_eq!(
        record.header("bridge-session"),
        Some(client.session.as_str())
    );
    assert_eq!(
        record.header("bridge-user"),
        None,
        "anonymous sessions have no user"
    );
    assert_eq!(record.header("tenant"), Some("acme"));

    let keyed = &read_topic(&by_account, 1).await[0];
    assert_eq!(keyed.key.as_deref(), Some("A-42"));
    assert_eq!(
        (keyed.partition as i64, keyed.offset),
        (
            keyed_ack["partition"].as_i64().unwrap(),
            keyed_ack["offset"].as_i64().unwrap()
        )
    );
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_publishes_total{channel=\"commands\",result=\"ok\"}")
            .await,
        1.0
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_sessions_publishing_concurrently_all_get_acks() {
    const SESSIONS: usize = 10;
    const EACH: usize = 20;
    let topic = create_topic("concurrent", 4).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\ninbound:\n  - {{channel: commands, topic: {topic}, allow: anonymous}}\n"
    ))
    .await;
    let mut tasks = Vec::new();
    for s in 0..SESSIONS {
        let mut client = bridge.connect().await;
        tasks.push(tokio::spawn(async move {
            // Send everything first so that many publishes are in flight at once.
            for i in 0..EACH {
                client
                    .send(json!({"type": "publish", "id": format!("s{s}-{i}"), "channel": "commands", "data": {"s": s, "i": i}}))
                    .await;
            }
            let mut acks = Vec::new();
            for _ in 0..EACH {
                let ack = client.expect("ack").await;
                acks.push((ack["id"].as_str().unwrap().to_owned(), ack["partition"].as_i64().unwrap(), ack["offset"].as_i64().unwrap()));
            }
            acks
        }));
    }
    let mut acked = HashSet::new();
    for task in tasks {
        for (id, partition, offset) in task.await.unwrap() {
            assert!(
                acked.insert((id.clone(), partition, offset)),
                "duplicate ack {id}"
            );
        }
    }
    assert_eq!(acked.len(), SESSIONS * EACH);
    let records = read_topic(&topic, SESSIONS * EACH).await;
    let in_kafka: HashSet<(String, i64, i64)> = records
        .iter()
        .map(|r| {
            (
                r.header("correlation-id").unwrap().to_owned(),
                r.partition as i64,
                r.offset,
            )
        })
        .collect();
    assert_eq!(
        in_kafka, acked,
        "every ack names a record that is in Kafka, and vice versa"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_refusals_name_the_problem() {
    let topic = create_topic("refusals", 1).await;
    let out = create_topic("outbound-only", 1).await;
    let bridge = TestBridge::start(&common::fixture(
        "publish_refusals.yaml",
        &[("OUT", &out), ("TOPIC", &topic)],
    ))
    .await;
    let mut client = bridge.connect().await;
    for (frame, code, needle) in [
        (
            json!({"type": "publish", "id": 1, "channel": "nope", "data": 1}),
            "unknown_channel",
            "no inbound channel named `nope`",
        ),
        (
            json!({"type": "publish", "id": 2, "channel": "feed", "data": 1}),
            "unknown_channel",
            "subscribe-only",
        ),
        (
            json!({"type": "publish", "id": 3, "channel": "commands"}),
            "bad_request",
            "missing field `data`",
        ),
        (
            json!({"type": "publish", "id": 4, "channel": "commands", "data": 1, "headers": {"bridge-user": "admin"}}),
            "bad_request",
            "reserved",
        ),
        (
            json!({"type": "publish", "id": 5, "channel": "keyed", "data": {"other": 1}}),
            "bad_request",
            "/id",
        ),
        (
            json!({"type": "subscribe", "id": 6, "channel": "commands"}),
            "unknown_channel",
            "publish-only",
        ),
    ] {
        client.send(frame.clone()).await;
        let error = client.expect("error").await;
        assert_eq!(error["id"], frame["id"], "{error}");
        assert_eq!(error["code"], code, "{frame} -> {error}");
        assert!(
            error["message"].as_str().unwrap().contains(needle),
            "{frame} -> {error}"
        );
    }
    client
        .send(json!({"type": "publish", "id": "ok", "channel": "commands", "data": {}}))
        .await;
    assert_eq!(client.expect("ack").await["id"], "ok");
    bridge.stop().await;
}

/// `inbound[].schema_file`: a publish whose `data` breaks the channel's JSON Schema is refused
/// with `invalid`, naming where, and nothing reaches Kafka; a valid one is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_that_breaks_the_channels_schema_is_refused_invalid_and_not_written() {
    let topic = create_topic("schema", 1).await;
    let schema = format!(
        "{}/tests/fixtures/schemas/transfer.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\ninbound:\n  - {{channel: transfers, topic: {topic}, allow: anonymous, schema_file: '{schema}'}}\n"
    ))
    .await;
    let mut client = bridge.connect().await;
    for (id, data, pointer) in [
        (
            "wrong-type",
            json!({"accountId": "A-1", "amount": "lots"}),
            "/amount",
        ),
        ("missing", json!({"amount": 5}), "`/`"),
    ] {
        client
            .send(json!({"type": "publish", "id": id, "channel": "transfers", "data": data}))
            .await;
        let error = client.expect("error").await;
        assert_eq!(
            (error["id"].as_str(), error["code"].as_str()),
            (Some(id), Some("invalid")),
            "{error}"
        );
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(pointer), "{message}");
    }
    client
        .send(json!({"type": "publish", "id": "ok", "channel": "transfers", "data": {"accountId": "A-1", "amount": 5}}))
        .await;
    let ack = client.expect("ack").await;
    assert_eq!(
        (ack["id"].as_str(), ack["offset"].as_i64()),
        (Some("ok"), Some(0)),
        "{ack}"
    );
    let records = read_topic(&topic, 1).await;
    assert_eq!(records[0].header("correlation-id"), Some("ok"));
    bridge
        .wait_metric(
            "kafka_ws_bridge_publishes_total{channel=\"transfers\",result=\"invalid\"}",
            2.0,
        )
        .await;
}
