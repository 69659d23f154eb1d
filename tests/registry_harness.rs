//! The Schema Registry harness itself (tests/common/registry.rs): records written and read back
//! with Confluent's own serializers (tests/registry/serde.py) through a real Apicurio Registry
//! and a real Kafka, what the registry answers for a schema id, a kept-alive connection after a
//! 404, and a registry of a test's own paused and resumed. The bridge is not involved: these
//! tests prove the tools the Schema Registry tests of the bridge stand on.

mod common;

use std::time::Duration;

use common::registry::{registry_get, registry_url, schema_file, serde_py, OwnRegistry};
use common::{bootstrap, create_topic, DEADLINE};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Records as JSON lines for serde.py's standard input.
fn lines(records: &[Value]) -> Vec<String> {
    records.iter().map(Value::to_string).collect()
}

/// The ids serde.py printed for each produced record, checked to be one id for all.
fn one_schema_id(produced: &[Value]) -> i64 {
    let ids: Vec<i64> = produced
        .iter()
        .map(|r| r["schema_id"].as_i64().expect("a schema id"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one schema for all records: {ids:?}"
    );
    ids[0]
}

/// (key, value) of what serde.py consumed, in offset order (one partition).
fn consumed(records: &[Value]) -> Vec<(Value, Value)> {
    let mut records = records.to_vec();
    records.sort_by_key(|r| r["offset"].as_i64());
    records
        .into_iter()
        .map(|r| (r["key"].clone(), r["value"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_serializers_round_trip_through_the_registry() {
    let registry = registry_url().await;
    let bootstrap = bootstrap();

    // Avro: the schema registered first (an id as a test would give it to the bridge), then
    // records by the serializer, which registers the same schema (TopicNameStrategy) and so
    // finds the same id.
    let topic = create_topic("registry-avro", 1).await;
    let subject = format!("{topic}-value");
    let order = schema_file("order.avsc");
    let registered = serde_py(
        &[
            "register",
            "--registry",
            &registry,
            "--subject",
            &subject,
            "--format",
            "avro",
            "--schema",
            &order,
        ],
        &[],
    );
    let avro_id = registered[0]["id"].as_i64().expect("an id");
    // In the form serde.py prints them back: a decimal as a string with its scale, a
    // timestamp-millis as epoch milliseconds.
    let avro_records = [
        json!({"key": "c-1", "value": {"id": "o-1", "amount_cents": 1234, "note": null,
            "status": "NEW", "total": "12.34", "created_at": 1_700_000_000_000_i64}}),
        json!({"key": "c-2", "value": {"id": "o-2", "amount_cents": 99_999_999_999_i64,
            "note": "gift wrap", "status": "PAID", "total": "-0.05",
            "created_at": 1_700_000_000_123_i64}}),
        json!({"key": "c-1", "value": {"id": "o-3", "amount_cents": 0, "note": "",
            "status": "CANCELLED", "total": "99999999.99", "created_at": 0}}),
    ];
    let produced = serde_py(
        &[
            "produce",
            "--bootstrap",
            &bootstrap,
            "--registry",
            &registry,
            "--topic",
            &topic,
            "--format",
            "avro",
            "--schema",
            &order,
        ],
        &lines(&avro_records),
    );
    assert_eq!(produced.len(), 3, "{produced:?}");
    assert_eq!(one_schema_id(&produced), avro_id, "{produced:?}");
    let offsets: Vec<i64> = produced
        .iter()
        .map(|r| r["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, [0, 1, 2]);
    let read = serde_py(
        &[
            "consume",
            "--bootstrap",
            &bootstrap,
            "--registry",
            &registry,
            "--topic",
            &topic,
            "--format",
            "avro",
            "--count",
            "3",
        ],
        &[],
    );
    let expected: Vec<(Value, Value)> = avro_records
        .iter()
        .map(|r| (r["key"].clone(), r["value"].clone()))
        .collect();
    assert_eq!(consumed(&read), expected);

    // Protobuf: the serializer compiles orders.proto's Order, registers the file (as a base64
    // FileDescriptorProto, as Confluent's Python serializer does) and frames each record with
    // the id and the message index [0]. Values in the proto3 JSON mapping as serde.py prints
    // them: int64 as strings, every field (defaults included), enums by name.
    let topic = create_topic("registry-protobuf", 1).await;
    let orders = schema_file("orders.proto");
    let proto_records = [
        json!({"key": "c-1", "value": {"id": "o-1", "amount_cents": "1234", "status": "NEW",
            "tags": ["gift", "express"],
            "first_line": {"sku": "SKU-1", "quantity": 2, "price_cents": "617"}, "note": "ring"}}),
        json!({"key": "c-2", "value": {"id": "o-2", "amount_cents": "-5", "status": "PAID",
            "tags": [], "first_line": {"sku": "", "quantity": 0, "price_cents": "0"}}}),
        json!({"key": "c-3", "value": {"id": "o-3", "amount_cents": "9007199254740993",
            "status": "STATUS_UNSPECIFIED", "tags": ["a"],
            "first_line": {"sku": "SKU-3", "quantity": -1, "price_cents": "1"}, "note": ""}}),
    ];
    let produced = serde_py(
        &[
            "produce",
            "--bootstrap",
            &bootstrap,
            "--registry",
            &registry,
            "--topic",
            &topic,
            "--format",
            "protobuf",
            "--schema",
            &orders,
        ],
        &lines(&proto_records),
    );
    assert_eq!(produced.len(), 3, "{produced:?}");
    let proto_id = one_schema_id(&produced);
    let read = serde_py(
        &[
            "consume",
            "--bootstrap",
            &bootstrap,
            "--registry",
            &registry,
            "--topic",
            &topic,
            "--format",
            "protobuf",
            "--count",
            "3",
        ],
        &[],
    );
    let expected: Vec<(Value, Value)> = proto_records
        .iter()
        .map(|r| (r["key"].clone(), r["value"].clone()))
        .collect();
    assert_eq!(consumed(&read), expected);

    // What the registry answers for the Protobuf id. Apicurio Registry 3.3.3 gives the schema
    // back as it was registered: here the base64 FileDescriptorProto of Confluent's serializer
    // (not .proto text), with "schemaType": "PROTOBUF"; a schema registered as .proto text
    // comes back as text. Asked for `?format=serialized` (what Confluent's deserializers ask
    // for), it fails with a 500 on a base64 one (it parses it as .proto text), and answers a
    // text one with the descriptor's raw bytes in a JSON string, not base64: serde.py works
    // around both (its RegistryClient) and says so on stderr.
    let (status, body) = registry_get(&registry, &format!("/schemas/ids/{proto_id}")).await;
    assert_eq!(status, 200, "GET /schemas/ids/{proto_id}: {body}");
    let answer: Value = serde_json::from_str(&body).expect("a JSON answer");
    assert_eq!(answer["schemaType"], "PROTOBUF", "{answer}");
    let text = answer["schema"].as_str().expect("a schema text");
    let form = if text.contains("message ") && text.contains('{') {
        ".proto text"
    } else {
        "base64 FileDescriptorProto"
    };
    println!(
        "GET /schemas/ids/{proto_id} gives the Protobuf schema as {form} ({} characters)",
        text.len()
    );
    let (status, body) = registry_get(
        &registry,
        &format!("/schemas/ids/{proto_id}?format=serialized"),
    )
    .await;
    println!(
        "GET /schemas/ids/{proto_id}?format=serialized: {status} {}",
        &body[..body.len().min(120)]
    );
}

/// A kept-alive connection after a 404 (an unknown schema id, an unknown subject) still gets
/// its next answers, with the HTTP client the bridge is built with (reqwest: a pool of
/// kept-alive connections).
#[tokio::test]
async fn a_kept_alive_connection_is_answered_after_a_404() {
    let registry = registry_url().await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let get = |path: String| {
        let request = client.get(format!("{registry}{path}")).send();
        async move {
            let response = tokio::time::timeout(Duration::from_secs(10), request)
                .await
                .unwrap_or_else(|_| panic!("GET {path}: no answer within 10 s"))
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            let status = response.status().as_u16();
            let body = tokio::time::timeout(Duration::from_secs(10), response.text())
                .await
                .unwrap_or_else(|_| panic!("GET {path}: no body within 10 s"))
                .unwrap();
            (status, body)
        }
    };
    for round in 0..3 {
        let (status, body) = get("/schemas/ids/987654321".to_owned()).await;
        assert_eq!(status, 404, "round {round}: {body}");
        let (status, body) =
            get(format!("/subjects/no-such-subject-{round}/versions/latest")).await;
        assert_eq!(status, 404, "round {round}: {body}");
        let (status, body) = get("/subjects".to_owned()).await;
        assert_eq!(status, 200, "round {round}: {body}");
    }
}

/// OwnRegistry: a paused registry accepts a connection and does not answer; resumed, it answers
/// the request sent meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_registry_pauses_and_resumes() {
    let registry = OwnRegistry::start();
    let (status, body) = registry_get(registry.url(), "/subjects").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "[]"),
        "a new registry is empty"
    );

    registry.pause();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", registry.port))
        .await
        .expect("the kernel accepts connections for a paused process");
    stream
        .write_all(
            b"GET /apis/ccompat/v7/subjects HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    // A window, not a wait for an event: "no answer" has no event to wait for. A running
    // registry answers in milliseconds.
    let early =
        tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut response)).await;
    assert!(
        early.is_err(),
        "a paused registry answered: {}",
        String::from_utf8_lossy(&response)
    );

    registry.resume();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut response))
        .await
        .expect("the answer once resumed")
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}
