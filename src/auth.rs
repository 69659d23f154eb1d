//! Who a session is ([`Identity`]) and what it may do: the `allow` and `keys` rules of the
//! config evaluated against an identity. Token verification lives here too.

use serde_json::{Map, Value};

use crate::config::{Allow, AllowLevel, AuthMode, KeysLevel, KeysRule, Plan, SubscribeRules};

/// Why a connection was refused at the handshake. The message is sent to the client, so it
/// names the reason and never echoes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing token: send `Authorization: Bearer <jwt>` or `?access_token=<jwt>`")]
    Missing,
}

/// Why token verification could not be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("auth.mode jwt is not available in this build")]
    Unsupported,
}

/// Verifies the credentials of new connections.
pub enum Authenticator {
    /// `auth.mode: none`: every session is anonymous.
    Anonymous,
}

impl Authenticator {
    pub fn from_plan(plan: &Plan) -> Result<Self, SetupError> {
        match plan.config.auth.mode {
            AuthMode::None => Ok(Authenticator::Anonymous),
            AuthMode::Jwt => Err(SetupError::Unsupported),
        }
    }

    /// The identity behind a connection's token (`None` when it sent none).
    pub fn authenticate(&self, _token: Option<String>) -> Result<Identity, AuthError> {
        match self {
            Authenticator::Anonymous => Ok(Identity::anonymous()),
        }
    }
}

/// The verified identity of a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    /// User id from the token's user claim; `None` for anonymous sessions.
    pub user: Option<String>,
    pub roles: Vec<String>,
    /// Every claim of the token, for `keys: {claim: …}` rules.
    pub claims: Map<String, Value>,
    /// Token expiry, seconds since the epoch.
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
    fn claim_values(&self, claim: &str) -> Vec<&str> {
        match self.claims.get(claim) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
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
