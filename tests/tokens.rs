//! Hostile tokens signed with the trusted key, against a real broker and bridge: times that
//! overflow a clock (`exp` = 2^63, 1e19, u64::MAX), claims of the wrong type and an `iss` array
//! are refused with a reason — 401 at the WebSocket handshake and for a Server-Sent Events
//! stream, `unauthorized` for an in-band refresh, after which the session carries on — and never
//! panic a session or leave the session gauge wrong. A property test throws arbitrary claim
//! shapes at all three paths.

mod common;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{create_topic, Client, TestBridge, DEADLINE};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const SECRET: &str = "test-secret-for-hs256-0123456789abcdef";
const ISSUER: &str = "https://id.bank.example";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn good_claims() -> Map<String, Value> {
    json!({"sub": "C-1", "iss": ISSUER, "exp": now() + 600, "iat": now()})
        .as_object()
        .unwrap()
        .clone()
}

fn sign(claims: &Map<String, Value>) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Good claims with `name` set to `value`.
fn with(name: &str, value: Value) -> String {
    let mut claims = good_claims();
    claims.insert(name.into(), value);
    sign(&claims)
}

async fn bridge() -> (TestBridge, String) {
    let topic = create_topic("tokens", 1).await;
    let bridge = TestBridge::start(&format!(
        "auth:\n  mode: jwt\n  jwt: {{algorithms: [HS256], secret: \"{SECRET}\", issuer: \"{ISSUER}\", leeway_seconds: 30}}\nchannels:\n  - {{name: feed, topic: {topic}, subscribe: {{allow: authenticated}}}}\n"
    ))
    .await;
    (bridge, topic)
}

/// The WebSocket handshake: `Ok` with the session past its `welcome`, or the refusal's status
/// and body. A connection that drops without either fails the test.
async fn handshake(bridge: &TestBridge, token: &str) -> Result<Client, (u16, String)> {
    let mut request = bridge.ws_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Client::welcome(ws).await),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err((
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Err(e) => panic!("handshake neither accepted nor refused: {e}"),
    }
}

/// Opens `GET /sse?channel=feed&access_token=…` and returns the status and, for a refusal, the
/// body. No answer at all fails the test.
async fn sse(addr: SocketAddr, token: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET /sse?channel=feed&access_token={token} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    tokio::time::timeout(DEADLINE, reader.read_line(&mut status))
        .await
        .expect("an answer before the deadline")
        .unwrap();
    let code: u16 = status
        .split(' ')
        .nth(1)
        .unwrap_or_else(|| panic!("no HTTP answer to the SSE request: {status:?}"))
        .parse()
        .unwrap();
    if code == 200 {
        return (code, String::new());
    }
    let mut rest = String::new();
    tokio::time::timeout(DEADLINE, reader.read_to_string(&mut rest))
        .await
        .expect("the refusal's body before the deadline")
        .unwrap();
    let body = rest.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (code, body)
}

