//! Identity from a real OpenID provider (the zitadel/oidc example OP, built and cached by
//! `scripts/oidc/provider.sh`): OpenID Connect discovery, the JWKS cached by `kid`, rotation
//! (the provider signs with a new key after each restart), an outage of the provider, the
//! rate limit on fetches caused by unknown `kid`s, and readiness without keys. Tokens are real
//! ID tokens obtained by logging a static user in through the provider's own login form.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{free_port, http_get, wait_for, TempDir, TestBridge, DEADLINE};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Where the provider sends the browser after login; never visited, only read.
const REDIRECT: &str = "http://127.0.0.1/callback";

/// A running OpenID provider on a port of its own.
struct Provider {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    /// Log files of earlier runs (a restart starts a new one), for counting requests.
    runs: usize,
}

impl Provider {
    async fn start() -> Provider {
        let mut provider = Provider {
            child: None,
            port: 0,
            dir: TempDir::new("oidc"),
            runs: 0,
        };
        // A free port can be taken by another test's listener before the provider binds it:
        // then the provider exits, and another port is tried.
        for _ in 0..5 {
            provider.port = free_port();
            if provider.spawn().await {
                return provider;
            }
        }
        panic!("the OpenID provider did not start on any of 5 ports");
    }

    fn binary() -> String {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oidc/provider.sh");
        let out = Command::new(&script)
            .arg("path")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/oidc/provider.sh");
        assert!(out.status.success(), "scripts/oidc/provider.sh path failed");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Starts the provider on `self.port`; false when it exited (the port was taken).
    async fn spawn(&mut self) -> bool {
        let started = std::time::Instant::now();
        self.runs += 1;
        let log_path = self.dir.path.join(format!("run{}.log", self.runs));
        let log = std::fs::File::create(&log_path).unwrap();
        let users = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/users.json");
        let child = Command::new(Self::binary())
            .env("PORT", self.port.to_string())
            .env("USERS_FILE", users)
            .env("REDIRECT_URI", REDIRECT)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the OpenID provider");
        self.child = Some(child);
        let (addr, issuer) = (self.addr(), self.issuer());
        let child = self.child.as_mut().unwrap();
        // Up when its discovery document names it; gone when the process exited.
        let up = wait_for("the OpenID provider up", DEADLINE, async || {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok(Err(status));
            }
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return Err("not listening yet".to_owned());
            }
            match http_get(addr, "/.well-known/openid-configuration").await {
                (200, body) if body.contains(&format!("\"issuer\":\"{issuer}\"")) => Ok(Ok(())),
                (status, body) => Err(format!("{status} {body}")),
            }
        })
        .await;
        match up {
            Ok(()) => {
                eprintln!("OpenID provider up in {:?}", started.elapsed());
                true
            }
            Err(status) => {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                eprintln!(
                    "OpenID provider exited ({status}) on port {}: {log}",
                    self.port
                );
                self.child = None;
                false
            }
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn issuer(&self) -> String {
        format!("http://localhost:{}/", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stopped and started again on the same port: it signs with a new key from then on.
    async fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn().await,
            "the OpenID provider restarts on its port"
        );
    }

    /// Requests for the key set this provider has answered, over all its runs.
    fn key_set_requests(&self) -> usize {
        (1..=self.runs)
            .map(|run| {
                std::fs::read_to_string(self.dir.path.join(format!("run{run}.log")))
                    .unwrap_or_default()
                    .matches("path=/keys ")
                    .count()
            })
            .sum()
    }

    /// An ID token for `user`, by the implicit flow through the provider's login form.
    async fn id_token(&self, user: &str, password: &str) -> String {
        let authorize = format!(
            "/auth?client_id=web&redirect_uri={}&response_type=id_token&scope=openid&nonce=n{}",
            REDIRECT.replace(':', "%3A").replace('/', "%2F"),
            common::random_suffix()
        );
        let login = self.location(&format!("GET {authorize}"), "").await;
        let id = login
            .split("authRequestID=")
            .nth(1)
            .expect("login page with the request id")
            .to_owned();
        let form = format!("username={user}&password={password}&id={id}");
        let callback = self.location("POST /login/username", &form).await;
        let path = callback.trim_start_matches(&self.issuer().trim_end_matches('/').to_owned());
        let back = self.location(&format!("GET {path}"), "").await;
        back.split("id_token=")
            .nth(1)
            .and_then(|rest| rest.split('&').next())
            .unwrap_or_else(|| panic!("no id_token in the redirect: {back}"))
            .to_owned()
    }

    /// The `Location` of a redirect answered to `request_line` (with a form body when given).
    async fn location(&self, request_line: &str, form: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(self.addr()).await.unwrap();
        let content = if form.is_empty() {
            String::new()
        } else {
            format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                form.len()
            )
        };
        let request = format!(
            "{request_line} HTTP/1.1\r\nHost: localhost:{}\r\n{content}Connection: close\r\n\r\n{form}",
            self.port
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(DEADLINE, stream.read_to_string(&mut response))
            .await
            .expect("provider answers")
            .unwrap();
        response
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("location")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("{request_line}: no redirect in {response}"))
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The auth section for a provider: discovery, or its `jwks_url` when `discovery` is false.
fn auth(provider: &Provider, discovery: bool, refresh_s: u64) -> String {
    let source = if discovery {
        "discovery: true".to_owned()
    } else {
        format!("jwks_url: \"http://localhost:{}/keys\"", provider.port)
    };
    format!(
        "auth:\n  mode: jwt\n  jwt: {{algorithms: [RS256, RS384, ES256], issuer: \"{}\", audience: web, {source}, jwks_refresh_s: {refresh_s}, leeway_seconds: 0}}\n",
        provider.issuer()
    )
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

/// A token the provider never signed: right issuer and audience, a key of the test's own.
fn forged(provider: &Provider, kid: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &header,
        &json!({"sub": "mallory", "iss": provider.issuer(), "aud": "web", "exp": exp}),
        &EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_the_provider_keys_and_its_tokens_open_sessions() {
    let provider = Provider::start().await;
    let bridge = TestBridge::start(&auth(&provider, true, 300)).await;
    let token = provider.id_token("alice", "alice-password").await;
    let alice = open(&bridge, &token)
        .await
        .expect("the provider's token is accepted");
    assert_eq!(alice.user, "alice");
    let (status, body) = open(&bridge, &forged(&provider, "not-published"))
        .await
        .err()
        .expect("a token signed by an unpublished key is refused");
    assert_eq!(status, 401);
    assert!(body.contains("unknown key (kid `not-published`)"), "{body}");
    // The provider's key says RS256: a token naming that key with another accepted algorithm is
    // refused before any signature check (no algorithm substitution).
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let mut header = Header::new(Algorithm::RS384);
    header.kid = Some(kid.clone());
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let substituted = jsonwebtoken::encode(
        &header,
        &json!({"sub": "alice", "iss": provider.issuer(), "aud": "web", "exp": exp}),
        &EncodingKey::from_rsa_pem(include_bytes!("fixtures/keys/rsa-private.pem")).unwrap(),
    )
    .unwrap();
    let (status, body) = open(&bridge, &substituted).await.err().expect("refused");
    assert_eq!(status, 401);
    assert!(
        body.contains(&format!(
            "token algorithm `RS384` does not match its key (kid `{kid}`)"
        )),
        "{body}"
    );
    let (status, body) = http_get(bridge.metrics_addr, "/readyz").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("1 signing keys from http://localhost"),
        "{body}"
    );
    assert!(
        bridge
            .metric("kafka_ws_bridge_jwks_fetches_total{result=\"ok\"}")
            .await
            >= 1.0
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_on_its_first_token_without_restarting_the_bridge() {
    let mut provider = Provider::start().await;
    let bridge = TestBridge::start(&auth(&provider, false, 3600)).await;
    let before = provider.id_token("alice", "alice-password").await;
    open(&bridge, &before).await.expect("the first key works");
    provider.restart().await;
    let after = provider.id_token("bob", "bob-password").await;
    assert_ne!(
        jsonwebtoken::decode_header(&before).unwrap().kid,
        jsonwebtoken::decode_header(&after).unwrap().kid,
        "the restarted provider signs with a new key"
    );
    // The new kid triggers a fetch once the 10 s since the last one have passed.
    let bob = wait_for("the rotated key accepted", DEADLINE, async || {
        open(&bridge, &after)
            .await
            .map_err(|(s, b)| format!("{s} {b}"))
    })
    .await;
    assert_eq!(bob.user, "bob");
    assert_eq!(bridge.metric("kafka_ws_bridge_jwks_keys").await, 1.0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_keys_keep_working_while_the_provider_is_down_and_readyz_says_so() {
    let mut provider = Provider::start().await;
    let bridge = TestBridge::start(&auth(&provider, true, 10)).await;
    let token = provider.id_token("alice", "alice-password").await;
    provider.stop();
    // The periodic refresh (every 10 s) fails now.
    bridge
        .wait_metric("kafka_ws_bridge_jwks_fetches_total{result=\"failed\"}", 1.0)
        .await;
    let (status, body) = http_get(bridge.metrics_addr, "/readyz").await;
    assert_eq!(status, 200, "cached keys keep the bridge ready: {body}");
    assert!(body.contains("the last refresh failed"), "{body}");
    let alice = open(&bridge, &token)
        .await
        .expect("cached key still verifies");
    assert_eq!(alice.user, "alice");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_fetches_the_key_set_at_most_once_per_10_s() {
    let provider = Provider::start().await;
    let bridge = TestBridge::start(&auth(&provider, false, 3600)).await;
    // Unknown kids as fast as the handshakes go, until one of them has caused a fetch (the
    // bridge fetched at start, so not before 10 s), then 60 more right after it.
    let started = std::time::Instant::now();
    let before = provider.key_set_requests();
    let mut sent = 0;
    wait_for("an unknown kid causing a fetch", DEADLINE, async || {
        sent += 1;
        match open(&bridge, &forged(&provider, &format!("garbage-{sent}"))).await {
            Err((401, body)) if body.contains("unknown key") => {}
            other => return Err(format!("unexpected answer: {:?}", other.map(|c| c.user))),
        }
        match provider.key_set_requests() - before {
            0 => Err("no fetch yet".to_owned()),
            _ => Ok(()),
        }
    })
    .await;
    for i in 0..60 {
        let (status, body) = open(&bridge, &forged(&provider, &format!("more-{i}")))
            .await
            .err()
            .expect("refused");
        assert_eq!(status, 401);
        assert!(body.contains("unknown key"), "{body}");
    }
    let elapsed = started.elapsed();
    let fetches = provider.key_set_requests() - before;
    eprintln!(
        "{} unknown kids in {elapsed:?}: {fetches} key set fetches at the provider",
        sent + 60
    );
    assert!(
        fetches as u64 <= elapsed.as_secs() / 10 + 1,
        "{fetches} key set fetches in {elapsed:?} (at most one per 10 s)"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_at_start_the_bridge_is_not_ready_and_says_why() {
    let port = free_port();
    let text = common::config_text(&format!(
        "auth:\n  mode: jwt\n  jwt: {{algorithms: [RS256], jwks_url: \"http://127.0.0.1:{port}/keys\"}}\n"
    ));
    let bridge = TestBridge::launch_text(&text).await;
    wait_for(
        "readyz naming the failed fetch",
        DEADLINE,
        async || match http_get(bridge.metrics_addr, "/readyz").await {
            (503, body) if body.contains("no signing keys yet") => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        },
    )
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_key_set_is_fetched_over_tls_and_an_untrusted_certificate_is_named_in_readyz() {
    // A TLS server with a self-signed certificate: the bridge speaks TLS to it (webpki roots)
    // and refuses the certificate, which /readyz names.
    let dir = TempDir::new("jwks-tls");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(
        dir.path.join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    let acceptor = kafka_ws_bridge::server::tls_acceptor(
        &dir.path.join("cert.pem"),
        &dir.path.join("key.pem"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = handshakes.clone();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    let text = common::config_text(&format!(
        "auth:\n  mode: jwt\n  jwt: {{algorithms: [RS256], jwks_url: \"https://localhost:{port}/keys\"}}\n"
    ));
    let bridge = TestBridge::launch_text(&text).await;
    wait_for(
        "readyz naming the certificate",
        DEADLINE,
        async || match http_get(bridge.metrics_addr, "/readyz").await {
            (503, body) if body.contains("certificate") => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        },
    )
    .await;
    assert!(handshakes.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    server.abort();
    bridge.stop().await;
}
