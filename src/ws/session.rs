//! One WebSocket session: a single task that writes what the session's outbox holds (in
//! batches, one flush per batch) and reads client frames while it has room to answer them.
//! Reading pauses while the session has `max_inflight_publishes` publishes waiting for Kafka or
//! too many unsent answers, so a client cannot make the bridge buffer without bound.
//!
//! Every bad frame is answered with an `error` frame and the session carries on; only frames
//! over `max_frame_bytes` (1009; a compressed message by its inflated size), protocol
//! violations (1002, also broken compressed data) and invalid UTF-8 (1007) end it. A STOMP
//! session (`stomp/`) runs the same loop: its frames are read by `on_stomp`, each batch is
//! re-encoded for it before writing, and it sends heart-beats; an ERROR ends it, as STOMP says.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::clock::TokenClock;
use super::inflate::InflateError;
use super::wire::{
    close_and_linger, payload_sent, record_latencies, send_close, write_frames, Socket, Watched,
    CLOSE_TIMEOUT,
};
use super::{user_label, ConnectionSlot, WsContext};
use crate::auth::Identity;
use crate::catalogue::ChannelId;
use crate::hub::{Fetched, SessionHandle, Want};
use crate::metrics::{CloseReason, Transport};
use crate::outbox::{Close, Outgoing};
use crate::protocol::{self, ErrorCode, Refusal, RequestId};
use crate::state::Held;

/// Most frames written per flush.
const WRITE_BATCH: usize = 256;
/// A subscription as the session tracks it: channel and key (None on unkeyed channels).
pub(super) type Subscription = (ChannelId, Option<String>);

pub(super) struct Session {
    pub(super) ctx: Arc<WsContext>,
    pub(super) handle: Arc<SessionHandle>,
    pub(super) identity: Identity,
    /// Each subscription with the `id` of the subscribe that made it, for the `unsubscribed`
    /// that ends it when a refreshed token no longer allows it.
    pub(super) subscriptions: HashMap<Subscription, RequestId>,
    pub(super) inflight: Arc<Semaphore>,
    /// A subscribe waiting for records from Kafka before it can attach. Client frames are not
    /// read meanwhile, so later requests cannot overtake it.
    pub(super) pending: Option<Pending>,
    /// Publish rate limit.
    pub(super) bucket: TokenBucket,
    /// When the peer last sent anything (a frame or a pong).
    pub(super) last_heard: tokio::time::Instant,
    /// When the token runs out (and when to warn); moved on by `refresh`.
    pub(super) clock: TokenClock,
    /// A `refresh` read and not yet handled.
    pub(super) refresh_request: Option<(RequestId, String)>,
    /// A STOMP session's dialect (`stomp/`); `None`: the JSON protocol.
    pub(super) stomp: Option<Box<super::stomp::dialect::Stomp>>,
    /// What it is counted as in the session metrics.
    pub(super) transport: Transport,
    /// Counted open ([`Session::opened`]) and not yet finished: whatever ends the session — its
    /// loop, or a panic unwinding its task — must release it once ([`Drop`]).
    open: bool,
}

/// `server.publish_rate`: `rate` tokens a second, at most `burst`, one per publish.
pub(super) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: tokio::time::Instant,
}

impl TokenBucket {
    fn new(rate: &crate::config::PublishRate) -> Self {
        TokenBucket {
            rate: f64::from(rate.per_second),
            burst: f64::from(rate.burst),
            tokens: f64::from(rate.burst),
            refilled: tokio::time::Instant::now(),
        }
    }

