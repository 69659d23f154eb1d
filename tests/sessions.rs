//! Session behaviour against a real bridge: bad frames, oversize frames, slow clients.

mod common;

use common::{create_topic, Client, TestBridge, TestProducer};
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_errors_and_the_session_stays_usable() {
    let topic = create_topic("frames", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nchannels:\n  - {{name: feed, topic: {topic}, subscribe: {{allow: anonymous}}}}\n"
    ))
    .await;
    let mut client = bridge.connect().await;
    for (text, code, needle) in [
        ("this is not json", "bad_request", "invalid JSON"),
        ("[1,2,3]", "bad_request", "invalid frame"),
        (r#"{"id":"a"}"#, "bad_request", "missing field `type`"),
        (
            r#"{"type":"dance","id":"b"}"#,
            "bad_request",
            "unknown type `dance`",
        ),
        (
            r#"{"type":"subscribe","id":"c"}"#,
            "bad_request",
            "missing field `channel`",
        ),
        (
            r#"{"type":"subscribe","id":"d","channel":"nope"}"#,
            "unknown_channel",
            "no channel named `nope`",
        ),
        (
            r#"{"type":"subscribe","id":"e","channel":"feed","key":"k"}"#,
            "bad_request",
            "not keyed",
        ),
        (
            r#"{"type":"subscribe","id":"f","channel":7}"#,
            "bad_request",
            "invalid type",
        ),
    ] {
        client.send_text(text).await;
        let error = client.expect("error").await;
        assert_eq!(error["code"], code, "{text} -> {error}");
        assert!(
            error["message"].as_str().unwrap().contains(needle),
            "{text} -> {error}"
        );
    }
    client.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert!(client.expect("error").await["message"]
        .as_str()
        .unwrap()
        .contains("binary"));

    // The session still works: ping, subscribe and receive.
    client.send(json!({"type": "ping", "id": "p"})).await;
    assert_eq!(client.expect("pong").await["id"], "p");
    client.subscribe("feed", None).await;
    TestProducer::new()
        .send(&topic, None, None, b"{\"ok\":true}", &[])
        .await;
    assert_eq!(client.expect("message").await["data"]["ok"], true);
    assert!(
        bridge
            .metric("kafka_ws_bridge_client_errors_total{code=\"bad_request\"}")
            .await
            >= 7.0
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frame_closes_with_1009_and_others_are_unaffected() {
    let bridge = TestBridge::start("auth: {mode: none}\nserver: {max_frame_bytes: 1024}\n").await;
    let mut victim = bridge.connect().await;
    let mut neighbour = bridge.connect().await;
    let big = format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(2000));
    victim.send_text(&big).await;
    assert_eq!(victim.closed_code().await, Some(1009));
    neighbour
        .send(json!({"type": "ping", "id": "still-here"}))
        .await;
    assert_eq!(neighbour.expect("pong").await["id"], "still-here");
    bridge
        .wait_metric(
            "kafka_ws_bridge_sessions_closed_total{reason=\"frame_too_large\"}",
            1.0,
        )
        .await;
    bridge.stop().await;
}

/// A client whose socket receive buffer is tiny and which never reads.
async fn stalled_client(
    bridge: &TestBridge,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(bridge.ws_addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(
        bridge.ws_url.as_str(),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .expect("handshake");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_session_is_closed_and_counted_without_slowing_the_others() {
    use futures_util::SinkExt;
    let topic = create_topic("firehose", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nserver: {{send_queue_messages: 8}}\nchannels:\n  - {{name: feed, topic: {topic}, subscribe: {{allow: anonymous}}}}\n"
    ))
    .await;
    let mut slow = stalled_client(&bridge).await;
    slow.send(Message::text(
        json!({"type": "subscribe", "channel": "feed"}).to_string(),
    ))
    .await
    .unwrap();
    let mut fast = bridge.connect().await;
    fast.subscribe("feed", None).await;

    // Enough data to fill the stalled socket's kernel buffers several times over.
    const RECORDS: usize = 600;
    let payload = json!({"blob": "z".repeat(16 * 1024)}).to_string();
    let producer = TestProducer::new();
    let send_all = async {
        for _ in 0..RECORDS {
            producer
                .send(&topic, None, None, payload.as_bytes(), &[])
                .await;
        }
    };
    let read_all = async {
        for _ in 0..RECORDS {
            fast.expect("message").await;
        }
    };
    tokio::join!(send_all, read_all);
    bridge
        .wait_metric(
            "kafka_ws_bridge_sessions_closed_total{reason=\"slow_client\"}",
            1.0,
        )
        .await;
    assert_eq!(bridge.metric("kafka_ws_bridge_sessions_open").await, 1.0);
    // The stalled client finally reads: buffered frames, then the end of the connection.
    let mut stalled = Client {
        ws: slow,
        session: String::new(),
        user: serde_json::Value::Null,
    };
    let code = stalled.closed_code().await;
    assert!(matches!(code, Some(4001) | None), "closed with {code:?}");
    bridge.stop().await;
}
