//! Identity from a real Keycloak (`scripts/keycloak/keycloak.sh`, one per test process, a realm
//! per test) and a real Kafka: the Keycloak walk-through of docs/auth.md, read from the page
//! itself — its realm (a public client with direct access grants, an audience mapper, realm
//! roles, users), its bridge config (discovery, `preferred_username`, `realm_access.roles`) and
//! its key provider — so that the page says what was tested. Tokens come from Keycloak's token
//! endpoint (password and refresh_token grants). Also `auth.jwt.ca_file`, against a Keycloak of
//! its own over HTTPS with a certificate from a CA the test makes.

mod common;

use common::keycloak::{http_client, keycloak_url, OwnKeycloak, Realm, Tokens};
use common::{create_topic, http_get, wait_for, TempDir, TestBridge, TestProducer, DEADLINE};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The public client of the walk-through's realm.
const CLIENT: &str = "bridge-web";
/// `auth.jwt.leeway_seconds` of the walk-through's config (the default).
const LEEWAY_S: u64 = 30;

/// The realm roles a token carries (`realm_access.roles`), sorted; none when the claim is absent.
fn realm_roles(tokens: &Tokens) -> Vec<String> {
    let claims = common::keycloak::claims(&tokens.access);
    let mut roles: Vec<String> = claims["realm_access"]["roles"]
        .as_array()
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    roles
}

/// The walk-through's blocks, in the order the page shows them.
struct Walkthrough {
    /// The realm representation (`bank-realm.json`).
    realm: String,
    /// The bridge's `auth` and `channels`.
    bridge: String,
    /// The key provider added for the rotation.
    key_provider: String,
}

/// Reads the fenced blocks of the section `### Keycloak walk-through` of docs/auth.md: the
/// first `json` block is the realm, the second the key provider, the first `yaml` block the
/// bridge's config. Blocks sit in a list item: their fence's indentation is taken off each line.
fn walkthrough() -> Walkthrough {
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/auth.md"),
    )
    .expect("docs/auth.md");
    let start = page
        .find("### Keycloak walk-through")
        .expect("docs/auth.md has a section `### Keycloak walk-through`");
    let section = &page[start + 3..];
    let section = &section[..section.find("\n### ").unwrap_or(section.len())];
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut open: Option<(String, usize, String)> = None;
    for line in section.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match open.take() {
            None => {
                if let Some(lang) = trimmed.strip_prefix("```") {
                    open = Some((lang.to_owned(), indent, String::new()));
                }
            }
            Some((lang, indent, text)) if trimmed == "```" => {
                let _ = indent;
                blocks.push((lang, text));
            }
            Some((lang, indent, mut text)) => {
                text.push_str(line.get(indent..).unwrap_or("").trim_end());
                text.push('\n');
                open = Some((lang, indent, text));
            }
        }
    }
    let of = |lang: &str| -> Vec<String> {
        blocks
            .iter()
            .filter(|(l, _)| l == lang)
            .map(|(_, text)| text.clone())
            .collect()
    };
    let (json_blocks, yaml_blocks) = (of("json"), of("yaml"));
    assert!(
        json_blocks.len() == 2 && yaml_blocks.len() == 1,
        "the Keycloak walk-through of docs/auth.md shows a realm and a key provider (json) and the bridge's config (yaml); found {} json and {} yaml blocks",
        json_blocks.len(),
        yaml_blocks.len()
    );
    Walkthrough {
        realm: json_blocks[0].clone(),
        bridge: yaml_blocks[0].clone(),
        key_provider: json_blocks[1].clone(),
    }
}

/// `text` with each `(from, to)` replaced; fails when the page no longer has `from`, so that the
/// page and the test cannot drift apart silently.
fn replaced(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut text = text.to_owned();
    for (from, to) in pairs {
        assert!(
            text.contains(from),
            "the walk-through of docs/auth.md no longer has `{from}`:\n{text}"
        );
        text = text.replace(from, to);
    }
    text
}

/// One test's world: its realm (made from the page's), its topics and a bridge configured as
/// the page says.
struct World {
    realm: Realm,
    balances: String,
    alerts: String,
    bridge: TestBridge,
}

