//! Server-Sent Events against a real broker, with raw HTTP clients: a stream that stops reading
//! follows its channel's `on_slow_client` policy like a WebSocket session, without slowing the
//! streams that read. (The browser's `EventSource`, with reconnect and `Last-Event-ID`, is
//! tested in tests/browser/sse.mjs.)

mod common;

use common::{create_topic, TestBridge, TestProducer};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// Opens `GET path` and reads up to the end of the response headers; returns the status and
/// the connection, positioned at the body.
async fn open_stream(
    socket: TcpSocket,
    bridge: &TestBridge,
    path: &str,
) -> (u16, BufReader<TcpStream>) {
    let mut stream = socket.connect(bridge.ws_addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: bridge\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    (status, reader)
}

/// Reads the body (chunked) until `count` events named `name` have arrived.
async fn read_events(reader: &mut BufReader<TcpStream>, name: &str, count: usize) {
    let wanted = format!("event:{name}");
    let mut seen = 0;
    let mut line = String::new();
    while seen < count {
        line.clear();
        let n = reader.read_line(&mut line).await.unwrap();
        assert!(
            n > 0,
            "the stream ended after {seen} of {count} `{name}` events"
        );
        if line.trim_end() == wanted {
            seen += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_closed_as_slow_and_the_others_get_everything() {
    let topic = create_topic("sse-firehose", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nserver: {{send_queue_messages: 8}}\nchannels:\n  - {{name: feed, topic: {topic}, subscribe: {{allow: anonymous}}, on_slow_client: disconnect}}\n"
    ))
    .await;
    let small = TcpSocket::new_v4().unwrap();
    small.set_recv_buffer_size(4096).unwrap();
    let (status, mut stalled) = open_stream(small, &bridge, "/sse?channel=feed").await;
    assert_eq!(status, 200);
    read_events(&mut stalled, "subscribed", 1).await;
    let (status, mut fast) =
        open_stream(TcpSocket::new_v4().unwrap(), &bridge, "/sse?channel=feed").await;
    assert_eq!(status, 200);
    read_events(&mut fast, "subscribed", 1).await;
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_sessions_open{transport=\"sse\"}")
            .await,
        2.0
    );

    // Enough data to fill the stalled connection's kernel buffers several times over.
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
    tokio::join!(send_all, read_events(&mut fast, "message", RECORDS));
    bridge
        .wait_metric(
            "kafka_ws_bridge_sessions_closed_total{reason=\"slow_client\"}",
            1.0,
        )
        .await;
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_sessions_open{transport=\"sse\"}")
            .await,
        1.0
    );
    assert_eq!(bridge.metric("kafka_ws_bridge_sessions_open").await, 1.0);
    // The stalled client finally reads: what the connection still held, then the end of the
    // stream (its closing comment is best effort: the connection was full when it closed).
    let mut messages = 0;
    let mut line = String::new();
    while stalled.read_line(&mut line).await.unwrap_or(0) > 0 {
        messages += usize::from(line.trim_end() == "event:message");
        line.clear();
    }
    assert!(
        messages < RECORDS,
        "the stalled stream got {messages} of {RECORDS} records"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_http_answers_and_history_replays_before_live() {
    let topic = create_topic("sse-history", 1).await;
    let keyed = create_topic("sse-keyed", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nchannels:\n  - {{name: feed, topic: {topic}, subscribe: {{allow: anonymous}}, history: 10}}\n  - {{name: keyed, topic: {keyed}, key: {{from: record_key}}, deliver: by_key, subscribe: {{allow: authenticated}}}}\n"
    ))
    .await;
    for (path, expected) in [
        ("/sse", 400),
        ("/sse?channel=nope", 404),
        ("/sse?channel=keyed&key=a", 403),
        ("/sse?channel=feed&key=a", 400),
        ("/sse?channel=feed&history=many", 400),
    ] {
        let (status, _) = open_stream(TcpSocket::new_v4().unwrap(), &bridge, path).await;
        assert_eq!(status, expected, "{path}");
    }
    let producer = TestProducer::new();
    for n in 0..3 {
        producer
            .send(
                &topic,
                None,
                None,
                json!({ "n": n }).to_string().as_bytes(),
                &[],
            )
            .await;
    }
    // A stream opened after the records: `history` replays them.
    common::wait_until(
        "the bridge to hold 3 records",
        std::time::Duration::from_secs(20),
        async || {
            bridge
                .metric(&format!(
                    "kafka_ws_bridge_records_consumed_total{{topic=\"{topic}\"}}"
                ))
                .await
                >= 3.0
        },
    )
    .await;
    let (status, mut stream) = open_stream(
        TcpSocket::new_v4().unwrap(),
        &bridge,
        "/sse?channel=feed&history=2",
    )
    .await;
    assert_eq!(status, 200);
    read_events(&mut stream, "subscribed", 1).await;
    let mut lines = Vec::new();
    let mut line = String::new();
    while lines
        .iter()
        .filter(|l: &&String| l.starts_with("id:"))
        .count()
        < 2
    {
        line.clear();
        stream.read_line(&mut line).await.unwrap();
        lines.push(line.trim_end().to_owned());
    }
    let text = lines.join("\n");
    assert!(
        text.contains("\"n\":1") && text.contains("\"n\":2") && !text.contains("\"n\":0"),
        "{text}"
    );
    assert!(
        text.contains("id:0:2"),
        "the last replayed record's id: {text}"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_gets_keep_alive_comments_and_ends_with_the_reason_on_shutdown() {
    let topic = create_topic("sse-idle", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nchannels:\n  - {{name: feed, topic: {topic}, subscribe: {{allow: anonymous}}}}\n"
    ))
    .await;
    let (status, mut stream) =
        open_stream(TcpSocket::new_v4().unwrap(), &bridge, "/sse?channel=feed").await;
    assert_eq!(status, 200);
    read_events(&mut stream, "subscribed", 1).await;
    let comment = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                stream.read_line(&mut line).await.unwrap() > 0,
                "the stream ended"
            );
            if line.starts_with(':') {
                return line;
            }
        }
    })
    .await
    .expect("a keep-alive comment within 20 s");
    assert_eq!(comment.trim_end(), ":");
    // On shutdown the stream ends with a comment naming the reason.
    let rest = async {
        let mut rest = String::new();
        let mut line = String::new();
        while stream.read_line(&mut line).await.unwrap_or(0) > 0 {
            rest.push_str(&line);
            line.clear();
        }
        rest
    };
    let (rest, ()) = tokio::join!(rest, bridge.stop());
    assert!(
        rest.contains(": closed: server shutting down (1001)"),
        "{rest}"
    );
}
