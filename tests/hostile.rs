//! Hostile input and limits against a real bridge: each bad input gets its documented error or
//! close code, the daemon stays healthy and other sessions are unaffected. Also TLS (`wss://`)
//! with a certificate generated at test time.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{create_topic, http_get, Client, TestBridge, TestProducer, DEADLINE};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

async fn hostile_bridge(extra_server: &str) -> (TestBridge, String, String) {
    let feed = create_topic("hostile", 1).await;
    let commands = create_topic("hostile-in", 1).await;
    let bridge = TestBridge::start(&common::fixture(
        "hostile.yaml",
        &[
            ("FEED", &feed),
            ("COMMANDS", &commands),
            ("EXTRA_SERVER", extra_server),
        ],
    ))
    .await;
    (bridge, feed, commands)
}

/// A bystander that must keep working through all of it.
async fn bystander(bridge: &TestBridge) -> Client {
    let mut client = bridge.connect().await;
    client.subscribe("feed", None).await;
    client
}

async fn still_fine(client: &mut Client, feed: &str, n: i64) {
    TestProducer::new()
        .send(
            feed,
            None,
            None,
            json!({"n": n}).to_string().as_bytes(),
            &[],
        )
        .await;
    assert_eq!(client.expect("message").await["data"]["n"], n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_get_errors_or_close_codes_and_harm_nobody() {
    let (bridge, feed, _) = hostile_bridge("").await;
    let mut other = bystander(&bridge).await;

    // Invalid UTF-8 inside a text frame: the WebSocket protocol requires closing with 1007.
    let mut liar = bridge.connect().await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    liar.ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(liar.closed_code().await, Some(1007));

    // Everything else gets an error frame and the session carries on.
    let mut client = bridge.connect().await;
    let big_key = "k".repeat(1024 * 1024);
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "{\"type\":\"subscribe\"".into(),
            "bad_request",
            "invalid JSON",
        ),
        ("\u{0}\u{1}\u{2}".into(), "bad_request", "invalid JSON"),
        (
            json!({"type": "teleport", "id": 1}).to_string(),
            "bad_request",
            "unknown type",
        ),
        (
            json!({"type": "subscribe", "id": 2, "channel": "keyed", "key": big_key}).to_string(),
            "bad_request",
            "longer than 1024 bytes",
        ),
        (
            format!("{{\"type\":\"publish\",\"id\":3,\"channel\":\"commands\",\"data\":{deep}}}"),
            "bad_request",
            "nests deeper",
        ),
        (
            json!({"type": "publish", "id": 5, "channel": "feed", "data": {}}).to_string(),
            "unknown_channel",
            "subscribe-only",
        ),
        (
            json!({"type": "subscribe", "id": 6, "channel": "commands"}).to_string(),
            "unknown_channel",
            "publish-only",
        ),
        (
            json!({"type": "subscribe", "id": 7, "channel": "feed", "resume": {"x": 1}})
                .to_string(),
            "bad_request",
            "partition numbers",
        ),
    ];
    for (text, code, needle) in &cases {
        client.send_text(text).await;
        let error = client.expect("error").await;
        assert_eq!(
            error["code"],
            *code,
            "{} -> {error}",
            &text[..text.len().min(60)]
        );
        assert!(
            error["message"].as_str().unwrap().contains(needle),
            "{} -> {error}",
            &text[..text.len().min(60)]
        );
    }
    // A million levels of nesting in a field the protocol ignores: skipped without recursion.
    let bomb = format!(
        "{{\"type\":\"ping\",\"id\":\"deep\",\"extra\":{}1{}}}",
        "[".repeat(900_000),
        "]".repeat(900_000)
    );
    client.send_text(&bomb).await;
    assert_eq!(client.expect("pong").await["id"], "deep");
    client.send_raw(Message::binary(vec![0u8; 100])).await;
    assert_eq!(client.expect("error").await["code"], "bad_request");
    still_fine(&mut other, &feed, 1).await;
    client.send(json!({"type": "ping", "id": "alive"})).await;
    assert_eq!(client.expect("pong").await["id"], "alive");
    let (status, _) = http_get(bridge.metrics_addr, "/healthz").await;
    assert_eq!(status, 200);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_subscribe_frames_hit_the_subscription_limit_without_harm() {
    let (bridge, feed, _) = hostile_bridge("").await;
    let mut other = bystander(&bridge).await;
    let mut flood = bridge.connect().await;
    let texts: Vec<String> = (0..10_000)
        .map(|i| {
            json!({"type": "subscribe", "id": i, "channel": "keyed", "key": format!("k{i}")})
                .to_string()
        })
        .collect();
    let sending = {
        let (mut sink, mut stream) = futures_util::StreamExt::split(flood.ws);
        let sender = tokio::spawn(async move {
            for text in texts {
                sink.send(Message::text(text)).await.unwrap();
            }
            sink
        });
        let mut subscribed = 0;
        let mut limited = 0;
        while subscribed + limited < 10_000 {
            let message =
                tokio::time::timeout(DEADLINE, futures_util::StreamExt::next(&mut stream))
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
            match frame["type"].as_str() {
                Some("subscribed") => subscribed += 1,
                Some("error") => {
                    assert!(
                        frame["message"]
                            .as_str()
                            .unwrap()
                            .contains("subscription limit"),
                        "{frame}"
                    );
                    limited += 1;
                }
                _ => {}
            }
        }
        let sink = sender.await.unwrap();
        flood.ws = sink.reunite(stream).unwrap();
        (subscribed, limited)
    };
    assert_eq!(
        sending,
        (100, 9_900),
        "max_subscriptions_per_session is 100"
    );
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_subscriptions{channel=\"keyed\"}")
            .await,
        100.0
    );
    still_fine(&mut other, &feed, 2).await;
    flood.send(json!({"type": "ping", "id": "ok"})).await;
    assert_eq!(flood.expect("pong").await["id"], "ok");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_answers_503_at_the_handshake() {
    let (bridge, _, _) = hostile_bridge(", max_connections: 3").await;
    let _held: Vec<Client> = futures_util::future::join_all((0..3).map(|_| bridge.connect())).await;
    match tokio_tungstenite::connect_async(&bridge.ws_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("too many connections"), "{body}");
        }
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_connections_rejected_total{reason=\"too_many_connections\"}")
            .await,
        1.0
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_beyond_the_rate_limit_are_refused_then_allowed_again() {
    let (bridge, _, _) = hostile_bridge(", publish_rate: {per_second: 5, burst: 5}").await;
    let mut client = bridge.connect().await;
    for i in 0..20 {
        client
            .send(json!({"type": "publish", "id": i, "channel": "commands", "data": {"i": i}}))
            .await;
    }
    let (mut acked, mut limited) = (0, 0);
    for _ in 0..20 {
        let frame = client.recv().await;
        match (frame["type"].as_str(), frame["code"].as_str()) {
            (Some("ack"), _) => acked += 1,
            (Some("error"), Some("rate_limited")) => limited += 1,
            other => panic!("{other:?}: {frame}"),
        }
    }
    assert!(
        (5..=7).contains(&acked) && acked + limited == 20,
        "acked {acked}, limited {limited}"
    );
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_publishes_total{channel=\"commands\",result=\"rate_limited\"}")
            .await,
        limited as f64
    );
    // The bucket refills (a token every 200 ms): publishing works again. Asked until the answer
    // is an ack; anything else than `rate_limited` meanwhile fails the test.
    let later = common::wait_for("a publish accepted again", DEADLINE, async || {
        client
            .send(json!({"type": "publish", "id": "later", "channel": "commands", "data": {}}))
            .await;
        let frame = client.recv().await;
        match frame["code"].as_str() {
            Some("rate_limited") => Err(frame),
            _ => Ok(frame),
        }
    })
    .await;
    assert_eq!(later["type"], "ack", "{later}");
    assert_eq!(later["id"], "later");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_and_dead_peers_are_closed() {
    let (bridge, _, _) =
        hostile_bridge(", handshake_timeout_ms: 300, ping_interval_ms: 200, idle_timeout_ms: 700")
            .await;
    // A TCP connection that never sends its request is dropped after the handshake timeout.
    let mut silent = tokio::net::TcpStream::connect(bridge.ws_addr)
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(DEADLINE, silent.read(&mut buffer))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A peer that stops answering pings (never reads, so its library never pongs) is closed;
    // one that keeps reading (and so answers pings) stays, well past the idle timeout.
    let mut dead = bridge.connect().await;
    let mut alive = bridge.connect().await;
    let keep_alive = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_millis(2000);
        while Instant::now() < until {
            alive.send(json!({"type": "ping", "id": 1})).await;
            assert_eq!(alive.expect("pong").await["id"], 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    bridge
        .wait_metric(
            "kafka_ws_bridge_sessions_closed_total{reason=\"idle_timeout\"}",
            1.0,
        )
        .await;
    keep_alive
        .await
        .expect("the reading session stayed connected");
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_sessions_closed_total{reason=\"idle_timeout\"}")
            .await,
        1.0
    );
    // The dead peer sees the close (1000) or, when its library first tries to answer the pings
    // it never read, just the end of the connection.
    let code = dead.closed_code().await;
    assert!(matches!(code, Some(1000) | None), "{code:?}");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_certificate_generated_for_the_test() {
    let dir = common::TempDir::new("tls");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path.join("tls.crt"), certified.cert.pem()).unwrap();
    std::fs::write(
        dir.path.join("tls.key"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nserver: {{tls: {{cert_file: '{}', key_file: '{}'}}}}\n",
        dir.path.join("tls.crt").display(),
        dir.path.join("tls.key").display()
    ))
    .await;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(bridge.ws_addr)
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let url = format!("wss://localhost:{}/ws", bridge.ws_addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("websocket over TLS");
    assert_eq!(next_frame(&mut ws).await["type"], "welcome");
    ws.send(Message::text(
        json!({"type": "ping", "id": "tls"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_frame(&mut ws).await["id"], "tls");
    // Plain text to the TLS port gets nowhere.
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{}/ws", bridge.ws_addr))
            .await
            .is_err()
    );
    bridge.stop().await;
}

/// The next message of a WebSocket that `Client` cannot hold (one over a TLS stream), as JSON.
async fn next_frame<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let message = tokio::time::timeout(DEADLINE, futures_util::StreamExt::next(ws))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    serde_json::from_str(message.to_text().unwrap()).unwrap()
}
