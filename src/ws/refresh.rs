//! A session's token over time (§5.1): `token_expiring` `auth.refresh_warning_s` before the
//! session's end, `refresh` to continue on a new token of the same user — whose permissions
//! then apply to every subscription — and without one, the close with 4002 at `exp`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::session::Session;
use crate::auth::{check_allow, check_key};
use crate::protocol::{self, ErrorCode, Refusal, RequestId};

/// When the session's token runs out, and when to warn about it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TokenClock {
    /// The session closes with 4002 then.
    pub(super) expiry: Option<tokio::time::Instant>,
    /// `token_expiring` is sent then (once per token).
    pub(super) warning: Option<tokio::time::Instant>,
    /// The end in milliseconds since the epoch, as told to the client.
    pub(super) expires_at_ms: Option<u64>,
}

impl TokenClock {
    /// For a token valid until `expires_at` (seconds since the epoch, leeway included).
    pub(super) fn new(expires_at: Option<u64>, warn_before: Duration) -> Self {
        let Some(expires_at) = expires_at else {
            return TokenClock::default();
        };
        let end = UNIX_EPOCH + Duration::from_secs(expires_at);
        let left = end
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let now = tokio::time::Instant::now();
        TokenClock {
            expiry: Some(now + left),
            // Not before half the remaining life: a token shorter than the warning would
            // otherwise be warned about (and refreshed) again at once, in a loop.
            warning: (!warn_before.is_zero())
                .then(|| now + left.saturating_sub(warn_before).max(left / 2)),
            expires_at_ms: Some(expires_at * 1000),
        }
    }
}

impl Session {
    /// `token_expiring`: the client should send `refresh` before the session ends.
    pub(super) fn warn_expiring(&mut self) {
        self.clock.warning = None;
        if let Some(expires_at) = self.clock.expires_at_ms {
            self.handle
                .outbox
                .push_control(protocol::token_expiring(expires_at));
        }
    }

    /// `refresh`: verifies the new token, which must name the same user, and then re-checks
    /// every subscription against its permissions.
    pub(super) async fn refresh(&mut self, id: RequestId, token: String) {
        if self.ctx.auth.is_anonymous() {
            return self.refuse(
                &id,
                Refusal::new(
                    ErrorCode::BadRequest,
                    "auth.mode is none: sessions have no token to refresh",
                ),
            );
        }
        let identity = match self.ctx.auth.authenticate(Some(token)).await {
            Ok(identity) => identity,
            Err(reason) => {
                return self.refuse(
                    &id,
                    Refusal::new(
                        ErrorCode::Unauthorized,
                        format!("refresh refused: {reason}"),
                    ),
                )
            }
        };
        if identity.user != self.identity.user {
            return self.refuse(
                &id,
                Refusal::new(
                    ErrorCode::Forbidden,
                    "the new token is for another user: a session keeps its user (open a new session)",
                ),
            );
        }
        if let Some(channel) = self.moved_scope(&identity) {
            return self.refuse(
                &id,
                Refusal::new(
                    ErrorCode::Forbidden,
                    format!("the new token gives another value to the claim that scopes `{channel}` (subscribe.where): a session keeps its scope (open a new session)"),
                ),
            );
        }
        self.identity = identity;
        self.clock = TokenClock::new(self.identity.expires_at, self.ctx.limits.refresh_warning);
        self.recheck_subscriptions();
        self.handle
            .outbox
            .push_control(protocol::refreshed(&id, self.clock.expires_at_ms));
        tracing::debug!(session = %self.handle.public_id, "token refreshed");
    }

    /// The first subscribed channel whose `subscribe.where` claim the new identity gives another
    /// value: the session's subscriptions are indexed by that value, so it may not change.
    fn moved_scope(&self, identity: &crate::auth::Identity) -> Option<String> {
        let channels = self
            .subscriptions
            .iter()
            .map(|(channel_id, _)| *channel_id)
            .chain(self.pending.as_ref().map(|p| p.subscription.0));
        for channel_id in channels {
            let channel = self.ctx.catalogue.channel(channel_id);
            if let Some(rule) = &channel.spec.subscribe.where_ {
                let claim = &rule.equals_claim;
                if crate::auth::claim_text(&identity.claims, claim)
                    != crate::auth::claim_text(&self.identity.claims, claim)
                {
                    return Some(channel.name().to_owned());
                }
            }
        }
        None
    }

    /// Ends, with `unsubscribed` + `reason: forbidden`, each subscription the identity may no
    /// longer have; what it had queued is not delivered.
    fn recheck_subscriptions(&mut self) {
        if let Some(pending) = &self.pending {
            let (channel_id, key) = pending.subscription.clone();
            if !self.allowed(channel_id, key.as_deref()) {
                let pending = self.pending.take().expect("checked above");
                pending.read.abort();
                self.end_forbidden(channel_id, key);
            }
        }
        let ended: Vec<_> = self
            .subscriptions
            .iter()
            .filter(|(channel_id, key)| !self.allowed(*channel_id, key.as_deref()))
            .cloned()
            .collect();
        for subscription in ended {
            self.subscriptions.remove(&subscription);
            let (channel_id, key) = subscription;
            self.end_forbidden(channel_id, key);
        }
    }

    fn allowed(&self, channel_id: u32, key: Option<&str>) -> bool {
        let spec = &self.ctx.catalogue.channel(channel_id).spec;
        check_allow(&spec.subscribe.allow, &self.identity).is_ok()
            && key.is_none_or(|key| check_key(&spec.subscribe, &self.identity, key).is_ok())
    }

    fn end_forbidden(&mut self, channel_id: u32, key: Option<String>) {
        self.ctx
            .hub
            .unsubscribe(channel_id, key.as_deref(), &self.handle);
        // Queued records carry their channel, not their key: they are taken back when no
        // other subscription of this session remains on the channel.
        if !self.subscriptions.iter().any(|(c, _)| *c == channel_id) {
            self.handle.outbox.discard_channel(channel_id);
        }
        let channel = self.ctx.catalogue.channel(channel_id).name();
        self.handle
            .outbox
            .push_control(protocol::unsubscribed_because(
                channel,
                key.as_deref(),
                "forbidden",
            ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_s() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn the_warning_comes_before_exp_but_not_before_half_the_remaining_life() {
        let start = tokio::time::Instant::now();
        let long = TokenClock::new(Some(now_s() + 600), Duration::from_secs(60));
        let warn_in = long.warning.unwrap() - start;
        assert!((535..=541).contains(&warn_in.as_secs()), "{warn_in:?}");
        let short = TokenClock::new(Some(now_s() + 20), Duration::from_secs(60));
        let warn_in = short.warning.unwrap() - start;
        assert!((9..=11).contains(&warn_in.as_secs()), "{warn_in:?}");
        let off = TokenClock::new(Some(now_s() + 20), Duration::ZERO);
        assert!(off.warning.is_none() && off.expiry.is_some());
        assert!(TokenClock::new(None, Duration::from_secs(60))
            .expiry
            .is_none());
    }
}
