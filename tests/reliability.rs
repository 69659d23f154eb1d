//! Reliability against real processes: slow clients under load (with the bridge process's RSS
//! bounded), a broker killed and restarted mid-traffic, graceful shutdown with publishes in
//! flight, and a second signal.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    create_topic, create_topic_at, http_get, read_topic, read_topic_at, BridgeProcess, Client,
    Event, OwnBroker, TestBridge, TestProducer, DEADLINE,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

/// The bridge process must stay under this while 100 sessions read 100,000 records and one
/// session never reads (debug build; measured 22 MB at start, 36 MB peak — see docs/operations.md).
const RSS_BOUND_BYTES: u64 = 96 * 1024 * 1024;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client that never reads: its socket's receive buffer is small and nobody polls it.
async fn stalled(url: &str, addr: std::net::SocketAddr, subscribe: Value) -> Socket {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    ws.send(Message::text(subscribe.to_string())).await.unwrap();
    ws
}

/// Reads `count` message frames cheaply (no full JSON parse) and checks offsets increase.
async fn read_messages(client: &mut Client, count: usize) -> usize {
    let mut last = HashMap::new();
    let mut seen = 0;
    // Reset on progress only: the server's pings must not keep a stalled stream alive.
    let mut deadline = tokio::time::Instant::now() + DEADLINE;
    while seen < count {
        let message = tokio::time::timeout_at(deadline, client.ws.next())
            .await
            .expect("message in time")
            .unwrap_or_else(|| panic!("connection ended after {seen} messages"))
            .unwrap_or_else(|e| panic!("connection failed after {seen} messages: {e}"));
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => panic!("closed after {seen} messages: {frame:?}"),
            _ => continue,
        };
        let text = text.as_str();
        if !text.starts_with("{\"type\":\"message\"") {
            continue;
        }
        let number = |field: &str| -> i64 { common::frame_number(text, field).unwrap() };
        let (partition, offset) = (number("\"partition\":"), number("\"offset\":"));
        if let Some(previous) = last.insert(partition, offset) {
            assert!(
                offset > previous,
                "out of order or duplicated: {previous} then {offset}"
            );
        }
        seen += 1;
        deadline = tokio::time::Instant::now() + DEADLINE;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stalled_session_among_100_readers_of_100000_records() {
    const READERS: usize = 100;
    const RECORDS: usize = 100_000;
    let topic = create_topic("firehose", 2).await;
    let process = BridgeProcess::spawn(&common::config_text(&format!(
        "server: {{listen: '127.0.0.1:0'}}\nauth: {{mode: none}}\nchannels:\n  - {{name: feed, topic: {topic}, subscribe: {{allow: anonymous}}}}\n"
    )));
    process.wait_ready().await;
    let rss_start = process.rss_bytes();
    let _stalled = stalled(
        &process.ws_url,
        process.ws_addr,
        json!({"type": "subscribe", "channel": "feed"}),
    )
    .await;
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let mut client = Client::connect(&process.ws_url).await;
        client.subscribe("feed", None).await;
        readers.push(client);
    }
    let started = Instant::now();
    // Paced so that 100 readers in this (debug-built) test process keep up on two cores: the
    // point is the stalled session, not the readers' speed (that is bench/).
    const RATE: usize = 2_500;
    let producing = {
        let topic = topic.clone();
        tokio::spawn(async move {
            let producer = TestProducer::new();
            let mut ticks = tokio::time::interval(Duration::from_millis(100));
            for chunk in 0..RECORDS / (RATE / 10) {
                ticks.tick().await;
                let first = chunk * RATE / 10;
                producer
                    .send_many(
                        &topic,
                        (first..first + RATE / 10).map(|i| format!("{{\"n\":{i}}}").into_bytes()),
                    )
                    .await;
            }
        })
    };
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (peak.clone(), done.clone(), process.pid());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    if let Some(kb) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    {
                        peak.fetch_max(kb * 1024, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let mut tasks = Vec::new();
    for mut reader in readers {
        tasks.push(tokio::spawn(async move {
            read_messages(&mut reader, RECORDS).await
        }));
    }
    for task in tasks {
        assert_eq!(
            task.await.unwrap(),
            RECORDS,
            "every reader got every record"
        );
    }
    producing.await.unwrap();
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    let closed = format!("http://{}", process.metrics_addr);
    let metric = common::metric_sum;
    let (_, scrape) = http_get(process.metrics_addr, "/metrics").await;
    println!(
        "slow clients: {READERS} readers x {RECORDS} records in {elapsed:.1?} ({:.0} deliveries/s, produce included); bridge RSS {} MB at start, {} MB peak ({closed})",
        (READERS * RECORDS) as f64 / elapsed.as_secs_f64(),
        rss_start / 1_048_576,
        peak / 1_048_576
    );
    assert_eq!(
        metric(
            &scrape,
            "kafka_ws_bridge_sessions_closed_total{reason=\"slow_client\"}"
        ),
        1.0,
        "the stalled session was closed (4001)"
    );
    assert!(
        peak < RSS_BOUND_BYTES,
        "bridge RSS peaked at {} MB",
        peak / 1_048_576
    );
}

/// Every message frame a socket has until it falls quiet.
async fn drain(ws: &mut Socket) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_millis(1500), ws.next()).await
    {
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
            if frame["type"] == "message" {
                frames.push(frame);
            }
        }
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_and_latest_per_key_keep_a_slow_session_connected() {
    let topic = create_topic("policies", 1).await;
    let bridge = TestBridge::start(&common::fixture(
        "slow_client_policies.yaml",
        &[("TOPIC", &topic)],
    ))
    .await;
    let url = bridge.ws_url.clone();
    let mut slow_oldest = stalled(
        &url,
        bridge.ws_addr,
        json!({"type": "subscribe", "channel": "oldest"}),
    )
    .await;
    let mut slow_latest = stalled(
        &url,
        bridge.ws_addr,
        json!({"type": "subscribe", "channel": "latest"}),
    )
    .await;
    let mut watcher = bridge.connect().await;
    watcher.subscribe("latest", None).await;
    // Enough to fill both stalled sockets and their queues many times over.
    let pad = "p".repeat(4000);
    let producer = TestProducer::new();
    const RECORDS: usize = 2000;
    for n in 0..RECORDS {
        let key = format!("k{}", n % 5);
        producer
            .send(
                &topic,
                None,
                Some(&key),
                json!({"n": n, "pad": pad}).to_string().as_bytes(),
                &[],
            )
            .await;
    }
    // The watcher reads only after the burst, so its own small queue may coalesce too; the
    // newest record is never the one dropped, so its arrival means every record was routed.
    loop {
        let frame = watcher.expect("message").await;
        if frame["data"]["n"] == RECORDS - 1 {
            break;
        }
    }
    bridge
        .wait_metric(
            "kafka_ws_bridge_messages_dropped_total{channel=\"oldest\",reason=\"queue_full\"}",
            1.0,
        )
        .await;
    bridge
        .wait_metric(
            "kafka_ws_bridge_messages_dropped_total{channel=\"latest\",reason=\"queue_full\"}",
            1.0,
        )
        .await;
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_sessions_closed_total{reason=\"slow_client\"}")
            .await,
        0.0
    );

    // Now both slow sessions read: they are still connected and end on the newest records.
    let oldest = drain(&mut slow_oldest).await;
    assert!(
        oldest.len() < RECORDS,
        "records were dropped: {}",
        oldest.len()
    );
    assert_eq!(
        oldest.last().unwrap()["data"]["n"],
        RECORDS - 1,
        "the newest record is never the one dropped"
    );
    let latest = drain(&mut slow_latest).await;
    let mut last_per_key = BTreeMap::new();
    for frame in &latest {
        last_per_key.insert(
            frame["key"].as_str().unwrap().to_owned(),
            frame["data"]["n"].as_u64().unwrap(),
        );
    }
    let expected: BTreeMap<String, u64> = (0..5)
        .map(|k| (format!("k{k}"), (RECORDS - 5 + k) as u64))
        .collect();
    assert_eq!(last_per_key, expected, "each key ends on its newest value");
    bridge.stop().await;
}

