//! In-band token refresh (the `refresh` request on an open session), against a real broker and
//! bridge: `token_expiring` before `exp`, `refresh` answered with `refreshed` (the session then outlives its first
//! token) or with `error` (`unauthorized`, `forbidden` for another user), and permissions
//! re-evaluated on the new token.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{create_topic, wait_until, Client, TestBridge, TestProducer, DEADLINE};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const SECRET: &str = "test-secret-for-hs256-0123456789abcdef";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token for `sub` with `roles`, valid `seconds` from now.
fn token(sub: &str, roles: &[&str], seconds: u64) -> (String, u64) {
    let exp = now() + seconds;
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "roles": roles, "exp": exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    (token, exp)
}

fn auth(warning_s: u64) -> String {
    format!(
        "auth:\n  mode: jwt\n  refresh_warning_s: {warning_s}\n  jwt: {{algorithms: [HS256], secret: \"{SECRET}\", leeway_seconds: 0}}\n"
    )
}

async fn open(bridge: &TestBridge, token: &str) -> Client {
    let mut request = bridge.ws_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("token accepted");
    Client::welcome(ws).await
}

/// The session still answers (a ping gets its pong), and nothing else was queued before it.
async fn alive(client: &mut Client) -> Vec<Value> {
    client.drain_until_pong().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiring_then_refresh_keeps_the_session_past_the_first_exp() {
    let bridge = TestBridge::start(&auth(2)).await;
    let (first, exp) = token("C-1", &[], 4);
    let mut client = open(&bridge, &first).await;
    let warning = client.expect("token_expiring").await;
    assert_eq!(warning["expires_at"], exp * 1000, "{warning}");
    assert!(
        now() + 3 >= exp,
        "token_expiring comes refresh_warning_s (2 s) before exp, not earlier"
    );
    let (second, second_exp) = token("C-1", &[], 600);
    client
        .send(json!({"type": "refresh", "id": "r1", "token": second}))
        .await;
    let refreshed = client.expect("refreshed").await;
    assert_eq!(refreshed["id"], "r1");
    assert_eq!(refreshed["expires_at"], second_exp * 1000);
    wait_until("the first token's exp passed", DEADLINE, async || {
        now() > exp + 1
    })
    .await;
    assert_eq!(alive(&mut client).await, Vec::<Value>::new());
    assert_eq!(
        bridge
            .metric("kafka_ws_bridge_sessions_closed_total{reason=\"token_expired\"}")
            .await,
        0.0
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_with_a_bad_token_or_another_users_token_is_refused_and_the_session_goes_on() {
    let bridge = TestBridge::start(&auth(60)).await;
    let (first, _) = token("C-1", &[], 600);
    let mut client = open(&bridge, &first).await;
    let (other, _) = token("C-2", &[], 600);
    client
        .send(json!({"type": "refresh", "id": "r1", "token": other}))
        .await;
    let error = client.expect("error").await;
    assert_eq!(error["id"], "r1");
    assert_eq!(error["code"], "forbidden", "{error}");
    assert!(error["message"].as_str().unwrap().contains("another user"));
    client
        .send(json!({"type": "refresh", "id": "r2", "token": "not.a.jwt"}))
        .await;
    let error = client.expect("error").await;
    assert_eq!(
        (&error["id"], &error["code"]),
        (&json!("r2"), &json!("unauthorized"))
    );
    let (expired, _) = {
        let exp = now() - 10;
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "C-1", "exp": exp}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        (token, exp)
    };
    client
        .send(json!({"type": "refresh", "id": "r3", "token": expired}))
        .await;
    let error = client.expect("error").await;
    assert_eq!(error["code"], "unauthorized", "{error}");
    client.send(json!({"type": "refresh", "id": "r4"})).await;
    let error = client.expect("error").await;
    assert_eq!(error["code"], "bad_request", "{error}");
    assert_eq!(error["message"], "missing field `token` (the new JWT)");
    assert_eq!(alive(&mut client).await, Vec::<Value>::new());
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_removed_by_the_new_token_ends_only_the_subscriptions_it_allowed() {
    let topic = create_topic("refresh", 1).await;
    let bridge = TestBridge::start(&format!(
        "{}{}",
        auth(60),
        common::fixture("jwt_balances.yaml", &[("TOPIC", &topic)])
    ))
    .await;
    let (staff, _) = token("S-1", &["staff"], 600);
    let mut client = open(&bridge, &staff).await;
    // Two subscriptions of one channel, told apart by their subscribe ids (a number is an id
    // too: ids are echoed as sent).
    for (id, key) in [(json!("sub-c2"), "C-2"), (json!(7), "S-1")] {
        client
            .send(json!({"type": "subscribe", "id": id, "channel": "balances", "key": key}))
            .await;
        assert_eq!(client.expect("subscribed").await["id"], id);
    }
    let (demoted, _) = token("S-1", &[], 600);
    client
        .send(json!({"type": "refresh", "id": "r1", "token": demoted}))
        .await;
    let ended = client.expect("unsubscribed").await;
    assert_eq!(
        ended,
        json!({"type": "unsubscribed", "id": "sub-c2", "channel": "balances", "key": "C-2", "reason": "forbidden"}),
        "the subscription is named by the id of the subscribe that made it"
    );
    client.expect("refreshed").await;
    let producer = TestProducer::new();
    producer
        .send(&topic, None, Some("C-2"), br#"{"balance": 2}"#, &[])
        .await;
    producer
        .send(&topic, None, Some("S-1"), br#"{"balance": 1}"#, &[])
        .await;
    let message = client.expect("message").await;
    assert_eq!(
        message["key"], "S-1",
        "only the subscription still allowed delivers: {message}"
    );
    assert_eq!(alive(&mut client).await, Vec::<Value>::new());
    // Subscribing again is refused as for any session without the role.
    client
        .send(json!({"type": "subscribe", "id": "again", "channel": "balances", "key": "C-2"}))
        .await;
    assert_eq!(client.expect("error").await["code"], "forbidden");
    bridge.stop().await;
}

/// A session's `subscribe.where` subscriptions are indexed by its claim's value: a refresh whose
/// token gives that claim another value (another tenant) is refused `forbidden`, and the
/// session keeps getting its own tenant's records only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_would_move_a_where_scoped_session_to_another_tenant_is_forbidden() {
    let topic = create_topic("refresh-where", 1).await;
    let bridge = TestBridge::start(&format!(
        "{}channels:\n  - {{name: orders, topic: {topic}, subscribe: {{allow: authenticated, where: {{pointer: /tenant, equals_claim: tenant}}}}}}\n",
        auth(0)
    ))
    .await;
    let tenant_token = |tenant: &str| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "u-1", "tenant": tenant, "exp": now() + 600}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let mut client = open(&bridge, &tenant_token("acme")).await;
    client.subscribe("orders", None).await;
    client
        .send(json!({"type": "refresh", "id": "r1", "token": tenant_token("globex")}))
        .await;
    let error = client.expect("error").await;
    assert_eq!(
        (error["id"].as_str(), error["code"].as_str()),
        (Some("r1"), Some("forbidden")),
        "{error}"
    );
    let producer = TestProducer::new();
    producer
        .send(&topic, None, None, br#"{"tenant": "globex", "n": 1}"#, &[])
        .await;
    producer
        .send(&topic, None, None, br#"{"tenant": "acme", "n": 2}"#, &[])
        .await;
    let message = client.expect("message").await;
    assert_eq!(message["data"]["n"], 2, "only acme's record: {message}");
    // The same tenant in a fresh token is a plain refresh.
    client
        .send(json!({"type": "refresh", "id": "r2", "token": tenant_token("acme")}))
        .await;
    assert_eq!(client.expect("refreshed").await["id"], "r2");
}
