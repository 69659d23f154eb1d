//! One client session, whatever its transport: its subscriptions (with permissions, replay and
//! resume, `where` scopes, filters and rates), its publishes (rate limit, in-flight bound,
//! acks), its token over time (`refresh`, `token_expiring`, the close at expiry) and its end.
//! It receives [`Request`]s and answers by queueing typed [`Answer`]s on its outbox; records
//! reach the same outbox from the hub. It knows nothing of sockets or wire formats: each
//! transport of the client listener (`ws`: the JSON protocol, STOMP, Server-Sent Events)
//! decodes its client frames into requests and encodes the queue in its own dialect.
//!
//! One file per request kind: `subscribe.rs` (with the replay that completes a subscribe),
//! `unsubscribe.rs`, `publish.rs`, `refresh.rs`; `filters.rs` checks a subscribe's terms,
//! `clock.rs` keeps the token's times.

mod clock;
mod filters;
mod publish;
mod refresh;
mod subscribe;
mod unsubscribe;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::auth::{Authenticator, Identity};
use crate::catalogue::{Catalogue, ChannelId};
use crate::hub::{Fetched, Hub, SessionHandle, Want};
use crate::inbound::Inbound;
use crate::metrics::{CloseReason, Metrics, Transport};
use crate::outbound::Replayer;
use crate::outbox::Close;
use crate::protocol::{Answer, Item, Refusal, RequestId};
use crate::sessions::Sessions;
use crate::state::Held;

pub(crate) use clock::TokenClock;
pub(crate) use publish::TokenBucket;

/// Limits from `server.*`, copied once.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) replay_max_records: usize,
    pub(crate) publish_rate: crate::config::PublishRate,
    /// How often sessions are pinged; `None`: never.
    pub(crate) ping_interval: Option<std::time::Duration>,
    /// A session silent this long is closed; `None`: never.
    pub(crate) idle_timeout: Option<std::time::Duration>,
    pub(crate) max_frame_bytes: usize,
    /// `server.compression`: negotiate permessage-deflate and compress frames of at least this
    /// many bytes of text; `None`: never negotiate it.
    pub(crate) deflate_min_bytes: Option<usize>,
    pub(crate) max_connections: usize,
    pub(crate) max_subscriptions: usize,
    /// Bounds of each session's outbound queue.
    pub(crate) send_queue: crate::outbox::Bounds,
    pub(crate) max_inflight_publishes: usize,
    /// `token_expiring` this long before a session's token runs out (`auth.refresh_warning_s`).
    pub(crate) refresh_warning: std::time::Duration,
}

impl Limits {
    pub(crate) fn from_plan(plan: &crate::config::Plan) -> Self {
        let server = &plan.config.server;
        Limits {
            replay_max_records: server.replay_max_records,
            publish_rate: server.publish_rate,
            ping_interval: (server.ping_interval_ms > 0)
                .then(|| std::time::Duration::from_millis(server.ping_interval_ms)),
            idle_timeout: (server.idle_timeout_ms > 0)
                .then(|| std::time::Duration::from_millis(server.idle_timeout_ms)),
            max_frame_bytes: server.max_frame_bytes,
            deflate_min_bytes: server
                .compression
                .enabled
                .then_some(server.compression.min_bytes),
            max_connections: server.max_connections,
            max_subscriptions: server.max_subscriptions_per_session,
            send_queue: crate::outbox::Bounds {
                messages: server.send_queue_messages,
                bytes: server.send_queue_bytes,
                grace: std::time::Duration::from_millis(server.slow_client_grace_ms),
            },
            max_inflight_publishes: server.max_inflight_publishes,
            refresh_warning: std::time::Duration::from_secs(plan.config.auth.refresh_warning_s),
        }
    }
}

/// What every session uses, shared by all of them.
pub(crate) struct Context {
    pub(crate) catalogue: Arc<Catalogue>,
    pub(crate) hub: Arc<Hub>,
    /// Reads what memory no longer holds, for replays.
    pub(crate) replayer: Arc<Replayer>,
    pub(crate) inbound: Arc<Inbound>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) auth: Authenticator,
    pub(crate) limits: Limits,
    pub(crate) sessions: Arc<Sessions>,
    /// In-flight publishes, awaited on shutdown.
    pub(crate) publishes: TaskTracker,
}

