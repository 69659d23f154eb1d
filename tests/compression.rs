//! permessage-deflate (RFC 7692) against a real bridge and broker, with a client that speaks the
//! protocol by hand over a TCP stream (tungstenite, the Rust test client, has no
//! permessage-deflate): what is negotiated, compressed records that inflate to what Kafka
//! holds, compressed publishes, and hostile compressed input — a deflate bomb (1009, the
//! bridge's memory and other sessions unharmed), broken DEFLATE data (1002), and a compressed
//! frame on a session that did not negotiate compression (1002). Chromium's side is
//! tests/browser/deflate.mjs.

mod common;

use std::net::SocketAddr;

use common::{
    config_text, create_topic, read_topic, BridgeProcess, TestBridge, TestProducer, DEADLINE,
};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use rand::Rng;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the bridge answers when it accepts an offer.
const ACCEPTED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// A WebSocket client written out by hand, as RFC 6455 and RFC 7692 describe it.
struct RawClient {
    tcp: TcpStream,
    /// Bytes read and not yet parsed.
    buffer: Vec<u8>,
    /// The server's `Sec-WebSocket-Extensions`, if any.
    extensions: Option<String>,
}

/// A frame from the server, its payload inflated if it was compressed.
#[derive(Debug)]
struct ServerFrame {
    opcode: u8,
    compressed: bool,
    payload: Vec<u8>,
    /// Bytes it took on the wire.
    wire_len: usize,
}

impl RawClient {
    /// Opens a WebSocket on `path`, offering `extensions` (if any).
    async fn connect(addr: SocketAddr, path: &str, extensions: Option<&str>) -> RawClient {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let offer = extensions
            .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut buffer = Vec::new();
        let end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(DEADLINE, tcp.read(&mut chunk))
                .await
                .expect("handshake answer in time")
                .unwrap();
            assert!(n > 0, "connection closed during the handshake");
            buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buffer[..end].to_vec()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let extensions = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| value.trim().to_owned())
        });
        buffer.drain(..end);
        RawClient {
            tcp,
            buffer,
            extensions,
        }
    }

    /// Sends one frame: `first` is FIN, RSV and opcode; masked with a random key.
    async fn send_frame(&mut self, first: u8, payload: &[u8]) {
        let mask: [u8; 4] = rand::rng().random();
        let mut frame = vec![first];
        match payload.len() {
            n @ 0..=125 => frame.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        // A connection the bridge closes while this is written is fine: the close is the test.
        let _ = self.tcp.write_all(&frame).await;
    }

    /// Sends `value` as one compressed text message.
    async fn send_compressed(&mut self, value: &Value) {
        self.send_frame(0xC1, &deflate(value.to_string().as_bytes()))
            .await;
    }

    /// Sends `value` compressed or not.
    async fn send_compressed_if(&mut self, compressed: bool, value: &Value) {
        if compressed {
            self.send_compressed(value).await;
        } else {
            self.send_plain(value).await;
        }
    }

    /// Sends `value` as one uncompressed text message.
    async fn send_plain(&mut self, value: &Value) {
        self.send_frame(0x81, value.to_string().as_bytes()).await;
    }

    /// The next frame from the server (`None`: the connection ended).
    async fn frame(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = tokio::time::timeout(DEADLINE, self.tcp.read(&mut chunk))
                .await
                .expect("a frame before the deadline")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    fn parse(&mut self) -> Option<ServerFrame> {
        let b = &self.buffer;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "server frames are not masked");
        let (len, header) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if b.len() < header + len {
            return None;
        }
        assert!(b[0] & 0x80 != 0, "the bridge sends unfragmented frames");
        let compressed = b[0] & 0x40 != 0;
        let payload = b[header..header + len].to_vec();
        let frame = ServerFrame {
            opcode: b[0] & 0x0F,
            compressed,
            payload: if compressed {
                inflate(&payload)
            } else {
                payload
            },
            wire_len: header + len,
        };
        self.buffer.drain(..header + len);
        Some(frame)
    }

    /// The next text frame as JSON (pings are skipped).
    async fn json(&mut self) -> (Value, ServerFrame) {
        loop {
            let frame = self.frame().await.expect("a frame, not the end");
            match frame.opcode {
                1 => return (serde_json::from_slice(&frame.payload).unwrap(), frame),
                9 => continue,
                other => panic!("expected a text frame, got opcode {other}: {frame:?}"),
            }
        }
    }

    /// Waits for the close frame: its code and reason.
    async fn close(&mut self) -> (u16, String) {
        loop {
            let frame = self.frame().await.expect("a close frame, not just the end");
            if frame.opcode == 8 {
                assert!(!frame.compressed, "control frames are never compressed");
                let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                let reason = String::from_utf8(frame.payload[2..].to_vec()).unwrap();
                return (code, reason);
            }
        }
    }
}

