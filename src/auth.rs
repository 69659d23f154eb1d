//! Who a session is ([`Identity`]) and what it may do: the `allow` and `keys` rules of the
//! config evaluated against an identity. Token verification lives here too.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::{
    Allow, AllowLevel, AuthMode, JwtConfig, KeysLevel, KeysRule, Plan, SubscribeRules,
};

/// Why a connection was refused at the handshake. The message is sent to the client, so it
/// names the reason and never echoes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing token: send `Authorization: Bearer <jwt>` or `?access_token=<jwt>`")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid (nbf)")]
    NotYetValid,
    #[error("invalid token signature")]
    BadSignature,
    #[error("token algorithm `{0}` is not accepted")]
    Algorithm(String),
    #[error("wrong token issuer")]
    Issuer,
    #[error("wrong token audience")]
    Audience,
    #[error("token has no `{0}` claim (the user id)")]
    NoUser(String),
}

/// Why token verification could not be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("auth.jwt: missing")]
    NoJwt,
    #[error("cannot read {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a usable {kind} public key in PEM format: {reason}")]
    Key {
        path: String,
        kind: &'static str,
        reason: String,
    },
    #[error("auth.jwt.algorithms: {0}")]
    Algorithms(String),
}

/// Verifies the credentials of new connections.
pub enum Authenticator {
    /// `auth.mode: none`: every session is anonymous.
    Anonymous,
    Jwt(Box<JwtVerifier>),
}

impl Authenticator {
    pub fn from_plan(plan: &Plan) -> Result<Self, SetupError> {
        match plan.config.auth.mode {
            AuthMode::None => Ok(Authenticator::Anonymous),
            AuthMode::Jwt => {
                let config = plan.config.auth.jwt.as_ref().ok_or(SetupError::NoJwt)?;
                Ok(Authenticator::Jwt(Box::new(JwtVerifier::new(
                    config, plan,
                )?)))
            }
        }
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, Authenticator::Anonymous)
    }

    /// The identity behind a connection's token (`None` when it sent none).
    pub fn authenticate(&self, token: Option<String>) -> Result<Identity, AuthError> {
        match self {
            Authenticator::Anonymous => Ok(Identity::anonymous()),
            Authenticator::Jwt(verifier) => {
                verifier.verify(token.as_deref().ok_or(AuthError::Missing)?)
            }
        }
    }
}

/// JSON Web Token verification per `auth.jwt`.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    /// Accepted algorithm names, to refuse others (and `none`) with a precise reason.
    algorithm_names: Vec<String>,
    user_claim: String,
    roles_claim: String,
    leeway: u64,
}

