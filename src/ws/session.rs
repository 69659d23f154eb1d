//! One WebSocket session: a single task that writes what the session's outbox holds (in
//! batches, one flush per batch) and reads client frames while it has room to answer them.
//! Reading pauses while the session has `max_inflight_publishes` publishes waiting for Kafka or
//! too many unsent answers, so a client cannot make the bridge buffer without bound.
//!
//! Every bad frame is answered with an `error` frame and the session carries on; only frames
//! over `max_frame_bytes` (1009), protocol violations and invalid UTF-8 end it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::{user_label, ConnectionSlot, WsContext};
use crate::auth::{check_allow, check_key, Identity};
use crate::config::Deliver;
use crate::catalogue::ChannelId;
use crate::hub::{Attached, Begun, Fetched, Hub, SessionHandle, Want};
use crate::inbound::Publisher;
use crate::metrics::CloseReason;
use crate::outbox::{Close, Outbox, Outgoing};
use crate::protocol::{self, ClientFrame, ErrorCode, Frame, Refusal, RequestId, SnapshotValue};
use crate::state::Held;

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Most partitions a `resume` may list.
const MAX_RESUME_PARTITIONS: usize = 1024;

/// Most frames written per flush.
const WRITE_BATCH: usize = 256;
/// Most bytes of small frames joined into one write.
const JOIN_BYTES: usize = 64 * 1024;
/// How long a close frame may take to leave, and the peer to answer it, before the connection
/// is dropped anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A subscription as the session tracks it: channel and key (None on unkeyed channels).
type Subscription = (ChannelId, Option<String>);

struct Session {
    ctx: Arc<WsContext>,
    handle: Arc<SessionHandle>,
    identity: Identity,
    subscriptions: HashSet<Subscription>,
    inflight: Arc<Semaphore>,
    /// A subscribe waiting for records from Kafka before it can attach. Client frames are not
    /// read meanwhile, so later requests cannot overtake it.
    pending: Option<Pending>,
    /// Publish rate limit.
    bucket: TokenBucket,
    /// When the peer last sent anything (a frame or a pong).
    last_heard: tokio::time::Instant,
}

