//! Who a session is ([`Identity`]) and what it may do: the `allow` and `keys` rules of the
//! config evaluated against an identity. Token verification lives here too.

mod jwks;
mod verify;

use std::sync::Arc;

use serde_json::{Map, Value};

pub use jwks::{Jwks, JwksMetrics, JwksStatus, KeySource};
pub use verify::JwtVerifier;

use crate::config::{Allow, AllowLevel, AuthMode, KeysLevel, KeysRule, Plan, SubscribeRules};

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
    /// A claim the bridge reads that is of the wrong type or out of range (`exp: 1e19`).
    #[error("invalid `{0}` claim: {1}")]
    InvalidClaim(&'static str, &'static str),
    #[error("wrong token audience")]
    Audience,
    #[error("token has no `{0}` claim (the user id)")]
    NoUser(String),
    #[error("token signed with an unknown key (kid `{0}`)")]
    UnknownKey(String),
    #[error("token has no `kid` and the identity provider publishes several keys")]
    NoKeyId,
    #[error("token algorithm `{alg}` does not match its key (kid `{kid}`)")]
    KeyMismatch { alg: String, kid: String },
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
    #[error("auth.jwt.jwks_url: {0}")]
    Jwks(String),
    #[error("auth.jwt.ca_file: {0}")]
    CaFile(crate::config::CaFileError),
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

    /// The identity behind a connection's token (`None` when it sent none). May fetch the
    /// identity provider's keys once when the token names a key not cached.
    pub async fn authenticate(&self, token: Option<String>) -> Result<Identity, AuthError> {
        match self {
            Authenticator::Anonymous => Ok(Identity::anonymous()),
            Authenticator::Jwt(verifier) => {
                verifier
                    .verify(token.as_deref().ok_or(AuthError::Missing)?)
                    .await
            }
        }
    }

    /// The key set from the identity provider, when keys come from one.
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        match self {
            Authenticator::Jwt(verifier) => verifier.jwks(),
            Authenticator::Anonymous => None,
        }
    }
}

/// A claim's value as text (a string, or a number in decimal), for `subscribe.where`.
pub(crate) fn claim_text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claim(claims, name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A claim by name; a name with dots that is not a top-level claim is a path into nested
/// objects (`realm_access.roles`).
pub(crate) fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
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
}

/// Whether `presented` is one of the configured API keys, compared in constant time so the
/// comparison leaks nothing about the keys.
pub(crate) fn api_key_matches(keys: &[crate::config::Secret], presented: &str) -> bool {
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

/// Why a permission rule refuses an identity. The message completes "… is not allowed: ";
/// `doing` is what was refused ("subscribe to", "publish to").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("authentication required")]
    AuthenticationRequired,
    #[error("requires one of the roles: {}", roles.join(", "))]
    Roles { roles: Vec<String> },
    #[error("this channel only allows you to {doing} your own key (your user id), not `{key}`")]
    NotOwnKey { doing: String, key: String },
    #[error("anonymous sessions have no own key on this channel")]
    AnonymousHasNoKey,
    #[error("your token has no `{claim}` claim, which lists the keys you may {doing}")]
    NoClaim { claim: String, doing: String },
    /// `found`: the JSON kind of the first item that is no string ("a number").
    #[error(
        "your token's `{claim}` claim holds {found}: expected strings (the keys you may {doing})"
    )]
    ClaimItemNotString {
        claim: String,
        found: &'static str,
        doing: String,
    },
    #[error(
        "your token's `{claim}` claim is {found}: expected a list of strings (the keys you may {doing})"
    )]
    ClaimNotList {
        claim: String,
        found: &'static str,
        doing: String,
    },
    #[error("key `{key}` is not listed in your `{claim}` claim")]
    KeyNotListed { key: String, claim: String },
}

/// Compares with the message, as tests do.
#[cfg(test)]
impl PartialEq<&str> for Refused {
    fn eq(&self, other: &&str) -> bool {
        self.to_string().as_str() == *other
    }
}

