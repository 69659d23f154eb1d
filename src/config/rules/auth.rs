//! The meaning of the `auth` section: the mode and its JWT settings, session groups and the
//! cross-instance session registry.

use super::*;

impl Semantic<'_> {
    pub(super) fn check_auth(&mut self, auth: &AuthConfig) {
        match (auth.mode, &auth.jwt) {
            (AuthMode::Jwt, None) => {
                self.error("auth.jwt", "missing (required when auth.mode is jwt)")
            }
            (AuthMode::Jwt, Some(jwt)) => self.check_jwt(jwt),
            (AuthMode::None, Some(_)) => self.warn(
                "auth.jwt",
                "ignored: auth.mode is none, so no token is verified",
            ),
            (AuthMode::None, None) => {}
        }
        if auth.mode == AuthMode::None && auth.max_sessions_per_user > 0 {
            self.warn(
                "auth.max_sessions_per_user",
                "ignored: with auth.mode none every session is anonymous",
            );
        }
        if let Some(param) = &auth.session_group_param {
            self.check_session_group_param(param, auth);
        }
    }

    pub(super) fn check_session_registry(
        &mut self,
        auth: &AuthConfig,
        registry: &SessionRegistryConfig,
        partial: &Partial,
    ) {
        const PATH: &str = "auth.session_registry.topic";
        self.topic_name(PATH, &registry.topic);
        let also = partial
            .channels
            .iter()
            .filter(|(_, c)| c.topic == registry.topic)
            .map(|(i, _)| format!("channels[{i}].topic"))
            .chain(
                partial
                    .inbound
                    .iter()
                    .filter(|(_, e)| e.topic == registry.topic)
                    .map(|(i, _)| format!("inbound[{i}].topic")),
            )
            .next();
        if let Some(also) = also {
            self.error(
                PATH,
                format!(
                    "\"{}\" is also {also}: the session registry needs a topic of its own",
                    registry.topic
                ),
            );
        } else if auth.mode == AuthMode::None {
            self.warn(
                "auth.session_registry",
                "ignored: with auth.mode none every session is anonymous and none is counted",
            );
        } else if auth.max_sessions_per_user == 0 {
            self.warn(
                "auth.session_registry",
                "ignored: auth.max_sessions_per_user is 0 (unlimited), so there is no limit to share",
            );
        }
    }

    pub(super) fn check_session_group_param(&mut self, param: &str, auth: &AuthConfig) {
        const PATH: &str = "auth.session_group_param";
        /// Query parameters the handshakes read for something else.
        const TAKEN: &[&str] = &["access_token", "channel", "key", "history"];
        if param.is_empty() || param.len() > 64 {
            self.error(
                PATH,
                format!(
                    "expected a query parameter name of 1 to 64 characters, found {} characters",
                    param.len()
                ),
            );
        } else if !param
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._~-".contains(c))
        {
            self.error(
                PATH,
                format!("expected letters, digits, `.`, `_`, `~` or `-`, found \"{param}\""),
            );
        } else if TAKEN.contains(&param) {
            self.error(
                PATH,
                format!(
                    "`{param}` is a query parameter the bridge reads already (one of {})",
                    TAKEN.join(", ")
                ),
            );
        } else if auth.mode == AuthMode::None {
            self.warn(
                PATH,
                "ignored: with auth.mode none every session is anonymous and none is counted",
            );
        } else if auth.max_sessions_per_user == 0 {
            self.warn(
                PATH,
                "ignored: auth.max_sessions_per_user is 0 (unlimited), so no group is counted",
            );
        }
    }

    pub(super) fn check_jwt(&mut self, jwt: &JwtConfig) {
        if jwt.algorithms.is_empty() {
            self.error("auth.jwt.algorithms", "must list at least one algorithm");
        }
        let mut hmac = false;
        let mut public_key = false;
        for (i, alg) in jwt.algorithms.iter().enumerate() {
            if HMAC_ALGORITHMS.contains(&alg.as_str()) {
                hmac = true;
            } else if KEY_ALGORITHMS.contains(&alg.as_str()) {
                public_key = true;
            } else {
                self.error(
                    &format!("auth.jwt.algorithms[{i}]"),
                    format!(
                        "\"{alg}\" is not supported; expected one of {}, {}",
                        HMAC_ALGORITHMS.join(", "),
                        KEY_ALGORITHMS.join(", ")
                    ),
                );
            }
        }
        if hmac && public_key {
            self.error(
                "auth.jwt.algorithms",
                "HMAC (HS*) and public-key algorithms cannot be mixed: a public key must never be usable as an HMAC secret",
            );
        }
        if hmac {
            match &jwt.secret {
                None => self.error("auth.jwt.secret", "missing (required for HS* algorithms)"),
                Some(secret) if secret.expose().len() < 32 => self.error(
                    "auth.jwt.secret",
                    "must be at least 32 bytes for HS* algorithms (is the variable set?)",
                ),
                Some(_) => {}
            }
        }
        self.check_jwt_keys(jwt, hmac, public_key);
        if jwt.user_claim.is_empty() {
            self.error("auth.jwt.user_claim", "must not be empty");
        }
    }
}
