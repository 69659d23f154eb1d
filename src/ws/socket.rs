//! A session over a WebSocket, whatever its dialect ([`SocketTransport`]: the JSON protocol or
//! STOMP): a single task that writes what the session's outbox holds (in batches, encoded by
//! the transport, one flush per batch) and reads client messages while the session has room
//! to answer them. Reading pauses while the session has `max_inflight_publishes` publishes
//! waiting for Kafka or too many unsent answers, so a client cannot make the bridge buffer
//! without bound.
//!
//! Every bad message is answered (in the dialect) and the session carries on; only frames over
//! `max_frame_bytes` (1009; a compressed message by its inflated size), protocol violations
//! (1002, also broken compressed data) and invalid UTF-8 (1007) end it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::inflate::InflateError;
use super::transport::{Incoming, SocketTransport};
use super::wire::{
    close_and_linger, payload_sent, record_latencies, send_close, write_frames, Batch, Socket,
    Watched, CLOSE_TIMEOUT,
};
use super::{ConnectionSlot, WsContext};
use crate::auth::Identity;
use crate::metrics::{CloseReason, Transport as Counted};
use crate::outbox::{Close, Outgoing};
use crate::protocol::Frame;
use crate::session::{pending_read, sleep_until_option, user_label, Session};

/// Most frames written per flush.
const WRITE_BATCH: usize = 256;

/// How long a new session waits for the sessions it replaces to close before its `welcome`.
const REPLACE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a session of `transport` on `socket` until it ends.
pub(super) async fn run<T: SocketTransport>(
    mut socket: Socket,
    ctx: Arc<WsContext>,
    identity: Identity,
    group: Option<String>,
    slot: ConnectionSlot,
    mut transport: T,
    counted: Counted,
) {
    let handle = ctx.new_handle(&identity);
    let finished = CancellationToken::new();
    // Cancelled however this task ends, a panic included: a session replacing this one waits
    // for it.
    let _finished = finished.clone().drop_guard();
    let replaced =
        ctx.core
            .sessions
            .insert(&handle, group, finished.clone(), ctx.max_sessions_per_user);
    let mut session = Session::new(ctx.core.clone(), handle.clone(), identity);
    session.opened(counted);
    tracing::info!(session = %handle.public_id, user = user_label(&session.identity), transport = counted.as_str(), "session opened");
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
    session.answer_item(transport.greeting(&session));
    let mut connection = Connection {
        session,
        socket: &mut socket,
        ctx: &ctx,
    };
    let reason = connection.serve(&mut transport).await;
    connection.session.finish(reason);
    drop(slot);
}

/// A session and its socket.
struct Connection<'a> {
    session: Session,
    socket: &'a mut Socket,
    ctx: &'a WsContext,
}