impl JwtVerifier {
    pub fn new(config: &JwtConfig, plan: &Plan) -> Result<Self, SetupError> {
        let algorithms: Vec<Algorithm> = config
            .algorithms
            .iter()
            .map(|name| {
                name.parse::<Algorithm>()
                    .map_err(|_| SetupError::Algorithms(format!("\"{name}\" is not supported")))
            })
            .collect::<Result<_, _>>()?;
        let families: std::collections::BTreeSet<&str> =
            algorithms.iter().map(|a| family(*a)).collect();
        let family =
            match families.iter().collect::<Vec<_>>().as_slice() {
                [one] => **one,
                [] => return Err(SetupError::Algorithms("empty".into())),
                _ => return Err(SetupError::Algorithms(
                    "one key cannot serve HMAC, RSA and EC algorithms together: keep one family"
                        .into(),
                )),
            };
        let key = match family {
            "hmac" => {
                let secret = config.secret.as_ref().ok_or_else(|| {
                    SetupError::Algorithms("HS* algorithms need auth.jwt.secret".into())
                })?;
                DecodingKey::from_secret(secret.expose().as_bytes())
            }
            "other" => {
                return Err(SetupError::Algorithms(
                    "only HS*, RS*, PS* and ES* algorithms are supported".into(),
                ))
            }
            kind => {
                let file = config.public_key_file.as_deref().ok_or_else(|| {
                    SetupError::Algorithms(
                        "RS*/PS*/ES* algorithms need auth.jwt.public_key_file".into(),
                    )
                })?;
                let path = plan.resolve_path(file);
                let pem = std::fs::read(&path).map_err(|source| SetupError::KeyFile {
                    path: path.display().to_string(),
                    source,
                })?;
                let parsed = if kind == "rsa" {
                    DecodingKey::from_rsa_pem(&pem)
                } else {
                    DecodingKey::from_ec_pem(&pem)
                };
                parsed.map_err(|e| SetupError::Key {
                    path: path.display().to_string(),
                    kind: if kind == "rsa" { "RSA" } else { "EC" },
                    reason: e.to_string(),
                })?
            }
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.leeway = config.leeway_seconds;
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp".to_owned()].into_iter().collect();
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        Ok(JwtVerifier {
            key,
            validation,
            algorithm_names: config.algorithms.clone(),
            user_claim: config.user_claim.clone(),
            roles_claim: config.roles_claim.clone(),
            leeway: config.leeway_seconds,
        })
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        // Read the algorithm first so that `none` and unlisted algorithms get their own reason.
        let algorithm = header_algorithm(token).ok_or(AuthError::Malformed)?;
        if !self.algorithm_names.contains(&algorithm) {
            return Err(AuthError::Algorithm(algorithm));
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                AuthError::Algorithm(algorithm.clone())
            }
            ErrorKind::InvalidIssuer => AuthError::Issuer,
            ErrorKind::InvalidAudience => AuthError::Audience,
            ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::Issuer,
            ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => AuthError::Audience,
            ErrorKind::MissingRequiredClaim(_) => AuthError::Malformed,
            _ => AuthError::Malformed,
        })?;
        let claims = data.claims;
        let user = match claim(&claims, &self.user_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(AuthError::NoUser(self.user_claim.clone())),
        };
        let roles = match claim(&claims, &self.roles_claim) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|exp| exp + self.leeway);
        Ok(Identity {
            user: Some(user),
            roles,
            claims,
            expires_at,
        })
    }
}

/// `hmac`, `rsa` or `ec`: algorithms of one family share a key type.
fn family(algorithm: Algorithm) -> &'static str {
    use Algorithm::*;
    match algorithm {
        HS256 | HS384 | HS512 => "hmac",
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => "rsa",
        ES256 | ES384 => "ec",
        _ => "other",
    }
}

/// The `alg` of a token's header, without verifying anything.
fn header_algorithm(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let header: Value = serde_json::from_slice(&bytes).ok()?;
    header.get("alg")?.as_str().map(str::to_owned)
}

/// A claim's value as text (a string, or a number in decimal), for `subscribe.where`.
pub fn claim_text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claim(claims, name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A claim by name; a name with dots that is not a top-level claim is a path into nested
/// objects (`realm_access.roles`).
fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(name) {
        return Some(value);
    }
    let mut parts = name.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

/// The verified identity of a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    /// User id from the token's user claim; `None` for anonymous sessions.
    pub user: Option<String>,
    pub roles: Vec<String>,
    /// Every claim of the token, for `keys: {claim: …}` rules.
    pub claims: Map<String, Value>,
    /// When the session must end (the token's `exp` plus the leeway), seconds since the epoch.
    pub expires_at: Option<u64>,
}

impl Identity {
    pub fn anonymous() -> Self {
        Identity::default()
    }

    pub fn is_authenticated(&self) -> bool {
        self.user.is_some()
    }

    fn has_any_role(&self, roles: &[String]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
    }