/// Whether `identity` passes an `allow` rule; the refusal reason otherwise.
pub(crate) fn check_allow(allow: &Allow, identity: &Identity) -> Result<(), Refused> {
    match allow {
        Allow::Level(AllowLevel::Anonymous) => Ok(()),
        Allow::Level(AllowLevel::Authenticated) if identity.is_authenticated() => Ok(()),
        Allow::Level(AllowLevel::Authenticated) => Err(Refused::AuthenticationRequired),
        Allow::Roles { roles } if identity.has_any_role(roles) => Ok(()),
        Allow::Roles { roles } => Err(Refused::Roles {
            roles: roles.clone(),
        }),
    }
}

/// Whether `identity` may subscribe to `key` of a by-key channel.
pub(crate) fn check_key(
    rules: &SubscribeRules,
    identity: &Identity,
    key: &str,
) -> Result<(), Refused> {
    check_key_rule(
        &rules.keys,
        &rules.any_key_roles,
        identity,
        key,
        "subscribe to",
    )
}

/// Whether `identity` may use record key `key` under a `keys` rule — subscribing to it, or
/// publishing a record with it (`doing` says which, for the reason). A role of
/// `any_key_roles` allows every key.
pub(crate) fn check_key_rule(
    keys: &KeysRule,
    any_key_roles: &[String],
    identity: &Identity,
    key: &str,
    doing: &str,
) -> Result<(), Refused> {
    if identity.is_authenticated() && identity.has_any_role(any_key_roles) {
        return Ok(());
    }
    match keys {
        KeysRule::Level(KeysLevel::Any) => Ok(()),
        KeysRule::Level(KeysLevel::Own) => match &identity.user {
            Some(user) if user == key => Ok(()),
            Some(_) => Err(Refused::NotOwnKey {
                doing: doing.to_owned(),
                key: key.to_owned(),
            }),
            None => Err(Refused::AnonymousHasNoKey),
        },
        KeysRule::Claim { claim: name } => {
            let listed = match claim(&identity.claims, name) {
                None => {
                    return Err(Refused::NoClaim {
                        claim: name.clone(),
                        doing: doing.to_owned(),
                    })
                }
                Some(Value::String(one)) => one == key,
                Some(Value::Array(items)) => {
                    if let Some(odd) = items.iter().find(|item| !item.is_string()) {
                        return Err(Refused::ClaimItemNotString {
                            claim: name.clone(),
                            found: json_kind(odd),
                            doing: doing.to_owned(),
                        });
                    }
                    items.iter().any(|item| item.as_str() == Some(key))
                }
                Some(other) => {
                    return Err(Refused::ClaimNotList {
                        claim: name.clone(),
                        found: json_kind(other),
                        doing: doing.to_owned(),
                    })
                }
            };
            if listed {
                Ok(())
            } else {
                Err(Refused::KeyNotListed {
                    key: key.to_owned(),
                    claim: name.clone(),
                })
            }
        }
    }
}

/// A JSON value's kind, for messages ("a number").
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
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
        assert_eq!(
            check_key(&claim, &staff, "C-9").unwrap_err(),
            "key `C-9` is not listed in your `customers` claim"
        );
        // A claim missing or of the wrong type is named as such, not as an unlisted key.
        let one = user("S-2", &[], serde_json::json!({"customers": "C-2"}));
        assert!(
            check_key(&claim, &one, "C-2").is_ok(),
            "one string is a list of one"
        );
        assert_eq!(
            check_key(&claim, &customer, "C-2").unwrap_err(),
            "your token has no `customers` claim, which lists the keys you may subscribe to"
        );
        let number = user("S-3", &[], serde_json::json!({"customers": 5}));
        assert_eq!(
            check_key(&claim, &number, "5").unwrap_err(),
            "your token's `customers` claim is a number: expected a list of strings (the keys you may subscribe to)"
        );
        let mixed = user(
            "S-4",
            &[],
            serde_json::json!({"customers": ["C-2", {"id": "C-3"}]}),
        );
        assert_eq!(
            check_key(&claim, &mixed, "C-2").unwrap_err(),
            "your token's `customers` claim holds an object: expected strings (the keys you may subscribe to)"
        );
        assert_eq!(
            check_key(&own, &customer, "C-2").unwrap_err(),
            "this channel only allows you to subscribe to your own key (your user id), not `C-2`"
        );
        assert!(check_key(&rules("{keys: any}"), &Identity::anonymous(), "x").is_ok());
    }
}
