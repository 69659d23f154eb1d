//! The meaning of the `inbound` section: names, topics, keys, who may publish, key rules and
//! identity headers.

use super::*;

impl Semantic<'_> {
    pub(super) fn check_inbound(
        &mut self,
        inbound: &[(usize, InboundConfig)],
        auth_mode: Option<AuthMode>,
    ) {
        let mut names = HashSet::new();
        for (i, inbound) in inbound {
            let at = |key: &str| format!("inbound[{i}].{key}");
            self.channel_name(&at("channel"), &inbound.channel, &mut names, "inbound");
            self.topic_name(&at("topic"), &inbound.topic);
            match &inbound.key {
                InboundKey::Pointer { pointer } => self.pointer(&at("key.pointer"), pointer),
                InboundKey::Level(InboundKeyLevel::User) if auth_mode == Some(AuthMode::None) => {
                    self.warn(
                        &at("key"),
                        "with auth.mode none there is no user id: records get no key",
                    )
                }
                InboundKey::Level(_) => {}
            }
            if auth_mode == Some(AuthMode::None)
                && inbound.allow != Allow::Level(AllowLevel::Anonymous)
            {
                self.warn(
                    &at("allow"),
                    "no session can publish: auth.mode is none, so every session is anonymous (set allow: anonymous)",
                );
            }
            if let Some(file) = &inbound.schema_file {
                self.readable_file(&at("schema_file"), file);
            }
            self.check_inbound_identity(&at, inbound, auth_mode);
        }
    }

    /// `keys`, `any_key_roles` and `identity_headers` of one inbound channel.
    pub(super) fn check_inbound_identity(
        &mut self,
        at: &dyn Fn(&str) -> String,
        inbound: &InboundConfig,
        auth_mode: Option<AuthMode>,
    ) {
        let any = inbound.keys == KeysRule::Level(KeysLevel::Any);
        let keyless = inbound.key == InboundKey::Level(InboundKeyLevel::None);
        if keyless && !any {
            self.error(
                &at("keys"),
                "needs a record key to check: with key none records have none (set key: user or key: {pointer: ...})",
            );
        }
        if let KeysRule::Claim { claim } = &inbound.keys {
            if claim.is_empty() {
                self.error(&at("keys.claim"), "must not be empty");
            }
        }
        if !inbound.any_key_roles.is_empty() && any {
            self.warn(
                &at("any_key_roles"),
                "ignored: keys is any, so every key is allowed already",
            );
        }
        if auth_mode == Some(AuthMode::None) && !any && !keyless {
            self.warn(
                &at("keys"),
                "no session can publish: auth.mode is none, and anonymous sessions have no own key and no claims",
            );
        }
        let mut seen = HashSet::new();
        for (j, name) in inbound.identity_headers.iter().enumerate() {
            let path = at(&format!("identity_headers[{j}]"));
            if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
                self.error(
                    &path,
                    format!("\"{name}\" is not a claim name: `roles`, or a token claim such as customers"),
                );
            } else if !seen.insert(name.as_str()) {
                self.error(&path, format!("\"{name}\" is listed twice"));
            }
        }
        if auth_mode == Some(AuthMode::None) && !inbound.identity_headers.is_empty() {
            self.warn(
                &at("identity_headers"),
                "ignored: with auth.mode none every session is anonymous, without roles or claims",
            );
        }
    }
}
