//! `auth.session_registry` against a real broker: two bridge instances in this process share
//! one compacted topic, and `max_sessions_per_user` holds across them — the newest session of
//! a user (and group) wins wherever it opened; junk in the topic changes nothing; a restarted
//! instance closes what its previous start left open; a missing topic keeps an instance unready.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{http_get, random_suffix, Client, TestBridge, TestProducer, DEADLINE};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kafka_ws_bridge::app::{self, TopicOutcome};
use kafka_ws_bridge::config::{self, Plan};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const SECRET: &str = "session-registry-secret-0123456789ab";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn token(sub: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": now_ms() / 1000 + 600}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A whole config of instance `id` sharing the registry `topic`.
fn config(id: &str, topic: &str) -> String {
    format!(
        "instance_id: {id}\nkafka:\n  bootstrap_servers: '{bootstrap}'\nmetrics: {{listen: '127.0.0.1:0'}}\n\
         auth:\n  mode: jwt\n  jwt: {{algorithms: [HS256], secret: \"{SECRET}\"}}\n  max_sessions_per_user: 1\n  \
         session_group_param: app\n  session_registry: {{topic: {topic}}}\n\
         inbound:\n  - {{channel: commands, topic: {topic}-commands}}\n",
        bootstrap = common::bootstrap(),
    )
}

fn plan(text: &str) -> Plan {
    config::load_str(text, "test.yaml", std::path::Path::new("."), |_| None)
        .unwrap_or_else(|d| panic!("{d:#?}"))
}

/// Opens a session of `user` in `app`.
async fn open(bridge: &TestBridge, user: &str, app: &str) -> Client {
    let mut request = format!("{}?app={app}", bridge.ws_url)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", token(user))).unwrap(),
    );
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("handshake");
    Client::welcome(ws).await
}

async fn alive(client: &mut Client, what: &str) {
    let id = random_suffix();
    client.send(json!({"type": "ping", "id": id})).await;
    let frames = client.drain_until_pong().await;
    assert!(
        frames.iter().all(|f| f["type"] != "session_replaced"),
        "{what}: {frames:?}"
    );
}

fn records(result: &str) -> String {
    format!("kafka_ws_bridge_session_registry_records_total{{result=\"{result}\"}}")
}

/// Waits until both instances have read at least `opened`, `closed` and `ignored` records.
async fn both_read(bridges: [&TestBridge; 2], opened: f64, closed: f64, ignored: f64) {
    for bridge in bridges {
        bridge.wait_metric(&records("opened"), opened).await;
        bridge.wait_metric(&records("closed"), closed).await;
        bridge.wait_metric(&records("ignored"), ignored).await;
    }
}

