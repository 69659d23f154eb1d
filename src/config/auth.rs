//! The `auth` section: who the clients are and how their tokens are verified.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Secret;

/// Client authentication.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `jwt`: every connection must present a valid token. `none`: every session is anonymous
    /// (internal deployments only).
    pub mode: AuthMode,
    /// Token verification; required when `mode: jwt`.
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// Most sessions one user may hold; `0` means unlimited. When exceeded the newest session
    /// wins and the oldest is closed with code 4000.
    #[serde(default)]
    pub max_sessions_per_user: usize,
    /// Name of a query parameter of the WebSocket and STOMP handshakes (e.g. `app`): when set,
    /// `max_sessions_per_user` counts per user and value of that parameter (`?app=teller`), so
    /// that one user may keep a session in each of several applications. A value is 1 to 64
    /// letters, digits, `.`, `_`, `~` or `-`; an empty, longer or otherwise different value
    /// (or the parameter twice) is refused with 400. Sessions without the parameter form one
    /// group of their own. Server-Sent Events streams check the value too but are never counted.
    #[serde(default)]
    pub session_group_param: Option<String>,
    /// Makes `max_sessions_per_user` hold across every instance sharing this Kafka cluster:
    /// each instance writes a record to this compacted topic when a counted session opens (a
    /// tombstone when it closes) and reads everyone's, and the newest N sessions of a user (and
    /// group) win wherever they are; the others close with 4000. `create-topics` creates it.
    #[serde(default)]
    pub session_registry: Option<SessionRegistryConfig>,
    /// Seconds before a token's `exp` at which the session is sent `token_expiring`, so the
    /// client can send a fresh token with `refresh` instead of reconnecting (for tokens shorter
    /// than twice this, halfway through their remaining life).
    #[serde(default = "default_refresh_warning")]
    pub refresh_warning_s: u64,
}

/// `auth.session_registry`: where instances tell each other about their sessions.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRegistryConfig {
    /// The compacted topic every instance writes its sessions to and reads everyone's from
    /// (e.g. `bridge-sessions`). Its own topic: no channel or inbound entry may use it. Only
    /// the bridges should be able to write it (Kafka ACLs): a record there can close a
    /// user's sessions.
    pub topic: String,
}

/// How clients are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Verify a JSON Web Token on every connection.
    Jwt,
    /// No authentication: every session is anonymous.
    None,
}

/// JSON Web Token verification.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Accepted signature algorithms (`HS256`, `HS384`, `HS512`, `RS256`, `RS384`, `RS512`,
    /// `PS256`, `PS384`, `PS512`, `ES256`, `ES384`, `EdDSA`). HMAC and public-key algorithms
    /// cannot be mixed; `none` is never accepted. With `jwks_url` or `discovery` a token's `alg`
    /// must also match the key its `kid` names.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Shared secret for the HS* algorithms; take it from the environment.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// PEM public key for the RS*/PS*/ES*/EdDSA algorithms (one fixed key; for an identity
    /// provider that rotates its keys use `jwks_url` or `discovery`).
    #[serde(default)]
    pub public_key_file: Option<String>,
    /// URL of the identity provider's JSON Web Key Set (e.g. Keycloak's
    /// `{issuer}/protocol/openid-connect/certs`). Keys are cached by `kid`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Find the key set through OpenID Connect discovery: `{issuer}/.well-known/openid-configuration`
    /// names the `jwks_uri`. Needs `issuer`; excludes `jwks_url`.
    #[serde(default)]
    pub discovery: bool,
    /// PEM file of CA certificates trusted for the identity provider's HTTPS (the discovery
    /// document and the key set), besides the Mozilla root certificates the bridge trusts
    /// anyway: for a provider whose certificate a private CA signed. Relative to this file's
    /// directory. Only with `jwks_url` or `discovery`.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Seconds between refreshes of the key set. A token whose `kid` is not cached also causes
    /// a refresh, at most one every 10 s. When the provider cannot be reached the cached keys
    /// keep working.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_s: u64,
    /// When set, the `iss` claim must equal it. With `discovery: true`, also where the
    /// provider's configuration is read from.
    #[serde(default)]
    pub issuer: Option<String>,
    /// When set, the `aud` claim must contain it.
    #[serde(default)]
    pub audience: Option<String>,
    /// Claim holding the user id.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Claim holding the user's roles (a list of strings, or one string).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (at most 3600).
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

fn default_algorithms() -> Vec<String> {
    vec!["HS256".into()]
}
fn default_user_claim() -> String {
    "sub".into()
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_jwks_refresh() -> u64 {
    300
}
fn default_refresh_warning() -> u64 {
    60
}
fn default_leeway() -> u64 {
    30
}
