//! STOMP 1.2 over WebSocket against a real broker, with a hand-written client speaking raw
//! frames over tokio-tungstenite: the subprotocol answer, CONNECT with a JWT, destinations,
//! MESSAGE headers, SEND with a RECEIPT after Kafka's ack, DISCONNECT; and hostile input
//! (malformed frames, oversize headers, unknown commands) answered with ERROR and a close while
//! the bridge carries on. (`@stomp/stompjs` itself is tested in tests/stomp-js/.)

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{create_topic, read_topic, TestBridge, TestProducer, DEADLINE};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &str = "test-secret-for-hs256-0123456789abcdef";

fn token(sub: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": now + 600, "iat": now}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A received frame: command, headers (first of each name), body.
#[derive(Debug)]
struct Received {
    command: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a server frame (headers unescaped; the tests' values carry no escapes but `:`).
fn parse(text: &str) -> Received {
    let (head, body) = text
        .split_once("\n\n")
        .expect("a blank line after the headers");
    let mut lines = head.lines();
    let command = lines.next().unwrap().to_owned();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_owned(), v.replace("\\c", ":"))
        })
        .collect();
    let body = body
        .strip_suffix('\0')
        .expect("frames end with NUL")
        .to_owned();
    Received {
        command,
        headers,
        body,
    }
}

struct Stomp {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Stomp {
    /// Opens a WebSocket asking for `v12.stomp` (checks the answer names it).
    async fn open(bridge: &TestBridge) -> Stomp {
        let mut request = bridge.ws_url.as_str().into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("v12.stomp, v11.stomp"),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket handshake");
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "v12.stomp"
        );
        Stomp { ws }
    }

    /// Opens and connects with `passcode`; returns the CONNECTED frame.
    async fn connect(bridge: &TestBridge, passcode: &str) -> (Stomp, Received) {
        let mut stomp = Stomp::open(bridge).await;
        stomp
            .send(&format!(
                "CONNECT\naccept-version:1.1,1.2\nhost:bridge\nheart-beat:0,1000\npasscode:{passcode}\n\n\0"
            ))
            .await;
        let connected = stomp.recv().await;
        assert_eq!(connected.command, "CONNECTED", "{connected:?}");
        (stomp, connected)
    }

    async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next frame, skipping heart-beats; panics on close or after the deadline.
    async fn recv(&mut self) -> Received {
        match self.next().await {
            Some(frame) => frame,
            None => panic!("closed while a frame was expected"),
        }
    }

