//! `publish`: the session's rate limit, the channel's checks and the record (inbound), then the
//! write on a task of its own whose answer (`ack` or `error`) is queued when Kafka reports.
//! At most `server.max_inflight_publishes` wait for Kafka at once: the transport stops reading
//! client frames until one is answered ([`Session::may_read`]).

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::Session;
use crate::inbound::Publisher;
use crate::protocol::{Answer, ErrorCode, Refusal, RequestId};

impl Session {
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
                Ok(delivered) => Answer::Ack {
                    id,
                    topic,
                    partition: delivered.partition,
                    offset: delivered.offset,
                },
                Err(refusal) => {
                    metrics
                        .client_errors
                        .with_label_values(&[refusal.code.as_str()])
                        .inc();
                    Answer::Error { id, refusal }
                }
            };
            // Free the permit before answering: the answer wakes the session, which
            // must then see the permit available.
            drop(permit);
            handle.outbox.push_control(answer);
        });
    }
}

/// `server.publish_rate`: `rate` tokens a second, at most `burst`, one per publish.
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: tokio::time::Instant,
}

impl TokenBucket {
    pub(super) fn new(rate: &crate::config::PublishRate) -> Self {
        TokenBucket {
            rate: f64::from(rate.per_second),
            burst: f64::from(rate.burst),
            tokens: f64::from(rate.burst),
            refilled: tokio::time::Instant::now(),
        }
    }

    /// Takes a token if there is one (always, when the limit is off).
    fn take(&mut self) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