/// Sends `refresh` with `token`; the answer (`refreshed` or `error`).
async fn refresh(client: &mut Client, id: &str, token: &str) -> Value {
    client
        .send(json!({"type": "refresh", "id": id, "token": token}))
        .await;
    loop {
        let frame = client.recv().await;
        if frame["id"] == id {
            return frame;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_times_and_an_iss_array_are_refused_on_every_path_without_a_panic() {
    let (bridge, _) = bridge().await;
    let invalid_exp = "invalid `exp` claim";
    let cases: Vec<(&str, String, &str)> = vec![
        ("exp 2^63", with("exp", json!(1u64 << 63)), invalid_exp),
        ("exp 1e19", with("exp", json!(1e19)), invalid_exp),
        ("exp u64::MAX", with("exp", json!(u64::MAX)), invalid_exp),
        ("exp 2^62", with("exp", json!(1u64 << 62)), invalid_exp),
        (
            "exp year 10000",
            with("exp", json!(253_402_300_800u64)),
            invalid_exp,
        ),
        ("exp a string", with("exp", json!("soon")), invalid_exp),
        ("exp negative", with("exp", json!(-5)), invalid_exp),
        (
            "iat an array",
            with("iat", json!([])),
            "invalid `iat` claim",
        ),
        ("nbf 2^63", with("nbf", json!(1u64 << 63)), "nbf"),
        (
            "iss an array holding the issuer",
            with("iss", json!(["https://evil.example", ISSUER])),
            "wrong token issuer",
        ),
        ("iss a number", with("iss", json!(7)), "wrong token issuer"),
    ];
    // The session that receives every bad refresh, and must carry on.
    let mut live = handshake(&bridge, &sign(&good_claims()))
        .await
        .expect("a good token opens a session");
    live.send(json!({"type": "subscribe", "id": "s", "channel": "feed"}))
        .await;
    live.expect("subscribed").await;
    for (n, (case, token, reason)) in cases.iter().enumerate() {
        let (status, body) = handshake(&bridge, token)
            .await
            .err()
            .unwrap_or_else(|| panic!("{case}: accepted at the handshake"));
        assert_eq!(status, 401, "{case}: {body}");
        assert!(body.contains(reason), "{case}: {body}");
        let (status, body) = sse(bridge.ws_addr, token).await;
        assert_eq!(status, 401, "{case} over SSE: {body}");
        assert!(body.contains(reason), "{case} over SSE: {body}");
        let answer = refresh(&mut live, &format!("r{n}"), token).await;
        assert_eq!(answer["type"], "error", "{case}: {answer}");
        assert_eq!(answer["code"], "unauthorized", "{case}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(reason),
            "{case}: {answer}"
        );
    }
    assert_eq!(live.drain_until_pong().await, Vec::<Value>::new());
    // A fractional `exp` (RFC 7519 allows one) is a real expiry, not none at all.
    let exp = now() + 300;
    let answer = refresh(&mut live, "frac", &with("exp", json!(exp as f64 + 0.5))).await;
    assert_eq!(answer["type"], "refreshed", "{answer}");
    assert_eq!(answer["expires_at"], json!((exp + 30) * 1000), "{answer}");
    let gauge = "kafka_ws_bridge_sessions_open{transport=\"websocket\"}";
    assert_eq!(bridge.metric(gauge).await, 1.0);
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_sessions_closed_total{reason=\"panic\"}")
            .await,
        0.0
    );
    drop(live);
    common::wait_for("the gauge back to 0", DEADLINE, async || {
        match bridge.metric(gauge).await {
            0.0 => Ok(()),
            n => Err(n),
        }
    })
    .await;
    bridge.stop().await;
}

/// A claim value of any JSON shape, with the numbers that break clocks well represented.
fn any_claim() -> impl Strategy<Value = Option<Value>> {
    let number = prop_oneof![
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        (0u64..4_000_000_000).prop_map(|n| json!(n)),
        Just(json!(1u64 << 63)),
        Just(json!(u64::MAX)),
    ];
    let other = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        "[a-z0-9 ]{0,12}".prop_map(Value::String),
        Just(json!([])),
        Just(json!({"exp": 1})),
    ];
    proptest::option::weighted(0.8, prop_oneof![3 => number, 1 => other])
}

fn any_iss() -> impl Strategy<Value = Option<Value>> {
    proptest::option::weighted(
        0.9,
        prop_oneof![
            Just(json!(ISSUER)),
            Just(json!("https://evil.example")),
            Just(json!([ISSUER])),
            Just(json!(["https://evil.example", ISSUER])),
            Just(json!(42)),
            Just(Value::Null),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    // One bridge for every case (started lazily on a runtime of the test's own).
    #[test]
    fn any_claims_get_a_session_or_a_refusal_never_a_panic(
        exp in any_claim(), nbf in any_claim(), iat in any_claim(), iss in any_iss(),
        aud in proptest::option::of(prop_oneof![Just(json!("bridge")), Just(json!(["bridge", "x"])), Just(json!(3))]),
    ) {
        let mut claims = Map::new();
        claims.insert("sub".into(), json!("C-9"));
        for (name, value) in [("exp", exp), ("nbf", nbf), ("iat", iat), ("iss", iss), ("aud", aud)] {
            if let Some(value) = value {
                claims.insert(name.into(), value);
            }
        }
        let token = sign(&claims);
        let shared = shared();
        shared.runtime.block_on(async {
            let bridge = &shared.bridge;
            let opened = match handshake(bridge, &token).await {
                Ok(mut client) => {
                    // A session that opened must work: a ping answered.
                    client.drain_until_pong().await;
                    true
                }
                Err((status, body)) => {
                    assert_eq!(status, 401, "{claims:?}: {body}");
                    false
                }
            };
            let (status, body) = sse(bridge.ws_addr, &token).await;
            assert!(status == 200 || status == 401, "{claims:?}: SSE {status} {body}");
            assert_eq!(status == 200, opened, "{claims:?}: SSE and WebSocket disagree: {body}");
            let mut live = handshake(bridge, &sign(&good_claims())).await.expect("good token");
            let answer = refresh(&mut live, "r", &token).await;
            match answer["type"].as_str() {
                Some("refreshed") => assert!(opened, "{claims:?}: refresh accepted a token the handshake refused"),
                Some("error") => assert_eq!(answer["code"], "unauthorized", "{claims:?}: {answer}"),
                _ => panic!("{claims:?}: {answer}"),
            }
            // The session carries on either way, and no session anywhere panicked.
            live.drain_until_pong().await;
            assert_eq!(
                bridge.metric("kafka_ws_bridge_sessions_closed_total{reason=\"panic\"}").await,
                0.0,
                "{claims:?}"
            );
        });
    }
}

struct Shared {
    runtime: tokio::runtime::Runtime,
    bridge: TestBridge,
}

fn shared() -> &'static Shared {
    static SHARED: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = common::client_runtime();
        let (bridge, _) = runtime.block_on(bridge());
        Shared { runtime, bridge }
    })
}
