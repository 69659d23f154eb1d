//! Who may see what, against a real broker and bridge: JWT verification and every refusal,
//! per-channel and per-key permissions, one session per user, reply routing, token expiry, and
//! secrets staying out of the logs.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{create_topic, read_topic, Client, Event, TestBridge, TestProducer, DEADLINE};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const SECRET: &str = "test-secret-for-hs256-0123456789abcdef";
const ISSUER: &str = "https://id.bank.example";
const AUDIENCE: &str = "bridge";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a valid token for `sub`, valid ten minutes.
fn claims(sub: &str, roles: &[&str]) -> Value {
    json!({"sub": sub, "roles": roles, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "iat": now()})
}

fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn token(sub: &str, roles: &[&str]) -> String {
    sign(&claims(sub, roles))
}

/// The auth part of a test bridge's config.
fn jwt_auth(extra: &str) -> String {
    format!(
        "auth:\n  mode: jwt\n  jwt: {{algorithms: [HS256], secret: \"{SECRET}\", issuer: \"{ISSUER}\", audience: {AUDIENCE}, leeway_seconds: 0}}\n{extra}"
    )
}

/// Opens a WebSocket; `Err((status, body))` when the handshake is refused.
async fn open(
    bridge: &TestBridge,
    token: Option<&str>,
    via_query: bool,
    origin: Option<&str>,
) -> Result<Client, (u16, String)> {
    let url = match (token, via_query) {
        (Some(token), true) => format!("{}?access_token={token}", bridge.ws_url),
        _ => bridge.ws_url.clone(),
    };
    let mut request = url.into_client_request().unwrap();
    if let (Some(token), false) = (token, via_query) {
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Client::welcome(ws).await),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            Err((response.status().as_u16(), body))
        }
        Err(e) => panic!("handshake failed unexpectedly: {e}"),
    }
}

async fn user(bridge: &TestBridge, sub: &str, roles: &[&str]) -> Client {
    open(bridge, Some(&token(sub, roles)), false, None)
        .await
        .expect("valid token accepted")
}

