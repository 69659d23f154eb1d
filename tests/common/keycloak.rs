//! The Keycloak side of the harness: a real Keycloak (`scripts/keycloak/keycloak.sh`, its
//! development mode from a seed database: a start takes 6-13 s) and its admin REST API.
//!
//! - [`keycloak_url`]: the Keycloak the tests of a process share (`KWB_KEYCLOAK_URL`, else one
//!   started for this test process on first use). Tests share it safely because each makes a
//!   realm of its own ([`Realm::create`]): keys, users and roles live in a realm.
//! - [`OwnKeycloak`]: one of a test's own, e.g. over HTTPS with a certificate the test made.
//! - [`Realm`]: a realm made from a JSON representation (the one docs/auth.md shows), its
//!   tokens (password and refresh_token grants) and its key providers.
//!
//! The admin is admin/admin on the master realm (what the script creates at Keycloak's first
//! start); its tokens live 60 s, so one is fetched for every admin call.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use super::{blocking, TempDir};

const ADMIN_USER: &str = "admin";
const ADMIN_PASSWORD: &str = "admin";

fn keycloak_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/keycloak/keycloak.sh")
}

/// The base URL (`http://127.0.0.1:PORT`) of the Keycloak this process's tests share:
/// `KWB_KEYCLOAK_URL` when set (a Keycloak whose master realm admin is admin/admin), else one
/// started on the first call (stopped when this process exits; its log stays in a
/// `kwb-keycloak-*` temp dir).
pub async fn keycloak_url() -> String {
    if let Ok(url) = std::env::var("KWB_KEYCLOAK_URL") {
        return url.trim_end_matches('/').to_owned();
    }
    static SHARED: OnceLock<String> = OnceLock::new();
    blocking(|| {
        SHARED
            .get_or_init(|| {
                // Not a TempDir: a static is never dropped. Keycloak stops when this process
                // exits (--owner).
                let dir =
                    std::env::temp_dir().join(format!("kwb-keycloak-{}", super::random_suffix()));
                start_keycloak(&dir, super::free_port(), None)
            })
            .clone()
    })
}

