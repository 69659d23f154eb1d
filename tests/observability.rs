//! Observability against a real broker and bridge: the scrape is valid Prometheus text (checked
//! by promtool), every metric the dashboard and the alert rules use exists, consumer lag shows a
//! backlog and returns to 0, counters move as documented, /readyz and /api/v1/status answer.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{create_topic, http_get, TestBridge, TestProducer, DEADLINE};
use serde_json::{json, Value};

/// Every `kafka_ws_bridge_*` name in a text (PromQL in JSON or YAML).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("kafka_ws_bridge_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// Series names present in a scrape.
fn scraped_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

fn promtool() -> Command {
    let found = Command::new("promtool").arg("--version").output().is_ok();
    assert!(
        found,
        "promtool not found: run scripts/test.sh (it installs the Debian package `prometheus`), or apt-get install prometheus"
    );
    Command::new("promtool")
}

async fn busy_bridge() -> (TestBridge, String, String) {
    let feed = create_topic("obs-feed", 2).await;
    let commands = create_topic("obs-commands", 1).await;
    let bridge = TestBridge::start(&common::fixture(
        "busy.yaml",
        &[("FEED", &feed), ("COMMANDS", &commands)],
    ))
    .await;
    (bridge, feed, commands)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrape_is_valid_and_has_every_metric_the_dashboard_and_alerts_use() {
    let (bridge, feed, _) = busy_bridge().await;
    let mut client = bridge.connect().await;
    client.subscribe("feed", None).await;
    client
        .send(json!({"type": "publish", "id": "p", "channel": "commands", "data": {}}))
        .await;
    client.expect("ack").await;
    TestProducer::new()
        .send(&feed, None, Some("k"), b"{}", &[])
        .await;
    client.expect("message").await;
    // Lag and broker gauges come from librdkafka statistics.
    bridge
        .wait_metric("kafka_ws_bridge_kafka_brokers_up", 1.0)
        .await;
    // The dashboard and alerts use the lag (checked below): without it the test fails anyway.
    let scrape = common::wait_for("a consumer lag sample", DEADLINE, async || {
        let (_, scrape) = http_get(bridge.metrics_addr, "/metrics").await;
        if scrape.contains("kafka_ws_bridge_consumer_lag_messages{") {
            Ok(scrape)
        } else {
            Err("no kafka_ws_bridge_consumer_lag_messages sample")
        }
    })
    .await;

    let mut check = promtool()
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let output = check.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let present = scraped_names(&scrape);
    let dashboard = std::fs::read_to_string("dashboards/kafka-ws-bridge.json").unwrap();
    let alerts = std::fs::read_to_string("dashboards/alerts.yml").unwrap();
    let used: BTreeSet<String> = metric_names(&dashboard)
        .into_iter()
        .chain(metric_names(&alerts))
        .collect();
    assert!(
        used.len() >= 15,
        "the dashboard uses {} metrics",
        used.len()
    );
    let missing: Vec<&String> = used.iter().filter(|n| !present.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "used by the dashboard/alerts but not exported: {missing:?}"
    );
    for name in &present {
        assert!(
            name.starts_with("kafka_ws_bridge_"),
            "every metric carries the prefix: {name}"
        );
    }
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_where_the_group_stopped_even_if_it_had_routed_nothing() {
    let topic = create_topic("restart", 1).await;
    let text = common::config_text(&format!(
        "auth: {{mode: none}}\nchannels:\n  - {{name: c, topic: {topic}, subscribe: {{allow: anonymous}}}}\n"
    ));
    // First run on an empty topic: a new group at `latest` that routes nothing.
    TestBridge::start_text(&text).await.stop().await;
    let producer = TestProducer::new();
    for n in 0..50 {
        producer
            .send(
                &topic,
                None,
                None,
                json!({"n": n}).to_string().as_bytes(),
                &[],
            )
            .await;
    }
    // Same instance (same group): it resumes at the committed start, not at the new end.
    let bridge = TestBridge::start_text(&text).await;
    bridge
        .wait_metric(
            &format!("kafka_ws_bridge_records_consumed_total{{topic=\"{topic}\"}}"),
            50.0,
        )
        .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_reports_the_backlog_while_paused_then_returns_to_zero() {
    const KEY: &str = "ops-key-0123456789abcdef";
    let topic = create_topic("lag", 2).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nserver: {{api_keys: [{KEY}]}}\nchannels:\n  - {{name: c, topic: {topic}, subscribe: {{allow: anonymous}}}}\n"
    ))
    .await;
    let lag = |p: i32| {
        format!("kafka_ws_bridge_consumer_lag_messages{{partition=\"{p}\",topic=\"{topic}\"}}")
    };
    let total_lag = || async { bridge.metric(&lag(0)).await + bridge.metric(&lag(1)).await };
    let post = |path: &str, key: Option<&str>| {
        let auth = key
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        format!("POST {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n")
    };
    // Pausing needs an API key.
    let (status, _) = common::http_request(bridge.metrics_addr, &post("/api/v1/pause", None)).await;
    assert_eq!(status, 401);
    let (status, _) = common::http_request(
        bridge.metrics_addr,
        &post("/api/v1/pause", Some("wrong-key-0123456789")),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) =
        common::http_request(bridge.metrics_addr, &post("/api/v1/pause", Some(KEY))).await;
    assert_eq!((status, body.as_str()), (200, "{\"paused\":true}"));

    let producer = TestProducer::new();
    for n in 0..500 {
        producer.send(&topic, Some(n % 2), None, b"{}", &[]).await;
    }
    common::wait_for(
        "a lag of 500 while paused",
        DEADLINE,
        async || match total_lag().await {
            lag if lag >= 500.0 => Ok(()),
            lag => Err(format!("lag {lag} while paused")),
        },
    )
    .await;
    assert_eq!(
        (bridge.metric(&lag(0)).await, bridge.metric(&lag(1)).await),
        (250.0, 250.0)
    );
    let consumed = format!("kafka_ws_bridge_records_consumed_total{{topic=\"{topic}\"}}");
    assert_eq!(
        bridge.metric(&consumed).await,
        0.0,
        "nothing delivered while paused"
    );
    let (_, status) = http_get(bridge.metrics_addr, "/api/v1/status").await;
    assert!(status.contains("\"paused\":true"), "{status}");

    let (status, _) =
        common::http_request(bridge.metrics_addr, &post("/api/v1/resume", Some(KEY))).await;
    assert_eq!(status, 200);
    bridge.wait_metric(&consumed, 500.0).await;
    common::wait_for(
        "no lag after resuming",
        DEADLINE,
        async || match total_lag().await {
            lag if lag <= 0.0 => Ok(()),
            lag => Err(format!("lag {lag} after catching up")),
        },
    )
    .await;
    bridge.stop().await;
}

/// Kafka's own view of a group's lag on each partition of `topic`: (high watermark − committed
/// offset), the committed offsets read with the group's id by a consumer that does not join it.
fn kafka_lag(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(|partition| {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .expect("watermarks");
            let committed = match committed
                .find_partition(topic, partition)
                .map(|e| e.offset())
            {
                Some(rdkafka::Offset::Offset(offset)) => offset,
                // Nothing committed: the whole partition is behind.
                _ => 0,
            };
            high - committed
        })
        .collect()
}

/// The lag gauge agrees with Kafka's own view of the bridge's consumer group (high watermark −
/// committed offset) once the bridge has committed what it routed: while delivery is paused
/// (both count the records produced since) and after it resumes (both 0). The bridge commits
/// every 5 s (librdkafka's `auto.commit.interval.ms`), and between commits its gauge, which
/// counts from the last record routed, is ahead of Kafka's view; its watermarks come from
/// statistics (every 250 ms in tests) and the lag monitor's query (every second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_gauge_agrees_with_kafkas_view_of_the_group() {
    const KEY: &str = "ops-key-0123456789abcdef";
    let topic = create_topic("lag-truth", 2).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nserver: {{api_keys: [{KEY}]}}\nchannels:\n  - {{name: c, topic: {topic}, subscribe: {{allow: anonymous}}}}\n"
    ))
    .await;
    let (_, status) = http_get(bridge.metrics_addr, "/api/v1/status").await;
    let group = serde_json::from_str::<Value>(&status).unwrap()["group_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gauges = || async {
        let mut lags = Vec::new();
        for p in 0..2 {
            lags.push(
                bridge
                    .metric(&format!(
                        "kafka_ws_bridge_consumer_lag_messages{{partition=\"{p}\",topic=\"{topic}\"}}"
                    ))
                    .await as i64,
            );
        }
        lags
    };
    let kafka = || {
        let (group, topic) = (group.clone(), topic.clone());
        async move {
            tokio::task::spawn_blocking(move || kafka_lag(&group, &topic, 2))
                .await
                .unwrap()
        }
    };
    // Waits until the gauge and Kafka agree on `expected`; returns how long that took.
    let agree = |expected: Vec<i64>, what: &'static str| {
        let (gauges, kafka) = (&gauges, &kafka);
        async move {
            let started = Instant::now();
            common::wait_for(what, DEADLINE, async || {
                let (ours, theirs) = (gauges().await, kafka().await);
                if ours == expected && theirs == expected {
                    Ok(())
                } else {
                    Err(format!(
                        "gauge {ours:?}, Kafka {theirs:?}, expected {expected:?}"
                    ))
                }
            })
            .await;
            started.elapsed()
        }
    };
    let post = |path: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {KEY}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    };
    let consumed = format!("kafka_ws_bridge_records_consumed_total{{topic=\"{topic}\"}}");
    let producer = TestProducer::new();

    // Records routed before the pause: once committed, nothing is behind.
    for n in 0..100 {
        producer.send(&topic, Some(n % 2), None, b"{}", &[]).await;
    }
    bridge.wait_metric(&consumed, 100.0).await;
    let caught_up = agree(vec![0, 0], "after routing 100 records").await;

    let (status, _) = common::http_request(bridge.metrics_addr, &post("/api/v1/pause")).await;
    assert_eq!(status, 200);
    for n in 0..300 {
        producer
            .send(&topic, Some(n % 3 / 2), None, b"{}", &[])
            .await;
    }
    // 200 records to partition 0, 100 to partition 1, none routed.
    let paused = agree(vec![200, 100], "while paused").await;
    assert_eq!(
        bridge.metric(&consumed).await,
        100.0,
        "nothing routed while paused"
    );

    let (status, _) = common::http_request(bridge.metrics_addr, &post("/api/v1/resume")).await;
    assert_eq!(status, 200);
    bridge.wait_metric(&consumed, 400.0).await;
    let resumed = agree(vec![0, 0], "after resuming").await;
    println!(
        "lag vs Kafka: both 0 {caught_up:.1?} after 100 records were routed; both [200, 100] {paused:.1?} after 300 records were produced while paused; both 0 {resumed:.1?} after the backlog was routed"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_as_documented() {
    let (bridge, feed, _) = busy_bridge().await;
    let delivered = "kafka_ws_bridge_messages_delivered_total{channel=\"feed\"}";
    let latency = "kafka_ws_bridge_delivery_latency_seconds_count{channel=\"feed\"}";
    let consumed = format!("kafka_ws_bridge_records_consumed_total{{topic=\"{feed}\"}}");
    let sent = "kafka_ws_bridge_sent_bytes_total";
    let before = (
        bridge.metric(delivered).await,
        bridge.metric(latency).await,
        bridge.metric(&consumed).await,
        bridge.metric(sent).await,
    );
    let mut a = bridge.connect().await;
    let mut b = bridge.connect().await;
    a.subscribe("feed", None).await;
    b.subscribe("feed", None).await;
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_subscriptions{channel=\"feed\"}")
            .await,
        2.0
    );
    assert_eq!(bridge.metric("kafka_ws_bridge_sessions_open").await, 2.0);
    TestProducer::new()
        .send(&feed, None, Some("k"), b"{\"n\":1}", &[])
        .await;
    a.expect("message").await;
    b.expect("message").await;
    // One record, two receiving sessions.
    bridge.wait_metric(latency, before.1 + 2.0).await;
    assert_eq!(bridge.metric(delivered).await, before.0 + 2.0);
    assert_eq!(bridge.metric(&consumed).await, before.2 + 1.0);
    assert!(bridge.metric(sent).await > before.3);

    // A rejected handshake: not a WebSocket request.
    let (status, _) = http_get(bridge.ws_addr, "/ws").await;
    assert_eq!(status, 400);
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_connections_rejected_total{reason=\"bad_request\"}")
            .await,
        1.0
    );
    // Client errors by code.
    a.send(json!({"type": "subscribe", "id": 1, "channel": "nope"}))
        .await;
    a.expect("error").await;
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_client_errors_total{code=\"unknown_channel\"}")
            .await,
        1.0
    );
    // A session closing: counted by reason, gauges go down.
    drop(b);
    bridge
        .wait_metric(
            "kafka_ws_bridge_sessions_closed_total{reason=\"client_closed\"}",
            1.0,
        )
        .await;
    assert_eq!(bridge.metric("kafka_ws_bridge_sessions_open").await, 1.0);
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_subscriptions{channel=\"feed\"}")
            .await,
        1.0
    );
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_build_info{version=\"0.1.0\"}")
            .await,
        1.0
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_with_one_instance_id_are_not_ready_and_say_why() {
    let topic = create_topic("twins", 2).await;
    let text = common::config_text(&format!(
        "auth: {{mode: none}}\nchannels:\n  - {{name: c, topic: {topic}, subscribe: {{allow: anonymous}}}}\n"
    ));
    let first = TestBridge::start_text(&text).await;
    // The same instance_id again: one consumer group, two members, the partitions split.
    let twin = TestBridge::launch_text(&text).await;
    let body = common::wait_for("the split noticed", DEADLINE, async || {
        match http_get(first.metrics_addr, "/readyz").await {
            (503, body) if body.contains("is a second instance running with instance_id") => {
                Ok(body)
            }
            (_, body) => Err(format!("the split went unnoticed: {body}")),
        }
    })
    .await;
    assert!(
        body.contains(&format!("{topic}: 1 of 2 partitions assigned")),
        "{body}"
    );
    twin.stop().await;
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_status_answer_with_json() {
    let (bridge, feed, commands) = busy_bridge().await;
    let (status, body) = http_get(bridge.metrics_addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}"));
    let (status, body) = http_get(bridge.metrics_addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let readiness: Value = serde_json::from_str(&body).unwrap();
    let checks: Vec<&str> = readiness["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "accepting_connections",
            "kafka_reachable",
            "partitions_assigned",
            "consumer_positioned",
            "snapshots_loaded"
        ]
    );
    assert_eq!(bridge.metric("kafka_ws_bridge_ready").await, 1.0);
    let (status, body) = http_get(bridge.metrics_addr, "/api/v1/status").await;
    assert_eq!(status, 200);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        status["channels"][0],
        json!({"name": "feed", "topic": feed, "deliver": "broadcast", "subscribers": 0})
    );
    assert_eq!(
        status["inbound"][0],
        json!({"channel": "commands", "topic": commands})
    );
    assert_eq!(status["partitions"].as_array().unwrap().len(), 2);
    assert!(status["group_id"]
        .as_str()
        .unwrap()
        .starts_with("kafka-ws-bridge.test-"));
    let (status, _) = http_get(bridge.metrics_addr, "/nope").await;
    assert_eq!(status, 404);
    bridge.stop().await;
}
