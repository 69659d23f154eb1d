//! Channel `transforms` against a real broker and a real bridge: they shape records
//! once, before any session, snapshot or history sees them.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{create_topic, Client, TestBridge, TestProducer};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "test-secret-for-hs256-0123456789abcdef";

/// A token for `sub` with extra claims, valid ten minutes.
fn token(sub: &str, extra: Value) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let mut claims = json!({"sub": sub, "exp": exp});
    claims
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn connect_as(bridge: &TestBridge, sub: &str, extra: Value) -> Client {
    Client::connect(&format!(
        "{}?access_token={}",
        bridge.ws_url,
        token(sub, extra)
    ))
    .await
}

fn jwt_auth() -> String {
    format!("auth:\n  mode: jwt\n  jwt: {{algorithms: [HS256], secret: \"{SECRET}\"}}\n")
}

const SSN: &str = "123-45-6789";
const CARD: &str = "4111111111111111";

/// A realistic order: nested fields, an array, internal fields that must not leave.
fn order(id: &str, status: &str) -> Value {
    json!({
        "orderId": id,
        "status": status,
        "internal": {"trace": "t-9", "shard": 4},
        "customer": {"id": "C-1", "ssn": SSN, "name": "Ann"},
        "card": {"number": CARD, "expiry": "12/29"},
        "lines": [{"sku": "A-1", "qty": 2, "card": CARD}, {"sku": "B-7", "qty": 1}],
        "payload": {"total": 42.5}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_shape_every_record_before_any_session_snapshot_or_history_sees_it() {
    let topic = create_topic("orders", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}
channels:
  - name: orders
    topic: {topic}
    key: {{from: record_key}}
    snapshot: true
    history: 10
    subscribe: {{allow: anonymous}}
    transforms:
      - filter: {{pointer: /status, in: [NEW, FILLED]}}
      - drop: [/internal, /customer/ssn, /not/there]
      - mask: [/card/number, /lines/*/card]
      - headers_into: {{pointer: /meta, names: [traceparent]}}
  - name: totals
    topic: {topic}
    subscribe: {{allow: anonymous}}
    transforms:
      - extract: /payload
"
    ))
    .await;
    let mut live = bridge.connect().await;
    live.subscribe("orders", None).await;
    let mut totals = bridge.connect().await;
    totals.subscribe("totals", None).await;

    let producer = TestProducer::new();
    let headers = [("traceparent", "00-abc-01"), ("secret-header", "x")];
    producer
        .send(
            &topic,
            None,
            Some("O-1"),
            order("O-1", "FILLED").to_string().as_bytes(),
            &headers,
        )
        .await;
    producer
        .send(
            &topic,
            None,
            Some("O-2"),
            order("O-2", "CANCELLED").to_string().as_bytes(),
            &headers,
        )
        .await;
    // Missing fields everywhere: every step is a no-op on them, the record still flows.
    producer
        .send(
            &topic,
            None,
            Some("O-3"),
            br#"{"orderId":"O-3","status":"NEW"}"#,
            &[],
        )
        .await;

    let expected_first = json!({
        "orderId": "O-1",
        "status": "FILLED",
        "customer": {"id": "C-1", "name": "Ann"},
        "card": {"number": "***", "expiry": "12/29"},
        "lines": [{"sku": "A-1", "qty": 2, "card": "***"}, {"sku": "B-7", "qty": 1}],
        "payload": {"total": 42.5},
        "meta": {"traceparent": "00-abc-01"}
    });
    let first = live.expect("message").await;
    assert_eq!(first["key"], "O-1");
    assert_eq!(first["data"], expected_first);
    assert_eq!(
        first["headers"]["secret-header"], "x",
        "record headers are still sent as they are"
    );
    let third = live.expect("message").await;
    assert_eq!(third["key"], "O-3", "the CANCELLED order was filtered out");
    assert_eq!(
        third["data"],
        json!({"orderId": "O-3", "status": "NEW", "meta": {}})
    );

    // Each channel has its own chain; `extract` of a missing subtree filters the record.
    assert_eq!(
        totals.expect("message").await["data"],
        json!({"total": 42.5})
    );
    assert_eq!(
        totals.expect("message").await["data"],
        json!({"total": 42.5})
    );
    assert_eq!(totals.drain_until_pong().await, Vec::<Value>::new());

    // Snapshot and history hold the transformed record, never the original.
    let mut late = bridge.connect().await;
    late.send(json!({"type": "subscribe", "id": "s", "channel": "orders", "history": 10}))
        .await;
    let subscribed = late.expect("subscribed").await;
    let replayed: Vec<Value> = vec![late.expect("message").await, late.expect("message").await];
    assert_eq!(replayed[0]["data"], expected_first);
    assert_eq!(subscribed["replayed"], 2, "{subscribed}");
    for frame in [&first, &third, &subscribed, &replayed[0], &replayed[1]] {
        let text = frame.to_string();
        assert!(
            !text.contains(SSN) && !text.contains(CARD) && !text.contains("shard"),
            "{text}"
        );
    }
    bridge
        .wait_metric(
            "kafka_ws_bridge_messages_dropped_total{channel=\"orders\",reason=\"filtered\"}",
            1.0,
        )
        .await;
    bridge
        .wait_metric(
            "kafka_ws_bridge_messages_dropped_total{channel=\"totals\",reason=\"filtered\"}",
            1.0,
        )
        .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_isolates_tenants_on_one_topic_live_and_in_history() {
    let topic = create_topic("tenants", 2).await;
    let bridge = TestBridge::start(&format!(
        "{}channels:
  - name: orders
    topic: {topic}
    history: 10
    subscribe:
      where: {{pointer: /tenantId, equals_claim: tenant}}
  - name: accounts
    topic: {topic}
    key: {{from: record_key}}
    deliver: by_key
    subscribe:
      keys: any
      where: {{pointer: /tenantId, equals_claim: org.id}}
",
        jwt_auth()
    ))
    .await;
    let mut a1 = connect_as(&bridge, "u1", json!({"tenant": "A"})).await;
    let mut a2 = connect_as(&bridge, "u2", json!({"tenant": "A"})).await;
    let mut b1 = connect_as(&bridge, "u3", json!({"tenant": "B"})).await;
    for client in [&mut a1, &mut a2, &mut b1] {
        client.subscribe("orders", None).await;
    }
    let mut nobody = connect_as(&bridge, "u4", json!({})).await;
    nobody
        .send(json!({"type": "subscribe", "id": "s", "channel": "orders"}))
        .await;
    let refused = nobody.expect("error").await;
    assert_eq!(refused["code"], "forbidden");
    assert_eq!(
        refused["message"],
        "subscribing to `orders` needs a token with the claim `tenant` (subscribe.where)"
    );
    // By-key channel, nested claim: the same key in two tenants.
    let mut acme = connect_as(&bridge, "u5", json!({"org": {"id": "A"}})).await;
    let mut other = connect_as(&bridge, "u6", json!({"org": {"id": "B"}})).await;
    acme.subscribe("accounts", Some("K")).await;
    other.subscribe("accounts", Some("K")).await;

    let producer = TestProducer::new();
    for (n, tenant) in [
        (1, json!("A")),
        (2, json!("B")),
        (3, Value::Null),
        (4, json!("A")),
    ] {
        let mut value = json!({"n": n});
        if !tenant.is_null() {
            value["tenantId"] = tenant;
        }
        producer
            .send(
                &topic,
                Some(0),
                Some("K"),
                value.to_string().as_bytes(),
                &[],
            )
            .await;
    }
    for client in [&mut a1, &mut a2] {
        assert_eq!(client.expect("message").await["data"]["n"], 1);
        assert_eq!(client.expect("message").await["data"]["n"], 4);
    }
    assert_eq!(b1.expect("message").await["data"]["n"], 2);
    assert_eq!(acme.expect("message").await["data"]["n"], 1);
    assert_eq!(acme.expect("message").await["data"]["n"], 4);
    assert_eq!(other.expect("message").await["data"]["n"], 2);
    for client in [&mut a1, &mut a2, &mut b1, &mut acme, &mut other] {
        assert_eq!(client.drain_until_pong().await, Vec::<Value>::new());
    }
    // History holds every tenant's records; a replay sends only the session's own.
    let mut late = connect_as(&bridge, "u7", json!({"tenant": "B"})).await;
    late.send(json!({"type": "subscribe", "id": "h", "channel": "orders", "history": 10}))
        .await;
    assert_eq!(late.expect("subscribed").await["replayed"], 1);
    assert_eq!(late.expect("message").await["data"]["n"], 2);
    bridge
        .wait_metric(
            "kafka_ws_bridge_messages_dropped_total{channel=\"orders\",reason=\"not_entitled\"}",
            1.0,
        )
        .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_filter_selects_records_per_subscription_and_a_malformed_one_is_refused_precisely()
{
    let topic = create_topic("prices", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}
channels:
  - name: prices
    topic: {topic}
    history: 10
    subscribe: {{allow: anonymous, filters: true}}
    transforms:
      - drop: [/internal]
  - name: plain
    topic: {topic}
    subscribe: {{allow: anonymous}}
"
    ))
    .await;
    let expensive = json!({"all": [{"pointer": "/price", "gt": 100}, {"not": {"pointer": "/internal", "exists": true}}]});
    let mut filtered = bridge.connect().await;
    filtered
        .send(json!({"type": "subscribe", "id": "f", "channel": "prices", "filter": expensive}))
        .await;
    filtered.expect("subscribed").await;
    let mut everything = bridge.connect().await;
    everything.subscribe("prices", None).await;

    // Malformed: refused with the path of the problem; the session carries on.
    let mut careless = bridge.connect().await;
    careless
        .send(json!({"type": "subscribe", "id": "bad", "channel": "prices",
                     "filter": {"any": [{"pointer": "/price", "gt": 1}, {"pointer": "price", "lt": 5}]}}))
        .await;
    let error = careless.expect("error").await;
    assert_eq!(error["id"], "bad");
    assert_eq!(error["code"], "bad_request");
    assert_eq!(
        error["message"],
        "`filter.any[1].pointer`: \"price\" is not a JSON pointer; it must start with `/`"
    );
    careless
        .send(json!({"type": "subscribe", "id": "p", "channel": "plain", "filter": {"key": true, "exists": true}}))
        .await;
    assert_eq!(
        careless.expect("error").await["message"],
        "channel `plain` takes no client filters (subscribe.filters is off)"
    );
    careless.subscribe("prices", None).await;

    let producer = TestProducer::new();
    for price in [50, 150, 99, 101] {
        let value = json!({"price": price, "internal": "x"}).to_string();
        producer
            .send(&topic, None, None, value.as_bytes(), &[])
            .await;
    }
    let prices = |frames: Vec<Value>| -> Vec<i64> {
        frames
            .iter()
            .map(|f| f["data"]["price"].as_i64().unwrap())
            .collect()
    };
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(filtered.expect("message").await);
    }
    assert_eq!(
        prices(got),
        [150, 101],
        "evaluated on the transformed record"
    );
    assert_eq!(filtered.drain_until_pong().await, Vec::<Value>::new());
    let mut all = Vec::new();
    for _ in 0..4 {
        all.push(everything.expect("message").await);
    }
    assert_eq!(prices(all), [50, 150, 99, 101]);
    assert_eq!(careless.drain_until_pong().await.len(), 4);

    // A replay honours the filter too.
    let mut late = bridge.connect().await;
    late.send(
        json!({"type": "subscribe", "id": "h", "channel": "prices", "history": 10,
                     "filter": {"pointer": "/price", "lt": 100}}),
    )
    .await;
    assert_eq!(late.expect("subscribed").await["replayed"], 2);
    let replayed = vec![late.expect("message").await, late.expect("message").await];
    assert_eq!(prices(replayed), [50, 99]);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rate_conflates_to_the_latest_value_and_counts_what_it_skipped() {
    let topic = create_topic("ticks", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}
channels:
  - name: ticks
    topic: {topic}
    key: {{from: record_key}}
    history: 5
    max_rate: 2
    subscribe: {{allow: anonymous}}
"
    ))
    .await;
    let mut client = bridge.connect().await;
    client.subscribe("ticks", None).await;
    let mut greedy = bridge.connect().await;
    greedy
        .send(json!({"type": "subscribe", "id": "g", "channel": "ticks", "max_rate": 10}))
        .await;
    let refused = greedy.expect("error").await;
    assert_eq!(refused["code"], "bad_request");
    assert_eq!(
        refused["message"],
        "`max_rate` 10 is above the channel's (2 messages per second)"
    );

    let started = std::time::Instant::now();
    let producer = TestProducer::new();
    for n in 0..200 {
        let value = json!({"n": n}).to_string();
        producer
            .send(&topic, Some(0), Some("K"), value.as_bytes(), &[])
            .await;
    }
    producer
        .send(&topic, None, Some("other"), br#"{"n":-1}"#, &[])
        .await;

    let (mut sent, mut skipped, mut last) = (0u64, 0u64, None);
    let mut other_seen = false;
    while last != Some(199) || !other_seen {
        let frame = client.expect("message").await;
        if frame["key"] == "other" {
            other_seen = true;
            continue;
        }
        sent += 1;
        skipped += frame["conflated"].as_u64().unwrap_or(0);
        let n = frame["data"]["n"].as_i64().unwrap();
        assert!(
            last.is_none_or(|l| n > l),
            "never an older value: {n} after {last:?}"
        );
        last = Some(n);
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        sent + skipped,
        200,
        "every record is sent or counted as skipped"
    );
    assert!(skipped > 0, "{sent} sent");
    assert!(
        (sent as f64) <= 2.0 * elapsed + 2.0,
        "{sent} messages of one key in {elapsed:.1} s at max_rate 2"
    );
    bridge
        .wait_metric(
            "kafka_ws_bridge_messages_dropped_total{channel=\"ticks\",reason=\"conflated\"}",
            skipped as f64,
        )
        .await;
    // History is not conflated: the newest five, each as it was.
    let mut late = bridge.connect().await;
    late.send(json!({"type": "subscribe", "id": "h", "channel": "ticks", "history": 5}))
        .await;
    assert_eq!(late.expect("subscribed").await["replayed"], 5);
    let mut replayed = Vec::new();
    for _ in 0..5 {
        let frame = late.expect("message").await;
        assert!(frame.get("conflated").is_none(), "{frame}");
        replayed.push(frame["data"]["n"].as_i64().unwrap());
    }
    assert_eq!(replayed, [196, 197, 198, 199, -1]);
    bridge.stop().await;
}

/// The per-record entitlement and client filters at scale, unpaced: 20 tenants × 10 sessions
/// on one topic of 4 partitions, 20 of them with a client filter, and a burst of 20,000
/// records produced at once (the consumer hands the bridge thousands per fetch). Each session
/// gets exactly its tenant's records (1,000; 500 through the filter), in order per partition,
/// none of another tenant's, with `internal` dropped; nobody is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_and_filters_hold_for_two_hundred_sessions_through_an_unpaced_burst() {
    const TENANTS: usize = 20;
    const PER_TENANT: usize = 10;
    const RECORDS: usize = 20_000;
    let topic = create_topic("tenants-burst", 4).await;
    let bridge = TestBridge::start(&format!(
        "{}channels:
  - name: orders
    topic: {topic}
    subscribe:
      filters: true
      where: {{pointer: /tenantId, equals_claim: tenant}}
    transforms:
      - drop: [/internal]
",
        jwt_auth()
    ))
    .await;
    let browsers = common::client_runtime();
    let paid = json!({"pointer": "/status", "eq": "paid"});
    let mut clients = Vec::new();
    for tenant in 0..TENANTS {
        for n in 0..PER_TENANT {
            let url = format!(
                "{}?access_token={}",
                bridge.ws_url,
                token(
                    &format!("u{tenant}-{n}"),
                    json!({"tenant": format!("T{tenant}")})
                )
            );
            let filtered = n == 0;
            let paid = paid.clone();
            let client = browsers.spawn(async move {
                let mut client = Client::connect(&url).await;
                let mut subscribe = json!({"type": "subscribe", "id": "s", "channel": "orders"});
                if filtered {
                    subscribe["filter"] = paid;
                }
                client.send(subscribe).await;
                client.expect("subscribed").await;
                client
            });
            clients.push((tenant, filtered, client.await.unwrap()));
        }
    }
    let readers: Vec<_> = clients
        .into_iter()
        .map(|(tenant, filtered, mut client)| {
            browsers.spawn(async move {
                let want = if filtered {
                    RECORDS / TENANTS / 2
                } else {
                    RECORDS / TENANTS
                };
                let mut last = std::collections::HashMap::new();
                let mut got = 0;
                while got < want {
                    let message = client.expect("message").await;
                    let data = &message["data"];
                    let n = data["n"].as_u64().unwrap() as usize;
                    let who = format!("session of T{tenant} (filtered: {filtered})");
                    assert_eq!(data["tenantId"], format!("T{tenant}"), "{who}: {message}");
                    assert!(data.get("internal").is_none(), "{who}: {message}");
                    if filtered {
                        assert_eq!(data["status"], "paid", "{who}: {message}");
                    }
                    let partition = message["partition"].as_i64().unwrap();
                    if let Some(previous) = last.insert(partition, n) {
                        assert!(n > previous, "{who}: {previous} then {n} on {partition}");
                    }
                    got += 1;
                }
                // Nothing more for it: no record of another tenant follows its own.
                assert_eq!(client.drain_until_pong().await, Vec::<Value>::new());
            })
        })
        .collect();
    let producer = TestProducer::new();
    producer
        .send_many(
            &topic,
            (0..RECORDS).map(|n| {
                json!({
                    "n": n,
                    "tenantId": format!("T{}", n % TENANTS),
                    "status": if (n / TENANTS).is_multiple_of(2) { "paid" } else { "open" },
                    "internal": {"trace": n},
                })
                .to_string()
                .into_bytes()
            }),
        )
        .await;
    for reader in readers {
        reader.await.unwrap();
    }
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_sessions_closed_total{reason=\"slow_client\"}")
            .await,
        0.0
    );
    browsers.shutdown_background();
    bridge.stop().await;
}

/// `max_rate` at scale, unpaced: 100 sessions, 50 keys, 20,000 updates produced at once. Every
/// session sees each key's values only ever newer, ends with each key's latest value, and
/// accounts for every update (sent, or counted in `conflated`), as the channel's metric does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rate_holds_for_a_hundred_sessions_through_an_unpaced_burst_of_fifty_keys() {
    const SESSIONS: usize = 100;
    const KEYS: usize = 50;
    const RECORDS: usize = 20_000;
    let topic = create_topic("ticks-burst", 4).await;
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}
channels:
  - name: ticks
    topic: {topic}
    key: {{from: record_key}}
    max_rate: 5
    subscribe: {{allow: anonymous}}
"
    ))
    .await;
    let browsers = common::client_runtime();
    let mut clients = Vec::new();
    for _ in 0..SESSIONS {
        let url = bridge.ws_url.clone();
        let client = browsers.spawn(async move {
            let mut client = Client::connect(&url).await;
            client.subscribe("ticks", None).await;
            client
        });
        clients.push(client.await.unwrap());
    }
    let readers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            browsers.spawn(async move {
                let last_of = |key: usize| (RECORDS - KEYS + key) as i64;
                let mut last: Vec<Option<i64>> = vec![None; KEYS];
                let (mut sent, mut skipped) = (0u64, 0u64);
                while (0..KEYS).any(|k| last[k] != Some(last_of(k))) {
                    let frame = client.expect("message").await;
                    let key: usize = frame["key"].as_str().unwrap()[1..].parse().unwrap();
                    let n = frame["data"]["n"].as_i64().unwrap();
                    assert!(
                        last[key].is_none_or(|l| n > l),
                        "session {i}, key {key}: {n} after {:?}",
                        last[key]
                    );
                    last[key] = Some(n);
                    sent += 1;
                    skipped += frame["conflated"].as_u64().unwrap_or(0);
                }
                assert_eq!(client.drain_until_pong().await, Vec::<Value>::new());
                assert_eq!(sent + skipped, RECORDS as u64, "session {i}: {sent} sent");
                assert!(sent < RECORDS as u64 / 2, "session {i}: {sent} sent");
                skipped
            })
        })
        .collect();
    let batching: rdkafka::producer::FutureProducer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .create()
        .unwrap();
    let mut pending = futures_util::stream::FuturesUnordered::new();
    for n in 0..RECORDS {
        let batching = batching.clone();
        let topic = topic.clone();
        pending.push(async move {
            let (key, value) = (format!("k{}", n % KEYS), json!({"n": n}).to_string());
            batching
                .send(
                    rdkafka::producer::FutureRecord::to(&topic)
                        .key(&key)
                        .payload(&value),
                    std::time::Duration::from_secs(30),
                )
                .await
                .unwrap();
        });
    }
    use futures_util::StreamExt;
    while pending.next().await.is_some() {}
    let mut skipped = 0;
    for reader in readers {
        skipped += reader.await.unwrap();
    }
    bridge
        .wait_metric(
            "kafka_ws_bridge_messages_dropped_total{channel=\"ticks\",reason=\"conflated\"}",
            skipped as f64,
        )
        .await;
    browsers.shutdown_background();
    bridge.stop().await;
}
