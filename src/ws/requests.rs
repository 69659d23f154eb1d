//! What a session does with each client frame: `subscribe` (with its replay), `unsubscribe`,
//! `publish`, `ping` — every refusal answered with an `error` frame, the session carrying on.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::session::{Pending, Session};
use crate::auth::{check_allow, check_key};
use crate::catalogue::ChannelId;
use crate::config::Deliver;
use crate::hub::{Attached, Begun, Fetched, Want};
use crate::inbound::Publisher;
use crate::protocol::{self, ClientFrame, ErrorCode, Frame, Refusal, RequestId, SnapshotValue};
use crate::state::Held;

impl Session {
    pub(super) fn on_text(&mut self, text: &str) {
        let frame = match protocol::decode_client(text) {
            Ok(frame) => frame,
            Err(error) => {
                return self.refuse(
                    &error.id,
                    Refusal::new(ErrorCode::BadRequest, error.message),
                )
            }
        };
        match frame {
            // Verifying may fetch keys: done by the session loop, which may wait.
            ClientFrame::Refresh { id, token } => self.refresh_request = Some((id, token)),
            ClientFrame::Ping { id } => {
                self.handle.outbox.push_control(protocol::pong(&id));
            }
            ClientFrame::Subscribe {
                id,
                channel,
                key,
                resume,
                history,
                filter,
                max_rate,
            } => {
                let want = match (resume, history) {
                    (Some(seen), _) => Want::Resume(seen),
                    (None, Some(count)) => Want::Newest(count),
                    (None, None) => Want::Live,
                };
                if let Err(refusal) =
                    self.subscribe(id.clone(), &channel, key, want, filter, max_rate)
                {
                    self.refuse(&id, refusal);
                }
            }
            ClientFrame::Unsubscribe { id, channel, key } => {
                if let Err(refusal) = self.unsubscribe(&id, &channel, key) {
                    self.refuse(&id, refusal);
                }
            }
            ClientFrame::Publish {
                id,
                channel,
                data,
                headers,
            } => self.publish(id, &channel, data, &headers),
        }
    }

    /// A publish: rate limit, checks and record (inbound), then the write on a task of its own
    /// whose answer (`ack` or `error`) is queued when Kafka reports.
    pub(super) fn publish(
        &mut self,
        id: RequestId,
        channel: &str,
        data: &RawValue,
        headers: &BTreeMap<String, String>,
    ) {
        if !self.bucket.take() {
            self.ctx
                .inbound
                .count_refusal(channel, ErrorCode::RateLimited);
            return self.refuse(
                &id,
                Refusal::new(
                    ErrorCode::RateLimited,
                    format!(
                        "more than {} publishes per second (server.publish_rate)",
                        self.ctx.limits.publish_rate.per_second
                    ),
                ),
            );
        }
        let publisher = Publisher {
            identity: &self.identity,
            session: Some(&self.handle.public_id),
        };
        let prepared =
            match self
                .ctx
                .inbound
                .prepare(channel, data, headers, id.as_deref(), &publisher)
            {
                Ok(prepared) => prepared,
                Err(refusal) => return self.refuse(&id, refusal),
            };
        let Ok(permit) = self.inflight.clone().try_acquire_owned() else {
            unreachable!("frames are only read while a publish permit is free");
        };
        let inbound = self.ctx.inbound.clone();
        let handle = self.handle.clone();
        let metrics = self.ctx.metrics.clone();
        self.ctx.publishes.spawn(async move {
            let topic = prepared.topic().to_owned();
            let answer = match inbound.send(prepared).await {
                Ok(delivered) => protocol::ack(&id, &topic, delivered.partition, delivered.offset),
                Err(refusal) => {
                    metrics
                        .client_errors
                        .with_label_values(&[refusal.code.as_str()])
                        .inc();
                    protocol::error(&id, &refusal)
                }
            };
            // Free the permit before answering: the answer wakes the session, which
            // must then see the permit available.
            drop(permit);
            handle.outbox.push_control(answer);
        });
    }

    /// Resolves a subscription's channel and key and checks the session may have it.
    pub(super) fn resolve(
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

    pub(super) fn subscribe(
        &mut self,
        id: RequestId,
        channel: &str,
        key: Option<String>,
        want: Want,
        filter: Option<serde_json::Value>,
        max_rate: Option<u32>,
    ) -> Result<(), Refusal> {
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
        let begun = self.ctx.hub.begin(
            *channel_id,
            key.as_deref(),
            &self.handle,
            &want,
            limit,
            terms,
            |snapshot, replayed, gap, positions| {
                subscribed_frame(
                    &id,
                    channel,
                    key.as_deref(),
                    snapshot,
                    replayed,
                    gap,
                    positions,
                )
            },
        );
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
    pub(super) fn on_fetched(&mut self, read: Result<Fetched, String>) {
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
        let attached = self.ctx.hub.complete(
            *channel_id,
            key.as_deref(),
            &self.handle,
            &pending.want,
            pending.held,
            fetched,
            self.ctx.limits.replay_max_records,
            |snapshot, replayed, gap, positions| {
                subscribed_frame(
                    &pending.id,
                    &pending.channel,
                    key.as_deref(),
                    snapshot,
                    replayed,
                    gap,
                    positions,
                )
            },
        );
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

    pub(super) fn unsubscribe(
        &mut self,
        id: &RequestId,
        channel: &str,
        key: Option<String>,
    ) -> Result<(), Refusal> {
        let Some(channel_id) = self.ctx.catalogue.channel_id(channel) else {
            return Err(Refusal::new(
                ErrorCode::UnknownChannel,
                format!("no channel named `{channel}`"),
            ));
        };
        let key = match self.ctx.catalogue.channel(channel_id).deliver() {
            Deliver::ByKey => key.or_else(|| self.identity.user.clone()),
            _ => None,
        };
        if self
            .subscriptions
            .remove(&(channel_id, key.clone()))
            .is_some()
        {
            self.ctx
                .hub
                .unsubscribe(channel_id, key.as_deref(), &self.handle);
        }
        self.handle
            .outbox
            .push_control(protocol::unsubscribed(id, channel, key.as_deref()));
        Ok(())
    }

    pub(super) fn refuse(&self, id: &RequestId, refusal: Refusal) {
        self.ctx
            .metrics
            .client_errors
            .with_label_values(&[refusal.code.as_str()])
            .inc();
        tracing::debug!(session = %self.handle.public_id, code = refusal.code.as_str(), message = %refusal.message, "request refused");
        self.handle
            .outbox
            .push_control(protocol::error(id, &refusal));
    }
}

/// The `subscribed` frame of a subscription.
fn subscribed_frame(
    id: &RequestId,
    channel: &str,
    key: Option<&str>,
    snapshot: Option<&Held>,
    replayed: usize,
    gap: bool,
    positions: &std::collections::BTreeMap<i32, i64>,
) -> Frame {
    let snapshot = snapshot.map(|held| SnapshotValue {
        data: held.data(),
        partition: held.partition,
        offset: held.offset,
    });
    protocol::subscribed(id, channel, key, snapshot, replayed, gap, positions)
}

/// Longest subscription key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Most partitions a `resume` may list.
const MAX_RESUME_PARTITIONS: usize = 1024;