/// One publish; returns the answer frame.
async fn publish(writer: &mut Client, id: &str) -> Value {
    publish_within(writer, id, DEADLINE).await
}

/// One publish whose answer may take up to `wait`.
async fn publish_within(writer: &mut Client, id: &str, wait: Duration) -> Value {
    writer
        .send(json!({"type": "publish", "id": id, "channel": "feed-in", "data": {"id": id}}))
        .await;
    match writer.next_event(wait).await {
        Event::Frame(frame) => frame,
        other => panic!("expected the answer to publish {id}, got {other:?}"),
    }
}

/// Kills the broker mid-traffic and starts it again; the producer is idempotent (the default).
/// With a publish timeout longer than the outage (`outlasted`), publishes made during it wait
/// and are acked after recovery; with a short one they are answered `unavailable`, and
/// librdkafka bumps the producer epoch for the timed-out messages. Either way: the bridge stays
/// up, is not ready during the outage, loses no acknowledged publish, acks publishes again after
/// recovery, resumes delivery by itself, and a client resuming from its last offsets gets the
/// full sequence.
async fn outage_scenario(outlasted: bool) {
    let mut broker = OwnBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = create_topic_at(&bootstrap, "outage", 1, &[]).await;
    // The long timeout covers a broker restart: a JVM start, then librdkafka's reconnect backoff
    // (up to 10 s).
    let timeout_ms: u64 = if outlasted { 45_000 } else { 2_000 };
    let text = common::config_text_at(
        &bootstrap,
        &common::fixture(
            "outage.yaml",
            &[("TIMEOUT_MS", &timeout_ms.to_string()), ("TOPIC", &topic)],
        ),
    );
    let bridge = TestBridge::start_text(&text).await;
    let mut reader = bridge.connect().await;
    reader.subscribe("feed", None).await;
    let mut writer = bridge.connect().await;
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut positions: BTreeMap<String, i64> = BTreeMap::new();
    let mut received: BTreeSet<String> = BTreeSet::new();
    for n in 0..20 {
        let id = format!("before-{n}");
        assert_eq!(publish(&mut writer, &id).await["type"], "ack");
        acked.insert(id);
    }
    for _ in 0..20 {
        let frame = reader.expect("message").await;
        positions.insert(
            frame["partition"].to_string(),
            frame["offset"].as_i64().unwrap(),
        );
        received.insert(frame["data"]["id"].as_str().unwrap().to_owned());
    }

    // The broker dies; the reader's network drops too.
    broker.kill();
    drop(reader);
    let body = common::wait_for(
        "not ready during the outage",
        DEADLINE,
        async || match http_get(bridge.metrics_addr, "/readyz").await {
            (503, body) => Ok(body),
            (status, body) => Err(format!("still ready: {status} {body}")),
        },
    )
    .await;
    assert!(body.contains("\"kafka_reachable\",\"ok\":false"), "{body}");
    let mut unavailable = 0;
    if outlasted {
        // A publish during the outage waits for Kafka… A ping sent after it comes back first:
        // the session has taken the publish and handed it to the producer, unanswered. The
        // publish must stay unanswered until the broker is back (and then be acked, below):
        // the whole restart (seconds: a JVM start) is the window in which an early answer
        // would show.
        writer
            .send(json!({"type": "publish", "id": "during", "channel": "feed-in", "data": {"id": "during"}}))
            .await;
        let before_pong = writer.drain_until_pong().await;
        assert!(before_pong.is_empty(), "answered at once: {before_pong:?}");
        let during = tokio::spawn(async move {
            let wait = Duration::from_millis(timeout_ms + 5_000);
            let answer = match writer.next_event(wait).await {
                Event::Frame(frame) => frame,
                other => panic!("expected the answer to publish during, got {other:?}"),
            };
            (writer, answer)
        });
        assert!(!during.is_finished(), "not answered while Kafka is down");
        broker.restart();
        // …and is acked once it is back, within the publish timeout.
        let (returned, answer) = during.await.unwrap();
        writer = returned;
        assert_eq!(answer["type"], "ack", "{answer}");
        acked.insert("during".into());
    } else {
        for n in 0..3 {
            let asked = Instant::now();
            let answer = publish(&mut writer, &format!("during-{n}")).await;
            assert!(
                asked.elapsed() < Duration::from_secs(5),
                "answered in {:?}",
                asked.elapsed()
            );
            assert_eq!(
                (answer["type"].as_str(), answer["code"].as_str()),
                (Some("error"), Some("unavailable")),
                "{answer}"
            );
            unavailable += 1;
        }
        broker.restart();
    }
    bridge.wait_ready().await;
    let deadline = Instant::now() + DEADLINE;
    let mut after = 0;
    while after < 20 {
        let id = format!("after-{after}");
        let answer = publish(&mut writer, &id).await;
        if answer["type"] == "ack" {
            acked.insert(id);
            after += 1;
        } else {
            assert!(
                Instant::now() < deadline,
                "publishes keep failing after recovery: {answer}"
            );
        }
    }
    // The reader comes back and resumes from its last offsets: it ends with the full sequence.
    let mut reader = bridge.connect().await;
    let resume: serde_json::Map<String, Value> = positions
        .iter()
        .map(|(p, o)| (p.clone(), json!(o)))
        .collect();
    reader
        .send(json!({"type": "subscribe", "id": "r", "channel": "feed", "resume": resume}))
        .await;
    let subscribed = reader.expect("subscribed").await;
    assert_eq!(subscribed["gap"], false, "{subscribed}");
    let in_kafka = read_topic_at(&bootstrap, &topic, acked.len()).await;
    let ids_in_kafka: BTreeSet<String> = in_kafka
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.value).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        acked.is_subset(&ids_in_kafka),
        "acked but lost: {:?}",
        acked.difference(&ids_in_kafka).collect::<Vec<_>>()
    );
    while received.len() < ids_in_kafka.len() {
        match reader.next_event(DEADLINE).await {
            Event::Frame(frame) if frame["type"] == "message" => {
                assert!(
                    received.insert(frame["data"]["id"].as_str().unwrap().to_owned()),
                    "duplicate {frame}"
                );
            }
            other => panic!(
                "{other:?} with {} of {} records",
                received.len(),
                ids_in_kafka.len()
            ),
        }
    }
    assert_eq!(received, ids_in_kafka);
    println!(
        "outage (publish timeout {timeout_ms} ms): {} acked, all in Kafka; {unavailable} answered unavailable during the outage",
        acked.len()
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_holds_publishes_until_recovery_then_acks_them() {
    outage_scenario(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_answers_unavailable_within_the_publish_timeout() {
    outage_scenario(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_in_flight_publishes_closes_with_1001_and_exits_0() {
    let topic = create_topic("shutdown", 2).await;
    let mut process = BridgeProcess::spawn(&common::config_text(&format!(
        "server: {{listen: '127.0.0.1:0', shutdown_timeout_ms: 10000, publish_rate: {{per_second: 0}}}}\nauth: {{mode: none}}\ninbound:\n  - {{channel: c, topic: {topic}, allow: anonymous}}\n"
    )));
    process.wait_ready().await;
    let mut writers = Vec::new();
    for _ in 0..4 {
        writers.push(Client::connect(&process.ws_url).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Acks each writer has received so far.
    let progress: Arc<Vec<AtomicUsize>> =
        Arc::new(writers.iter().map(|_| AtomicUsize::new(0)).collect());
    let mut tasks = Vec::new();
    for (w, client) in writers.into_iter().enumerate() {
        let stop = stop.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = client.ws.split();
            let sender = tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let frame = json!({"type": "publish", "id": format!("w{w}-{n}"), "channel": "c", "data": {"n": n}});
                    if sink.send(Message::text(frame.to_string())).await.is_err() {
                        break;
                    }
                    n += 1;
                    if n % 20 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                n
            });
            let mut acked = Vec::new();
            let mut errors = 0;
            let close_code = loop {
                match tokio::time::timeout(DEADLINE, stream.next()).await.expect("closed in time") {
                    Some(Ok(Message::Text(text))) => {
                        let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                        match frame["type"].as_str() {
                            Some("ack") => {
                                acked.push(frame["id"].as_str().unwrap().to_owned());
                                progress[w].fetch_add(1, Ordering::Relaxed);
                            }
                            Some("error") => errors += 1,
                            _ => {}
                        }
                    }
                    Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break None,
                }
            };
            let sent = sender.await.unwrap_or(0);
            (acked, errors, close_code, sent)
        }));
    }
    // Traffic has built up once every writer has had acks; it keeps publishing, so the
    // graceful stop comes while publishes are in flight.
    common::wait_for("acks on every writer", DEADLINE, async || {
        let acks: Vec<usize> = progress.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        if acks.iter().all(|&n| n >= 20) {
            Ok(())
        } else {
            Err(format!("acks per writer {acks:?}"))
        }
    })
    .await;
    let asked = Instant::now();
    process.signal("TERM");
    let code = tokio::task::spawn_blocking(move || {
        let code = process.wait_exit(Duration::from_secs(15));
        (code, process)
    });
    let mut all_acked = BTreeSet::new();
    for task in tasks {
        let (acked, errors, close_code, sent) = task.await.unwrap();
        assert_eq!(close_code, Some(1001), "sessions are closed with 1001");
        assert!(!acked.is_empty(), "publishes were flowing");
        println!(
            "shutdown: writer sent {sent}, {} acked, {errors} errors",
            acked.len()
        );
        all_acked.extend(acked);
    }
    stop.store(true, Ordering::Relaxed);
    let (code, process) = code.await.unwrap();
    assert_eq!(code, Some(0), "exit code; logs:\n{}", process.logs());
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "within shutdown_timeout_ms"
    );
    assert!(process.logs().contains("shutdown complete"));
    let records = read_topic(&topic, all_acked.len()).await;
    let in_kafka: BTreeSet<String> = records
        .iter()
        .map(|r| r.header("correlation-id").unwrap().to_owned())
        .collect();
    assert!(
        all_acked.is_subset(&in_kafka),
        "every acked publish is in Kafka"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let topic = create_topic("second-signal", 1).await;
    let mut process = BridgeProcess::spawn(&common::config_text(&format!(
        "server: {{listen: '127.0.0.1:0', shutdown_timeout_ms: 60000}}\nauth: {{mode: none}}\nchannels:\n  - {{name: c, topic: {topic}, subscribe: {{allow: anonymous}}}}\n"
    )));
    process.wait_ready().await;
    // A session that never reads keeps the graceful drain waiting for a long time.
    let _stalled = stalled(
        &process.ws_url,
        process.ws_addr,
        json!({"type": "subscribe", "channel": "c"}),
    )
    .await;
    let payload = json!({"pad": "z".repeat(16000)}).to_string().into_bytes();
    TestProducer::new()
        .send_many(&topic, (0..400).map(|_| payload.clone()))
        .await;
    process.signal("TERM");
    // The first signal starts a drain that would take up to 60 s; the second ends it now.
    common::wait_until("the log line `shutting down`", DEADLINE, async || {
        process.logs().contains("shutting down")
    })
    .await;
    let asked = Instant::now();
    process.signal("TERM");
    let code = tokio::task::spawn_blocking(move || process.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(code, Some(130));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "took {:?}",
        asked.elapsed()
    );
}

/// With the broker gone, the final offset commit cannot finish (librdkafka waits for it without
/// a time limit); the bridge still exits 0 within `shutdown_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_the_broker_gone_exits_within_the_shutdown_timeout() {
    let mut broker = OwnBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = create_topic_at(&bootstrap, "gone", 1, &[]).await;
    let mut process = BridgeProcess::spawn(&common::config_text_at(
        &bootstrap,
        &format!(
            "server: {{listen: '127.0.0.1:0', shutdown_timeout_ms: 3000}}\nauth: {{mode: none}}\nchannels:\n  - {{name: c, topic: {topic}, subscribe: {{allow: anonymous}}}}\n"
        ),
    ));
    process.wait_ready().await;
    // A record routed, so the final commit has an offset to commit.
    let mut reader = Client::connect(&process.ws_url).await;
    reader.subscribe("c", None).await;
    TestProducer::at(&bootstrap)
        .send(&topic, None, None, b"{\"n\": 1}", &[])
        .await;
    assert_eq!(reader.expect("message").await["data"]["n"], 1);
    broker.kill();
    let asked = Instant::now();
    process.signal("TERM");
    let code = tokio::task::spawn_blocking(move || process.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap();
    let took = asked.elapsed();
    assert_eq!(code, Some(0), "exit code after {took:?}");
    assert!(
        took < Duration::from_secs(6),
        "took {took:?} (shutdown_timeout 3 s)"
    );
}

/// An instance with static membership (`group.instance.id`, docs/operations.md "Restarts")
/// stopped by `signal` and started again takes its own place in its consumer group at once,
/// instead of waiting for a dead member's session to expire (10 s, the bridge's
/// `session.timeout.ms`, under the classic protocol). Under KIP-848's consumer protocol only a
/// graceful stop qualifies: the member leaves as a static member that will come back, and the
/// broker keeps its place; after SIGKILL the broker refuses the same instance id
/// (`UNRELEASED_INSTANCE_ID`, fatal to librdkafka) until the dead member's session expires
/// (`group.consumer.session.timeout.ms`, 45 s by default).
async fn static_membership_restart(protocol: &str, signal: &str) {
    if !common::apache_kafka("static membership") {
        return;
    }
    let topic = create_topic("static", 2).await;
    let id = format!("static-{}", common::random_suffix());
    let text = common::fixture(
        "static_membership.yaml",
        &[
            ("ID", &id),
            ("BOOTSTRAP", &common::bootstrap()),
            ("PROTOCOL", protocol),
            ("TOPIC", &topic),
        ],
    );
    let mut first = BridgeProcess::spawn(&text);
    first.wait_ready().await;
    first.signal(signal);
    tokio::task::block_in_place(|| first.wait_exit(DEADLINE));
    let restarted = Instant::now();
    let second = BridgeProcess::spawn(&text);
    second.wait_ready().await;
    let took = restarted.elapsed();
    println!(
        "static membership ({protocol} protocol, SIG{signal}): the restarted instance was ready {took:.1?} after its start"
    );
    assert!(
        took < Duration::from_secs(8),
        "ready {took:?} after the restart: the old member's session was waited for"
    );
    let mut client = Client::connect(&second.ws_url).await;
    client.subscribe("c", None).await;
    TestProducer::new()
        .send(&topic, Some(1), None, b"{\"n\": 1}", &[])
        .await;
    assert_eq!(client.expect("message").await["data"]["n"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_with_static_membership_gets_its_partitions_back_at_once() {
    static_membership_restart("classic", "KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_membership_with_the_consumer_protocol_resumes_at_once_after_a_graceful_stop() {
    static_membership_restart("consumer", "TERM").await;
}