    /// The next frame, or `None` once the connection is closed.
    async fn next(&mut self) -> Option<Received> {
        loop {
            let message = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("a frame within the deadline");
            match message {
                Some(Ok(Message::Text(text))) if text.trim_matches('\n').is_empty() => continue,
                Some(Ok(Message::Text(text))) => return Some(parse(text.as_str())),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Waits for a heart-beat (an EOL alone), skipping frames.
    async fn heart_beat(&mut self) {
        loop {
            let message = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("a heart-beat within the deadline");
            match message {
                Some(Ok(Message::Text(text))) if text.as_str() == "\n" => return,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => panic!("closed"),
                _ => continue,
            }
        }
    }

    /// Expects an ERROR (its message containing `says`), then the close.
    async fn expect_error_and_close(&mut self, says: &str) -> Received {
        let error = self.recv().await;
        assert_eq!(error.command, "ERROR", "{error:?}");
        assert!(
            error.header("message").unwrap_or_default().contains(says),
            "{error:?} should say {says}"
        );
        if let Some(frame) = self.next().await {
            panic!("a frame after ERROR: {frame:?}");
        }
        error
    }
}

fn config(feed: &str, accounts: &str, commands: &str) -> String {
    format!(
        "auth:\n  mode: jwt\n  jwt: {{algorithms: [HS256], secret: \"{SECRET}\", leeway_seconds: 0}}\n\
         server: {{ping_interval_ms: 500}}\n\
         channels:\n  - {{name: feed, topic: {feed}, subscribe: {{allow: authenticated}}}}\n  \
         - {{name: accounts, topic: {accounts}, key: {{from: record_key}}, deliver: by_key, subscribe: {{allow: authenticated}}}}\n\
         inbound:\n  - {{channel: commands, topic: {commands}, allow: authenticated}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stomp_client_subscribes_sends_with_a_receipt_and_disconnects() {
    let (feed, accounts, commands) = (
        create_topic("stomp-feed", 1).await,
        create_topic("stomp-accounts", 1).await,
        create_topic("stomp-commands", 1).await,
    );
    let bridge = TestBridge::start(&config(&feed, &accounts, &commands)).await;
    let (mut a, connected) = Stomp::connect(&bridge, &token("C-1")).await;
    assert_eq!(connected.header("version"), Some("1.2"));
    assert_eq!(connected.header("user-name"), Some("C-1"));
    // The server beats every max(500, 1000) ms; the client sends none.
    assert_eq!(connected.header("heart-beat"), Some("500,500"));
    a.send("SUBSCRIBE\nid:s1\ndestination:/topic/feed\nreceipt:r1\n\n\0")
        .await;
    a.send("SUBSCRIBE\nid:s2\ndestination:/user/queue/accounts\nreceipt:r2\n\n\0")
        .await;
    assert_eq!(a.recv().await.header("receipt-id"), Some("r1"));
    assert_eq!(a.recv().await.header("receipt-id"), Some("r2"));
    let (mut b, _) = Stomp::connect(&bridge, &token("C-1")).await;
    b.send("SUBSCRIBE\nid:k\ndestination:/topic/accounts/C-1\nreceipt:r\n\n\0")
        .await;
    assert_eq!(b.recv().await.command, "RECEIPT");

    let producer = TestProducer::new();
    let (_, feed_offset) = producer
        .send(&feed, None, None, br#"{"price":1}"#, &[])
        .await;
    producer
        .send(&accounts, None, Some("C-2"), br#"{"balance":2}"#, &[])
        .await;
    producer
        .send(&accounts, None, Some("C-1"), br#"{"balance":1}"#, &[])
        .await;
    let mut got = [a.recv().await, a.recv().await];
    got.sort_by_key(|m| m.header("subscription").unwrap().to_owned());
    let (on_feed, on_account) = (&got[0], &got[1]);
    assert_eq!(on_feed.command, "MESSAGE");
    assert_eq!(on_feed.header("subscription"), Some("s1"));
    assert_eq!(on_feed.header("destination"), Some("/topic/feed"));
    assert_eq!(on_feed.header("content-type"), Some("application/json"));
    assert_eq!(on_feed.header("kafka-partition"), Some("0"));
    assert_eq!(
        on_feed.header("kafka-offset"),
        Some(feed_offset.to_string().as_str())
    );
    assert!(on_feed.header("message-id").is_some());
    assert_eq!(on_feed.body, r#"{"price":1}"#);
    assert_eq!(
        on_account.header("destination"),
        Some("/user/queue/accounts")
    );
    assert_eq!(
        on_account.body, r#"{"balance":1}"#,
        "only the user's own key"
    );
    let keyed = b.recv().await;
    assert_eq!(keyed.header("destination"), Some("/topic/accounts/C-1"));
    assert_eq!(keyed.body, r#"{"balance":1}"#);
    // The client asked for heart-beats every 1000 ms (`heart-beat:0,1000`): EOLs arrive.
    b.heart_beat().await;
    b.heart_beat().await;

    // SEND: the RECEIPT comes after Kafka's ack; the record carries the bridge's headers.
    a.send("SEND\ndestination:/app/commands\nreceipt:p1\ncontent-type:application/json\nx-trace:t1\n\n{\"op\":\"buy\"}\0")
        .await;
    let receipt = a.recv().await;
    assert_eq!(receipt.command, "RECEIPT", "{receipt:?}");
    assert_eq!(receipt.header("receipt-id"), Some("p1"));
    let records = read_topic(&commands, 1).await;
    assert_eq!(records[0].value, r#"{"op":"buy"}"#);
    assert_eq!(records[0].header("bridge-user"), Some("C-1"));
    assert_eq!(records[0].header("x-trace"), Some("t1"));
    assert!(records[0].header("bridge-session").is_some());

    // UNSUBSCRIBE: nothing more on s1.
    a.send("UNSUBSCRIBE\nid:s1\nreceipt:u1\n\n\0").await;
    assert_eq!(a.recv().await.header("receipt-id"), Some("u1"));
    producer.send(&feed, None, None, b"2", &[]).await;
    producer.send(&accounts, None, Some("C-1"), b"3", &[]).await;
    let next = a.recv().await;
    assert_eq!(next.header("subscription"), Some("s2"), "{next:?}");
    // A heart-beat or two arrive meanwhile (checked by `recv` skipping them); DISCONNECT.
    a.send("DISCONNECT\nreceipt:bye\n\n\0").await;
    assert_eq!(a.recv().await.header("receipt-id"), Some("bye"));
    assert!(a.next().await.is_none(), "closed after the receipt");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_end_the_stomp_session_and_the_bridge_carries_on() {
    let (feed, accounts, commands) = (
        create_topic("stomp-hostile-feed", 1).await,
        create_topic("stomp-hostile-accounts", 1).await,
        create_topic("stomp-hostile-commands", 1).await,
    );
    let bridge = TestBridge::start(&config(&feed, &accounts, &commands)).await;

    // No credentials, bad credentials, a frame before CONNECT.
    let mut s = Stomp::open(&bridge).await;
    s.send("CONNECT\naccept-version:1.2\n\n\0").await;
    s.expect_error_and_close("unauthorized").await;
    let mut s = Stomp::open(&bridge).await;
    s.send("CONNECT\naccept-version:1.2\npasscode:nope\n\n\0")
        .await;
    s.expect_error_and_close("unauthorized").await;
    let mut s = Stomp::open(&bridge).await;
    s.send("SEND\ndestination:/app/commands\n\n{}\0").await;
    s.expect_error_and_close("expected CONNECT").await;
    let mut s = Stomp::open(&bridge).await;
    s.send("CONNECT\naccept-version:2.0\n\n\0").await;
    s.expect_error_and_close("accept-version").await;

    // After CONNECT: each hostile frame gets an ERROR and the session ends.
    let long = format!("SEND\nx:{}\n\n\0", "v".repeat(5000));
    let many = format!(
        "SEND\n{}\n\0",
        (0..100).map(|i| format!("h{i}:v\n")).collect::<String>()
    );
    let hostile: Vec<(String, &str)> = vec![
        ("HELLO\n\n\0".into(), "unknown command"),
        ("SEND\ndestination:/app/commands\n\n{}".into(), "NUL"),
        ("SEND\nnocolon\n\n\0".into(), "colon"),
        ("SEND\nx:\\q\n\n\0".into(), "escape"),
        ("SEND\ncontent-length:99\n\n{}\0".into(), "content-length"),
        (long, "longer"),
        (many, "headers"),
        ("SEND\n\n\0SEND\n\n\0".into(), "one frame"),
        (
            "SEND\ndestination:/app/commands\n\nnot json\0".into(),
            "JSON",
        ),
        ("SEND\ndestination:/app/nope\n\n{}\0".into(), "nope"),
        ("SEND\ndestination:/elsewhere\n\n{}\0".into(), "/app/"),
        ("SUBSCRIBE\ndestination:/topic/feed\n\n\0".into(), "`id`"),
        (
            "SUBSCRIBE\nid:1\ndestination:/topic/nope\n\n\0".into(),
            "nope",
        ),
        (
            "SUBSCRIBE\nid:1\ndestination:/topic/feed\nack:client\n\n\0".into(),
            "ack",
        ),
        (
            "SUBSCRIBE\nid:1\ndestination:/user/queue/feed\n\n\0".into(),
            "by_key",
        ),
        (
            "SUBSCRIBE\nid:1\ndestination:/topic/feed\nresume:x\n\n\0".into(),
            "resume",
        ),
        ("BEGIN\ntransaction:t\n\n\0".into(), "transactions"),
        ("ACK\nid:1\n\n\0".into(), "ack: auto"),
        ("CONNECT\n\n\0".into(), "already connected"),
    ];
    for (frame, says) in hostile {
        let (mut s, _) = Stomp::connect(&bridge, &token("C-1")).await;
        s.send(&frame).await;
        s.expect_error_and_close(says).await;
    }
    // A forbidden destination: another user's key. The ERROR names the receipt.
    let (mut s, _) = Stomp::connect(&bridge, &token("C-1")).await;
    s.send("SUBSCRIBE\nid:x\ndestination:/topic/accounts/C-2\nreceipt:r9\n\n\0")
        .await;
    let error = s.expect_error_and_close("not allowed").await;
    assert_eq!(error.header("receipt-id"), Some("r9"));
    assert_eq!(error.header("code"), Some("forbidden"));
    // A frame over max_frame_bytes ends the connection with 1009, as for JSON sessions.
    let (mut s, _) = Stomp::connect(&bridge, &token("C-1")).await;
    let _ =
        s.ws.send(Message::text(format!(
            "SEND\ndestination:/app/commands\n\n\"{}\"\0",
            "x".repeat(2 << 20)
        )))
        .await;
    assert!(s.next().await.is_none());

    // The bridge is fine: a new session works, JSON clients too.
    let (mut s, _) = Stomp::connect(&bridge, &token("C-1")).await;
    s.send("SEND\ndestination:/app/commands\nreceipt:ok\ncontent-type:text/plain\n\nhello\0")
        .await;
    assert_eq!(s.recv().await.header("receipt-id"), Some("ok"));
    assert_eq!(read_topic(&commands, 1).await[0].value, "\"hello\"");
    // Every refused session is gone.
    bridge
        .wait_metric("kafka_ws_bridge_sessions_open", 1.0)
        .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_headers_ask_for_history_resume_and_the_snapshot() {
    let (feed, accounts, commands) = (
        create_topic("stomp-replay-feed", 1).await,
        create_topic("stomp-replay-accounts", 1).await,
        create_topic("stomp-replay-commands", 1).await,
    );
    let body = config(&feed, &accounts, &commands)
        .replace(
            "subscribe: {allow: authenticated}}\n  - {name: accounts",
            "subscribe: {allow: authenticated}, history: 10}\n  - {name: accounts",
        )
        .replace(
            "deliver: by_key, subscribe: {allow: authenticated}}",
            "deliver: by_key, subscribe: {allow: authenticated}, snapshot: true}",
        );
    let producer = TestProducer::new();
    for value in ["0", "1", "2"] {
        producer
            .send(&feed, None, None, value.as_bytes(), &[])
            .await;
    }
    producer
        .send(&accounts, None, Some("C-1"), br#"{"balance":7}"#, &[])
        .await;
    let bridge = TestBridge::start(&body).await;
    let (mut s, _) = Stomp::connect(&bridge, &token("C-1")).await;
    // `history: 2`: the two newest, in order.
    s.send("SUBSCRIBE\nid:h\ndestination:/topic/feed\nhistory:2\n\n\0")
        .await;
    let replayed: Vec<String> = [s.recv().await, s.recv().await]
        .iter()
        .map(|m| m.body.clone())
        .collect();
    assert_eq!(replayed, ["1", "2"]);
    // `resume`: everything after the positions given, on a second session.
    let (mut r, _) = Stomp::connect(&bridge, &token("C-1")).await;
    r.send("SUBSCRIBE\nid:r\ndestination:/topic/feed\nresume:0:0\n\n\0")
        .await;
    let first = r.recv().await;
    assert_eq!(
        (first.body.as_str(), first.header("kafka-offset")),
        ("1", Some("1"))
    );
    assert_eq!(r.recv().await.body, "2");
    // A snapshot channel: the key's current value comes first, as a MESSAGE.
    s.send("SUBSCRIBE\nid:bal\ndestination:/user/queue/accounts\nreceipt:b\n\n\0")
        .await;
    let snapshot = s.recv().await;
    assert_eq!(snapshot.command, "MESSAGE");
    assert_eq!(snapshot.header("subscription"), Some("bal"));
    assert_eq!(snapshot.body, r#"{"balance":7}"#);
    assert_eq!(s.recv().await.header("receipt-id"), Some("b"));
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stomp_client_is_closed_as_slow_and_the_others_get_everything() {
    let topic = create_topic("stomp-firehose", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nserver: {{send_queue_messages: 8}}\nchannels:\n  - {{name: feed, topic: {topic}, subscribe: {{allow: anonymous}}, on_slow_client: disconnect}}\n"
    ))
    .await;
    // The stalled client: a small receive buffer, and it stops reading after its RECEIPT.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(bridge.ws_addr).await.unwrap();
    let mut request = bridge.ws_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("v12.stomp"),
    );
    let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    let mut stalled = Stomp { ws };
    stalled.send("CONNECT\naccept-version:1.2\n\n\0").await;
    assert_eq!(stalled.recv().await.command, "CONNECTED");
    stalled
        .send("SUBSCRIBE\nid:1\ndestination:/topic/feed\nreceipt:r\n\n\0")
        .await;
    assert_eq!(stalled.recv().await.command, "RECEIPT");
    let mut fast = Stomp::open(&bridge).await;
    fast.send("CONNECT\naccept-version:1.2\n\n\0").await;
    assert_eq!(fast.recv().await.command, "CONNECTED");
    fast.send("SUBSCRIBE\nid:1\ndestination:/topic/feed\nreceipt:r\n\n\0")
        .await;
    assert_eq!(fast.recv().await.command, "RECEIPT");

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
            assert_eq!(fast.recv().await.command, "MESSAGE");
        }
    };
    tokio::join!(send_all, read_all);
    bridge
        .wait_metric(
            "kafka_ws_bridge_sessions_closed_total{transport=\"stomp\",reason=\"slow_client\"}",
            1.0,
        )
        .await;
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_sessions_open{transport=\"stomp\"}")
            .await,
        1.0
    );
    assert_eq!(bridge.metric("kafka_ws_bridge_sessions_open").await, 1.0);
    bridge.stop().await;
}