impl World {
    /// The page's realm under a name of its own, in the Keycloak at `base` (reached with
    /// `http`), and a bridge with the page's config (plus `extra_jwt` lines under `jwt:`).
    async fn new(base: &str, http: reqwest::Client, extra_jwt: &str) -> World {
        let page = walkthrough();
        let name = format!("bank-{}", common::random_suffix());
        let representation: Value = serde_json::from_str(&replaced(
            &page.realm,
            &[("\"bank\"", &format!("\"{name}\""))],
        ))
        .expect("the walk-through's realm is JSON");
        let realm = Realm::create(base, &representation, http).await;
        let balances = create_topic("kc-balances", 1).await;
        let alerts = create_topic("kc-alerts", 1).await;
        let config = replaced(
            &page.bridge,
            &[
                ("http://localhost:8180/realms/bank", &realm.issuer()),
                ("account-balances", &balances),
                ("risk-alerts", &alerts),
                (
                    "    audience: bridge\n",
                    &format!("    audience: bridge\n{extra_jwt}"),
                ),
            ],
        );
        let bridge = TestBridge::launch_text(&common::config_text(&config)).await;
        World {
            realm,
            balances,
            alerts,
            bridge,
        }
    }

    async fn tokens(&self, user: &str) -> Tokens {
        self.realm
            .password_grant(CLIENT, user, &format!("{user}-password"))
            .await
    }

    async fn stop(self) {
        self.bridge.stop().await;
        self.realm.delete().await;
    }
}