/// Runs `scripts/keycloak/keycloak.sh start DIR PORT [--https CERT KEY] --owner <this
/// process>`; returns the URL it prints, or fails the test with the script's output (which ends
/// with Keycloak's log when the start failed).
fn start_keycloak(dir: &Path, port: u16, https: Option<(&Path, &Path)>) -> String {
    let mut command = Command::new(keycloak_script());
    command.arg("start").arg(dir).arg(port.to_string());
    if let Some((cert, key)) = https {
        command.arg("--https").arg(cert).arg(key);
    }
    let output = command
        .args(["--owner", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/keycloak/keycloak.sh");
    assert!(
        output.status.success(),
        "scripts/keycloak/keycloak.sh start {} {port} failed ({}):\n{}{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A Keycloak of a test's own, stopped on drop. Its start blocks for several seconds: use it in
/// multi-threaded tests.
pub struct OwnKeycloak {
    /// Home, database and log (`keycloak.log`).
    dir: TempDir,
    pub url: String,
}

impl OwnKeycloak {
    /// Over HTTPS with `cert` (a PEM chain, leaf first) and `key`, on a free port; its base URL
    /// is `https://127.0.0.1:PORT`, so the certificate must name the IP address 127.0.0.1.
    pub fn start_https(cert: &Path, key: &Path) -> OwnKeycloak {
        let dir = TempDir::new("own-keycloak");
        let url = blocking(|| start_keycloak(&dir.path, super::free_port(), Some((cert, key))));
        OwnKeycloak { dir, url }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("keycloak.log")).unwrap_or_default()
    }
}

impl Drop for OwnKeycloak {
    fn drop(&mut self) {
        let dir = self.dir.path.clone();
        blocking(|| {
            let _ = Command::new(keycloak_script())
                .arg("stop")
                .arg(&dir)
                .stdin(Stdio::null())
                .output();
        });
    }
}

/// Tokens from Keycloak's token endpoint.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    /// The access token's `exp` (seconds).
    pub fn exp(&self) -> u64 {
        claims(&self.access)["exp"].as_u64().expect("exp")
    }

    /// The `kid` of the access token's header: the key Keycloak signed it with.
    pub fn kid(&self) -> String {
        jsonwebtoken::decode_header(&self.access)
            .expect("a JWT")
            .kid
            .expect("Keycloak names its key")
    }
}

/// The claims of a JWT, unverified (for the test's own assertions).
pub fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// A realm of a test's own in a running Keycloak.
pub struct Realm {
    pub base: String,
    pub name: String,
    http: reqwest::Client,
}

impl Realm {
    /// Creates the realm `representation` describes (Keycloak's RealmRepresentation: roles,
    /// clients, users with passwords) under its own `realm` name, through
    /// `POST /admin/realms`. `http` must trust the Keycloak's certificate when it serves HTTPS.
    pub async fn create(base: &str, representation: &Value, http: reqwest::Client) -> Realm {
        let name = representation["realm"]
            .as_str()
            .expect("a realm representation names its realm")
            .to_owned();
        let realm = Realm {
            base: base.to_owned(),
            name,
            http,
        };
        let response = realm
            .admin(reqwest::Method::POST, "")
            .await
            .json(representation)
            .send()
            .await
            .expect("POST /admin/realms");
        let status = response.status();
        assert_eq!(
            status.as_u16(),
            201,
            "creating realm {}: {}",
            realm.name,
            response.text().await.unwrap_or_default()
        );
        realm
    }

    /// `{base}/realms/{name}`: what Keycloak puts in `iss`.
    pub fn issuer(&self) -> String {
        format!("{}/realms/{}", self.base, self.name)
    }

    /// A request to the admin API (`path` after `/admin/realms`), with a fresh admin token.
    async fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let token = self
            .token_request(
                &format!("{}/realms/master", self.base),
                &[
                    ("grant_type", "password"),
                    ("client_id", "admin-cli"),
                    ("username", ADMIN_USER),
                    ("password", ADMIN_PASSWORD),
                ],
            )
            .await
            .access;
        self.http
            .request(method, format!("{}/admin/realms{path}", self.base))
            .bearer_auth(token)
    }

    async fn token_request(&self, issuer: &str, form: &[(&str, &str)]) -> Tokens {
        let response = self
            .http
            .post(format!("{issuer}/protocol/openid-connect/token"))
            .form(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{issuer}: token endpoint: {e}"));
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON answer");
        assert!(
            status.is_success(),
            "{issuer}: token endpoint: {status} {body}"
        );
        Tokens {
            access: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// Tokens for a user of the realm, by the password grant (Resource Owner Password
    /// Credentials, `directAccessGrantsEnabled` on `client`).
    pub async fn password_grant(&self, client: &str, user: &str, password: &str) -> Tokens {
        self.token_request(
            &self.issuer(),
            &[
                ("grant_type", "password"),
                ("client_id", client),
                ("username", user),
                ("password", password),
            ],
        )
        .await
    }

    /// New tokens for the same login, by the refresh_token grant.
    pub async fn refresh_grant(&self, client: &str, tokens: &Tokens) -> Tokens {
        self.token_request(
            &self.issuer(),
            &[
                ("grant_type", "refresh_token"),
                ("client_id", client),
                ("refresh_token", &tokens.refresh),
            ],
        )
        .await
    }

    /// Adds a component (such as a key provider: `providerType: org.keycloak.keys.KeyProvider`)
    /// through `POST /admin/realms/{name}/components`.
    pub async fn add_component(&self, component: &Value) {
        let response = self
            .admin(reqwest::Method::POST, &format!("/{}/components", self.name))
            .await
            .json(component)
            .send()
            .await
            .expect("POST components");
        let status = response.status();
        assert_eq!(
            status.as_u16(),
            201,
            "adding a component to realm {}: {}",
            self.name,
            response.text().await.unwrap_or_default()
        );
    }

    /// The `kid` of the key Keycloak signs RS256 tokens with now (`GET .../keys`, `active`).
    pub async fn active_rs256_kid(&self) -> String {
        let keys: Value = self
            .admin(reqwest::Method::GET, &format!("/{}/keys", self.name))
            .await
            .send()
            .await
            .expect("GET keys")
            .json()
            .await
            .expect("JSON keys");
        keys["active"]["RS256"]
            .as_str()
            .unwrap_or_else(|| panic!("no active RS256 key: {keys}"))
            .to_owned()
    }

    /// Takes realm role `role` from user `username` (`DELETE .../users/{id}/role-mappings/realm`):
    /// tokens issued from then on, refreshed ones included, lack it.
    pub async fn remove_realm_role(&self, username: &str, role: &str) {
        let users: Value = self
            .admin(
                reqwest::Method::GET,
                &format!("/{}/users?exact=true&username={username}", self.name),
            )
            .await
            .send()
            .await
            .expect("GET users")
            .json()
            .await
            .expect("JSON users");
        let id = users[0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no user {username}: {users}"))
            .to_owned();
        let role: Value = self
            .admin(
                reqwest::Method::GET,
                &format!("/{}/roles/{role}", self.name),
            )
            .await
            .send()
            .await
            .expect("GET role")
            .json()
            .await
            .expect("JSON role");
        let response = self
            .admin(
                reqwest::Method::DELETE,
                &format!("/{}/users/{id}/role-mappings/realm", self.name),
            )
            .await
            .json(&Value::Array(vec![role]))
            .send()
            .await
            .expect("DELETE role mapping");
        assert_eq!(response.status().as_u16(), 204, "removing a role mapping");
    }

    /// Removes the realm (`DELETE /admin/realms/{name}`).
    pub async fn delete(self) {
        let _ = self
            .admin(reqwest::Method::DELETE, &format!("/{}", self.name))
            .await
            .send()
            .await;
    }
}

/// A plain HTTP client for a Keycloak (no redirects: the token endpoint answers directly).
pub fn http_client(extra_root: Option<&[u8]>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(super::DEADLINE)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = extra_root {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap());
    }
    builder.build().unwrap()
}
