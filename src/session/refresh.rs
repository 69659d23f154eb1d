//! A session's token over time: `token_expiring` `auth.refresh_warning_s` before the
//! session's end, `refresh` to continue on a new token of the same user — whose permissions
//! then apply to every subscription — and without one, the close with 4002 at `exp`.

use super::clock::TokenClock;
use super::Session;
use crate::auth::{check_allow, check_key};
use crate::protocol::{Answer, ErrorCode, Refusal, RequestId, Unsubscribed};

impl Session {
    /// `token_expiring`: the client should send `refresh` before the session ends.
    pub(crate) fn warn_expiring(&mut self) {
        self.clock.warning = None;
        if let Some(expires_at) = self.clock.expires_at_ms {
            self.answer(Answer::TokenExpiring { expires_at });
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
        self.answer(Answer::Refreshed {
            id,
            expires_at: self.clock.expires_at_ms,
        });
        tracing::debug!(session = %self.handle.public_id, "token refreshed");
    }

    /// The first subscribed channel whose `subscribe.where` claim the new identity gives another
    /// value: the session's subscriptions are indexed by that value, so it may not change.
    fn moved_scope(&self, identity: &crate::auth::Identity) -> Option<String> {
        let channels = self
            .subscriptions
            .keys()
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

    /// Ends, with `unsubscribed` + `reason: forbidden` and the id of the subscribe that made
    /// it, each subscription the identity may no longer have; what it had queued is not
    /// delivered.
    fn recheck_subscriptions(&mut self) {
        if let Some(pending) = &self.pending {
            let (channel_id, key) = pending.subscription.clone();
            if !self.allowed(channel_id, key.as_deref()) {
                let pending = self.pending.take().expect("checked above");
                pending.read.abort();
                self.end_forbidden(channel_id, key, &pending.id);
            }
        }
        let ended: Vec<_> = self
            .subscriptions
            .keys()
            .filter(|(channel_id, key)| !self.allowed(*channel_id, key.as_deref()))
            .cloned()
            .collect();
        for subscription in ended {
            let id = self.subscriptions.remove(&subscription).flatten();
            let (channel_id, key) = subscription;
            self.end_forbidden(channel_id, key, &id);
        }
    }

    fn allowed(&self, channel_id: u32, key: Option<&str>) -> bool {
        let spec = &self.ctx.catalogue.channel(channel_id).spec;
        check_allow(&spec.subscribe.allow, &self.identity).is_ok()
            && key.is_none_or(|key| check_key(&spec.subscribe, &self.identity, key).is_ok())
    }

    fn end_forbidden(&mut self, channel_id: u32, key: Option<String>, id: &RequestId) {
        self.ctx
            .hub
            .unsubscribe(channel_id, key.as_deref(), &self.handle);
        // Queued records carry their channel, not their key: they are taken back when no
        // other subscription of this session remains on the channel.
        if !self.subscriptions.keys().any(|(c, _)| *c == channel_id) {
            self.handle.outbox.discard_channel(channel_id);
        }
        let name = self.ctx.catalogue.channel(channel_id).name().to_owned();
        self.answer(Answer::Unsubscribed(Unsubscribed {
            id: id.clone(),
            channel: channel_id,
            name,
            key,
            reason: Some("forbidden"),
        }));
    }
}