/// Opens a session with `token`; `Err((status, body))` when the handshake is refused.
async fn open(bridge: &TestBridge, token: &str) -> Result<common::Client, (u16, String)> {
    let mut request = bridge.ws_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(common::Client::welcome(ws).await),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err((
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Err(e) => panic!("handshake failed unexpectedly: {e}"),
    }
}

/// Sends `subscribe` and returns the answer (`subscribed` or `error`).
async fn subscribe(
    client: &mut common::Client,
    id: &str,
    channel: &str,
    key: Option<&str>,
) -> Value {
    let mut frame = json!({"type": "subscribe", "id": id, "channel": channel});
    if let Some(key) = key {
        frame["key"] = key.into();
    }
    client.send(frame).await;
    let answer = client.recv().await;
    assert_eq!(answer["id"], id, "{answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_keycloaks_keys_and_a_password_grant_token_opens_a_session() {
    let base = keycloak_url().await;
    let world = World::new(&base, http_client(None), "").await;
    world.bridge.wait_ready().await;
    let (status, body) = http_get(world.bridge.metrics_addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!(
            "1 signing keys from {}/protocol/openid-connect/certs",
            world.realm.issuer()
        )),
        "the key set named by discovery, its encryption key skipped: {body}"
    );
    let tokens = world.tokens("alice").await;
    let claims = common::keycloak::claims(&tokens.access);
    assert_eq!(claims["iss"], world.realm.issuer().as_str(), "{claims}");
    let alice = open(&world.bridge, &tokens.access)
        .await
        .expect("Keycloak's access token is accepted");
    assert_eq!(alice.user, "alice", "user_claim: preferred_username");
    // A token of another realm of the same Keycloak (the admin's, master) is refused: each
    // realm signs with keys of its own, and this realm's set does not hold them.
    let master = world.master_token().await;
    let (status, body) = open(&world.bridge, &master)
        .await
        .err()
        .expect("another realm's token is refused");
    assert_eq!(status, 401);
    let kid = jsonwebtoken::decode_header(&master).unwrap().kid.unwrap();
    assert!(
        body.contains(&format!("token signed with an unknown key (kid `{kid}`)")),
        "{body}"
    );
    world.stop().await;
}

impl World {
    /// An access token of the master realm (the admin's): right Keycloak, wrong realm.
    async fn master_token(&self) -> String {
        let response: Value = http_client(None)
            .post(format!(
                "{}/realms/master/protocol/openid-connect/token",
                self.realm.base
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", "admin"),
                ("password", "admin"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["access_token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realm_roles_in_realm_access_gate_channels_and_keys() {
    let base = keycloak_url().await;
    let world = World::new(&base, http_client(None), "").await;
    world.bridge.wait_ready().await;
    let alice_tokens = world.tokens("alice").await;
    assert_eq!(
        realm_roles(&alice_tokens),
        Vec::<String>::new(),
        "users imported with a realm get only the roles it lists: alice none"
    );
    let mut alice = open(&world.bridge, &alice_tokens.access).await.unwrap();
    assert_eq!(
        subscribe(&mut alice, "own", "balances", None).await["type"],
        "subscribed"
    );
    let refused = subscribe(&mut alice, "bob", "balances", Some("bob")).await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{refused}"
    );
    let refused = subscribe(&mut alice, "alerts", "alerts", None).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let sam_tokens = world.tokens("sam").await;
    assert_eq!(realm_roles(&sam_tokens), ["staff", "supervisor"]);
    let mut sam = open(&world.bridge, &sam_tokens.access).await.unwrap();
    assert_eq!(
        subscribe(&mut sam, "alice", "balances", Some("alice")).await["type"],
        "subscribed",
        "any_key_roles: [supervisor]"
    );
    assert_eq!(
        subscribe(&mut sam, "alerts", "alerts", None).await["type"],
        "subscribed",
        "allow: {{roles: [supervisor]}}"
    );
    let producer = TestProducer::new();
    producer
        .send(
            &world.balances,
            None,
            Some("alice"),
            br#"{"balance": 10}"#,
            &[],
        )
        .await;
    producer
        .send(&world.alerts, None, None, br#"{"alert": "limit"}"#, &[])
        .await;
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..2 {
        let message = sam.expect("message").await;
        seen.push(message["channel"].as_str().unwrap().to_owned());
    }
    seen.sort();
    assert_eq!(seen, ["alerts", "balances"]);
    let message = alice.expect("message").await;
    assert_eq!(
        (message["channel"].as_str(), message["key"].as_str()),
        (Some("balances"), Some("alice"))
    );
    assert_eq!(alice.drain_until_pong().await, Vec::<Value>::new());
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_provider_added_with_a_higher_priority_is_used_without_restarting_the_bridge() {
    let base = keycloak_url().await;
    let world = World::new(&base, http_client(None), "").await;
    world.bridge.wait_ready().await;
    let before = world.tokens("alice").await;
    let mut first = open(&world.bridge, &before.access).await.unwrap();
    world
        .realm
        .add_component(&serde_json::from_str(&walkthrough().key_provider).unwrap())
        .await;
    let active = world.realm.active_rs256_kid().await;
    assert_ne!(
        active,
        before.kid(),
        "the new provider's key is the active one"
    );
    let after = world.tokens("alice").await;
    assert_eq!(
        after.kid(),
        active,
        "new tokens are signed with the new key"
    );
    // The unknown kid causes one fetch of the key set, at most every 10 s since the last one.
    let rotated = wait_for("a token of the new key accepted", DEADLINE, async || {
        open(&world.bridge, &after.access)
            .await
            .map_err(|(status, body)| format!("{status} {body}"))
    })
    .await;
    assert_eq!(rotated.user, "alice");
    assert_eq!(
        world.bridge.metric("kafka_ws_bridge_jwks_keys").await,
        2.0,
        "both keys published and cached"
    );
    // The session of the old key goes on, and the old key still opens sessions.
    assert_eq!(first.drain_until_pong().await, Vec::<Value>::new());
    open(&world.bridge, &before.access)
        .await
        .expect("the old key is still published");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_grant_refreshes_the_session_in_band_and_a_removed_role_ends_its_subscription(
) {
    let base = keycloak_url().await;
    let world = World::new(&base, http_client(None), "").await;
    world.bridge.wait_ready().await;
    let first = world.tokens("sam").await;
    let mut sam = open(&world.bridge, &first.access).await.unwrap();
    assert_eq!(
        subscribe(&mut sam, "sub-alerts", "alerts", None).await["type"],
        "subscribed"
    );
    assert_eq!(
        subscribe(&mut sam, "sub-own", "balances", None).await["type"],
        "subscribed"
    );
    let second = world.realm.refresh_grant(CLIENT, &first).await;
    assert_ne!(second.access, first.access);
    sam.send(json!({"type": "refresh", "id": "r1", "token": second.access}))
        .await;
    let refreshed = sam.expect("refreshed").await;
    assert_eq!(refreshed["id"], "r1");
    assert_eq!(
        refreshed["expires_at"],
        (second.exp() + LEEWAY_S) * 1000,
        "the new token's exp plus the leeway: {refreshed}"
    );
    // Another user's token is refused, and the session goes on with sam's.
    let alice = world.tokens("alice").await;
    sam.send(json!({"type": "refresh", "id": "r2", "token": alice.access}))
        .await;
    let error = sam.expect("error").await;
    assert_eq!(
        (error["id"].as_str(), error["code"].as_str()),
        (Some("r2"), Some("forbidden"))
    );
    // Keycloak takes the supervisor role away: the next refreshed token lacks it, and the
    // subscription it allowed ends, named by its subscribe's id.
    world.realm.remove_realm_role("sam", "supervisor").await;
    let third = world.realm.refresh_grant(CLIENT, &second).await;
    assert_eq!(realm_roles(&third), ["staff"]);
    sam.send(json!({"type": "refresh", "id": "r3", "token": third.access}))
        .await;
    assert_eq!(
        sam.expect("unsubscribed").await,
        json!({"type": "unsubscribed", "id": "sub-alerts", "channel": "alerts", "reason": "forbidden"})
    );
    assert_eq!(sam.expect("refreshed").await["id"], "r3");
    let producer = TestProducer::new();
    producer
        .send(&world.alerts, None, None, br#"{"alert": "limit"}"#, &[])
        .await;
    producer
        .send(
            &world.balances,
            None,
            Some("sam"),
            br#"{"balance": 1}"#,
            &[],
        )
        .await;
    let message = sam.expect("message").await;
    assert_eq!(
        message["channel"], "balances",
        "no alert after the role went: {message}"
    );
    assert_eq!(sam.drain_until_pong().await, Vec::<Value>::new());
    world.stop().await;
}

/// A CA and a certificate it signs for 127.0.0.1 (and localhost), as PEM: (CA, leaf, leaf key).
fn private_ca() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kafka-ws-bridge test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_over_https_with_a_private_ca_is_trusted_only_with_ca_file() {
    let dir = TempDir::new("kc-tls");
    let (ca, leaf, key) = private_ca();
    let (ca_file, cert_file, key_file) = (
        dir.path.join("ca.pem"),
        dir.path.join("keycloak.pem"),
        dir.path.join("keycloak-key.pem"),
    );
    std::fs::write(&ca_file, &ca).unwrap();
    std::fs::write(&cert_file, &leaf).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    let keycloak = OwnKeycloak::start_https(&cert_file, &key_file);
    assert!(
        keycloak.url.starts_with("https://127.0.0.1:"),
        "{}",
        keycloak.url
    );
    // Without ca_file: the fetch fails on the certificate, and /readyz says what to do.
    let untrusting = World::new(&keycloak.url, http_client(Some(ca.as_bytes())), "").await;
    let body = wait_for(
        "readyz naming the untrusted certificate",
        DEADLINE,
        async || match http_get(untrusting.bridge.metrics_addr, "/readyz").await {
            (503, body) if body.contains("UnknownIssuer") => Ok(body),
            (status, body) => Err(format!("{status} {body}")),
        },
    )
    .await;
    assert!(
        body.contains("not signed by a trusted CA") && body.contains("auth.jwt.ca_file"),
        "{body}"
    );
    let tokens = untrusting.tokens("alice").await;
    let (status, refusal) = open(&untrusting.bridge, &tokens.access)
        .await
        .err()
        .expect("no keys, no session");
    assert_eq!(status, 401);
    assert!(refusal.contains("unknown key"), "{refusal}");
    untrusting.stop().await;
    // With it: ready, and Keycloak's tokens open sessions.
    let trusting = World::new(
        &keycloak.url,
        http_client(Some(ca.as_bytes())),
        &format!("    ca_file: '{}'\n", ca_file.display()),
    )
    .await;
    trusting.bridge.wait_ready().await;
    let (_, body) = http_get(trusting.bridge.metrics_addr, "/readyz").await;
    assert!(
        body.contains(&format!("1 signing keys from {}/realms/", keycloak.url)),
        "{body}\n{}",
        keycloak
            .log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let tokens = trusting.tokens("alice").await;
    let alice = open(&trusting.bridge, &tokens.access).await.unwrap();
    assert_eq!(alice.user, "alice");
    trusting.stop().await;
}