/// What a client asks of its session, decoded from any transport's frames.
pub(crate) enum Request<'a> {
    Subscribe(Subscribe),
    Unsubscribe {
        id: RequestId,
        channel: String,
        key: Option<String>,
    },
    Publish {
        id: RequestId,
        channel: &'a str,
        data: &'a RawValue,
        headers: &'a BTreeMap<String, String>,
    },
    Ping {
        id: RequestId,
    },
    /// Verifying may fetch keys: it is held until the transport's loop calls
    /// [`Session::refresh_requested`], which may wait.
    Refresh {
        id: RequestId,
        token: String,
    },
}

/// A subscribe as asked.
pub(crate) struct Subscribe {
    pub(crate) id: RequestId,
    pub(crate) channel: String,
    pub(crate) key: Option<String>,
    pub(crate) want: Want,
    pub(crate) filter: Option<serde_json::Value>,
    pub(crate) max_rate: Option<u32>,
}

/// A subscription as the session tracks it: channel and key (None on unkeyed channels).
pub(crate) type Subscription = (ChannelId, Option<String>);

pub(crate) struct Session {
    pub(crate) ctx: Arc<Context>,
    pub(crate) handle: Arc<SessionHandle>,
    pub(crate) identity: Identity,
    /// Each subscription with the `id` of the subscribe that made it, for the `unsubscribed`
    /// that ends it when a refreshed token no longer allows it.
    subscriptions: HashMap<Subscription, RequestId>,
    inflight: Arc<Semaphore>,
    /// A subscribe waiting for records from Kafka before it can attach. Client frames are not
    /// read meanwhile, so later requests cannot overtake it.
    pub(crate) pending: Option<Pending>,
    /// Publish rate limit.
    bucket: TokenBucket,
    /// When the token runs out (and when to warn); moved on by `refresh`.
    pub(crate) clock: TokenClock,
    /// A `refresh` read and not yet handled.
    refresh_request: Option<(RequestId, String)>,
    /// What it is counted as in the session metrics.
    transport: Transport,
    /// Counted open ([`Session::opened`]) and not yet finished: whatever ends the session — its
    /// loop, or a panic unwinding its task — must release it once ([`Drop`]).
    open: bool,
}

/// A subscribe registered with its live records held back while its replay is read.
pub(crate) struct Pending {
    id: RequestId,
    channel: String,
    subscription: Subscription,
    want: Want,
    /// What memory held at the start, continuing the range being read.
    held: Vec<Held>,
    read: tokio::task::JoinHandle<Result<Fetched, String>>,
}

impl Session {
    /// A session with no subscription yet.
    pub(crate) fn new(ctx: Arc<Context>, handle: Arc<SessionHandle>, identity: Identity) -> Self {
        let (identity_expiry, refresh_warning) = (identity.expires_at, ctx.limits.refresh_warning);
        Session {
            inflight: Arc::new(Semaphore::new(ctx.limits.max_inflight_publishes)),
            bucket: TokenBucket::new(&ctx.limits.publish_rate),
            ctx,
            handle,
            identity,
            subscriptions: HashMap::new(),
            pending: None,
            clock: TokenClock::new(identity_expiry, refresh_warning),
            refresh_request: None,
            transport: Transport::WebSocket,
            open: false,
        }
    }

    /// Counts the session open as `transport`; from here on it is released exactly once.
    pub(crate) fn opened(&mut self, transport: Transport) {
        self.transport = transport;
        self.open = true;
        self.ctx.metrics.session_opened(transport);
    }

    /// Carries out a request. A refusal is returned, not answered: the transport answers it
    /// in its dialect (usually with [`Session::refuse`]). Publishes answer for themselves,
    /// when Kafka has reported.
    pub(crate) fn request(&mut self, request: Request<'_>) -> Result<(), Refusal> {
        match request {
            Request::Subscribe(subscribe) => self.subscribe(subscribe),
            Request::Unsubscribe { id, channel, key } => self.unsubscribe(&id, &channel, key),
            Request::Publish {
                id,
                channel,
                data,
                headers,
            } => {
                self.publish(id, channel, data, headers);
                Ok(())
            }
            Request::Ping { id } => {
                self.answer(Answer::Pong { id });
                Ok(())
            }
            Request::Refresh { id, token } => {
                self.refresh_request = Some((id, token));
                Ok(())
            }
        }
    }