/// A message compressed as a browser does: raw DEFLATE, sync flush, `00 00 ff ff` removed.
fn deflate(text: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(text.len() / 2 + 1024);
    while compress.total_in() < text.len() as u64 || !out.ends_with(&[0, 0, 0xff, 0xff]) {
        out.reserve(64 * 1024);
        let at = compress.total_in() as usize;
        compress
            .compress_vec(&text[at..], &mut out, FlushCompress::Sync)
            .unwrap();
    }
    out.truncate(out.len() - 4);
    out
}

/// A compressed server message's text.
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(16 * 1024 * 1024);
    Decompress::new(false)
        .decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .expect("the bridge's compressed frames inflate");
    out
}

/// A bridge with a broadcast feed and an inbound channel.
async fn start(server: &str) -> (TestBridge, String, String) {
    let feed = create_topic("deflate", 1).await;
    let commands = create_topic("deflate-in", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nserver: {{{server}}}\nchannels:\n  - {{name: feed, topic: {feed}, subscribe: {{allow: anonymous}}}}\ninbound:\n  - {{channel: commands, topic: {commands}, allow: anonymous}}\n"
    ))
    .await;
    (bridge, feed, commands)
}

/// A JSON record of about 1 KiB, like a typical business event.
fn record(n: usize) -> Value {
    json!({
        "n": n,
        "order": format!("ORD-{n:08}"),
        "customer": {"id": format!("C-{:06}", n * 7919 % 1_000_000), "tier": "gold", "region": "eu-west"},
        "lines": (0..8).map(|i| json!({"sku": format!("SKU-{:05}", (n + i) * 31 % 100_000), "qty": i + 1, "price": 12.5 + i as f64, "currency": "EUR", "warehouse": "AMS-2"})).collect::<Vec<_>>(),
        "status": "confirmed",
        "created_at": "2026-12-02T04:05:06.789Z",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_compressed_and_publishes_may_be_compressed() {
    let (bridge, feed, commands) = start("").await;
    let path = "/ws";
    let mut client = RawClient::connect(
        bridge.ws_addr,
        path,
        Some("permessage-deflate; client_max_window_bits"),
    )
    .await;
    assert_eq!(client.extensions.as_deref(), Some(ACCEPTED));
    let (welcome, frame) = client.json().await;
    assert_eq!(welcome["type"], "welcome");
    assert!(!frame.compressed, "a frame under min_bytes goes as it is");

    // A compressed subscribe (browsers compress every message, small ones too).
    client
        .send_compressed(&json!({"type": "subscribe", "id": "s", "channel": "feed"}))
        .await;
    assert_eq!(client.json().await.0["type"], "subscribed");

    let sent_before = bridge.metric("kafka_ws_bridge_sent_bytes_total").await;
    let producer = TestProducer::new();
    let count = 20;
    for n in 0..count {
        producer
            .send(&feed, None, None, record(n).to_string().as_bytes(), &[])
            .await;
    }
    let (mut text_bytes, mut wire_bytes) = (0, 0);
    for n in 0..count {
        let (message, frame) = client.json().await;
        assert_eq!(message["type"], "message");
        assert_eq!(
            message["data"],
            record(n),
            "record {n} inflates to what Kafka holds"
        );
        assert!(frame.compressed, "a ~1 KiB record goes compressed");
        text_bytes += frame.payload.len();
        wire_bytes += frame.wire_len;
    }
    assert!(
        wire_bytes * 2 < text_bytes,
        "~1 KiB JSON records compress at least 2× on their own: {wire_bytes} bytes on the wire for {text_bytes} of JSON"
    );
    let sent = bridge.metric("kafka_ws_bridge_sent_bytes_total").await - sent_before;
    assert!(
        sent < text_bytes as f64 / 2.0,
        "sent_bytes_total counts compressed bytes: {sent} for {text_bytes} of JSON"
    );
    println!(
        "{count} records: {text_bytes} bytes of JSON, {wire_bytes} on the wire ({:.1}×)",
        text_bytes as f64 / wire_bytes as f64
    );

    // A large compressed publish, then a plain one, then one compressed in three frames with a
    // ping between them.
    let big = json!({"type": "publish", "id": "big", "channel": "commands", "data": record(1000)});
    client.send_compressed(&big).await;
    let (ack, _) = client.json().await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["id"], "big");
    client
        .send_plain(
            &json!({"type": "publish", "id": "plain", "channel": "commands", "data": {"n": 1001}}),
        )
        .await;
    assert_eq!(client.json().await.0["id"], "plain");
    let fragmented = deflate(
        json!({"type": "publish", "id": "parts", "channel": "commands", "data": record(1002)})
            .to_string()
            .as_bytes(),
    );
    let (a, rest) = fragmented.split_at(fragmented.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    client.send_frame(0x41, a).await;
    client.send_frame(0x89, b"still there?").await;
    client.send_frame(0x00, b).await;
    client.send_frame(0x80, c).await;
    let pong = client.frame().await.unwrap();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (10, &b"still there?"[..])
    );
    let (ack, _) = client.json().await;
    assert_eq!(
        (ack["type"].as_str(), ack["id"].as_str()),
        (Some("ack"), Some("parts")),
        "{ack}"
    );
    let published: Vec<Value> = read_topic(&commands, 3)
        .await
        .iter()
        .map(|r| serde_json::from_str(&r.value).unwrap())
        .collect();
    assert_eq!(
        published,
        vec![record(1000), json!({"n": 1001}), record(1002)]
    );
    // The subscribe, the big publish and the fragmented one.
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_inflated_messages_total")
            .await,
        3.0
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_offer_or_with_compression_off_nothing_is_compressed() {
    let (bridge, feed, _) = start("compression: {enabled: false}").await;
    let mut declined = RawClient::connect(bridge.ws_addr, "/ws", Some("permessage-deflate")).await;
    assert_eq!(declined.extensions, None, "compression is off");
    declined.json().await;
    declined
        .send_plain(&json!({"type": "subscribe", "id": "s", "channel": "feed"}))
        .await;
    assert_eq!(declined.json().await.0["type"], "subscribed");
    TestProducer::new()
        .send(&feed, None, None, record(1).to_string().as_bytes(), &[])
        .await;
    let (message, frame) = declined.json().await;
    assert_eq!(message["data"], record(1));
    assert!(!frame.compressed);
    // A compressed frame where none was negotiated breaks the protocol, as before.
    declined
        .send_compressed(&json!({"type": "ping", "id": 1}))
        .await;
    let (code, reason) = declined.close().await;
    assert_eq!(code, 1002, "{reason}");
    bridge.stop().await;

    // Compression on, but the client offers nothing (or only what cannot be honoured).
    let (bridge, _, _) = start("").await;
    for offer in [None, Some("permessage-deflate; server_max_window_bits=9")] {
        let mut client = RawClient::connect(bridge.ws_addr, "/ws", offer).await;
        assert_eq!(client.extensions, None, "{offer:?}");
        client.json().await;
        client
            .send_compressed(&json!({"type": "ping", "id": 1}))
            .await;
        assert_eq!(client.close().await.0, 1002, "{offer:?}");
    }
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_compressed_data_closes_with_a_reason() {
    let (bridge, _, _) = start("").await;
    let mut client = RawClient::connect(bridge.ws_addr, "/ws", Some("permessage-deflate")).await;
    client.json().await;
    client.send_frame(0xC1, &[0xff; 40]).await;
    let (code, reason) = client.close().await;
    assert_eq!(code, 1002);
    assert!(reason.contains("invalid compressed data"), "{reason}");
    // RSV1 on a continuation frame (RFC 7692 §6.1 allows it on the first frame only).
    let mut client = RawClient::connect(bridge.ws_addr, "/ws", Some("permessage-deflate")).await;
    client.json().await;
    let compressed = deflate(b"{\"type\":\"ping\",\"id\":1}");
    client.send_frame(0x41, &compressed).await;
    client.send_frame(0xC0, &[]).await;
    let (code, reason) = client.close().await;
    assert_eq!(
        (code, reason.as_str()),
        (1002, "RSV1 set on a continuation frame")
    );
    bridge.stop().await;
}

/// The bridge as its own process, so that its memory can be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deflate_bombs_close_with_1009_and_cost_no_memory() {
    let feed = create_topic("deflate-bomb", 1).await;
    let process = BridgeProcess::spawn(&config_text(&format!(
        "auth: {{mode: none}}\nserver: {{listen: '127.0.0.1:0', max_frame_bytes: 65536}}\nchannels:\n  - {{name: feed, topic: {feed}, subscribe: {{allow: anonymous}}}}\n"
    )));
    process.wait_ready().await;
    let mut bystander = common::Client::connect(&process.ws_url).await;
    bystander.subscribe("feed", None).await;

    // 60 MiB of text compressed into less than the 64 KiB frame limit: 60 copies of 1 MiB
    // compressed (each a complete sync-flushed piece, so they can follow one another).
    let mut piece = deflate(&vec![b'A'; 1 << 20]);
    piece.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let inflated_mib = 60;
    let mut bomb = piece.repeat(inflated_mib);
    bomb.truncate(bomb.len() - 4);
    assert!(
        bomb.len() < 65536,
        "the bomb fits the frame limit: {}",
        bomb.len()
    );
    let rss_before = process.rss_bytes();
    let bombers = 20;
    let mut tasks = Vec::new();
    for _ in 0..bombers {
        let bomb = bomb.clone();
        let addr = process.ws_addr;
        tasks.push(tokio::spawn(async move {
            let mut client = RawClient::connect(addr, "/ws", Some("permessage-deflate")).await;
            client.json().await;
            client.send_frame(0xC1, &bomb).await;
            client.close().await
        }));
    }
    for task in tasks {
        let (code, reason) = task.await.unwrap();
        assert_eq!(code, 1009, "{reason}");
        assert!(
            reason.contains("more than the limit of 65536 bytes"),
            "{reason}"
        );
    }
    let grown = process.rss_bytes().saturating_sub(rss_before);
    println!(
        "{bombers} bombs of {} bytes ({} MiB inflated each): RSS grew by {} KiB",
        bomb.len(),
        inflated_mib,
        grown >> 10
    );
    assert!(
        grown < 32 << 20,
        "inflating stops at the limit: RSS grew by {} MiB",
        grown >> 20
    );
    // The others are fine.
    TestProducer::new()
        .send(&feed, None, None, b"{\"after\":\"bombs\"}", &[])
        .await;
    assert_eq!(bystander.expect("message").await["data"]["after"], "bombs");
    let (status, _) = common::http_get(process.metrics_addr, "/healthz").await;
    assert_eq!(status, 200);
    let closed = common::http_get(process.metrics_addr, "/metrics").await.1;
    assert_eq!(
        common::metric_sum(
            &closed,
            "kafka_ws_bridge_sessions_closed_total{transport=\"websocket\",reason=\"frame_too_large\"}"
        ),
        bombers as f64,
        "{}",
        closed
            .lines()
            .filter(|l| l.contains("sessions_closed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// RSS per session with compression on, measured on the bridge as its own process: sessions
/// that negotiated permessage-deflate, each subscribed and sent one compressed record, then
/// idle, hold no compression state (at most 12 KiB per idle session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_compressed_sessions_hold_no_compression_state() {
    let feed = create_topic("deflate-idle", 1).await;
    let process = BridgeProcess::spawn(&config_text(&format!(
        "auth: {{mode: none}}\nserver: {{listen: '127.0.0.1:0'}}\nchannels:\n  - {{name: feed, topic: {feed}, subscribe: {{allow: anonymous}}}}\n"
    )));
    process.wait_ready().await;
    let producer = TestProducer::new();
    let mut per_session = Vec::new();
    let mut held = Vec::new();
    for (offer, count) in [(None, 50), (None, 1000), (Some("permessage-deflate"), 1000)] {
        let before = process.rss_bytes();
        let mut clients = Vec::new();
        for _ in 0..count / 100 {
            let batch = (0..100).map(|_| async {
                let mut client = RawClient::connect(process.ws_addr, "/ws", offer).await;
                client.json().await;
                client
                    .send_compressed_if(
                        offer.is_some(),
                        &json!({"type": "subscribe", "id": "s", "channel": "feed"}),
                    )
                    .await;
                assert_eq!(client.json().await.0["type"], "subscribed");
                client
            });
            clients.extend(futures_util::future::join_all(batch).await);
        }
        let n = per_session.len();
        producer
            .send(&feed, None, None, record(n).to_string().as_bytes(), &[])
            .await;
        for client in &mut clients {
            let (message, frame) = client.json().await;
            assert_eq!(message["data"], record(n));
            assert_eq!(frame.compressed, offer.is_some());
        }
        let grown = process.rss_bytes().saturating_sub(before);
        per_session.push((offer, count, grown as f64 / count as f64 / 1024.0));
        // Kept open: the next round measures on top of these.
        held.push(clients);
    }
    println!("RSS per session (KiB): {per_session:?}");
    drop(held);
    let (_, _, plain) = per_session[1];
    let (_, _, compressed) = per_session[2];
    assert!(
        compressed <= 12.0,
        "an idle session with compression on takes {compressed:.1} KiB (plain: {plain:.1})"
    );
}
