//! Integration-test harness: a real Kafka broker (`KAFKA_BOOTSTRAP`, started by
//! `scripts/test.sh`), topics with random names, the bridge running in-process on port 0, and
//! WebSocket clients speaking the real protocol. Waits are on conditions with deadlines. The
//! Schema Registry side (a real registry, Confluent's serializers) is in [`registry`], the
//! Keycloak side (a real Keycloak, its admin API and token endpoint) in [`keycloak`].
#![allow(dead_code)]

pub mod keycloak;
pub mod registry;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use kafka_ws_bridge::app::{self, Bridge, Listeners};
use kafka_ws_bridge::config;
use rand::Rng;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A runtime of two threads of its own for a test's many clients, as browsers have their own
/// machines: sharing the bridge's two workers, one client's turn could wait for the bridge's
/// whole fan-out and look stalled to it. Shut it down with `shutdown_background`.
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The sum of a scrape's samples that `sample` selects, as a PromQL selector would:
/// `name{a="x"}` matches every series of `name` whose labels include `a="x"` (in any order,
/// whatever other labels it has); a bare name matches all its series. 0 when none.
pub fn metric_sum(scrape: &str, sample: &str) -> f64 {
    let (name, wanted) = match sample.split_once('{') {
        Some((name, labels)) => (name, labels.trim_end_matches('}')),
        None => (sample, ""),
    };
    let wanted: Vec<&str> = wanted.split(',').filter(|l| !l.is_empty()).collect();
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels: Vec<&str> = labels.split(',').collect();
            (series_name == name && wanted.iter().all(|w| labels.contains(w)))
                .then(|| value.trim().parse::<f64>().expect("metric value"))
        })
        .sum()
}