    /// The string values of a claim (a list of strings, or one string).
    fn claim_values(&self, name: &str) -> Vec<&str> {
        match claim(&self.claims, name) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// Whether `presented` is one of the configured API keys, compared in constant time so the
/// comparison leaks nothing about the keys.
pub fn api_key_matches(keys: &[crate::config::Secret], presented: &str) -> bool {
    let presented = presented.as_bytes();
    keys.iter().fold(false, |found, key| {
        let key = key.expose().as_bytes();
        let same_length = key.len() == presented.len();
        let difference = key
            .iter()
            .zip(presented.iter().chain(std::iter::repeat(&0)))
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        found | (same_length && difference == 0)
    })
}

/// Whether `identity` passes an `allow` rule; the refusal reason otherwise.
pub fn check_allow(allow: &Allow, identity: &Identity) -> Result<(), String> {
    match allow {
        Allow::Level(AllowLevel::Anonymous) => Ok(()),
        Allow::Level(AllowLevel::Authenticated) if identity.is_authenticated() => Ok(()),
        Allow::Level(AllowLevel::Authenticated) => Err("authentication required".into()),
        Allow::Roles { roles } if identity.has_any_role(roles) => Ok(()),
        Allow::Roles { roles } => Err(format!("requires one of the roles: {}", roles.join(", "))),
    }
}

/// Whether `identity` may subscribe to `key` of a by-key channel.
pub fn check_key(rules: &SubscribeRules, identity: &Identity, key: &str) -> Result<(), String> {
    if identity.is_authenticated() && identity.has_any_role(&rules.any_key_roles) {
        return Ok(());
    }
    match &rules.keys {
        KeysRule::Level(KeysLevel::Any) => Ok(()),
        KeysRule::Level(KeysLevel::Own) => match &identity.user {
            Some(user) if user == key => Ok(()),
            Some(_) => Err("this channel only allows subscribing to your own key".into()),
            None => Err("anonymous sessions have no own key on this channel".into()),
        },
        KeysRule::Claim { claim } => {
            if identity.claim_values(claim).contains(&key) {
                Ok(())
            } else {
                Err(format!("key not listed in your `{claim}` claim"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, roles: &[&str], claims: Value) -> Identity {
        Identity {
            user: Some(id.into()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            claims: claims.as_object().cloned().unwrap_or_default(),
            expires_at: None,
        }
    }

    fn rules(yaml: &str) -> SubscribeRules {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn allow_levels_and_roles() {
        let anon = Identity::anonymous();
        let alice = user("alice", &["ops"], Value::Null);
        assert!(check_allow(&Allow::Level(AllowLevel::Anonymous), &anon).is_ok());
        assert!(check_allow(&Allow::Level(AllowLevel::Authenticated), &anon).is_err());
        assert!(check_allow(&Allow::Level(AllowLevel::Authenticated), &alice).is_ok());
        let ops = Allow::Roles {
            roles: vec!["ops".into()],
        };
        let staff = Allow::Roles {
            roles: vec!["staff".into()],
        };
        assert!(check_allow(&ops, &alice).is_ok());
        assert_eq!(
            check_allow(&staff, &alice).unwrap_err(),
            "requires one of the roles: staff"
        );
    }

    #[test]
    fn key_rules() {
        let customer = user("C-1", &[], Value::Null);
        let staff = user(
            "S-1",
            &["staff"],
            serde_json::json!({"customers": ["C-2", "C-3"]}),
        );
        let own = rules("{keys: own, any_key_roles: [admin]}");
        assert!(check_key(&own, &customer, "C-1").is_ok());
        assert!(check_key(&own, &customer, "C-2").is_err());
        assert!(check_key(&own, &Identity::anonymous(), "C-1").is_err());
        let staff_any = rules("{keys: own, any_key_roles: [staff]}");
        assert!(check_key(&staff_any, &staff, "C-9").is_ok());
        let claim = rules("{keys: {claim: customers}}");
        assert!(check_key(&claim, &staff, "C-2").is_ok());
        assert!(check_key(&claim, &staff, "C-9").is_err());
        assert!(check_key(&rules("{keys: any}"), &Identity::anonymous(), "x").is_ok());
    }
}