    /// Takes a token if there is one (always, when the limit is off).
    pub(super) fn take(&mut self) -> bool {
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

/// A subscribe registered with its live records held back while its replay is read.
pub(super) struct Pending {
    pub(super) id: RequestId,
    pub(super) channel: String,
    pub(super) subscription: Subscription,
    pub(super) want: Want,
    /// What memory held at the start, continuing the range being read.
    pub(super) held: Vec<Held>,
    pub(super) read: tokio::task::JoinHandle<Result<Fetched, String>>,
}

/// How long a new session waits for the sessions it replaces to close before its `welcome`.
const REPLACE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn run(
    mut socket: Socket,
    ctx: Arc<WsContext>,
    identity: Identity,
    group: Option<String>,
    slot: ConnectionSlot,
    stomp: Option<Box<super::stomp::dialect::Stomp>>,
) {
    let handle = ctx.new_handle(&identity);
    let finished = CancellationToken::new();
    // Cancelled however this task ends, a panic included: a session replacing this one waits
    // for it.
    let _finished = finished.clone().drop_guard();
    let replaced = ctx
        .sessions
        .insert(&handle, group, finished.clone(), ctx.max_sessions_per_user);
    let transport = if stomp.is_some() {
        Transport::Stomp
    } else {
        Transport::WebSocket
    };
    let mut session = Session::new(ctx.clone(), handle.clone(), identity);
    session.stomp = stomp;
    session.opened(transport);
    tracing::info!(session = %handle.public_id, user = user_label(&session.identity), transport = transport.as_str(), "session opened");
    // Newest wins: the older sessions are told and closed before this one is welcomed.
    for old in &replaced {
        crate::sessions::replace(&old.handle);
    }
    for old in &replaced {
        if tokio::time::timeout(REPLACE_TIMEOUT, old.finished.cancelled())
            .await
            .is_err()
        {
            tracing::warn!(session = %old.handle.public_id, "replaced session did not close in time");
        }
    }
    handle.outbox.push_control(
        session.stomp_connected().unwrap_or_else(|| {
            protocol::welcome(&handle.public_id, session.identity.user.as_deref())
        }),
    );
    let reason = session.serve(&mut socket).await;
    session.finish(reason);
    drop(slot);
}

impl Session {
    /// A session with no subscription yet (the WebSocket's, or a Server-Sent Events stream's).
    pub(super) fn new(ctx: Arc<WsContext>, handle: Arc<SessionHandle>, identity: Identity) -> Self {
        let (identity_expiry, refresh_warning) = (identity.expires_at, ctx.limits.refresh_warning);
        Session {
            inflight: Arc::new(Semaphore::new(ctx.limits.max_inflight_publishes)),
            bucket: TokenBucket::new(&ctx.limits.publish_rate),
            ctx,
            handle,
            identity,
            subscriptions: HashMap::new(),
            pending: None,
            last_heard: tokio::time::Instant::now(),
            clock: TokenClock::new(identity_expiry, refresh_warning),
            refresh_request: None,
            stomp: None,
            transport: Transport::WebSocket,
            open: false,
        }
    }

    /// Counts the session open as `transport`; from here on it is released exactly once.
    pub(super) fn opened(&mut self, transport: Transport) {
        self.transport = transport;
        self.open = true;
        self.ctx.metrics.session_opened(transport);
    }

    async fn serve(&mut self, socket: &mut Socket) -> CloseReason {
        let mut batch: Vec<Outgoing> = Vec::with_capacity(16);
        let mut reading = true;
        // permessage-deflate: frames with this much text go compressed.
        let deflate = self
            .ctx
            .limits
            .deflate_min_bytes
            .filter(|_| socket.get_ref().deflate());
        let ping_every = self.ctx.limits.ping_interval;
        let mut pings = tokio::time::interval_at(
            tokio::time::Instant::now() + ping_every.unwrap_or(Duration::from_secs(3600)),
            ping_every.unwrap_or(Duration::from_secs(3600)),
        );
        // A STOMP session's heart-beats (EOL frames), as negotiated by CONNECT.
        let heart_beat = self.stomp.as_ref().and_then(|s| s.heart_beat);
        let every = heart_beat.unwrap_or(Duration::from_secs(3600));
        let mut beats = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            let can_read = reading
                && self.pending.is_none()
                && self.handle.outbox.has_control_room()
                && self.inflight.available_permits() > 0
                && self.stomp.as_ref().is_none_or(|s| s.reading());
            let disconnecting = self.stomp.as_ref().is_some_and(|s| s.disconnect.is_some());
            let (inflight, all_permits) = (
                self.inflight.clone(),
                self.ctx.limits.max_inflight_publishes as u32,
            );
            tokio::select! {
                biased;
                (frames, close) = self.handle.outbox.next_batch(std::mem::take(&mut batch), WRITE_BATCH) => {
                    batch = frames;
                    if let Some(stomp) = self.stomp.as_mut() {
                        if stomp.render(&mut batch) {
                            self.handle.outbox.close(Close::StompError);
                        }
                    }
                    if !batch.is_empty() {
                        let mut written = 0;
                        let mut io = Watched::new(socket.get_mut(), &self.handle);
                        let result = tokio::select! {
                            result = write_frames(&mut io, &batch, deflate, &mut written) => result.map_err(|_| None),
                            close = self.handle.outbox.aborted() => Err(Some(close)),
                        };
                        match result {
                            Ok(()) => {
                                let payload = payload_sent(&batch, deflate);
                                self.ctx.metrics.bytes_sent.inc_by(payload as u64);
                                let full = batch.len() == WRITE_BATCH;
                                record_latencies(&mut batch, &self.ctx.hub);
                                if full {
                                    // More is queued: let the other sessions write a batch too.
                                    // Without this, a backlog is written to the end before the
                                    // task yields, and in a burst to many sessions the last
                                    // one's turn comes after everyone's whole backlog — long
                                    // enough for the consumer waiting on it to call it slow.
                                    tokio::task::yield_now().await;
                                }
                            }
                            Err(Some(close)) => {
                                // Closed (e.g. overflow) while the peer was not reading. A frame
                                // cut in the middle must be finished before the close frame can
                                // follow it; if the peer does not take it in time, the
                                // connection is dropped without one.
                                if written > 0 {
                                    let rest = write_frames(socket.get_mut(), &batch, deflate, &mut written);
                                    if !matches!(tokio::time::timeout(CLOSE_TIMEOUT, rest).await, Ok(Ok(()))) {
                                        return close.counted_as();
                                    }
                                }
                                send_close(socket, close).await;
                                return close.counted_as();
                            }
                            Err(None) => return CloseReason::Error,
                        }
                    }
                    if let Some(close) = close {
                        send_close(socket, close).await;
                        return close.counted_as();
                    }
                }
                message = socket.next(), if can_read => {
                    self.last_heard = tokio::time::Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) if self.stomp.is_some() => self.on_stomp(text.as_bytes()),
                        Some(Ok(Message::Binary(bytes))) if self.stomp.is_some() => self.on_stomp(&bytes),
                        Some(Ok(Message::Text(text))) => {
                            self.on_text(text.as_str());
                            if let Some((id, token)) = self.refresh_request.take() {
                                self.refresh(id, token).await;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => self.refuse(
                            &None,
                            Refusal::new(ErrorCode::BadRequest, "binary frames are not supported: send JSON text frames"),
                        ),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                            // tungstenite queued the pong; make sure it leaves now.
                            if socket.flush().await.is_err() {
                                return CloseReason::Error;
                            }
                        }
                        Some(Ok(Message::Close(_))) => {
                            let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.flush()).await;
                            return CloseReason::ClientClosed;
                        }
                        Some(Ok(Message::Frame(_))) => {}
                        Some(Err(error)) => return self.on_read_error(socket, error).await,
                        None => return CloseReason::ClientClosed,
                    }
                }
                _ = inflight.acquire_many(all_permits), if disconnecting => {
                    self.stomp_disconnected();
                }
                _ = beats.tick(), if heart_beat.is_some() => {
                    let beat = socket.send(Message::Text("\n".into()));
                    if !matches!(tokio::time::timeout(CLOSE_TIMEOUT, beat).await, Ok(Ok(()))) {
                        return CloseReason::Error;
                    }
                }
                read = pending_read(&mut self.pending), if self.pending.is_some() => {
                    self.on_fetched(read);
                }
                _ = self.ctx.draining.cancelled(), if reading => reading = false,
                _ = pings.tick(), if ping_every.is_some() => {
                    if !can_read {
                        // Not reading (back-pressure): pongs cannot be heard; not idle.
                        self.last_heard = tokio::time::Instant::now();
                    }
                    let idle = self.ctx.limits.idle_timeout;
                    if idle.is_some_and(|idle| self.last_heard.elapsed() > idle) {
                        self.handle.outbox.close(Close::IdleTimeout);
                        send_close(socket, Close::IdleTimeout).await;
                        return CloseReason::IdleTimeout;
                    }
                    let ping = socket.send(Message::Ping(Default::default()));
                    if !matches!(tokio::time::timeout(CLOSE_TIMEOUT, ping).await, Ok(Ok(()))) {
                        return CloseReason::Error;
                    }
                }
                _ = sleep_until_option(self.clock.warning), if self.clock.warning.is_some() => {
                    self.warn_expiring();
                }
                _ = sleep_until_option(self.clock.expiry), if self.clock.expiry.is_some() && self.handle.outbox.closing().is_none() => {
                    self.handle.outbox.close(Close::TokenExpired);
                }
            }
        }
    }

    async fn on_read_error(&self, socket: &mut Socket, error: WsError) -> CloseReason {
        let close = match error {
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => Some((
                Close::FrameTooLarge,
                format!("frame of {size} bytes exceeds the limit of {max_size}"),
            )),
            WsError::Utf8(_) => Some((Close::InvalidUtf8, Close::InvalidUtf8.reason().into())),
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
            WsError::Protocol(e) => Some((Close::ProtocolError, e.to_string())),
            WsError::Capacity(e) => Some((Close::FrameTooLarge, e.to_string())),
            WsError::ConnectionClosed | WsError::AlreadyClosed => None,
            // A compressed message refused by permessage-deflate's reader (`inflate.rs`).
            WsError::Io(e) if InflateError::of(&e).is_some() => {
                let refusal = InflateError::of(&e).expect("checked");
                let close = match refusal {
                    InflateError::TooLarge { .. } => Close::FrameTooLarge,
                    InflateError::Invalid(_) | InflateError::Protocol(_) => Close::ProtocolError,
                };
                Some((close, refusal.to_string()))
            }
            // A peer that went away without a close frame (a tab closed with unread data
            // resets the connection): as normal as a close, not a bridge error.
            WsError::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                None
            }
            other => {
                tracing::debug!(session = %self.handle.public_id, error = %other, "websocket read failed");
                self.handle.outbox.close(Close::Stopped);
                return CloseReason::Error;
            }
        };
        let reason = close
            .as_ref()
            .map_or(CloseReason::ClientClosed, |(close, _)| close.counted_as());
        // Nothing more is written: records stop queueing now, not when the linger ends (a
        // pusher must not wait for a writer that has stopped).
        self.handle.outbox.close(Close::Stopped);
        if let Some((close, text)) = close {
            tracing::info!(session = %self.handle.public_id, reason = %text, "closing session");
            close_and_linger(
                socket,
                CloseFrame {
                    code: CloseCode::from(close.code()),
                    reason: text.into(),
                },
            )
            .await;
        }
        reason
    }

    pub(super) fn finish(&mut self, reason: CloseReason) {
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
pub(super) async fn pending_read(pending: &mut Option<Pending>) -> Result<Fetched, String> {
    match pending.as_mut() {
        Some(pending) => (&mut pending.read)
            .await
            .unwrap_or_else(|e| Err(e.to_string())),
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_until_option(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