impl Connection<'_> {
    async fn serve<T: SocketTransport>(&mut self, transport: &mut T) -> CloseReason {
        let handle = self.session.handle.clone();
        let limits = &self.ctx.core.limits;
        let mut batch: Vec<Outgoing> = Vec::with_capacity(16);
        let mut frames: Vec<Frame> = Vec::with_capacity(16);
        let mut reading = true;
        // permessage-deflate: frames with this much text go compressed.
        let deflate = limits
            .deflate_min_bytes
            .filter(|_| self.socket.get_ref().deflate());
        let ping_every = limits.ping_interval;
        let mut pings = tokio::time::interval_at(
            tokio::time::Instant::now() + ping_every.unwrap_or(Duration::from_secs(3600)),
            ping_every.unwrap_or(Duration::from_secs(3600)),
        );
        let mut last_heard = tokio::time::Instant::now();
        // The transport's own heart-beats (STOMP's, as negotiated by CONNECT).
        let heart_beat = transport.heart_beat();
        let every = heart_beat.unwrap_or(Duration::from_secs(3600));
        let mut beats = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            let can_read = reading && self.session.may_read() && transport.reading();
            let disconnecting = transport.disconnecting();
            let answered = self.session.publishes_answered();
            let session = &mut self.session;
            let socket = &mut *self.socket;
            tokio::select! {
                biased;
                (taken, close) = handle.outbox.next_batch(std::mem::take(&mut batch), WRITE_BATCH) => {
                    batch = taken;
                    frames.clear();
                    let close_after = if T::WRITES_ITEMS {
                        transport.prepare(&mut batch);
                        false
                    } else {
                        transport.encode(&batch, &mut frames)
                    };
                    if close_after {
                        handle.outbox.close(Close::StompError);
                    }
                    // What is written: the transport's frames, or (the JSON protocol) the
                    // queued items themselves, records as their shared frames, borrowed.
                    let wires = if T::WRITES_ITEMS {
                        Batch::Items(&batch)
                    } else {
                        Batch::Frames(&frames)
                    };
                    if !wires.is_empty() {
                        let mut written = 0;
                        let mut io = Watched::new(socket.get_mut(), &handle);
                        let result = tokio::select! {
                            result = write_frames(&mut io, wires, deflate, &mut written) => result.map_err(|_| None),
                            close = handle.outbox.aborted() => Err(Some(close)),
                        };
                        match result {
                            Ok(()) => {
                                let payload = payload_sent(wires, deflate);
                                self.ctx.core.metrics.bytes_sent.inc_by(payload as u64);
                                self.ctx.core.metrics.socket_writes.inc();
                                let full = batch.len() == WRITE_BATCH;
                                record_latencies(&mut batch, &self.ctx.core.hub);
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
                                    let rest = write_frames(socket.get_mut(), wires, deflate, &mut written);
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
                    batch.clear();
                    if let Some(close) = close {
                        send_close(socket, close).await;
                        return close.counted_as();
                    }
                }
                message = socket.next(), if can_read => {
                    last_heard = tokio::time::Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            transport.on_message(session, Incoming::Text(text.as_str()));
                            session.refresh_requested().await;
                        }
                        Some(Ok(Message::Binary(bytes))) => {
                            transport.on_message(session, Incoming::Binary(&bytes));
                        }
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
                        Some(Err(error)) => return on_read_error(session, socket, error).await,
                        None => return CloseReason::ClientClosed,
                    }
                }
                _ = answered, if disconnecting => {
                    transport.disconnected(session);
                }
                _ = beats.tick(), if heart_beat.is_some() => {
                    let beat = socket.send(Message::Text("\n".into()));
                    if !matches!(tokio::time::timeout(CLOSE_TIMEOUT, beat).await, Ok(Ok(()))) {
                        return CloseReason::Error;
                    }
                }
                read = pending_read(&mut session.pending), if session.pending.is_some() => {
                    session.on_fetched(read);
                }
                _ = self.ctx.draining.cancelled(), if reading => reading = false,
                _ = pings.tick(), if ping_every.is_some() => {
                    if !can_read {
                        // Not reading (back-pressure): pongs cannot be heard; not idle.
                        last_heard = tokio::time::Instant::now();
                    }
                    if limits.idle_timeout.is_some_and(|idle| last_heard.elapsed() > idle) {
                        handle.outbox.close(Close::IdleTimeout);
                        send_close(socket, Close::IdleTimeout).await;
                        return CloseReason::IdleTimeout;
                    }
                    let ping = socket.send(Message::Ping(Default::default()));
                    if !matches!(tokio::time::timeout(CLOSE_TIMEOUT, ping).await, Ok(Ok(()))) {
                        return CloseReason::Error;
                    }
                }
                _ = sleep_until_option(session.clock.warning), if session.clock.warning.is_some() => {
                    session.warn_expiring();
                }
                _ = sleep_until_option(session.clock.expiry), if session.clock.expiry.is_some() && handle.outbox.closing().is_none() => {
                    handle.outbox.close(Close::TokenExpired);
                }
            }
        }
    }
}

async fn on_read_error(session: &Session, socket: &mut Socket, error: WsError) -> CloseReason {
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
            tracing::debug!(session = %session.handle.public_id, error = %other, "websocket read failed");
            session.handle.outbox.close(Close::Stopped);
            return CloseReason::Error;
        }
    };
    let reason = close
        .as_ref()
        .map_or(CloseReason::ClientClosed, |(close, _)| close.counted_as());
    // Nothing more is written: records stop queueing now, not when the linger ends (a
    // pusher must not wait for a writer that has stopped).
    session.handle.outbox.close(Close::Stopped);
    if let Some((close, text)) = close {
        tracing::info!(session = %session.handle.public_id, reason = %text, "closing session");
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
