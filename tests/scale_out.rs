//! Scale-out and the HTTP publish API against a real broker: two bridge processes serving one
//! user, replies routed across instances, and services publishing over HTTP to browsers.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{
    create_topic, http_request, read_topic, BridgeProcess, Client, TestBridge, TestProducer,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "scale-out-secret-0123456789abcdef";
const API_KEY: &str = "service-key-0123456789abcdef";

fn token(sub: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn post(path: &str, key: Option<&str>, body: &str) -> String {
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_publish_over_http_to_websocket_subscribers() {
    let balances = create_topic("http-balances", 2).await;
    let news = create_topic("http-news", 1).await;
    let bridge = TestBridge::start(&common::fixture(
        "http_publish.yaml",
        &[
            ("API_KEY", API_KEY),
            ("BALANCES", &balances),
            ("NEWS", &news),
        ],
    ))
    .await;
    let mut customer = bridge.connect().await;
    customer.subscribe("balances", Some("C-1")).await;
    let mut reader = bridge.connect().await;
    reader.subscribe("news", None).await;

    let (status, body) = http_request(
        bridge.ws_addr,
        &post("/api/v1/publish", Some(API_KEY), r#"{"channel":"balances","key":"C-1","data":{"balance":42},"headers":{"source":"core-banking"}}"#),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let written: Value = serde_json::from_str(&body).unwrap();
    let message = customer.expect("message").await;
    assert_eq!(message["data"], json!({"balance": 42}));
    assert_eq!(message["headers"]["source"], "core-banking");
    assert_eq!(
        (message["partition"].clone(), message["offset"].clone()),
        (written["partition"].clone(), written["offset"].clone())
    );
    let record = &read_topic(&balances, 1).await[0];
    assert_eq!(record.key.as_deref(), Some("C-1"));
    assert_eq!(record.value, r#"{"balance":42}"#);
    // A text channel takes a JSON string and writes its text.
    let (status, _) = http_request(
        bridge.ws_addr,
        &post(
            "/api/v1/publish",
            Some(API_KEY),
            r#"{"channel":"news","data":"markets open"}"#,
        ),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(reader.expect("message").await["data"], "markets open");

    for (key, body, status, needle) in [
        (None, r#"{"channel":"news","data":"x"}"#, 401, "API key"),
        (
            Some("wrong-key-0123456789abcdef"),
            r#"{"channel":"news","data":"x"}"#,
            401,
            "API key",
        ),
        (
            Some(API_KEY),
            r#"{"channel":"nope","data":1}"#,
            404,
            "no channel named `nope`",
        ),
        (
            Some(API_KEY),
            r#"{"channel":"balances","data":{}}"#,
            400,
            "`key` is required",
        ),
        (
            Some(API_KEY),
            r#"{"channel":"news","data":{"not":"text"}}"#,
            400,
            "JSON string",
        ),
        (
            Some(API_KEY),
            r#"{"channel":"news""#,
            400,
            "invalid request",
        ),
        (
            Some(API_KEY),
            r#"{"channel":"news","data":"x","extra":1}"#,
            400,
            "unknown field",
        ),
    ] {
        let (got, response) =
            http_request(bridge.ws_addr, &post("/api/v1/publish", key, body)).await;
        assert_eq!(got, status, "{body}: {response}");
        let error: Value = serde_json::from_str(&response).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(needle),
            "{body}: {response}"
        );
        assert!(!response.contains(API_KEY));
    }
    let big = format!(r#"{{"channel":"news","data":"{}"}}"#, "x".repeat(5000));
    assert_eq!(
        http_request(
            bridge.ws_addr,
            &post("/api/v1/publish", Some(API_KEY), &big)
        )
        .await
        .0,
        413
    );
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_http_publishes_total{channel=\"balances\",result=\"ok\"}")
            .await,
        1.0
    );
    bridge.stop().await;

    // Without API keys the endpoint is off.
    let closed = TestBridge::start(&format!("auth: {{mode: none}}\nchannels:\n  - {{name: news, topic: {news}, subscribe: {{allow: anonymous}}}}\n")).await;
    let (status, body) = http_request(
        closed.ws_addr,
        &post(
            "/api/v1/publish",
            Some(API_KEY),
            r#"{"channel":"news","data":1}"#,
        ),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    closed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_serve_one_user_and_route_replies_across_them() {
    let balances = create_topic("so-balances", 3).await;
    let commands = create_topic("so-commands", 2).await;
    let replies = create_topic("so-replies", 2).await;
    let body = common::fixture(
        "two_instances.yaml",
        &[
            ("SECRET", SECRET),
            ("BALANCES", &balances),
            ("REPLIES", &replies),
            ("COMMANDS", &commands),
        ],
    );
    // Two identical instances but for their instance_id (each its own consumer group).
    let a = BridgeProcess::spawn(&common::config_text(&body));
    let b = BridgeProcess::spawn(&common::config_text(&body));
    a.wait_ready().await;
    b.wait_ready().await;
    let connect = |url: String| async move {
        let url = format!("{url}?access_token={}", token("C-1"));
        Client::connect(&url).await
    };
    let mut on_a = connect(a.ws_url.clone()).await;
    let mut on_b = connect(b.ws_url.clone()).await;
    for client in [&mut on_a, &mut on_b] {
        assert_eq!(client.user, "C-1");
        client.subscribe("balances", None).await;
        client.subscribe("replies", None).await;
    }
    // A keyed record reaches the user's sessions on both instances.
    TestProducer::new()
        .send(&balances, None, Some("C-1"), br#"{"balance": 7}"#, &[])
        .await;
    TestProducer::new()
        .send(&balances, None, Some("C-2"), br#"{"balance": 8}"#, &[])
        .await;
    assert_eq!(on_a.expect("message").await["data"]["balance"], 7);
    assert_eq!(on_b.expect("message").await["data"]["balance"], 7);

    // A command through B; the backend answers with the bridge headers copied.
    on_b.send(
        json!({"type": "publish", "id": "cmd-1", "channel": "commands", "data": {"op": "Refresh"}}),
    )
    .await;
    let ack = on_b.expect("ack").await;
    let command = &read_topic(&commands, 1).await[0];
    assert_eq!(
        (command.partition as i64, command.offset),
        (
            ack["partition"].as_i64().unwrap(),
            ack["offset"].as_i64().unwrap()
        )
    );
    let copied: Vec<(&str, &str)> = ["bridge-user", "bridge-session", "correlation-id"]
        .iter()
        .map(|h| (*h, command.header(h).unwrap()))
        .collect();
    TestProducer::new()
        .send(&replies, None, None, br#"{"refreshed": true}"#, &copied)
        .await;
    // B holds the session named in bridge-session; A does not, so it routes by bridge-user.
    let reply_on_b = on_b.expect("message").await;
    assert_eq!(reply_on_b["headers"]["correlation-id"], "cmd-1");
    let reply_on_a = on_a.expect("message").await;
    assert_eq!(reply_on_a["channel"], "replies");
    assert_eq!(reply_on_a["data"]["refreshed"], true);
    assert_eq!(
        on_a.drain_until_pong().await,
        Vec::<Value>::new(),
        "nothing of C-2"
    );
}