    /// Handles a `refresh` read by [`Session::request`], if any (verifying may wait for keys).
    pub(crate) async fn refresh_requested(&mut self) {
        if let Some((id, token)) = self.refresh_request.take() {
            self.refresh(id, token).await;
        }
    }

    /// Queues an answer.
    pub(crate) fn answer(&self, answer: Answer) {
        self.handle.outbox.push_control(answer);
    }

    /// Queues an item a transport made (its greeting, a frame of its own).
    pub(crate) fn answer_item(&self, item: Item) {
        self.handle.outbox.push_control(item);
    }

    /// Answers a refused request with an error, counted by its code.
    pub(crate) fn refuse(&self, id: &RequestId, refusal: Refusal) {
        self.ctx
            .metrics
            .client_errors
            .with_label_values(&[refusal.code.as_str()])
            .inc();
        tracing::debug!(session = %self.handle.public_id, code = refusal.code.as_str(), message = %refusal.message, "request refused");
        self.answer(Answer::Error {
            id: id.clone(),
            refusal,
        });
    }

    /// Whether the session may read another client frame: no subscribe waits for Kafka, its
    /// answers and replays have room, and a publish permit is free.
    pub(crate) fn may_read(&self) -> bool {
        self.pending.is_none()
            && self.handle.outbox.has_control_room()
            && self.inflight.available_permits() > 0
    }

    /// Resolves once every publish of the session has been answered (borrows nothing, so a
    /// transport's loop can wait on it beside the session's other work).
    pub(crate) fn publishes_answered(
        &self,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (inflight, all) = (
            self.inflight.clone(),
            self.ctx.limits.max_inflight_publishes as u32,
        );
        async move {
            let _ = inflight.acquire_many_owned(all).await;
        }
    }

    pub(crate) fn finish(&mut self, reason: CloseReason) {
        if !std::mem::take(&mut self.open) {
            return;
        }
        if let Some(pending) = self.pending.take() {
            pending.read.abort();
            let (channel_id, key) = &pending.subscription;
            self.ctx
                .hub
                .unsubscribe(*channel_id, key.as_deref(), &self.handle);
        }
        self.handle.outbox.close(Close::Stopped);
        for ((channel_id, key), _) in self.subscriptions.drain() {
            self.ctx
                .hub
                .unsubscribe(channel_id, key.as_deref(), &self.handle);
        }
        self.ctx.sessions.remove(&self.handle);
        self.ctx.metrics.session_closed(self.transport, reason);
        tracing::info!(session = %self.handle.public_id, user = user_label(&self.identity), transport = self.transport.as_str(), reason = reason.as_str(), "session closed");
    }
}

impl Drop for Session {
    /// A session whose task panicked (or was dropped mid-way) still leaves the hub, the
    /// registry and the gauges as a closed one does; the panic is counted as close reason
    /// `panic`.
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let reason = if std::thread::panicking() {
            tracing::error!(session = %self.handle.public_id, "session task panicked: its session is released and counted closed (reason panic)");
            CloseReason::Panic
        } else {
            CloseReason::Error
        };
        self.finish(reason);
    }
}

/// Waits for the pending subscription's Kafka read (pending forever when there is none).
pub(crate) async fn pending_read(pending: &mut Option<Pending>) -> Result<Fetched, String> {
    match pending.as_mut() {
        Some(pending) => (&mut pending.read)
            .await
            .unwrap_or_else(|e| Err(e.to_string())),
        None => std::future::pending().await,
    }
}

pub(crate) async fn sleep_until_option(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A session's identity as used in logs: never the token, only the user id.
pub(crate) fn user_label(identity: &Identity) -> &str {
    identity.user.as_deref().unwrap_or("-")
}
