//! Schema Registry formats against a real Apicurio Registry and a real Kafka, with records
//! written and read by Confluent's own serializers (tests/registry/serde.py): Avro with schema
//! evolution, Protobuf, JSON Schema decoded once per record to the JSON clients get; transforms,
//! history and replays from Kafka on a decoded channel; a registry outage in which records of
//! known schemas flow and the others wait (nothing lost, order kept); bad records counted, never
//! stalling the consumer; publishes validated and written so that Confluent's deserializer
//! reads them.

mod common;

use common::registry::{registry_url, schema_file, serde_py, OwnRegistry};
use common::{bootstrap, create_topic, http_get, Client, TestBridge, TestProducer, DEADLINE};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use serde_json::{json, Value};

/// A bridge config body reading registry formats from `registry`.
fn config(registry: &str, rest: &str) -> String {
    format!("auth: {{mode: none}}\nschema_registry: {{url: '{registry}', timeout_ms: 500}}\n{rest}")
}

/// Produces `records` (`{"key", "value"}`) with Confluent's serializer; the lines serde.py
/// printed (partition, offset, schema_id).
fn produce(
    registry: &str,
    topic: &str,
    format: &str,
    schema: &str,
    extra: &[&str],
    records: &[Value],
) -> Vec<Value> {
    let bootstrap = bootstrap();
    let schema = schema_file(schema);
    let mut args = vec![
        "produce",
        "--bootstrap",
        &bootstrap,
        "--registry",
        registry,
        "--topic",
        topic,
        "--format",
        format,
        "--schema",
        &schema,
    ];
    args.extend_from_slice(extra);
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    serde_py(&args, &lines)
}

fn order(id: &str, cents: i64, note: Option<&str>, status: &str, total: &str) -> Value {
    json!({"id": id, "amount_cents": cents, "note": note, "status": status, "total": total,
        "created_at": 1_700_000_000_000_i64 + cents})
}

/// The next `n` message frames (anything else is skipped).
async fn messages(client: &mut Client, n: usize) -> Vec<Value> {
    let mut found = Vec::new();
    while found.len() < n {
        let frame = client.recv().await;
        if frame["type"] == "message" {
            found.push(frame);
        }
    }
    found
}

/// The `data` of the first `n` message events of an SSE stream opened with `Last-Event-ID: last_id`.
async fn sse_data(bridge: &TestBridge, path: &str, last_id: &str, n: usize) -> Vec<Value> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = tokio::net::TcpStream::connect(bridge.ws_addr)
        .await
        .unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nLast-Event-ID: {last_id}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut found = Vec::new();
    let mut line = String::new();
    while found.len() < n {
        line.clear();
        let read = tokio::time::timeout(DEADLINE, reader.read_line(&mut line))
            .await
            .expect("SSE events before the deadline")
            .unwrap();
        assert!(read > 0, "the stream ended after {} events", found.len());
        if let Some(data) = line.trim_end().strip_prefix("data:") {
            let frame: Value = serde_json::from_str(data.trim()).expect("JSON data");
            if frame["type"] == "message" {
                found.push(frame["data"].clone());
            }
        }
    }
    found
}