/// Reads the topic from the beginning until a record satisfies `wanted` (key, value).
async fn find_record(topic: &str, wanted: impl Fn(&str, Option<&[u8]>) -> bool) {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .set("group.id", format!("find-{}", random_suffix()))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("no such record in {topic} before the deadline"))
            .unwrap();
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        if wanted(&key, message.payload()) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_session_of_a_user_and_app_wins_across_instances() {
    let topic = format!("sessions-{}", random_suffix());
    let (id_a, id_b) = (
        format!("a-{}", random_suffix()),
        format!("b-{}", random_suffix()),
    );
    // create-topics creates the registry topic, compacted.
    let created = app::create_topics(&plan(&config(&id_a, &topic)), 1, 1)
        .await
        .unwrap();
    assert!(
        created.contains(&(topic.clone(), TopicOutcome::Created)),
        "{created:?}"
    );
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .create()
        .unwrap();
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
        .await
        .unwrap();
    let resource = described[0].as_ref().unwrap();
    assert_eq!(
        resource
            .get("cleanup.policy")
            .and_then(|e| e.value.as_deref()),
        Some("compact")
    );

    // A session a previous start of instance A left open (that process died without closing
    // it), written before A starts again.
    let producer = TestProducer::new();
    let ghost_key = r#"["ghost","teller","g1"]"#;
    producer
        .send(
            &topic,
            None,
            Some(ghost_key),
            json!({"instance": id_a, "boot": "an-earlier-start", "opened_at_ms": now_ms() - 60_000, "seq": 1})
                .to_string()
                .as_bytes(),
            &[],
        )
        .await;

    let a = TestBridge::start_text(&config(&id_a, &topic)).await;
    let b = TestBridge::start_text(&config(&id_b, &topic)).await;
    // Once A had read the topic it closed its previous start's session: a tombstone.
    find_record(&topic, |key, value| key == ghost_key && value.is_none()).await;
    let (_, readyz) = http_get(a.metrics_addr, "/readyz").await;
    assert!(
        readyz.contains("every instance's open sessions are known"),
        "{readyz}"
    );

    // alice on A, then on B in the same app: A's session is replaced (4000) within a deadline.
    let mut on_a = open(&a, "alice", "teller").await;
    let mut bob_on_a = open(&a, "bob", "teller").await;
    let started = Instant::now();
    let mut on_b = open(&b, "alice", "teller").await;
    assert_eq!(
        on_a.expect("session_replaced").await["type"],
        "session_replaced"
    );
    assert_eq!(on_a.closed_code().await, Some(4000));
    println!(
        "a session on A replaced by a newer one on B in {:?}",
        started.elapsed()
    );
    alive(&mut on_b, "the newest session").await;
    alive(&mut bob_on_a, "another user").await;
    a.wait_metric(
        "kafka_ws_bridge_sessions_closed_total{reason=\"replaced\"}",
        1.0,
    )
    .await;

    // Another app of the same user, on A: both stay. Opens so far: ghost, alice×2, bob, and
    // this one; closes: ghost's tombstone and the replaced session's.
    let mut advisor_on_a = open(&a, "alice", "advisor").await;
    both_read([&a, &b], 5.0, 2.0, 0.0).await;
    alive(&mut on_b, "teller on B").await;
    alive(&mut advisor_on_a, "advisor on A").await;

    // Junk, and records of a stranger: none closes anyone. (A record without a key cannot be
    // written: a compacted topic refuses it.)
    let future = now_ms() + 3_600_000;
    let junk: Vec<(Option<&str>, String)> = vec![
        (Some("not json"), "{}".to_owned()),
        (Some(r#"["alice","teller"]"#), "{}".to_owned()),
        (Some(r#"["alice","teller","forged"]"#), "garbage".to_owned()),
        (
            Some(r#"["alice","teller","forged"]"#),
            json!({"instance": "x", "boot": "y", "opened_at_ms": "soon", "seq": 1}).to_string(),
        ),
        // Opening an hour from now would hold alice's only teller slot for an hour.
        (
            Some(r#"["alice","teller","later"]"#),
            json!({"instance": "stranger", "boot": "y", "opened_at_ms": future, "seq": 1})
                .to_string(),
        ),
        (Some(r#"["alice","teller","big"]"#), "x".repeat(5000)),
    ];
    let ignored = junk.len() as f64;
    for (key, value) in &junk {
        producer
            .send(&topic, None, *key, value.as_bytes(), &[])
            .await;
    }
    // A well-formed record of an instance nobody knows, older than alice's session: counted,
    // and pushed out at once by the newer one.
    producer
        .send(
            &topic,
            None,
            Some(r#"["alice","teller","old"]"#),
            json!({"instance": "stranger", "boot": "y", "opened_at_ms": 1, "seq": 1})
                .to_string()
                .as_bytes(),
            &[],
        )
        .await;
    both_read([&a, &b], 6.0, 2.0, ignored).await;
    alive(&mut on_b, "teller on B after the junk").await;
    alive(&mut advisor_on_a, "advisor on A after the junk").await;
    alive(&mut bob_on_a, "bob after the junk").await;
    for bridge in [&a, &b] {
        assert_eq!(bridge.metric(&records("ignored")).await, ignored);
    }
    assert_eq!(
        b.metric("kafka_ws_bridge_sessions_closed_total{reason=\"replaced\"}")
            .await,
        0.0
    );

    // A session that ends writes a tombstone; the next one of that app, anywhere, replaces
    // nobody.
    on_b.ws.close(None).await.unwrap();
    both_read([&a, &b], 6.0, 3.0, ignored).await;
    let mut again_on_a = open(&a, "alice", "teller").await;
    both_read([&a, &b], 7.0, 3.0, ignored).await;
    alive(&mut again_on_a, "teller on A").await;
    alive(&mut advisor_on_a, "advisor on A").await;
    assert_eq!(
        a.metric("kafka_ws_bridge_session_registry_write_failures_total")
            .await,
        0.0
    );

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_registry_topic_keeps_the_instance_unready_until_created() {
    let topic = format!("sessions-missing-{}", random_suffix());
    let text = config(&format!("m-{}", random_suffix()), &topic);
    let bridge = TestBridge::launch_text(&text).await;
    common::wait_for(
        "readiness naming the missing topic",
        DEADLINE,
        async || match http_get(bridge.metrics_addr, "/readyz").await {
            (503, body)
                if body.contains(&format!(
                    "cannot read the session registry topic: topic {topic}"
                )) && body.contains("create-topics") =>
            {
                Ok(())
            }
            (status, body) => Err(format!("{status} {body}")),
        },
    )
    .await;
    app::create_topics(&plan(&text), 1, 1).await.unwrap();
    let started = Instant::now();
    bridge.wait_ready().await;
    println!("ready {:?} after the topic was created", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(30));
    bridge.stop().await;
}