/// Default deadline for anything a test waits on.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often [`wait_for`] and [`wait_until`] look again.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `probe` every [`POLL`] until it answers `Ok`, and returns that value; fails once
/// `within` has passed, naming `what` was awaited and the probe's last `Err` (what it saw
/// instead). This is how tests wait: on a condition with a deadline, never a fixed sleep.
pub async fn wait_for<T, E: std::fmt::Display>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_for`] a condition without anything to report on failure but `what`.
pub async fn wait_until(what: &str, within: Duration, mut condition: impl AsyncFnMut() -> bool) {
    wait_for(what, within, async || {
        if condition().await {
            Ok(())
        } else {
            Err("not yet")
        }
    })
    .await
}

/// The broker under test. Integration tests never skip: without a broker they fail and say
/// how to get one.
pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "KAFKA_BOOTSTRAP is not set: the integration tests need a real Kafka broker.\n\
             Run `scripts/test.sh` (fetches and starts a local Apache Kafka), or start any\n\
             Kafka and run `KAFKA_BOOTSTRAP=host:port cargo test`."
        )
    })
}

/// With `RUST_LOG` set, the in-process bridges log to the test's captured output (shown for
/// failing tests, or all with `--nocapture`).
fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// The non-negative integer after `field` (e.g. `"offset":`) in a frame's text, read without
/// parsing the frame: tests that read millions of frames must not be the bottleneck.
pub fn frame_number(text: &str, field: &str) -> Option<i64> {
    let at = text.find(field)? + field.len();
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

pub fn random_suffix() -> String {
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

/// Creates a topic with a random name and waits until it is usable.
pub async fn create_topic(prefix: &str, partitions: i32) -> String {
    create_topic_with(prefix, partitions, &[]).await
}

/// Creates a topic with topic-level settings (`retention.ms`, …).
pub async fn create_topic_with(prefix: &str, partitions: i32, settings: &[(&str, &str)]) -> String {
    create_topic_at(&bootstrap(), prefix, partitions, settings).await
}

/// Creates a topic on a given cluster.
pub async fn create_topic_at(
    bootstrap: &str,
    prefix: &str,
    partitions: i32,
    settings: &[(&str, &str)],
) -> String {
    let name = format!("{prefix}-{}", random_suffix());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    for (key, value) in settings {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&[topic], &options)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the broker at {bootstrap}: {e}"));
    for result in results {
        result.unwrap_or_else(|(topic, e)| panic!("creating topic {topic}: {e}"));
    }
    wait_for(
        &format!("topic {name} in the metadata"),
        DEADLINE,
        async || {
            let metadata = admin
                .inner()
                .fetch_metadata(Some(&name), Duration::from_secs(5))
                .expect("metadata");
            let topic = metadata.topics().iter().find(|t| t.name() == name);
            match topic {
                Some(t) if t.error().is_none() && t.partitions().len() == partitions as usize => {
                    Ok(())
                }
                Some(t) => Err(format!(
                    "{} partitions, error {:?}",
                    t.partitions().len(),
                    t.error()
                )),
                None => Err("no such topic".to_owned()),
            }
        },
    )
    .await;
    name
}

/// A plain librdkafka producer, as a backend service would use.
pub struct TestProducer(FutureProducer, String);

impl TestProducer {
    pub fn new() -> Self {
        Self::at(&bootstrap())
    }

    pub fn at(bootstrap: &str) -> Self {
        TestProducer(
            ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("linger.ms", "1")
                .create()
                .expect("producer"),
            bootstrap.to_owned(),
        )
    }

    /// Produces many records without waiting for each, in large batches; returns when all are
    /// acked.
    pub async fn send_many(&self, topic: &str, values: impl IntoIterator<Item = Vec<u8>>) {
        let batching: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.1)
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .create()
            .expect("producer");
        let mut pending = futures_util::stream::FuturesUnordered::new();
        for value in values {
            let producer = batching.clone();
            let topic = topic.to_owned();
            pending.push(async move {
                producer
                    .send(
                        FutureRecord::<str, [u8]>::to(&topic).payload(&value),
                        Duration::from_secs(30),
                    )
                    .await
                    .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
            });
            if pending.len() >= 20_000 {
                pending.next().await;
            }
        }
        while pending.next().await.is_some() {}
    }

    /// Produces one record with an explicit timestamp (ms); returns its offset.
    #[allow(dead_code)]
    pub async fn send_at(
        &self,
        topic: &str,
        partition: i32,
        key: &str,
        value: &[u8],
        timestamp: i64,
    ) -> i64 {
        let record = FutureRecord::<str, [u8]>::to(topic)
            .partition(partition)
            .key(key)
            .payload(value)
            .timestamp(timestamp);
        let delivery = self
            .0
            .send(record, Duration::from_secs(10))
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
        delivery.offset
    }

    /// Produces one record; returns its partition and offset.
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&str>,
        value: &[u8],
        headers: &[(&str, &str)],
    ) -> (i32, i64) {
        let mut owned = OwnedHeaders::new();
        for (k, v) in headers {
            owned = owned.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let mut record = FutureRecord::<str, [u8]>::to(topic)
            .payload(value)
            .headers(owned);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        let delivery = self
            .0
            .send(record, Duration::from_secs(10))
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
        (delivery.partition, delivery.offset)
    }
}

/// The low and high watermarks of a partition.
pub fn watermarks_at(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("watermarks-{}", random_suffix()))
        .create()
        .expect("consumer");
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .expect("watermarks")
}

/// A record read back from Kafka.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
    pub headers: Vec<(String, String)>,
}

impl ReadRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads `count` records of a topic from the beginning (fails after the deadline).
pub async fn read_topic(topic: &str, count: usize) -> Vec<ReadRecord> {
    read_topic_at(&bootstrap(), topic, count).await
}

/// Reads `count` records of a topic on a given cluster.
pub async fn read_topic_at(bootstrap: &str, topic: &str, count: usize) -> Vec<ReadRecord> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{}", random_suffix()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut records = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while records.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "read {} of {count} records from {topic} before the deadline",
                    records.len()
                )
            }) {
            Ok(message) => message,
            // Reported, not fatal: a broker of a cluster is down (librdkafka goes on with the
            // others). The deadline bounds the wait.
            Err(e) => {
                println!("reading {topic}: {e}");
                continue;
            }
        };
        records.push(ReadRecord {
            partition: message.partition(),
            offset: message.offset(),
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            value: String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
            headers: message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    records
}

/// A bridge running in this process.
pub struct TestBridge {
    bridge: Option<Bridge>,
    pub ws_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub ws_url: String,
}

/// The config fixture `tests/fixtures/configs/<name>` with each `@KEY@` placeholder replaced
/// by its value. Fails on a missing file, on a key the file has no placeholder for, and on a
/// placeholder left without a value, so that a fixture and its test cannot drift apart
/// silently. (`@` cannot start a YAML scalar, and `${VAR}` stays for the bridge's own
/// environment expansion.)
pub fn fixture(name: &str, values: &[(&str, &str)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/configs")
        .join(name);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("config fixture {}: {e}", path.display()));
    let placeholders: std::collections::BTreeSet<&str> = text
        .match_indices('@')
        .filter_map(|(at, _)| {
            let rest = &text[at + 1..];
            let key = &rest[..rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len())];
            (!key.is_empty() && rest[key.len()..].starts_with('@')).then_some(key)
        })
        .collect();
    let given: std::collections::BTreeSet<&str> = values.iter().map(|(key, _)| *key).collect();
    assert_eq!(
        placeholders, given,
        "config fixture {name}: its placeholders (left) and the values given (right) differ"
    );
    for (key, value) in values {
        text = text.replace(&format!("@{key}@"), value);
    }
    text
}

/// The config every test bridge starts from; `body` adds auth, server, channels, inbound.
pub fn config_text(body: &str) -> String {
    config_text_at(&bootstrap(), body)
}

/// The same, for a given cluster. With `KWB_GROUP_PROTOCOL` set (`classic` or `consumer`), the
/// bridge's consumer uses that group protocol (`scripts/test.sh` runs the outbound and state
/// tests again with `consumer`, KIP-848's).
pub fn config_text_at(bootstrap: &str, body: &str) -> String {
    let protocol = std::env::var("KWB_GROUP_PROTOCOL")
        .map(|p| format!(", group.protocol: {p}"))
        .unwrap_or_default();
    // With KWB_CONSUMER_THREADS, the consumer stage runs in that many lanes.
    let lanes = std::env::var("KWB_CONSUMER_THREADS")
        .map(|n| format!("  consumer_threads: {n}\n"))
        .unwrap_or_default();
    format!(
        "instance_id: test-{id}\n\
         kafka:\n  bootstrap_servers: '{bootstrap}'\n{lanes}  consumer_properties: {{statistics.interval.ms: 250{protocol}}}\n\
         metrics: {{listen: '127.0.0.1:0'}}\n{body}",
        id = random_suffix(),
    )
}

impl TestBridge {
    /// Starts a bridge from `body` (see [`config_text`]) and waits until it is ready.
    pub async fn start(body: &str) -> TestBridge {
        Self::start_text(&config_text(body)).await
    }

    /// Starts a bridge from a whole config text and waits until it is ready.
    pub async fn start_text(text: &str) -> TestBridge {
        let bridge = Self::launch_text(text).await;
        bridge.wait_ready().await;
        bridge
    }

    /// Starts a bridge without waiting for readiness.
    pub async fn launch_text(text: &str) -> TestBridge {
        init_logs();
        let text = text.to_owned();
        let plan = config::load_str(&text, "test.yaml", std::path::Path::new("."), |name| {
            std::env::var(name).ok()
        })
        .unwrap_or_else(|d| panic!("test config invalid: {d:#?}\n{text}"));
        let listeners = Listeners {
            ws: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            metrics: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let ws_path = plan.config.server.ws_path.clone();
        let bridge = app::start(plan, listeners).await.expect("bridge starts");
        TestBridge {
            ws_addr: bridge.ws_addr,
            metrics_addr: bridge.metrics_addr,
            ws_url: format!("ws://{}{}", bridge.ws_addr, ws_path),
            bridge: Some(bridge),
        }
    }

    pub async fn wait_ready(&self) {
        wait_ready(self.metrics_addr, String::new).await
    }

    pub async fn connect(&self) -> Client {
        Client::connect(&self.ws_url).await
    }

    /// The current value of a metric sample (`name{labels}` exactly as exposed), 0 if absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let (_, text) = http_get(self.metrics_addr, "/metrics").await;
        metric_sum(&text, sample)
    }

    /// Waits until a metric sample reaches at least `value`.
    pub async fn wait_metric(&self, sample: &str, value: f64) {
        wait_for(
            &format!("{sample} at {value}"),
            DEADLINE,
            async || match self.metric(sample).await {
                current if current >= value => Ok(()),
                current => Err(format!("{sample} {current}")),
            },
        )
        .await
    }

    pub async fn stop(mut self) {
        if let Some(bridge) = self.bridge.take() {
            bridge.shutdown().await;
        }
    }
}

/// Waits until `/readyz` on `metrics` answers 200; `context` says more on failure (a process's
/// logs).
async fn wait_ready(metrics: SocketAddr, context: impl Fn() -> String) {
    wait_for(
        "the bridge ready (/readyz 200)",
        DEADLINE,
        async || match http_get(metrics, "/readyz").await {
            (200, _) => Ok(()),
            (status, body) => Err(format!("{status} {body}{}", context())),
        },
    )
    .await
}

/// GET over a fresh connection; returns status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// Sends a raw HTTP/1.1 request (which must ask for `Connection: close`).
pub async fn http_request(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut response))
        .await
        .expect("response before the deadline")
        .expect("read response");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// What a client observes next.
#[derive(Debug)]
pub enum Event {
    Frame(Value),
    Closed(Option<CloseFrame>),
    /// Nothing within the wait.
    Quiet,
}

/// A WebSocket client speaking protocol v1.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub session: String,
    pub user: Value,
}

impl Client {
    /// Connects and reads the `welcome` frame.
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket handshake");
        Client::welcome(ws).await
    }

    pub async fn welcome(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        let mut client = Client {
            ws,
            session: String::new(),
            user: Value::Null,
        };
        let welcome = client.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        client.session = welcome["session"].as_str().expect("session id").to_owned();
        client.user = welcome["user"].clone();
        client
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(WsMessage::text(text)).await.expect("send");
    }

    pub async fn send_raw(&mut self, message: WsMessage) {
        self.ws.send(message).await.expect("send");
    }

    /// The next event within `wait`. The wait is absolute: the server's pings (answered by
    /// the client library) do not extend it.
    pub async fn next_event(&mut self, wait: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Event::Quiet,
                Ok(None) => return Event::Closed(None),
                Ok(Some(Err(_))) => return Event::Closed(None),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                WsMessage::Text(text) => {
                    return Event::Frame(
                        serde_json::from_str(text.as_str()).expect("server frames are JSON"),
                    )
                }
                WsMessage::Close(frame) => return Event::Closed(frame),
                _ => continue,
            }
        }
    }

    /// The next frame (fails on close or after the deadline).
    pub async fn recv(&mut self) -> Value {
        match self.next_event(DEADLINE).await {
            Event::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["type"], kind, "expected a {kind} frame: {frame}");
        frame
    }

    /// The next frames, one of each kind in `kinds`, in whatever order they come (an ack and
    /// the echo of the same publish race: the delivery report and the consumer's fetch are
    /// independent). Returned in the order of `kinds`.
    pub async fn expect_each(&mut self, kinds: &[&str]) -> Vec<Value> {
        let mut found: Vec<Option<Value>> = vec![None; kinds.len()];
        for _ in kinds {
            let frame = self.recv().await;
            let slot = kinds
                .iter()
                .position(|kind| frame["type"] == *kind)
                .filter(|&at| found[at].is_none())
                .unwrap_or_else(|| panic!("expected one of {kinds:?}: {frame}"));
            found[slot] = Some(frame);
        }
        found.into_iter().map(Option::unwrap).collect()
    }

    /// Subscribes and waits for `subscribed`.
    pub async fn subscribe(&mut self, channel: &str, key: Option<&str>) -> Value {
        let mut frame = serde_json::json!({"type": "subscribe", "id": format!("sub-{channel}"), "channel": channel});
        if let Some(key) = key {
            frame["key"] = key.into();
        }
        self.send(frame).await;
        self.expect("subscribed").await
    }

    /// Sends a ping and returns every frame received before its pong: proves that nothing
    /// queued for this session before the ping is still hidden.
    pub async fn drain_until_pong(&mut self) -> Vec<Value> {
        let id = format!("ping-{}", random_suffix());
        self.send(serde_json::json!({"type": "ping", "id": id}))
            .await;
        let mut frames = Vec::new();
        loop {
            let frame = self.recv().await;
            if frame["type"] == "pong" && frame["id"] == id.as_str() {
                return frames;
            }
            frames.push(frame);
        }
    }

    /// Waits for the connection to close and returns the close code.
    pub async fn closed_code(&mut self) -> Option<u16> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self
                .next_event(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Event::Closed(frame) => {
                    // Answer the close (tungstenite queued the reply), as a browser does.
                    let _ = tokio::time::timeout(DEADLINE, self.ws.flush()).await;
                    return frame.map(|f| u16::from(f.code));
                }
                Event::Frame(_) => continue,
                Event::Quiet => panic!("connection still open after the deadline"),
            }
        }
    }
}

/// The bridge binary running as its own process (for RSS, signals, exit codes and its log
/// output). The one harness for the real binary: tests do not spawn it themselves.
pub struct BridgeProcess {
    child: std::process::Child,
    pub ws_url: String,
    pub ws_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// The `bridge started` log line.
    pub started: Value,
    /// Where the `bridge started` line is in [`BridgeProcess::log_lines`].
    pub started_line: usize,
    /// Every line the process wrote to stderr (its JSON logs), as they come.
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: TempDir,
}

impl BridgeProcess {
    /// Writes `text` to a config file and runs `kafka-ws-bridge run` on it with JSON logs;
    /// returns once it has started listening.
    pub fn spawn(text: &str) -> BridgeProcess {
        Self::spawn_with_env(text, &[])
    }

    /// The same, with these environment variables set (for `${VAR}` in the config).
    pub fn spawn_with_env(text: &str, env: &[(&str, &str)]) -> BridgeProcess {
        use std::io::BufRead;
        let dir = TempDir::new("bridge");
        let config = dir.path.join("bridge.yaml");
        std::fs::write(&config, text).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-ws-bridge"))
            .args(["run", "--log-format", "json", "--config"])
            .arg(&config)
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the bridge");
        let stderr = child.stderr.take().unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let started = line.contains("\"bridge started\"").then(|| line.clone());
                let at = {
                    let mut lines = sink.lock().unwrap();
                    lines.push(line);
                    lines.len() - 1
                };
                if let Some(line) = started {
                    let _ = started_tx.send((at, line));
                }
            }
        });
        let (started_line, started) = started_rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("bridge did not start: {:?}", logs.lock().unwrap()));
        let started: Value = serde_json::from_str(&started).unwrap();
        let ws_url = started["ws"].as_str().unwrap().to_owned();
        let authority = |url: &str| {
            url.split("://")
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        BridgeProcess {
            ws_addr: authority(&ws_url),
            metrics_addr: authority(started["metrics"].as_str().unwrap()),
            ws_url,
            started,
            started_line,
            child,
            logs,
            _dir: dir,
        }
    }

    pub async fn wait_ready(&self) {
        wait_ready(self.metrics_addr, || format!("\nlogs:\n{}", self.logs())).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
    }

    /// How the process ended, if it has.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the process to exit; its exit code (None: killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "bridge still running after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The lines written to stderr so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Line `*cursor` of stderr, once it has been written; moves the cursor past it.
    pub async fn next_log_line(&self, cursor: &mut usize) -> String {
        let at = *cursor;
        let line = wait_for(&format!("log line {at}"), DEADLINE, async || {
            let lines = self.logs.lock().unwrap();
            lines
                .get(at)
                .cloned()
                .ok_or_else(|| format!("{} lines: {lines:?}", lines.len()))
        })
        .await;
        *cursor += 1;
        line
    }

    /// Stops the process as an orchestrator does (SIGTERM) and waits for its exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        self.signal("TERM");
        blocking(|| self.wait_exit(timeout))
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir {
    pub path: std::path::PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("kwb-{prefix}-{}", random_suffix()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A broker of a test's own, which the test may kill and restart (same data, same port): Apache
/// Kafka (one node, through `scripts/kafka/broker.sh`), or Tansu when `KWB_BROKER=tansu` (as
/// `scripts/test.sh` exports it when it chose Tansu). Kafka's start blocks for seconds: use it in
/// multi-threaded tests, where the blocking waits leave the runtime's other workers running.
pub struct OwnBroker {
    kind: OwnBrokerKind,
    /// Whether a broker process runs now (started and neither killed nor stopped since).
    running: bool,
    /// Data, log, pid: kept across restarts, removed on drop.
    dir: TempDir,
    pub port: u16,
}

enum OwnBrokerKind {
    /// Arguments of `scripts/kafka/broker.sh start` after the owner: options, then `KEY=VALUE`
    /// lines added to its server.properties. The script runs the broker detached and keeps its
    /// pid in `dir`.
    Kafka { args: Vec<String> },
    /// Tansu's `--storage-engine` URL, and the process while it runs.
    Tansu {
        storage: String,
        child: Option<std::process::Child>,
    },
}

impl OwnBroker {
    pub fn start() -> OwnBroker {
        Self::start_with(&[], "sqlite://tansu.db")
    }

    /// A broker that applies topic retention (`cleanup.policy=delete`, `retention.ms`) within
    /// about a second instead of minutes: on Kafka a retention check every second from the start
    /// (it deletes whole segments only: give the topic a `segment.ms` so old records end in a
    /// closed segment); on Tansu a maintenance pass every second (each one scans the whole
    /// database, too heavy for the shared broker).
    pub fn start_with_fast_retention() -> OwnBroker {
        Self::start_with(
            &[
                ("log.retention.check.interval.ms", "1000"),
                ("log.initial.task.delay.ms", "0"),
            ],
            "sqlite://tansu.db?maintenance_interval=1s",
        )
    }

    /// Kafka with extra server properties, or Tansu with this storage URL.
    fn start_with(kafka_properties: &[(&str, &str)], tansu_storage: &str) -> OwnBroker {
        let kind = if std::env::var("KWB_BROKER").as_deref() == Ok("tansu") {
            OwnBrokerKind::Tansu {
                storage: tansu_storage.to_owned(),
                child: None,
            }
        } else {
            OwnBrokerKind::Kafka {
                args: kafka_properties
                    .iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect(),
            }
        };
        Self::start_kind(free_port(), kind, TempDir::new("own-broker"))
    }

    /// Apache Kafka on `port` started with these arguments of `scripts/kafka/broker.sh start`
    /// (options such as `--add-scram`, then `KEY=VALUE` properties), its data in `dir`.
    pub fn start_kafka(port: u16, args: Vec<String>, dir: TempDir) -> OwnBroker {
        Self::start_kind(port, OwnBrokerKind::Kafka { args }, dir)
    }

    fn start_kind(port: u16, kind: OwnBrokerKind, dir: TempDir) -> OwnBroker {
        let mut broker = OwnBroker {
            kind,
            running: false,
            dir,
            port,
        };
        broker.restart();
        broker
    }

    /// The directory holding its data and log (`broker.log`).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir.path
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port with the same data; returns once it serves requests
    /// (Kafka: answers a metadata request; Tansu: opens its port).
    pub fn restart(&mut self) {
        assert!(!self.running, "the broker runs already");
        match &mut self.kind {
            OwnBrokerKind::Kafka { args: extra } => {
                let dir = self.dir.path.to_str().unwrap().to_owned();
                let port = self.port.to_string();
                let owner = std::process::id().to_string();
                let mut args = vec!["start", &dir, &port, "--owner", &owner];
                args.extend(extra.iter().map(String::as_str));
                kafka_script(&args);
            }
            OwnBrokerKind::Tansu { storage, child } => {
                *child = Some(start_tansu(&self.dir.path, self.port, storage));
            }
        }
        self.running = true;
    }

    /// Kills the broker process outright (SIGKILL); returns once it is gone.
    pub fn kill(&mut self) {
        match &mut self.kind {
            OwnBrokerKind::Kafka { .. } if self.running => {
                kafka_script(&["kill", self.dir.path.to_str().unwrap()]);
            }
            OwnBrokerKind::Kafka { .. } => {}
            OwnBrokerKind::Tansu { child, .. } => {
                if let Some(mut child) = child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        self.running = false;
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if matches!(self.kind, OwnBrokerKind::Kafka { .. }) && self.running {
            // A clean stop (SIGTERM; Kafka takes well under a second) before the data goes.
            let dir = self.dir.path.to_str().unwrap().to_owned();
            blocking(|| {
                let _ = std::process::Command::new(kafka_script_path())
                    .args(["stop", &dir])
                    .stdin(std::process::Stdio::null())
                    .output();
            });
            self.running = false;
        } else {
            self.kill();
        }
    }
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn kafka_script_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka/broker.sh")
}

/// Runs `scripts/kafka/broker.sh ARGS`; panics with its output (which ends with the broker's
/// log when a start failed) unless it succeeds. Returns its standard output.
fn kafka_script(args: &[&str]) -> Vec<u8> {
    let output = blocking(|| {
        std::process::Command::new(kafka_script_path())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run scripts/kafka/broker.sh")
    });
    assert!(
        output.status.success(),
        "scripts/kafka/broker.sh {} failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    output.stdout
}

/// Runs a blocking wait without stalling the tokio worker it is called on (when there is one).
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn tansu_binary() -> std::path::PathBuf {
    let home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo")
        });
    let installed = home.join("bin/tansu");
    if installed.exists() {
        return installed;
    }
    let on_path = std::process::Command::new("sh")
        .args(["-c", "command -v tansu"])
        .output()
        .unwrap();
    assert!(
        on_path.status.success(),
        "with KWB_BROKER=tansu this test runs a Tansu broker of its own and needs the `tansu` binary: run scripts/test.sh (installs it) or cargo install tansu --locked --features libsql"
    );
    std::path::PathBuf::from(String::from_utf8(on_path.stdout).unwrap().trim())
}

/// Tansu in `dir` (its sqlite path is relative to the working directory), once its port is open.
fn start_tansu(dir: &std::path::Path, port: u16, storage: &str) -> std::process::Child {
    let url = format!("tcp://127.0.0.1:{port}");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("broker.log"))
        .unwrap();
    let child = std::process::Command::new(tansu_binary())
        .current_dir(dir)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", storage])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start tansu");
    let deadline = Instant::now() + DEADLINE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not open its port");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Whether this run's brokers are Apache Kafka. Tests that need what only Kafka offers (a
/// cluster of several brokers, SASL_SSL listeners) say they were skipped and return when the
/// run fell back to Tansu (`KWB_BROKER=tansu`, which scripts/test.sh sets when Java 17 is
/// missing).
pub fn apache_kafka(test: &str) -> bool {
    if std::env::var("KWB_BROKER").as_deref() == Ok("tansu") {
        println!("SKIPPED {test}: it needs Apache Kafka brokers and this run uses Tansu (KWB_BROKER=tansu)");
        return false;
    }
    true
}

/// A cluster of Apache Kafka brokers of a test's own (`scripts/kafka/broker.sh cluster-start`):
/// each node a broker and a voter of the controller quorum, new topics replicated to every
/// node with 2 replicas in sync at least. Nodes can be killed, stopped and started again (same
/// ports, same data) one at a time; all are killed on drop (the data goes with them). Starts
/// block for seconds: use it in multi-threaded tests.
pub struct Cluster {
    /// node1..nodeN: data, logs, pids.
    dir: TempDir,
    pub bootstrap: String,
    /// Whether node K (index K-1) runs.
    running: Vec<bool>,
}

impl Cluster {
    /// Starts `nodes` brokers; returns once every one is registered. Extra server properties
    /// go to every node.
    pub fn start(nodes: usize, properties: &[(&str, &str)]) -> Cluster {
        let dir = TempDir::new("cluster");
        let path = dir.path.to_str().unwrap().to_owned();
        let (count, owner) = (nodes.to_string(), std::process::id().to_string());
        let mut args = vec!["cluster-start", &path, &count, "--owner", &owner];
        let properties: Vec<String> = properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
        args.extend(properties.iter().map(String::as_str));
        let output = kafka_script(&args);
        let bootstrap = String::from_utf8(output).unwrap().trim().to_owned();
        assert_eq!(
            bootstrap.split(',').count(),
            nodes,
            "bootstrap list {bootstrap:?}"
        );
        Cluster {
            dir,
            bootstrap,
            running: vec![true; nodes],
        }
    }

    fn node_dir(&self, node: i32) -> String {
        format!("{}/node{node}", self.dir.path.display())
    }

    /// Kills node `node` (1-based) outright (SIGKILL); returns once the process is gone.
    pub fn kill(&mut self, node: i32) {
        kafka_script(&["kill", &self.node_dir(node)]);
        self.running[node as usize - 1] = false;
    }

    /// Stops node `node` cleanly (SIGTERM: Kafka's controlled shutdown moves its leaderships
    /// first).
    pub fn stop(&mut self, node: i32) {
        kafka_script(&["stop", &self.node_dir(node)]);
        self.running[node as usize - 1] = false;
    }

    /// Starts node `node` again; returns once the cluster lists every broker again.
    pub fn restart(&mut self, node: i32) {
        let (dir, owner) = (
            self.dir.path.to_str().unwrap().to_owned(),
            std::process::id().to_string(),
        );
        kafka_script(&["node-start", &dir, &node.to_string(), "--owner", &owner]);
        self.running[node as usize - 1] = true;
    }

    /// Every topic's partitions (internal ones included) as Kafka's metadata lists them.
    pub fn partitions(&self) -> Vec<PartitionInfo> {
        let client: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("metadata client");
        let metadata = client
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("cluster metadata");
        metadata
            .topics()
            .iter()
            .flat_map(|t| {
                t.partitions().iter().map(|p| PartitionInfo {
                    topic: t.name().to_owned(),
                    partition: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                })
            })
            .collect()
    }

    /// Waits until every partition of every topic has all its replicas in sync (a restarted
    /// node has caught up). Returns how long that took.
    pub async fn wait_in_sync(&self) -> Duration {
        let started = Instant::now();
        wait_for(
            "every replica in sync",
            Duration::from_secs(60),
            async || {
                let behind: Vec<String> = blocking(|| self.partitions())
                    .iter()
                    .filter(|p| p.leader < 0 || p.isr.len() < p.replicas.len())
                    .map(|p| format!("{p:?}"))
                    .collect();
                if behind.is_empty() {
                    Ok(())
                } else {
                    Err(format!("behind: {behind:?}"))
                }
            },
        )
        .await;
        started.elapsed()
    }

    /// Creates a topic with one partition per entry of `leaders`, each replicated to every
    /// node with the given node as its preferred (first) replica, and waits until each
    /// partition is led by it.
    pub async fn create_topic(
        &self,
        prefix: &str,
        leaders: &[i32],
        settings: &[(&str, &str)],
    ) -> String {
        let name = format!("{prefix}-{}", random_suffix());
        let nodes = self.running.len() as i32;
        let assignment: Vec<Vec<i32>> = leaders
            .iter()
            .map(|leader| {
                std::iter::once(*leader)
                    .chain((1..=nodes).filter(|n| n != leader))
                    .collect()
            })
            .collect();
        let replicas: Vec<&[i32]> = assignment.iter().map(Vec::as_slice).collect();
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("admin client");
        let mut topic = NewTopic::new(
            &name,
            leaders.len() as i32,
            TopicReplication::Variable(&replicas),
        );
        for (key, value) in settings {
            topic = topic.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin
            .create_topics(&[topic], &options)
            .await
            .expect("create topic")
        {
            result.unwrap_or_else(|(topic, e)| panic!("creating topic {topic}: {e}"));
        }
        let expected: Vec<(i32, i32)> = (0..).zip(leaders.iter().copied()).collect();
        wait_for(
            &format!("topic {name} led by {expected:?}"),
            DEADLINE,
            async || {
                let mut led: Vec<(i32, i32)> = blocking(|| self.partitions())
                    .into_iter()
                    .filter(|p| p.topic == name)
                    .map(|p| (p.partition, p.leader))
                    .collect();
                led.sort();
                if led == expected {
                    Ok(())
                } else {
                    Err(format!("leaders {led:?}"))
                }
            },
        )
        .await;
        name
    }

    /// The leader of each partition of `topic`, by partition.
    pub fn leaders(&self, topic: &str) -> Vec<i32> {
        let mut led: Vec<(i32, i32)> = self
            .partitions()
            .into_iter()
            .filter(|p| p.topic == topic)
            .map(|p| (p.partition, p.leader))
            .collect();
        led.sort();
        led.into_iter().map(|(_, leader)| leader).collect()
    }
}

/// A partition as Kafka's metadata lists it.
#[derive(Debug)]
pub struct PartitionInfo {
    pub topic: String,
    pub partition: i32,
    /// The leader's node id, -1 when it has none.
    pub leader: i32,
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Killed, not stopped: the data goes anyway, and a clean stop of the last nodes waits
        // for a quorum that is leaving too (seconds).
        for (i, running) in self.running.clone().into_iter().enumerate() {
            if running {
                let dir = self.node_dir(i as i32 + 1);
                blocking(|| {
                    let _ = std::process::Command::new(kafka_script_path())
                        .args(["kill", &dir])
                        .stdin(std::process::Stdio::null())
                        .output();
                });
            }
        }
    }
}