/// `server.publish_rate`: `rate` tokens a second, at most `burst`, one per publish.
struct TokenBucket {
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

/// Longest subscription key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// A subscribe registered with its live records held back while its replay is read.
struct Pending {
    id: RequestId,
    channel: String,
    subscription: Subscription,
    want: Want,
    /// What memory held at the start, continuing the range being read.
    held: Vec<Held>,
    read: tokio::task::JoinHandle<Result<Fetched, String>>,
}

/// How long a new session waits for the sessions it replaces to close before its `welcome`.
const REPLACE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn run(
    mut socket: Socket,
    ctx: Arc<WsContext>,
    identity: Identity,
    slot: ConnectionSlot,
) {
    let id = ctx
        .next_session
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let handle = Arc::new(SessionHandle {
        id,
        public_id: uuid::Uuid::new_v4().simple().to_string(),
        user: identity.user.clone(),
        outbox: Outbox::new(ctx.limits.send_queue),
    });
    let finished = CancellationToken::new();
    let replaced = ctx
        .sessions
        .insert(&handle, finished.clone(), ctx.max_sessions_per_user);
    ctx.metrics.sessions_open.inc();
    tracing::info!(session = %handle.public_id, user = user_label(&identity), "session opened");
    // Newest wins: the older sessions are told and closed before this one is welcomed.
    for old in &replaced {
        old.handle.outbox.push_control(protocol::session_replaced());
        old.handle.outbox.close(Close::Replaced);
    }
    for old in &replaced {
        if tokio::time::timeout(REPLACE_TIMEOUT, old.finished.cancelled())
            .await
            .is_err()
        {
            tracing::warn!(session = %old.handle.public_id, "replaced session did not close in time");
        }
    }
    handle.outbox.push_control(protocol::welcome(
        &handle.public_id,
        identity.user.as_deref(),
    ));
    let ctx_publish_rate = ctx.limits.publish_rate;
    let mut session = Session {
        inflight: Arc::new(Semaphore::new(ctx.limits.max_inflight_publishes)),
        ctx,
        handle,
        identity,
        subscriptions: HashSet::new(),
        pending: None,
        bucket: TokenBucket::new(&ctx_publish_rate),
        last_heard: tokio::time::Instant::now(),
    };
    let reason = session.serve(&mut socket).await;
    session.finish(reason);
    finished.cancel();
    drop(slot);
}

/// When a token valid until `expires_at` (seconds since the epoch) runs out.
fn expiry_deadline(expires_at: Option<u64>) -> Option<tokio::time::Instant> {
    let expires_at = UNIX_EPOCH + Duration::from_secs(expires_at?);
    let left = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Some(tokio::time::Instant::now() + left)
}

impl Session {
    async fn serve(&mut self, socket: &mut Socket) -> CloseReason {
        let mut batch: Vec<Outgoing> = Vec::with_capacity(16);
        let mut reading = true;
        let expiry = expiry_deadline(self.identity.expires_at);
        let ping_every = self.ctx.limits.ping_interval;
        let mut pings = tokio::time::interval_at(
            tokio::time::Instant::now() + ping_every.unwrap_or(Duration::from_secs(3600)),
            ping_every.unwrap_or(Duration::from_secs(3600)),
        );
        loop {
            let can_read = reading
                && self.pending.is_none()
                && self.handle.outbox.has_control_room()
                && self.inflight.available_permits() > 0;
            tokio::select! {
                biased;
                (frames, close) = self.handle.outbox.next_batch(std::mem::take(&mut batch), WRITE_BATCH) => {
                    batch = frames;
                    if !batch.is_empty() {
                        let mut written = 0;
                        let mut io = Watched::new(socket.get_mut(), &self.handle.outbox);
                        let result = tokio::select! {
                            result = write_frames(&mut io, &batch, &mut written) => result.map_err(|_| None),
                            close = self.handle.outbox.aborted() => Err(Some(close)),
                        };
                        match result {
                            Ok(()) => {
                                let payload: usize = batch.iter().map(|o| o.frame.len()).sum();
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
                                    let rest = write_frames(socket.get_mut(), &batch, &mut written);
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
                        Some(Ok(Message::Text(text))) => self.on_text(text.as_str()),
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
                _ = sleep_until_option(expiry), if expiry.is_some() && self.handle.outbox.closing().is_none() => {
                    self.handle.outbox.close(Close::TokenExpired);
                }
            }
        }
    }

    fn on_text(&mut self, text: &str) {
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
            ClientFrame::Ping { id } => {
                self.handle.outbox.push_control(protocol::pong(&id));
            }
            ClientFrame::Subscribe {
                id,
                channel,
                key,
                resume,
                history,
            } => {
                let want = match (resume, history) {
                    (Some(seen), _) => Want::Resume(seen),
                    (None, Some(count)) => Want::Newest(count),
                    (None, None) => Want::Live,
                };
                if let Err(refusal) = self.subscribe(id.clone(), &channel, key, want) {
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
            } => {
                if !self.bucket.take() {
                    self.ctx
                        .inbound
                        .count_refusal(&channel, ErrorCode::RateLimited);
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
                let prepared = match self.ctx.inbound.prepare(
                    &channel,
                    data,
                    &headers,
                    id.as_deref(),
                    &publisher,
                ) {
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
                        Ok(delivered) => {
                            protocol::ack(&id, &topic, delivered.partition, delivered.offset)
                        }
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
        }
    }

    /// Resolves a subscription's channel and key and checks the session may have it.
    fn resolve(
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

    fn subscribe(
        &mut self,
        id: RequestId,
        channel: &str,
        key: Option<String>,
        want: Want,
    ) -> Result<(), Refusal> {
        let subscription = self.resolve(channel, key)?;
        if !self.subscriptions.contains(&subscription)
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
                self.subscriptions.insert(subscription);
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
    fn on_fetched(&mut self, read: Result<Fetched, String>) {
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
        self.subscriptions.insert(pending.subscription);
    }

    fn count_replay(&self, channel_id: ChannelId, attached: Attached, from_kafka: usize) {
        let metrics = &self.ctx.catalogue.channel(channel_id).metrics;
        metrics
            .replayed_memory
            .inc_by(attached.replayed.saturating_sub(from_kafka) as u64);
        if attached.gap {
            metrics.replay_gaps.inc();
        }
    }

    fn unsubscribe(
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
        if self.subscriptions.remove(&(channel_id, key.clone())) {
            self.ctx
                .hub
                .unsubscribe(channel_id, key.as_deref(), &self.handle);
        }
        self.handle
            .outbox
            .push_control(protocol::unsubscribed(id, channel, key.as_deref()));
        Ok(())
    }

    fn refuse(&self, id: &RequestId, refusal: Refusal) {
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

    fn finish(&mut self, reason: CloseReason) {
        if let Some(pending) = self.pending.take() {
            pending.read.abort();
            let (channel_id, key) = &pending.subscription;
            self.ctx
                .hub
                .unsubscribe(*channel_id, key.as_deref(), &self.handle);
        }
        self.handle.outbox.close(Close::Stopped);
        for (channel_id, key) in self.subscriptions.drain() {
            self.ctx
                .hub
                .unsubscribe(channel_id, key.as_deref(), &self.handle);
        }
        self.ctx.sessions.remove(&self.handle);
        self.ctx.metrics.sessions_open.dec();
        self.ctx.metrics.session_closed(reason);
        tracing::info!(session = %self.handle.public_id, user = user_label(&self.identity), reason = reason.as_str(), "session closed");
    }
}

/// Waits for the pending subscription's Kafka read (pending forever when there is none).
async fn pending_read(pending: &mut Option<Pending>) -> Result<Fetched, String> {
    match pending.as_mut() {
        Some(pending) => (&mut pending.read)
            .await
            .unwrap_or_else(|e| Err(e.to_string())),
        None => std::future::pending().await,
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

async fn sleep_until_option(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Writes a batch of frames straight to the connection, already encoded for the wire (shared
/// by every session; see [`Frame::wire`]). Consecutive frames are joined into one buffer of up to
/// [`JOIN_BYTES`] (the kernel takes one contiguous buffer faster than many small pieces), so a
/// batch of small frames is one `write()`; a larger frame is written from its shared buffer.
/// `written` counts the batch's bytes written so far: a write that is abandoned can be finished
/// by calling again with the same batch.
///
/// tungstenite, which reads the connection and writes pings, pongs and the close frame, never
/// holds unsent bytes here: each of its writes is flushed before the session goes on.
async fn write_frames<W>(io: &mut W, batch: &[Outgoing], written: &mut usize) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let wire = |i: usize| batch[i].frame.wire();
    let (mut first, mut start) = (0, 0);
    while first < batch.len() {
        // Frames first..end make the next write.
        let (mut end, mut size) = (first + 1, wire(first).len());
        while end < batch.len() && size + wire(end).len() <= JOIN_BYTES {
            size += wire(end).len();
            end += 1;
        }
        if *written < start + size {
            let joined: Vec<u8>;
            let bytes = if end == first + 1 {
                wire(first)
            } else {
                let mut buffer = Vec::with_capacity(size);
                for i in first..end {
                    buffer.extend_from_slice(wire(i));
                }
                joined = buffer;
                &joined
            };
            while *written < start + size {
                let n = io.write(&bytes[*written - start..]).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                *written += n;
            }
        }
        (first, start) = (end, start + size);
    }
    io.flush().await
}

/// The connection as the writer sees it: tells the outbox whether the kernel takes bytes
/// (a write returned `Pending`: the send buffer is full) — what makes a session slow.
struct Watched<'a, W> {
    io: &'a mut W,
    outbox: &'a Outbox,
}

impl<'a, W> Watched<'a, W> {
    fn new(io: &'a mut W, outbox: &'a Outbox) -> Self {
        Watched { io, outbox }
    }

    /// Passes a poll of the connection on, telling the outbox whether it waits for the kernel.
    fn watch<T>(&self, poll: std::task::Poll<T>) -> std::task::Poll<T> {
        self.outbox.set_socket_blocked(poll.is_pending());
        poll
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<'_, W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut *self.io).poll_write(cx, buf);
        self.watch(poll)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let poll = std::pin::Pin::new(&mut *self.io).poll_flush(cx);
        self.watch(poll)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.io).poll_shutdown(cx)
    }
}

/// Records each live record's delivery latency (Kafka timestamp → written) and empties the batch.
fn record_latencies(batch: &mut Vec<Outgoing>, hub: &Hub) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for (channel, timestamp) in batch.drain(..).filter_map(|o| o.stamp) {
        let latency = (now_ms - timestamp).max(0) as f64 / 1000.0;
        hub.catalogue()
            .channel(channel)
            .metrics
            .delivery_latency
            .observe(latency);
    }
}

async fn send_close(socket: &mut Socket, close: Close) {
    let frame = CloseFrame {
        code: CloseCode::from(close.code()),
        reason: close.reason().into(),
    };
    close_and_linger(socket, frame).await;
}

/// Sends a close frame, then reads and discards what the peer still sends until its own close
/// (or EOF), all within [`CLOSE_TIMEOUT`]. Dropping a socket whose input was not read makes the
/// kernel reset the connection, and the reset can destroy the close frame before the peer has
/// read it: a client still publishing at shutdown would see a reset instead of 1001.
async fn close_and_linger(socket: &mut Socket, frame: CloseFrame) {
    let deadline = tokio::time::Instant::now() + CLOSE_TIMEOUT;
    let sent = tokio::time::timeout_at(deadline, socket.send(Message::Close(Some(frame)))).await;
    if matches!(sent, Ok(Ok(()))) {
        let _ = tokio::time::timeout_at(deadline, async {
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// Takes at most `per_write` bytes per write, and refuses writes (pending) once `budget`
    /// bytes are taken, like a socket whose peer stopped reading.
    struct Trickle {
        taken: Vec<u8>,
        per_write: usize,
        budget: usize,
        writes: usize,
    }

    impl tokio::io::AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.per_write).min(self.budget);
            if n == 0 {
                return Poll::Pending;
            }
            self.budget -= n;
            self.writes += 1;
            self.taken.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn batch(sizes: &[usize]) -> Vec<Outgoing> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| Outgoing {
                frame: Frame::from(format!("{i}").repeat(size)),
                stamp: None,
            })
            .collect()
    }

    fn concatenated(batch: &[Outgoing]) -> Vec<u8> {
        batch.iter().flat_map(|o| o.frame.wire().to_vec()).collect()
    }

    #[tokio::test]
    async fn a_batch_of_small_frames_is_one_write_and_large_frames_go_alone() {
        let batch = batch(&[10, 200, 3, 70_000, 5, 6]);
        let mut io = Trickle {
            taken: Vec::new(),
            per_write: usize::MAX,
            budget: usize::MAX,
            writes: 0,
        };
        let mut written = 0;
        write_frames(&mut io, &batch, &mut written).await.unwrap();
        assert_eq!(io.taken, concatenated(&batch));
        assert_eq!(written, io.taken.len());
        // [10, 200, 3] joined, 70,000 alone, [5, 6] joined.
        assert_eq!(io.writes, 3);
    }

    #[tokio::test]
    async fn an_abandoned_write_is_finished_where_it_stopped() {
        let batch = batch(&[100, 2_000, 70_000, 300, 1]);
        let all = concatenated(&batch);
        for cut in [1, 99, 102, 2_105, 50_000, all.len() - 1] {
            let mut io = Trickle {
                taken: Vec::new(),
                per_write: 777,
                budget: cut,
                writes: 0,
            };
            let mut written = 0;
            let stalled =
                futures_util::FutureExt::now_or_never(write_frames(&mut io, &batch, &mut written));
            assert!(stalled.is_none(), "the write waits for the peer");
            assert_eq!(written, cut);
            io.budget = usize::MAX;
            write_frames(&mut io, &batch, &mut written).await.unwrap();
            assert_eq!(io.taken, all, "cut at {cut}");
        }
    }
}
