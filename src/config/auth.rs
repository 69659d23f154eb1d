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
    /// `PS256`, `PS384`, `PS512`, `ES256`, `ES384`). HMAC and public-key algorithms cannot be
    /// mixed.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Shared secret for the HS* algorithms; take it from the environment.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// PEM public key for the RS*/PS*/ES* algorithms.
    #[serde(default)]
    pub public_key_file: Option<String>,
    /// When set, the `iss` claim must equal it.
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
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
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
fn default_leeway() -> u64 {
    30
}