fn balances_config(topic: &str) -> String {
    jwt_auth(&common::fixture("jwt_balances.yaml", &[("TOPIC", topic)]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_is_refused_with_401_naming_the_reason() {
    let bridge = TestBridge::start(&jwt_auth(
        "server: {allowed_origins: [\"https://bank.example\"]}\n",
    ))
    .await;
    let wrong_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("C-1", &[]),
        &EncodingKey::from_secret(b"another-secret-another-secret-000"),
    )
    .unwrap();
    let unsigned = {
        let encode =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            encode(&json!({"alg": "none", "typ": "JWT"})),
            encode(&claims("C-1", &[]))
        )
    };
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims("C-1", &[]),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let mut expired = claims("C-1", &[]);
    expired["exp"] = json!(now() - 60);
    let mut future = claims("C-1", &[]);
    future["nbf"] = json!(now() + 600);
    let mut audience = claims("C-1", &[]);
    audience["aud"] = json!("another-service");
    let mut issuer = claims("C-1", &[]);
    issuer["iss"] = json!("https://evil.example");
    let mut no_sub = claims("C-1", &[]);
    no_sub.as_object_mut().unwrap().remove("sub");
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "missing token"),
        ("garbage", Some("not-a-jwt".into()), "malformed token"),
        ("bad signature", Some(wrong_key), "invalid token signature"),
        (
            "alg none",
            Some(unsigned),
            "token algorithm `none` is not accepted",
        ),
        (
            "alg not listed",
            Some(hs512),
            "token algorithm `HS512` is not accepted",
        ),
        ("expired", Some(sign(&expired)), "token expired"),
        ("not yet valid", Some(sign(&future)), "token not yet valid"),
        (
            "wrong audience",
            Some(sign(&audience)),
            "wrong token audience",
        ),
        ("wrong issuer", Some(sign(&issuer)), "wrong token issuer"),
        (
            "no user claim",
            Some(sign(&no_sub)),
            "token has no `sub` claim",
        ),
    ];
    for (case, token, reason) in &cases {
        for via_query in [false, true] {
            let refused = open(&bridge, token.as_deref(), via_query, None).await.err();
            let (status, body) = refused.unwrap_or_else(|| panic!("{case}: accepted"));
            assert_eq!(status, 401, "{case}: {body}");
            let body: Value =
                serde_json::from_str(&body).unwrap_or_else(|_| panic!("{case}: JSON body: {body}"));
            let error = body["error"].as_str().unwrap();
            assert!(error.contains(reason), "{case}: {error}");
            if let Some(token) = token {
                assert!(
                    !error.contains(token.as_str()),
                    "{case}: the token is echoed"
                );
            }
        }
    }
    // Origins: a foreign one is refused before the token is even looked at.
    let (status, body) = open(
        &bridge,
        Some(&token("C-1", &[])),
        false,
        Some("https://evil.example"),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(
        (status, body.contains("origin not allowed")),
        (403, true),
        "{body}"
    );
    assert!(open(
        &bridge,
        Some(&token("C-1", &[])),
        false,
        Some("https://bank.example")
    )
    .await
    .is_ok());
    assert!(
        open(&bridge, Some(&token("C-1", &[])), true, None)
            .await
            .is_ok(),
        "query-string token"
    );
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_connections_rejected_total{reason=\"unauthorized\"}")
            .await,
        (cases.len() * 2) as f64
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_key_algorithms_verify_with_the_configured_pem() {
    for (alg, public, private) in [
        (Algorithm::RS256, "rsa-public.pem", "rsa-private.pem"),
        (Algorithm::ES256, "ec-public.pem", "ec-private.pem"),
    ] {
        let name = format!("{alg:?}");
        let bridge = TestBridge::start(&format!(
            "auth:\n  mode: jwt\n  jwt: {{algorithms: [{name}], public_key_file: tests/fixtures/keys/{public}}}\n"
        ))
        .await;
        let pem = std::fs::read(format!("tests/fixtures/keys/{private}")).unwrap();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        let good = jsonwebtoken::encode(
            &Header::new(alg),
            &json!({"sub": "C-9", "exp": now() + 60}),
            &key,
        )
        .unwrap();
        let client = open(&bridge, Some(&good), false, None)
            .await
            .expect("signed with the matching private key");
        assert_eq!(client.user, "C-9");
        // An HMAC token made with the public key as secret must not pass (algorithm confusion).
        let public_pem = std::fs::read(format!("tests/fixtures/keys/{public}")).unwrap();
        let confused = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "C-9", "exp": now() + 60}),
            &EncodingKey::from_secret(&public_pem),
        )
        .unwrap();
        let (status, body) = open(&bridge, Some(&confused), false, None)
            .await
            .err()
            .expect("refused");
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("HS256"), "{body}");
        bridge.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_see_only_their_own_key_and_refused_keys_never_leak() {
    let topic = create_topic("balances", 3).await;
    let bridge = TestBridge::start(&balances_config(&topic)).await;
    let mut alice = user(&bridge, "C-1", &[]).await;
    let subscribed = alice.subscribe("balances", None).await;
    assert_eq!(
        subscribed["key"], "C-1",
        "an omitted key means the user's own id"
    );
    // Another customer's key, and a channel for a role she lacks: refused.
    alice
        .send(json!({"type": "subscribe", "id": "x", "channel": "balances", "key": "C-2"}))
        .await;
    let error = alice.expect("error").await;
    assert_eq!(
        (error["code"].as_str(), error["id"].as_str()),
        (Some("forbidden"), Some("x")),
        "{error}"
    );
    alice
        .send(json!({"type": "subscribe", "id": "y", "channel": "assisted", "key": "C-1"}))
        .await;
    let error = alice.expect("error").await;
    assert_eq!(error["code"], "forbidden", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("assistant"),
        "{error}"
    );

    let mut bob = user(&bridge, "C-2", &[]).await;
    bob.subscribe("balances", None).await;
    let producer = TestProducer::new();
    producer
        .send(&topic, None, Some("C-2"), br#"{"balance": 5}"#, &[])
        .await;
    producer
        .send(&topic, None, Some("C-1"), br#"{"balance": 7}"#, &[])
        .await;
    assert_eq!(bob.expect("message").await["data"]["balance"], 5);
    let mine = alice.expect("message").await;
    assert_eq!(
        (mine["key"].as_str(), mine["data"]["balance"].as_i64()),
        (Some("C-1"), Some(7))
    );
    assert_eq!(
        alice.drain_until_pong().await,
        Vec::<Value>::new(),
        "no record of C-2 reached C-1"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_roles_and_claims_widen_access_exactly_as_configured() {
    let topic = create_topic("balances", 1).await;
    let bridge = TestBridge::start(&balances_config(&topic)).await;
    let mut supervisor = user(&bridge, "S-1", &["staff"]).await;
    supervisor.subscribe("balances", Some("C-5")).await;
    supervisor.subscribe("balances", Some("C-6")).await;

    let mut assistant_claims = claims("A-1", &["assistant"]);
    assistant_claims["customers"] = json!(["C-5"]);
    let mut assistant = open(&bridge, Some(&sign(&assistant_claims)), false, None)
        .await
        .unwrap();
    assistant.subscribe("assisted", Some("C-5")).await;
    assistant
        .send(json!({"type": "subscribe", "id": "no", "channel": "assisted", "key": "C-6"}))
        .await;
    let error = assistant.expect("error").await;
    assert_eq!(error["code"], "forbidden");
    assert!(
        error["message"].as_str().unwrap().contains("customers"),
        "{error}"
    );
    assistant
        .send(json!({"type": "subscribe", "id": "no2", "channel": "balances", "key": "C-5"}))
        .await;
    assert_eq!(
        assistant.expect("error").await["code"],
        "forbidden",
        "the assistant role is not staff"
    );

    let producer = TestProducer::new();
    producer
        .send(&topic, None, Some("C-5"), b"{\"n\":5}", &[])
        .await;
    producer
        .send(&topic, None, Some("C-6"), b"{\"n\":6}", &[])
        .await;
    let mut seen = BTreeSet::new();
    for _ in 0..2 {
        seen.insert(
            supervisor.expect("message").await["key"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(seen, BTreeSet::from(["C-5".to_owned(), "C-6".to_owned()]));
    assert_eq!(assistant.expect("message").await["key"], "C-5");
    assert_eq!(
        assistant.drain_until_pong().await,
        Vec::<Value>::new(),
        "nothing of C-6"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_under_load_50_users_2_sessions_5000_records() {
    const USERS: usize = 50;
    const RECORDS: usize = 5000;
    let topic = create_topic("isolation", 4).await;
    let bridge = TestBridge::start(&balances_config(&topic)).await;
    let started = Instant::now();
    // Produce while sessions connect and subscribe; note when each produce started.
    let producer_topic = topic.clone();
    let producing = tokio::spawn(async move {
        let producer = Arc::new(TestProducer::new());
        let mut workers = Vec::new();
        for worker in 0..5 {
            let producer = producer.clone();
            let topic = producer_topic.clone();
            workers.push(tokio::spawn(async move {
                let mut sent = Vec::new();
                for seq in (worker..RECORDS).step_by(5) {
                    let key = format!("U-{}", seq % USERS);
                    let at = Instant::now();
                    let value = json!({"user": key, "seq": seq}).to_string();
                    let (partition, offset) = producer
                        .send(&topic, None, Some(&key), value.as_bytes(), &[])
                        .await;
                    sent.push((key, at, partition, offset));
                }
                sent
            }));
        }
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.await.unwrap());
        }
        all
    });
    let mut sessions = Vec::new();
    for u in 0..USERS {
        for _ in 0..2 {
            let key = format!("U-{u}");
            let mut client = user(&bridge, &key, &[]).await;
            client.subscribe("balances", None).await;
            sessions.push((key, Instant::now(), client));
        }
    }
    let produced = producing.await.unwrap();
    let mut by_key: HashMap<&str, Vec<(Instant, i32, i64)>> = HashMap::new();
    for (key, at, partition, offset) in &produced {
        by_key
            .entry(key)
            .or_default()
            .push((*at, *partition, *offset));
    }
    let mut total = 0;
    for (key, subscribed_at, client) in &mut sessions {
        let own = &by_key[key.as_str()];
        let all_own: BTreeSet<(i32, i64)> = own.iter().map(|(_, p, o)| (*p, *o)).collect();
        let must: BTreeSet<(i32, i64)> = own
            .iter()
            .filter(|(at, _, _)| at > subscribed_at)
            .map(|(_, p, o)| (*p, *o))
            .collect();
        let mut got = BTreeSet::new();
        let mut last: HashMap<i64, i64> = HashMap::new();
        let deadline = Instant::now() + DEADLINE;
        while !must.is_subset(&got) {
            match client
                .next_event(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Event::Frame(frame) => {
                    assert_eq!(frame["type"], "message", "{frame}");
                    assert_eq!(
                        frame["key"],
                        key.as_str(),
                        "foreign record reached {key}: {frame}"
                    );
                    let (p, o) = (
                        frame["partition"].as_i64().unwrap(),
                        frame["offset"].as_i64().unwrap(),
                    );
                    if let Some(prev) = last.insert(p, o) {
                        assert!(o > prev, "{key}: partition {p} out of order");
                    }
                    assert!(
                        all_own.contains(&(p as i32, o)),
                        "{key} got a record that is not its own"
                    );
                    got.insert((p as i32, o));
                }
                other => panic!(
                    "{key}: {other:?} with {} of {} expected records",
                    got.len(),
                    must.len()
                ),
            }
        }
        assert!(client
            .drain_until_pong()
            .await
            .iter()
            .all(|f| f["key"] == key.as_str()));
        total += got.len();
    }
    println!(
        "isolation: {} sessions, {RECORDS} records, {total} deliveries checked in {:.2?}",
        sessions.len(),
        started.elapsed()
    );
    assert!(
        total >= RECORDS,
        "most records were produced after the subscriptions: {total}"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_session_wins_older_ones_are_replaced_with_4000() {
    let bridge = TestBridge::start(&jwt_auth("  max_sessions_per_user: 1\n")).await;
    let mut other_user = user(&bridge, "C-2", &[]).await;
    let mut first = user(&bridge, "C-1", &[]).await;
    for round in 0..2 {
        let second = user(&bridge, "C-1", &[]).await;
        // `second` has its welcome: `first` was told and closed before that.
        assert_eq!(
            first.expect("session_replaced").await,
            json!({"type": "session_replaced"}),
            "round {round}"
        );
        assert_eq!(first.closed_code().await, Some(4000));
        first = second;
    }
    bridge
        .wait_metric(
            "kafka_ws_bridge_sessions_closed_total{reason=\"replaced\"}",
            2.0,
        )
        .await;
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_sessions_closed_total{reason=\"replaced\"}")
            .await,
        2.0
    );
    first.send(json!({"type": "ping", "id": 1})).await;
    assert_eq!(first.expect("pong").await["id"], 1);
    other_user.send(json!({"type": "ping", "id": 2})).await;
    assert_eq!(
        other_user.expect("pong").await["id"],
        2,
        "other users are not affected"
    );
    assert_eq!(bridge.metric("kafka_ws_bridge_sessions_open").await, 2.0);
    bridge.stop().await;
}

/// Opens a WebSocket at `ws_path?{query}` with `token` in the header, asking for STOMP when
/// `stomp`; `Err((status, body))` when the handshake is refused.
async fn open_with_query(
    bridge: &TestBridge,
    token: &str,
    query: &str,
    stomp: bool,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    (u16, String),
> {
    let mut request = format!("{}?{query}", bridge.ws_url)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    if stomp {
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("v12.stomp"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err((
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Err(e) => panic!("handshake failed unexpectedly: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_groups_count_per_user_and_app_and_bad_groups_are_refused() {
    use futures_util::{SinkExt, StreamExt};
    let feed = create_topic("groups-feed", 1).await;
    let bridge = TestBridge::start(&jwt_auth(&format!(
        "  max_sessions_per_user: 1\n  session_group_param: app\nchannels:\n  - {{name: feed, topic: {feed}, subscribe: {{allow: authenticated}}}}\n"
    )))
    .await;
    let alice = token("alice", &[]);
    let open = async |query: &str| {
        Client::welcome(
            open_with_query(&bridge, &alice, query, false)
                .await
                .expect("handshake accepted"),
        )
        .await
    };
    let mut teller = open("app=teller").await;
    let mut advisor = open("app=advisor").await;
    let mut ungrouped = open("x=1").await;
    let mut bob_teller = Client::welcome(
        open_with_query(&bridge, &token("bob", &[]), "app=teller", false)
            .await
            .unwrap(),
    )
    .await;

    // A second `teller` session of alice replaces the first; every other group stays.
    let mut teller2 = open("app=teller").await;
    assert_eq!(
        teller.expect("session_replaced").await["type"],
        "session_replaced"
    );
    assert_eq!(teller.closed_code().await, Some(4000));
    let mut ungrouped2 = open("").await;
    assert_eq!(
        ungrouped.closed_code().await,
        Some(4000),
        "no parameter: one group"
    );
    for (i, client) in [&mut advisor, &mut bob_teller, &mut teller2, &mut ungrouped2]
        .into_iter()
        .enumerate()
    {
        client.send(json!({"type": "ping", "id": i})).await;
        assert_eq!(client.expect("pong").await["id"], i, "session {i} stays");
    }

    // A STOMP session counts in the group its handshake names: it replaces `advisor`.
    let mut stomp = open_with_query(&bridge, &alice, "app=advisor", true)
        .await
        .expect("stomp handshake accepted");
    stomp
        .send(tokio_tungstenite::tungstenite::Message::text(
            "CONNECT\naccept-version:1.2\nhost:bridge\n\n\0",
        ))
        .await
        .unwrap();
    let connected = tokio::time::timeout(DEADLINE, stomp.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        connected.to_text().unwrap().starts_with("CONNECTED"),
        "{connected:?}"
    );
    assert_eq!(
        advisor.expect("session_replaced").await["type"],
        "session_replaced"
    );
    assert_eq!(advisor.closed_code().await, Some(4000));

    // Bad groups are refused before the upgrade, on every way in, naming what was wrong.
    let expected = "query parameter `app`: expected 1 to 64 letters, digits, `.`, `_`, `~` or `-`";
    let long = "a".repeat(10 * 1024);
    let cases = [
        (
            "app=".to_owned(),
            format!("{expected}, found an empty value"),
        ),
        (
            format!("app={long}"),
            format!("{expected}, found 10240 bytes"),
        ),
        (
            format!("app={}", "a".repeat(65)),
            format!("{expected}, found 65 characters"),
        ),
        (
            "app=a%2Fb".to_owned(),
            format!("{expected}, found '/' in \"a/b\""),
        ),
        (
            "app=a&app=b".to_owned(),
            "query parameter `app` is given more than once".to_owned(),
        ),
    ];
    for (query, message) in &cases {
        for stomp in [false, true] {
            let (status, body) = open_with_query(&bridge, &alice, query, stomp)
                .await
                .map(|_| ())
                .expect_err("refused");
            assert_eq!(status, 400, "{query}");
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["error"], message.as_str(), "{query} (stomp: {stomp})");
        }
        let (status, body) = common::http_request(
            bridge.ws_addr,
            &format!(
                "GET /sse?channel=feed&{query} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {alice}\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(status, 400, "sse {query}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], message.as_str(), "sse {query}");
    }
    // A good group on SSE opens a stream (never counted: teller2 stays).
    let mut sse = tokio::net::TcpStream::connect(bridge.ws_addr)
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut sse,
        format!("GET /sse?channel=feed&app=teller HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {alice}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(
        DEADLINE,
        tokio::io::AsyncReadExt::read_exact(&mut sse, &mut head),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    teller2.send(json!({"type": "ping", "id": "after"})).await;
    assert_eq!(teller2.expect("pong").await["id"], "after");
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_sessions_closed_total{reason=\"replaced\"}")
            .await,
        3.0
    );
    assert!(
        bridge
            .metric("kafka_ws_bridge_connections_rejected_total{reason=\"bad_request\"}")
            .await
            >= 15.0
    );
    drop(stomp);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_reach_the_originating_session_else_its_user() {
    let commands = create_topic("commands", 2).await;
    let replies = create_topic("replies", 2).await;
    let bridge = TestBridge::start(&jwt_auth(&format!(
        "channels:\n  - {{name: replies, topic: {replies}, deliver: reply}}\ninbound:\n  - {{channel: commands, topic: {commands}, key: user}}\n"
    )))
    .await;
    let mut tab1 = user(&bridge, "C-1", &[]).await;
    let mut tab2 = user(&bridge, "C-1", &[]).await;
    let mut stranger = user(&bridge, "C-2", &[]).await;
    for client in [&mut tab1, &mut tab2, &mut stranger] {
        client.subscribe("replies", None).await;
    }
    tab1.send(json!({"type": "publish", "id": "cmd-42", "channel": "commands", "data": {"op": "RetrieveAccounts"}})).await;
    tab1.expect("ack").await;

    // The backend: read the command, answer with the bridge headers copied.
    let command = &read_topic(&commands, 1).await[0];
    assert_eq!(command.key.as_deref(), Some("C-1"), "key: user");
    assert_eq!(command.header("bridge-user"), Some("C-1"));
    assert_eq!(
        command.header("bridge-session"),
        Some(tab1.session.as_str())
    );
    let copied: Vec<(&str, &str)> = ["bridge-user", "bridge-session", "correlation-id"]
        .iter()
        .map(|h| (*h, command.header(h).unwrap()))
        .collect();
    let producer = TestProducer::new();
    producer
        .send(&replies, None, None, br#"{"accounts": ["A-1"]}"#, &copied)
        .await;
    let reply = tab1.expect("message").await;
    assert_eq!(reply["channel"], "replies");
    assert_eq!(reply["headers"]["correlation-id"], "cmd-42");
    assert_eq!(reply["data"]["accounts"][0], "A-1");
    assert_eq!(
        tab2.drain_until_pong().await,
        Vec::<Value>::new(),
        "other tab of the same user"
    );
    assert_eq!(
        stranger.drain_until_pong().await,
        Vec::<Value>::new(),
        "another user"
    );

    // The originating tab is gone: the reply goes to the user's other sessions.
    let gone = tab1.session.clone();
    drop(tab1);
    bridge
        .wait_metric(
            "kafka_ws_bridge_sessions_closed_total{reason=\"client_closed\"}",
            1.0,
        )
        .await;
    producer
        .send(
            &replies,
            None,
            None,
            b"{\"late\": true}",
            &[("bridge-session", &gone), ("bridge-user", "C-1")],
        )
        .await;
    assert_eq!(tab2.expect("message").await["data"]["late"], true);
    assert_eq!(stranger.drain_until_pong().await, Vec::<Value>::new());
    // Nobody to deliver to: counted.
    producer
        .send(
            &replies,
            None,
            None,
            b"{}",
            &[("bridge-session", "nobody"), ("bridge-user", "C-404")],
        )
        .await;
    bridge
        .wait_metric(
            "kafka_ws_bridge_messages_dropped_total{channel=\"replies\",reason=\"undeliverable\"}",
            1.0,
        )
        .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_closed_with_4002_when_its_token_expires() {
    let bridge = TestBridge::start(&jwt_auth("")).await;
    let mut short = claims("C-1", &[]);
    short["exp"] = json!(now() + 2);
    let mut client = open(&bridge, Some(&sign(&short)), false, None)
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(client.closed_code().await, Some(4002));
    assert!(started.elapsed() < Duration::from_secs(10));
    bridge
        .wait_metric(
            "kafka_ws_bridge_sessions_closed_total{reason=\"token_expired\"}",
            1.0,
        )
        .await;
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_sessions_closed_total{reason=\"token_expired\"}")
            .await,
        1.0
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_permissions_and_anonymous_mode() {
    let topic = create_topic("ops", 1).await;
    let bridge = TestBridge::start(&jwt_auth(&format!(
        "inbound:\n  - {{channel: ops, topic: {topic}, allow: {{roles: [ops]}}}}\n"
    )))
    .await;
    let mut customer = user(&bridge, "C-1", &[]).await;
    customer
        .send(json!({"type": "publish", "id": "p", "channel": "ops", "data": {}}))
        .await;
    let error = customer.expect("error").await;
    assert_eq!(error["code"], "forbidden", "{error}");
    let mut operator = user(&bridge, "O-1", &["ops"]).await;
    operator
        .send(json!({"type": "publish", "id": "p", "channel": "ops", "data": {}}))
        .await;
    operator.expect("ack").await;
    bridge.stop().await;

    // auth.mode none: sessions are anonymous, so `keys: own` can never be satisfied.
    let bridge = TestBridge::start(&format!(
        "auth: {{mode: none}}\nchannels:\n  - {{name: b, topic: {topic}, key: {{from: record_key}}, deliver: by_key, subscribe: {{allow: anonymous, keys: own}}}}\n"
    ))
    .await;
    let mut anonymous = bridge.connect().await;
    assert_eq!(anonymous.user, Value::Null);
    anonymous
        .send(json!({"type": "subscribe", "id": "s", "channel": "b", "key": "C-1"}))
        .await;
    let error = anonymous.expect("error").await;
    assert_eq!(error["code"], "forbidden", "{error}");
    bridge.stop().await;
}

/// Publish-side key rules (`publish.key` rules on token claims): staff may publish commands only for the customers their
/// token lists, supervisors for anyone; a refused publish writes nothing, and the records that
/// are written carry the publisher's roles and claim for the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_key_rules_check_the_computed_key_and_identity_headers_reach_kafka() {
    let topic = create_topic("assisted-commands", 1).await;
    let bridge = TestBridge::start(&jwt_auth(&format!(
        "inbound:\n  - {{channel: assisted-commands, topic: {topic}, key: {{pointer: /customer}}, keys: {{claim: customers}}, any_key_roles: [supervisor], identity_headers: [roles, customers]}}\n"
    )))
    .await;
    let mut staff_claims = claims("A-1", &["staff"]);
    staff_claims["customers"] = json!(["C-5", "C-8"]);
    let mut ann = open(&bridge, Some(&sign(&staff_claims)), false, None)
        .await
        .expect("valid token accepted");
    let publish = |id: &str, customer: &str| json!({"type": "publish", "id": id, "channel": "assisted-commands", "data": {"customer": customer, "command": "block-card"}});
    ann.send(publish("p1", "C-9")).await;
    let error = ann.expect("error").await;
    assert_eq!(
        error,
        json!({"type": "error", "id": "p1", "code": "forbidden", "message": "publishing on `assisted-commands` with key `C-9` is not allowed: key `C-9` is not listed in your `customers` claim"})
    );
    ann.send(publish("p2", "C-5")).await;
    assert_eq!(ann.expect("ack").await["id"], "p2");
    // A token whose claim is of the wrong type is refused as such.
    let mut odd_claims = claims("A-2", &["staff"]);
    odd_claims["customers"] = json!("C-5,C-8");
    let mut odd = open(&bridge, Some(&sign(&odd_claims)), false, None)
        .await
        .expect("valid token accepted");
    odd.send(publish("p3", "C-5")).await;
    let error = odd.expect("error").await;
    assert_eq!(error["code"], "forbidden", "{error}");
    assert_eq!(
        error["message"],
        "publishing on `assisted-commands` with key `C-5` is not allowed: key `C-5` is not listed in your `customers` claim",
        "one string is a list of one value: `C-5,C-8` is not `C-5`"
    );
    let mut supervisor = user(&bridge, "S-1", &["supervisor"]).await;
    supervisor.send(publish("p4", "C-9")).await;
    assert_eq!(supervisor.expect("ack").await["id"], "p4");
    // Only the two allowed publishes reached Kafka, in order, with the identity headers.
    let records = read_topic(&topic, 2).await;
    let seen: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.key.clone().unwrap_or_default(),
                r.header("bridge-user").unwrap_or_default().to_owned(),
                r.header("bridge-roles").unwrap_or_default().to_owned(),
                r.header("bridge-claim-customers").map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "C-5".into(),
                "A-1".into(),
                "staff".into(),
                Some(r#"["C-5","C-8"]"#.into())
            ),
            ("C-9".into(), "S-1".into(), "supervisor".into(), None),
        ]
    );
    bridge.stop().await;
}

/// Everything every test of this binary logs, at debug level.
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        struct Capture;
        impl Write for Capture {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                captured_logs().lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(|| Capture)
            .try_init();
        Mutex::new(Vec::new())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_and_tokens_never_appear_in_the_logs() {
    captured_logs();
    let topic = create_topic("logs", 1).await;
    let bridge = TestBridge::start(&balances_config(&topic).replace(
        "channels:",
        &format!("inbound:\n  - {{channel: c, topic: {topic}}}\nchannels:"),
    ))
    .await;
    let good = token("C-1", &[]);
    let mut bad_claims = claims("C-1", &[]);
    bad_claims["exp"] = json!(now() - 100);
    let expired = sign(&bad_claims);
    let mut client = open(&bridge, Some(&good), false, None).await.unwrap();
    client.subscribe("balances", None).await;
    client
        .send(json!({"type": "publish", "id": "p", "channel": "c", "data": {"secret-payload": 1}}))
        .await;
    client.expect("ack").await;
    assert!(open(&bridge, Some(&expired), true, None).await.is_err());
    assert!(open(&bridge, Some("garbage.token.here"), false, None)
        .await
        .is_err());
    drop(client);
    bridge.stop().await;
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(
        logs.contains("session opened"),
        "logs were captured: {} bytes",
        logs.len()
    );
    for (what, needle) in [
        ("secret", SECRET),
        ("valid token", good.as_str()),
        ("expired token", expired.as_str()),
        ("payload", "secret-payload"),
    ] {
        assert!(!logs.contains(needle), "the {what} appears in the logs");
    }
    // Not even the signature part of a token.
    let signature = good.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature));
}