/// Every record of a one-partition topic as raw bytes, from the beginning.
async fn raw_records(topic: &str, count: usize) -> Vec<Vec<u8>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("raw-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut values = Vec::new();
    while values.len() < count {
        let message = tokio::time::timeout(DEADLINE, consumer.recv())
            .await
            .expect("records before the deadline")
            .expect("a record");
        values.push(message.payload().unwrap_or_default().to_vec());
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_with_evolution_protobuf_and_json_schema_reach_clients_as_json() {
    let registry = registry_url().await;
    let avro = create_topic("sr-avro", 1).await;
    let proto = create_topic("sr-proto", 1).await;
    let jsons = create_topic("sr-json", 1).await;
    let bridge = TestBridge::start(&config(
        &registry,
        &format!(
            "channels:\n  - {{name: orders, topic: {avro}, format: avro, key: {{from: record_key}}, subscribe: {{allow: anonymous}}}}\n  - {{name: proto, topic: {proto}, format: protobuf, subscribe: {{allow: anonymous}}}}\n  - {{name: jsons, topic: {jsons}, format: json_schema, subscribe: {{allow: anonymous}}}}\n"
        ),
    ))
    .await;
    let mut client = bridge.connect().await;
    for channel in ["orders", "proto", "jsons"] {
        client.subscribe(channel, None).await;
    }

    // Avro, version 1 then version 2 (a field with a default added): each record is decoded
    // with the schema it was written with.
    let v1 = produce(
        &registry,
        &avro,
        "avro",
        "order.avsc",
        &[],
        &[
            json!({"key": "c-1", "value": order("o-1", 1234, None, "NEW", "12.34")}),
            json!({"key": "c-2", "value": order("o-2", 99_999_999_999, Some("gift"), "PAID", "-0.05")}),
        ],
    );
    let mut v2_order = order("o-3", 7, None, "SHIPPED", "0.07");
    v2_order["channel"] = json!("mobile");
    let v2 = produce(
        &registry,
        &avro,
        "avro",
        "order-v2.avsc",
        &[],
        &[json!({"key": "c-1", "value": v2_order})],
    );
    let got = messages(&mut client, 3).await;
    assert_eq!(got[0]["data"], order("o-1", 1234, None, "NEW", "12.34"));
    assert_eq!(
        got[1]["data"],
        order("o-2", 99_999_999_999, Some("gift"), "PAID", "-0.05")
    );
    assert_eq!(got[2]["data"], v2_order);
    assert_eq!(
        (got[0]["key"].clone(), got[2]["key"].clone()),
        (json!("c-1"), json!("c-1"))
    );
    assert_eq!(got[0]["schema_id"], v1[0]["schema_id"]);
    assert_eq!(got[2]["schema_id"], v2[0]["schema_id"]);
    assert_ne!(v1[0]["schema_id"], v2[0]["schema_id"]);
    // The same decoded records over Server-Sent Events (replayed from the start).
    let events = sse_data(&bridge, "/sse?channel=orders", "0:-1", 3).await;
    assert_eq!(events[0]["id"], "o-1");
    assert_eq!(events[2], v2_order);

    // Protobuf: two messages of one file (message indexes [0] and [1]); the proto3 JSON mapping.
    let produced = produce(
        &registry,
        &proto,
        "protobuf",
        "orders.proto",
        &[],
        &[
            json!({"key": null, "value": {"id": "o-9", "amount_cents": 4_000_000_000_i64, "status": "PAID",
            "tags": ["a", "b"], "first_line": {"sku": "s-1", "quantity": 2, "price_cents": 50}}}),
        ],
    );
    produce(
        &registry,
        &proto,
        "protobuf",
        "orders.proto",
        &["--message", "Refund"],
        &[json!({"key": null, "value": {"order_id": "o-9", "amount_cents": 5, "reason": "late"}})],
    );
    let got = messages(&mut client, 2).await;
    assert_eq!(got[0]["channel"], "proto");
    let order_json = &got[0]["data"];
    assert_eq!(order_json["id"], "o-9");
    // int64 as a string, enums by name (proto3 JSON mapping).
    let cents = order_json
        .get("amountCents")
        .or(order_json.get("amount_cents"));
    assert_eq!(cents, Some(&json!("4000000000")), "{order_json}");
    assert_eq!(order_json["status"], "PAID", "{order_json}");
    assert_eq!(order_json["tags"], json!(["a", "b"]));
    let refund = &got[1]["data"];
    assert_eq!(refund["reason"], "late", "{refund}");
    assert_eq!(got[0]["schema_id"], produced[0]["schema_id"]);

    // JSON Schema: the JSON itself.
    produce(
        &registry,
        &jsons,
        "json_schema",
        "order.schema.json",
        &[],
        &[json!({"key": null, "value": {"id": "o-5", "amount_cents": 5, "status": "NEW"}})],
    );
    let got = messages(&mut client, 1).await;
    assert_eq!(got[0]["channel"], "jsons");
    assert_eq!(got[0]["data"]["id"], "o-5", "{}", got[0]);
    assert_eq!(got[0]["data"]["amount_cents"], 5);
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_messages_dropped_total{reason=\"undecodable\"}")
            .await,
        0.0
    );
    assert!(bridge.metric("kafka_ws_bridge_schemas_cached").await >= 4.0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_history_and_replays_from_kafka_work_on_decoded_records() {
    let registry = registry_url().await;
    let topic = create_topic("sr-shape", 1).await;
    let bridge = TestBridge::start(&config(
        &registry,
        &format!(
            "channels:\n  - name: shaped\n    topic: {topic}\n    format: avro\n    key: {{from: record_key}}\n    deliver: by_key\n    subscribe: {{allow: anonymous, keys: any}}\n    history: 10\n    snapshot: true\n    transforms:\n      - filter: {{pointer: /status, in: [NEW, PAID]}}\n      - drop: [/note]\n  - {{name: replayed, topic: {topic}, format: avro, subscribe: {{allow: anonymous}}}}\n"
        ),
    ))
    .await;
    produce(
        &registry,
        &topic,
        "avro",
        "order.avsc",
        &[],
        &[
            json!({"key": "c-1", "value": order("o-1", 1, Some("x"), "NEW", "0.01")}),
            json!({"key": "c-1", "value": order("o-2", 2, Some("y"), "CANCELLED", "0.02")}),
            json!({"key": "c-1", "value": order("o-3", 3, None, "PAID", "0.03")}),
        ],
    );
    // The filter kept two records and dropped one (counted); `note` is gone from what is kept.
    bridge
        .wait_metric(
            "kafka_ws_bridge_messages_dropped_total{channel=\"shaped\",reason=\"filtered\"}",
            1.0,
        )
        .await;
    let mut client = bridge.connect().await;
    client
        .send(json!({"type": "subscribe", "id": "h", "channel": "shaped", "key": "c-1", "history": 5}))
        .await;
    let subscribed = client.expect("subscribed").await;
    let history = messages(&mut client, 2).await;
    let ids: Vec<&Value> = history.iter().map(|m| &m["data"]["id"]).collect();
    assert_eq!(ids, [&json!("o-1"), &json!("o-3")], "{subscribed}");
    assert!(history.iter().all(|m| m["data"].get("note").is_none()));
    assert_eq!(history[0]["data"]["total"], "0.01");
    // A channel that keeps nothing: `resume` from the start reads Kafka and decodes again.
    client
        .send(json!({"type": "subscribe", "id": "r", "channel": "replayed", "resume": {"0": -1}}))
        .await;
    let subscribed = client.expect("subscribed").await;
    assert_eq!(subscribed["replayed"], 3, "{subscribed}");
    let replayed = messages(&mut client, 3).await;
    assert_eq!(
        replayed[1]["data"],
        order("o-2", 2, Some("y"), "CANCELLED", "0.02")
    );
    assert!(replayed.iter().all(|m| m["schema_id"].is_u64()));
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_registry_hangs_known_schemas_flow_and_unknown_ones_wait_losing_nothing() {
    let own = OwnRegistry::start();
    let registry = own.url().to_owned();
    // Records written by Confluent's serializer beforehand, copied byte for byte during the
    // outage (the serializer itself needs the registry).
    let scratch_v1 = create_topic("sr-scratch1", 1).await;
    let scratch_v2 = create_topic("sr-scratch2", 1).await;
    produce(
        &registry,
        &scratch_v1,
        "avro",
        "order.avsc",
        &[],
        &[
            json!({"key": "a", "value": order("known-1", 1, None, "NEW", "0.01")}),
            json!({"key": "a", "value": order("known-2", 2, None, "NEW", "0.02")}),
            json!({"key": "a", "value": order("known-3", 3, None, "NEW", "0.03")}),
        ],
    );
    let mut unseen = order("unseen", 4, None, "PAID", "0.04");
    unseen["channel"] = json!("shop");
    produce(
        &registry,
        &scratch_v2,
        "avro",
        "order-v2.avsc",
        &[],
        &[json!({"key": "a", "value": unseen})],
    );
    let known = raw_records(&scratch_v1, 3).await;
    let new = raw_records(&scratch_v2, 1).await.remove(0);

    let topic = create_topic("sr-outage", 2).await;
    let bridge = TestBridge::start(&config(
        &registry,
        &format!("channels:\n  - {{name: orders, topic: {topic}, format: avro, subscribe: {{allow: anonymous}}}}\n"),
    ))
    .await;
    let mut client = bridge.connect().await;
    client.subscribe("orders", None).await;
    let producer = TestProducer::new();
    producer.send(&topic, Some(1), None, &known[0], &[]).await;
    assert_eq!(messages(&mut client, 1).await[0]["data"]["id"], "known-1");

    own.pause();
    // Partition 0: a record of a schema the bridge has not seen, then a known one behind it.
    producer.send(&topic, Some(0), None, &new, &[]).await;
    producer.send(&topic, Some(0), None, &known[1], &[]).await;
    // Partition 1 keeps flowing.
    producer.send(&topic, Some(1), None, &known[2], &[]).await;
    let flowing = messages(&mut client, 1).await;
    assert_eq!(
        (
            flowing[0]["data"]["id"].clone(),
            flowing[0]["partition"].clone()
        ),
        (json!("known-3"), json!(1))
    );
    // The waiting partition says why on /readyz once the registry's requests time out.
    common::wait_for("/readyz to name the registry", DEADLINE, async || {
        let (status, body) = http_get(bridge.metrics_addr, "/readyz").await;
        let checks: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let check = checks["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "schema_registry").cloned())
            .ok_or(body.clone())?;
        match (status, check["ok"].as_bool()) {
            (503, Some(false)) => Ok(check),
            _ => Err(format!("{status} {check}")),
        }
    })
    .await;
    // Nothing of partition 0 went out meanwhile.
    assert_eq!(client.drain_until_pong().await, Vec::<Value>::new());

    own.resume();
    let resumed = messages(&mut client, 2).await;
    let ids: Vec<&Value> = resumed.iter().map(|m| &m["data"]["id"]).collect();
    assert_eq!(ids, [&json!("unseen"), &json!("known-2")], "order kept");
    assert_eq!(resumed[0]["data"]["channel"], "shop");
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_messages_dropped_total{reason=\"undecodable\"}")
            .await,
        0.0
    );
    let timeouts = bridge
        .metric("kafka_ws_bridge_schema_registry_requests_total{result=\"timeout\"}")
        .await
        + bridge
            .metric("kafka_ws_bridge_schema_registry_requests_total{result=\"error\"}")
            .await;
    assert!(timeouts >= 1.0, "the outage was seen: {timeouts}");
    common::wait_for("/readyz 200 again", DEADLINE, async || {
        match http_get(bridge.metrics_addr, "/readyz").await {
            (200, _) => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        }
    })
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_counted_as_undecodable_and_never_stall_the_consumer() {
    let registry = registry_url().await;
    let scratch = create_topic("sr-bad-src", 1).await;
    produce(
        &registry,
        &scratch,
        "avro",
        "order.avsc",
        &[],
        &[
            json!({"key": "a", "value": order("good", 1, Some("a note long enough"), "NEW", "0.01")}),
        ],
    );
    let good = raw_records(&scratch, 1).await.remove(0);
    let topic = create_topic("sr-bad", 1).await;
    let bridge = TestBridge::start(&config(
        &registry,
        &format!("channels:\n  - {{name: orders, topic: {topic}, format: avro, subscribe: {{allow: anonymous}}}}\n"),
    ))
    .await;
    let mut client = bridge.connect().await;
    client.subscribe("orders", None).await;
    let mut truncated_body = good.clone();
    truncated_body.truncate(good.len() - 6);
    let mut bad_utf8 = good.clone();
    let at = bad_utf8.len() - 8;
    bad_utf8[at] = 0xff;
    let bad: Vec<Vec<u8>> = vec![
        b"{\"not\": \"avro\"}".to_vec(),          // no magic byte 0
        vec![0x01, 0, 0, 0, 1, 2],                // unknown magic byte
        vec![0, 0, 0],                            // truncated header
        vec![0, 0x7f, 0xff, 0xff, 0xf0, 2, 4, 6], // an id the registry does not have (404)
        truncated_body,                           // Avro data shorter than its schema
        vec![
            0, good[1], good[2], good[3], good[4], 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
            0x80, 0x80, 0x01,
        ], // a varint too long
        bad_utf8,
    ];
    let producer = TestProducer::new();
    for value in &bad {
        producer.send(&topic, None, None, value, &[]).await;
    }
    producer.send(&topic, None, None, &good, &[]).await;
    let got = messages(&mut client, 1).await;
    assert_eq!(
        got[0]["data"]["id"], "good",
        "the consumer went on past the bad ones"
    );
    let undecodable = bridge
        .metric("kafka_ws_bridge_messages_dropped_total{channel=\"orders\",reason=\"undecodable\"}")
        .await;
    // The changed byte may still decode (a string byte that stays valid is no error); every
    // other bad record is counted.
    assert!(
        undecodable >= (bad.len() - 1) as f64,
        "undecodable {undecodable} of {}",
        bad.len()
    );
    assert!(
        bridge
            .metric("kafka_ws_bridge_schema_registry_requests_total{result=\"not_found\"}")
            .await
            >= 1.0
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_are_validated_and_written_for_confluents_deserializer() {
    let registry = registry_url().await;
    let avro = create_topic("sr-pub-avro", 1).await;
    let proto = create_topic("sr-pub-proto", 1).await;
    for (topic, format, schema) in [
        (&avro, "avro", "order.avsc"),
        (&proto, "protobuf", "orders.proto"),
    ] {
        serde_py(
            &[
                "register",
                "--registry",
                &registry,
                "--subject",
                &format!("{topic}-value"),
                "--format",
                format,
                "--schema",
                &schema_file(schema),
            ],
            &[],
        );
    }
    let bridge = TestBridge::start(&config(
        &registry,
        &format!(
            "inbound:\n  - {{channel: place, topic: {avro}, format: avro, key: {{pointer: /id}}, allow: anonymous}}\n  - {{channel: refund, topic: {proto}, format: protobuf, message: com.example.orders.Refund, allow: anonymous}}\n"
        ),
    ))
    .await;
    let mut client = bridge.connect().await;
    let placed = order("p-1", 1250, Some("by the bridge"), "NEW", "12.50");
    client
        .send(json!({"type": "publish", "id": "p1", "channel": "place", "data": placed}))
        .await;
    let ack = client.expect("ack").await;
    assert_eq!(ack["id"], "p1");
    // A field of the wrong type is refused, naming the field; nothing is written.
    let mut wrong = placed.clone();
    wrong["amount_cents"] = json!("lots");
    client
        .send(json!({"type": "publish", "id": "p2", "channel": "place", "data": wrong}))
        .await;
    let error = client.expect("error").await;
    assert_eq!(
        (&error["id"], &error["code"]),
        (&json!("p2"), &json!("invalid")),
        "{error}"
    );
    assert!(
        error["message"].as_str().unwrap().contains("amount_cents"),
        "{error}"
    );
    let mut unknown = placed.clone();
    unknown["status"] = json!("LOST");
    client
        .send(json!({"type": "publish", "id": "p3", "channel": "place", "data": unknown}))
        .await;
    let error = client.expect("error").await;
    assert!(
        error["code"] == "invalid" && error["message"].as_str().unwrap().contains("status"),
        "{error}"
    );
    client
        .send(json!({"type": "publish", "id": "p4", "channel": "refund",
            "data": {"order_id": "p-1", "amount_cents": "300", "reason": "broken"}}))
        .await;
    client.expect("ack").await;

    // Confluent's deserializers read what the bridge wrote.
    let bootstrap = bootstrap();
    let read = serde_py(
        &[
            "consume",
            "--bootstrap",
            &bootstrap,
            "--registry",
            &registry,
            "--topic",
            &avro,
            "--format",
            "avro",
            "--count",
            "1",
        ],
        &[],
    );
    assert_eq!(
        read.len(),
        1,
        "only the valid publish was written: {read:?}"
    );
    assert_eq!(read[0]["value"], placed);
    assert_eq!(read[0]["key"], "p-1");
    let read = serde_py(
        &[
            "consume",
            "--bootstrap",
            &bootstrap,
            "--registry",
            &registry,
            "--topic",
            &proto,
            "--format",
            "protobuf",
            "--count",
            "1",
        ],
        &[],
    );
    assert_eq!(read[0]["value"]["order_id"], "p-1", "{read:?}");
    assert_eq!(read[0]["value"]["reason"], "broken");
    assert_eq!(read[0]["value"]["amount_cents"], "300");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_asks_the_registry_for_the_subjects_publishes_write_with() {
    let registry = registry_url().await;
    let topic = create_topic("sr-check", 1).await;
    serde_py(
        &[
            "register",
            "--registry",
            &registry,
            "--subject",
            &format!("{topic}-value"),
            "--format",
            "avro",
            "--schema",
            &schema_file("order.avsc"),
        ],
        &[],
    );
    let dir = common::TempDir::new("check-online");
    let check = |inbound: &str| {
        let file = dir.path.join("bridge.yaml");
        std::fs::write(
            &file,
            format!(
                "instance_id: c\nkafka: {{bootstrap_servers: '127.0.0.1:9'}}\nauth: {{mode: none}}\nschema_registry: {{url: '{registry}'}}\ninbound:\n{inbound}"
            ),
        )
        .unwrap();
        let offline = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-ws-bridge"))
            .args(["check", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let online = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-ws-bridge"))
            .args(["check", "--online", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        (
            offline.status.success(),
            online.status.success(),
            String::from_utf8_lossy(&online.stderr).into_owned(),
        )
    };
    let (offline, online, said) = common::blocking(|| {
        check(&format!(
            "  - {{channel: a, topic: {topic}, format: avro, allow: anonymous}}\n  - {{channel: b, topic: {topic}, format: avro, subject: nobody-registered-this, allow: anonymous}}\n  - {{channel: c, topic: {topic}, format: protobuf, allow: anonymous}}\n"
        ))
    });
    assert!(offline, "offline, nothing is asked");
    assert!(!online, "{said}");
    assert!(
        said.contains("inbound[1].format") && said.contains("nobody-registered-this"),
        "{said}"
    );
    assert!(
        said.contains("inbound[2].format") && said.contains("is avro, not protobuf"),
        "{said}"
    );
    assert!(!said.contains("inbound[0]"), "{said}");
    let (_, online, said) = common::blocking(|| {
        check(&format!(
            "  - {{channel: a, topic: {topic}, format: avro, schema_version: 1, allow: anonymous}}\n"
        ))
    });
    assert!(online, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_entitlement_and_client_filters_read_the_decoded_value() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    const SECRET: &str = "registry-test-secret-0123456789abcdef";
    let registry = registry_url().await;
    let topic = create_topic("sr-where", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth:\n  mode: jwt\n  jwt: {{algorithms: [HS256], secret: \"{SECRET}\"}}\nschema_registry: {{url: '{registry}'}}\nchannels:\n  - name: mine\n    topic: {topic}\n    format: avro\n    subscribe:\n      allow: authenticated\n      where: {{pointer: /status, equals_claim: desk}}\n      filters: true\n"
    ))
    .await;
    let token = |sub: &str, desk: &str| {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        encode(
            &Header::default(),
            &json!({"sub": sub, "desk": desk, "exp": exp}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let connect = |token: String| {
        let url = format!("{}?access_token={token}", bridge.ws_url);
        async move { Client::connect(&url).await }
    };
    let mut new_desk = connect(token("u-1", "NEW")).await;
    let mut paid_desk = connect(token("u-2", "PAID")).await;
    let mut big_new = connect(token("u-3", "NEW")).await;
    new_desk.subscribe("mine", None).await;
    paid_desk.subscribe("mine", None).await;
    big_new
        .send(json!({"type": "subscribe", "id": "f", "channel": "mine",
            "filter": {"pointer": "/amount_cents", "gte": 100}}))
        .await;
    big_new.expect("subscribed").await;
    produce(
        &registry,
        &topic,
        "avro",
        "order.avsc",
        &[],
        &[
            json!({"key": "k", "value": order("n-small", 5, None, "NEW", "0.05")}),
            json!({"key": "k", "value": order("p-1", 500, None, "PAID", "5.00")}),
            json!({"key": "k", "value": order("n-big", 700, None, "NEW", "7.00")}),
        ],
    );
    let ids = |frames: Vec<Value>| -> Vec<String> {
        frames
            .iter()
            .map(|m| m["data"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(messages(&mut new_desk, 2).await), ["n-small", "n-big"]);
    assert_eq!(ids(messages(&mut paid_desk, 1).await), ["p-1"]);
    assert_eq!(ids(messages(&mut big_new, 1).await), ["n-big"]);
    // Nothing else reached anyone.
    for client in [&mut new_desk, &mut paid_desk, &mut big_new] {
        assert_eq!(client.drain_until_pong().await, Vec::<Value>::new());
    }
    bridge.stop().await;
}
