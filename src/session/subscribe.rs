//! `subscribe`: the channel and key resolved and checked against the session's permissions,
//! the terms (filter, rate) checked, then the subscription begun in the hub with its replay
//! (snapshot, `resume`, `history`) — from memory at once, or read from Kafka while its live
//! records wait ([`Pending`]) — and confirmed with `subscribed`.

use std::sync::Arc;

use super::{Pending, Session, Subscribe};
use crate::auth::{check_allow, check_key};
use crate::catalogue::ChannelId;
use crate::config::Deliver;
use crate::hub::{Asked, Attached, Begun, Confirmed, Fetched, Want};
use crate::protocol::{Answer, ErrorCode, Item, Refusal, RequestId, Subscribed};

impl Session {
    /// Resolves a subscription's channel and key and checks the session may have it.
    pub(crate) fn resolve(
        &self,
        channel: &str,
        key: Option<String>,
    ) -> Result<(ChannelId, Option<String>), Refusal> {
        if key.as_ref().is_some_and(|k| k.len() > MAX_KEY_BYTES) {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("`key` is longer than {MAX_KEY_BYTES} bytes"),
            ));
        }
        let Some(channel_id) = self.ctx.catalogue.channel_id(channel) else {
            let message = if self.ctx.catalogue.inbound(channel).is_some() {
                format!("channel `{channel}` is publish-only: it has no entry in `channels`")
            } else {
                format!("no channel named `{channel}`")
            };
            return Err(Refusal::new(ErrorCode::UnknownChannel, message));
        };
        let config = &self.ctx.catalogue.channel(channel_id).spec;
        if let Err(reason) = check_allow(&config.subscribe.allow, &self.identity) {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("subscribing to `{channel}` is not allowed: {reason}"),
            ));
        }
        if let Some(rule) = &config.subscribe.where_ {
            if crate::auth::claim_text(&self.identity.claims, &rule.equals_claim).is_none() {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    format!(
                        "subscribing to `{channel}` needs a token with the claim `{}` (subscribe.where)",
                        rule.equals_claim
                    ),
                ));
            }
        }
        let key = match config.deliver {
            Deliver::ByKey => {
                let Some(key) = key.or_else(|| self.identity.user.clone()) else {
                    return Err(Refusal::new(
                        ErrorCode::BadRequest,
                        format!("`key` is required on `{channel}` (an anonymous session has no own key)"),
                    ));
                };
                if let Err(reason) = check_key(&config.subscribe, &self.identity, &key) {
                    return Err(Refusal::new(
                        ErrorCode::Forbidden,
                        format!("subscribing to `{channel}` key `{key}` is not allowed: {reason}"),
                    ));
                }
                Some(key)
            }
            Deliver::Broadcast | Deliver::Reply if key.is_some() => {
                return Err(Refusal::new(
                    ErrorCode::BadRequest,
                    format!("channel `{channel}` is not keyed: omit `key`"),
                ))
            }
            Deliver::Broadcast | Deliver::Reply => None,
        };
        Ok((channel_id, key))
    }

    pub(super) fn subscribe(&mut self, request: Subscribe) -> Result<(), Refusal> {
        let Subscribe {
            id,
            channel,
            key,
            want,
            filter,
            max_rate,
        } = request;
        let channel = channel.as_str();
        let subscription = self.resolve(channel, key)?;
        let terms = super::filters::terms(
            self.ctx.catalogue.channel(subscription.0),
            filter.as_ref(),
            max_rate,
        )?;
        if !self.subscriptions.contains_key(&subscription)
            && self.subscriptions.len() >= self.ctx.limits.max_subscriptions
        {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!(
                    "subscription limit reached ({} per session, server.max_subscriptions_per_session)",
                    self.ctx.limits.max_subscriptions
                ),
            ));
        }
        // Reply channels keep nothing to replay: `resume` and `history` mean plain live there
        // (so a client can resume every subscription alike after a reconnect).
        let want = if self.ctx.catalogue.channel(subscription.0).deliver() == Deliver::Reply {
            Want::Live
        } else {
            want
        };
        if let Want::Resume(seen) = &want {
            if seen.len() > MAX_RESUME_PARTITIONS {
                return Err(Refusal::new(
                    ErrorCode::BadRequest,
                    format!("`resume` lists more than {MAX_RESUME_PARTITIONS} partitions"),
                ));
            }
        }
        let want = match want {
            Want::Newest(count) => Want::Newest(count.min(self.ctx.limits.replay_max_records)),
            other => other,
        };
        let limit = self.ctx.limits.replay_max_records;
        let (channel_id, key) = &subscription;
        let asked = Asked {
            channel: *channel_id,
            key: key.as_deref(),
            session: &self.handle,
            want: &want,
            limit,
        };
        let begun = self.ctx.hub.begin(asked, terms, |confirmed| {
            subscribed(&id, *channel_id, channel, key.as_deref(), confirmed)
        });
        match begun {
            Begun::Attached(attached) => {
                self.count_replay(*channel_id, attached, 0);
                self.subscriptions.insert(subscription, id);
            }
            Begun::Reading { need, held } => {
                let replayer = self.ctx.replayer.clone();
                let (channel_id, key) = (*channel_id, key.clone());
                let read = tokio::spawn(async move {
                    replayer
                        .fetch(channel_id, key.as_deref(), need, limit)
                        .await
                });
                self.pending = Some(Pending {
                    id,
                    channel: channel.to_owned(),
                    subscription,
                    want,
                    held,
                    read,
                });
            }
        }
        Ok(())
    }

    /// The pending subscription's Kafka read finished: complete it.
    pub(crate) fn on_fetched(&mut self, read: Result<Fetched, String>) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let fetched = match read {
            Ok(fetched) => Some(fetched),
            Err(e) => {
                tracing::warn!(session = %self.handle.public_id, channel = %pending.channel, error = %e, "replay read from kafka failed; answering with a gap");
                None
            }
        };
        let from_kafka = fetched.as_ref().map_or(0, |f| f.records.len());
        let (channel_id, key) = &pending.subscription;
        let asked = Asked {
            channel: *channel_id,
            key: key.as_deref(),
            session: &self.handle,
            want: &pending.want,
            limit: self.ctx.limits.replay_max_records,
        };
        let attached = self
            .ctx
            .hub
            .complete(asked, pending.held, fetched, |confirmed| {
                subscribed(
                    &pending.id,
                    *channel_id,
                    &pending.channel,
                    key.as_deref(),
                    confirmed,
                )
            });
        self.count_replay(*channel_id, attached, from_kafka);
        self.subscriptions.insert(pending.subscription, pending.id);
    }

    pub(super) fn count_replay(
        &self,
        channel_id: ChannelId,
        attached: Attached,
        from_kafka: usize,
    ) {
        let metrics = &self.ctx.catalogue.channel(channel_id).metrics;
        metrics
            .replayed_memory
            .inc_by(attached.replayed.saturating_sub(from_kafka) as u64);
        if attached.gap {
            metrics.replay_gaps.inc();
        }
    }
}

/// The `subscribed` answer of a subscription.
fn subscribed(
    id: &RequestId,
    channel_id: ChannelId,
    channel: &str,
    key: Option<&str>,
    confirmed: Confirmed<'_>,
) -> Item {
    Answer::Subscribed(Subscribed {
        id: id.clone(),
        channel: channel_id,
        name: channel.to_owned(),
        key: key.map(str::to_owned),
        snapshot: confirmed.snapshot.map(|held| Arc::clone(&held.record)),
        replayed: confirmed.replayed,
        gap: confirmed.gap,
        positions: confirmed.positions.clone(),
    })
    .into()
}

/// Longest subscription key accepted, in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// Most partitions a `resume` may list.
const MAX_RESUME_PARTITIONS: usize = 1024;
