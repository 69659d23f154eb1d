//! STOMP 1.2 over WebSocket (subprotocol `v12.stomp`, also `v11.stomp`/`v10.stomp`, on
//! `ws_path`): a transport of the same [`Session`] as the JSON protocol's (permissions, replay,
//! hub, outbox, slow-client policy, rate limits); only its dialect differs. Client frames are
//! turned into the session's requests here; the queue is encoded for this session
//! (`dialect.rs`): a shared record becomes a MESSAGE with this session's `subscription` header,
//! `subscribed`/`ack`/`unsubscribed` with an id become RECEIPTs, and an `error` becomes an
//! ERROR after which the session closes (as STOMP requires).
//!
//! A request's id is its `receipt` header as a JSON string, so answers find their receipt.
//! Frames this module queues itself (CONNECTED, RECEIPT of DISCONNECT) are
//! [`Item::Native`]. Not supported: `ack: client` modes (ACK, NACK), transactions (BEGIN,
//! COMMIT, ABORT).

pub(super) mod codec;
pub(super) mod dialect;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

use self::codec::{Decoded, StompFrame};
use self::dialect::{error_frame, receipt_id, text, Stomp, Subscribed};
use super::transport::{Incoming, SocketTransport};
use super::wire::{send_close, Socket};
use super::{ConnectionSlot, WsContext};
use crate::auth::Identity;
use crate::config::Deliver;
use crate::hub::Want;
use crate::metrics::{RejectReason, Transport as Counted};
use crate::outbox::Close;
use crate::protocol::{ErrorCode, Item, Refusal};
use crate::session::{Request, Session, Subscribe};

/// STOMP versions spoken, preferred first.
const VERSIONS: &[&str] = &["1.2", "1.1", "1.0"];
/// How long a new connection has to send its CONNECT frame.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// SEND headers that are STOMP's own, not copied to the Kafka record.
const SEND_OWN_HEADERS: &[&str] = &[
    "destination",
    "receipt",
    "content-type",
    "content-length",
    "transaction",
];

/// A STOMP connection after its handshake: waits for CONNECT, authenticates (the CONNECT
/// frame's `passcode` or `Authorization: Bearer` header, else the handshake's token), answers
/// CONNECTED and runs the session. A connection without valid credentials gets an ERROR and
/// is closed.
pub(super) async fn run(
    mut socket: Socket,
    ctx: Arc<WsContext>,
    handshake: Option<Identity>,
    group: Option<String>,
    slot: ConnectionSlot,
) {
    let connect = match tokio::time::timeout(CONNECT_TIMEOUT, first_frame(&mut socket)).await {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => return,
        Ok(Err(message)) => {
            return refuse(&mut socket, &ctx, RejectReason::BadRequest, &message).await
        }
        Err(_) => {
            let message = format!("expected CONNECT within {} s", CONNECT_TIMEOUT.as_secs());
            return refuse(&mut socket, &ctx, RejectReason::BadRequest, &message).await;
        }
    };
    let stomp = match negotiate(&connect, &ctx) {
        Ok(stomp) => stomp,
        Err(message) => return refuse(&mut socket, &ctx, RejectReason::BadRequest, &message).await,
    };
    let identity = match (connect_token(&connect), handshake) {
        (None, Some(identity)) => Ok(identity),
        (token, _) => ctx.core.auth.authenticate(token).await,
    };
    let identity = match identity {
        Ok(identity) => identity,
        Err(reason) => {
            let message = format!("unauthorized: {reason}");
            return refuse(&mut socket, &ctx, RejectReason::Unauthorized, &message).await;
        }
    };
    super::socket::run(socket, ctx, identity, group, slot, stomp, Counted::Stomp).await;
}

/// The first frame, skipping heart-beats; `None` when the client went away.
async fn first_frame(socket: &mut Socket) -> Result<Option<StompFrame>, String> {
    loop {
        let bytes = match socket.next().await {
            Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
            Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ok(None),
        };
        match codec::decode(&bytes)? {
            Decoded::HeartBeat => continue,
            Decoded::Frame(frame) if frame.command == "CONNECT" || frame.command == "STOMP" => {
                return Ok(Some(frame))
            }
            Decoded::Frame(frame) => {
                return Err(format!(
                    "expected CONNECT or STOMP first, found {}",
                    frame.command
                ))
            }
        }
    }
}

/// Version and heart-beats of a CONNECT frame.
pub(super) fn negotiate(connect: &StompFrame, ctx: &WsContext) -> Result<Stomp, String> {
    let accepted = connect.header("accept-version").unwrap_or("1.0");
    let version = VERSIONS
        .iter()
        .copied()
        .find(|v| accepted.split(',').any(|a| a.trim() == *v))
        .ok_or_else(|| {
            format!(
                "accept-version: expected one of {}, found `{accepted}`",
                VERSIONS.join(",")
            )
        })?;
    let (_, wants_every) = parse_heart_beat(connect.header("heart-beat").unwrap_or("0,0"))?;
    let ours = ctx
        .core
        .limits
        .ping_interval
        .map_or(0, |d| d.as_millis() as u64);
    let heart_beat =
        (ours > 0 && wants_every > 0).then(|| Duration::from_millis(ours.max(wants_every)));
    Ok(Stomp {
        prefixes: ctx.stomp.clone(),
        version,
        heart_beat,
        offered: (ours, ours),
        subscriptions: HashMap::new(),
        by_target: Default::default(),
        failed: false,
        disconnect: None,
    })
}

/// `cx,cy` in milliseconds.
fn parse_heart_beat(value: &str) -> Result<(u64, u64), String> {
    let bad = || format!("heart-beat: expected `cx,cy` in milliseconds, found `{value}`");
    let (cx, cy) = value.split_once(',').ok_or_else(bad)?;
    Ok((
        cx.trim().parse().map_err(|_| bad())?,
        cy.trim().parse().map_err(|_| bad())?,
    ))
}

/// The token of a CONNECT frame: `passcode`, else `Authorization: Bearer …`.
fn connect_token(connect: &StompFrame) -> Option<String> {
    if let Some(passcode) = connect.header("passcode").filter(|p| !p.is_empty()) {
        return Some(passcode.to_owned());
    }
    let value = connect
        .header("Authorization")
        .or_else(|| connect.header("authorization"))?;
    super::request::bearer(value)
}

/// Answers a connection that cannot become a session: ERROR, then the close.
async fn refuse(socket: &mut Socket, ctx: &WsContext, reason: RejectReason, message: &str) {
    ctx.core.metrics.rejected(reason);
    tracing::debug!(reason = %message, "stomp connection refused");
    let code = match reason {
        RejectReason::Unauthorized => ErrorCode::Unauthorized,
        _ => ErrorCode::BadRequest,
    };
    let error = error_frame(None, code.as_str(), message);
    let sent = socket.send(Message::text(error.as_str())).await;
    if sent.is_ok() {
        send_close(socket, Close::StompError).await;
    }
}

impl SocketTransport for Stomp {
    /// CONNECTED, the first frame of the session.
    fn greeting(&self, session: &Session) -> Item {
        Item::Native(self.connected(&session.handle.public_id, session.identity.user.as_deref()))
    }

    /// One client WebSocket message of a STOMP session.
    fn on_message(&mut self, session: &mut Session, message: Incoming<'_>) {
        let bytes = match message {
            Incoming::Text(text) => text.as_bytes(),
            Incoming::Binary(bytes) => bytes,
        };
        let frame = match codec::decode(bytes) {
            Ok(Decoded::HeartBeat) => return,
            Ok(Decoded::Frame(frame)) => frame,
            Err(message) => {
                return self.refuse(session, None, Refusal::new(ErrorCode::BadRequest, message))
            }
        };
        let receipt = frame.header("receipt");
        let result = match frame.command.as_str() {
            "SUBSCRIBE" => self.subscribe(session, &frame, receipt),
            "UNSUBSCRIBE" => self.unsubscribe(session, &frame, receipt),
            "SEND" => self.send(session, &frame, receipt),
            "DISCONNECT" => {
                self.disconnect = Some(receipt.map(str::to_owned));
                Ok(())
            }
            "CONNECT" | "STOMP" => Err("already connected".to_owned()),
            "ACK" | "NACK" => Err(format!(
                "{}: not supported, subscriptions are `ack: auto` only",
                frame.command
            )),
            _ => Err(format!("{}: transactions are not supported", frame.command)),
        };
        if let Err(message) = result {
            self.refuse(
                session,
                receipt,
                Refusal::new(ErrorCode::BadRequest, message),
            );
        }
    }

    fn reading(&self) -> bool {
        Stomp::reading(self)
    }

    fn heart_beat(&self) -> Option<Duration> {
        self.heart_beat
    }

    fn disconnecting(&self) -> bool {
        self.disconnect.is_some()
    }

    /// DISCONNECT read and every publish answered: its RECEIPT, then the close.
    fn disconnected(&mut self, session: &mut Session) {
        let Some(receipt) = self.disconnect.take() else {
            return;
        };
        if let Some(receipt) = receipt {
            session.handle.outbox.push_control(Item::Native(text(
                &StompFrame::new("RECEIPT").with("receipt-id", receipt),
            )));
        }
        session.handle.outbox.close(Close::StompDisconnect);
    }
}

impl Stomp {
    /// Refuses a frame: an `error` (→ ERROR), after which nothing more is read.
    fn refuse(&mut self, session: &Session, receipt: Option<&str>, refusal: Refusal) {
        self.failed = true;
        session.refuse(&receipt_id(receipt), refusal);
    }

    fn subscribe(
        &mut self,
        session: &mut Session,
        frame: &StompFrame,
        receipt: Option<&str>,
    ) -> Result<(), String> {
        let id = frame
            .header("id")
            .ok_or("SUBSCRIBE: header `id` is required")?
            .to_owned();
        let destination = frame
            .header("destination")
            .ok_or("SUBSCRIBE: header `destination` is required")?
            .to_owned();
        if let Some(ack) = frame.header("ack").filter(|a| *a != "auto") {
            return Err(format!(
                "ack: `{ack}` is not supported, subscriptions are `ack: auto` only"
            ));
        }
        if self.subscriptions.contains_key(&id) {
            return Err(format!("subscription id `{id}` is already in use"));
        }
        let catalogue = &session.ctx.catalogue;
        let prefixes = &self.prefixes;
        let (channel, key) = if let Some(channel) = destination.strip_prefix(&prefixes.user_prefix)
        {
            let keyed = catalogue
                .channel_id(channel)
                .is_some_and(|c| catalogue.channel(c).deliver() == Deliver::ByKey);
            if !keyed {
                return Err(format!(
                    "destination `{destination}`: `{channel}` is not a by_key channel (use {}{channel})",
                    prefixes.topic_prefix
                ));
            }
            (channel.to_owned(), None)
        } else if let Some(rest) = destination.strip_prefix(&prefixes.topic_prefix) {
            match rest.split_once('/') {
                Some((channel, key)) => (channel.to_owned(), Some(key.to_owned())),
                None => (rest.to_owned(), None),
            }
        } else {
            return Err(format!(
                "destination `{destination}`: expected {}<channel>[/<key>] or {}<channel>",
                prefixes.topic_prefix, prefixes.user_prefix
            ));
        };
        let want = match (frame.header("resume"), frame.header("history")) {
            (Some(resume), _) => {
                Want::Resume(super::request::parse_positions(resume).map_err(|e| {
                    format!("resume: expected `partition:offset,…`, found `{resume}` ({e})")
                })?)
            }
            (None, Some(history)) => Want::Newest(history.trim().parse().map_err(|_| {
                format!("history: expected a number of records, found `{history}`")
            })?),
            (None, None) => Want::Live,
        };
        let (channel_id, key) = match session.resolve(&channel, key) {
            Ok(resolved) => resolved,
            Err(refusal) => {
                self.refuse(session, receipt, refusal);
                return Ok(());
            }
        };
        if let Some(other) = self.by_target.get(channel_id, key.as_deref()) {
            return Err(format!(
                "destination `{destination}`: already subscribed (subscription `{other}`)"
            ));
        }
        let json = catalogue.channel(channel_id).spec.format.is_structured();
        // Registered first: the `subscribed` answer (and a snapshot) are queued by `subscribe`.
        self.by_target
            .insert(channel_id, key.as_deref(), id.clone());
        self.subscriptions.insert(
            id.clone(),
            Subscribed {
                destination,
                channel_id,
                channel: channel.clone(),
                key: key.clone(),
                json,
            },
        );
        let request = Request::Subscribe(Subscribe {
            id: receipt_id(receipt),
            channel,
            key,
            want,
            filter: None,
            max_rate: None,
        });
        if let Err(refusal) = session.request(request) {
            if let Some(sub) = self.subscriptions.remove(&id) {
                self.by_target.remove(sub.channel_id, sub.key.as_deref());
            }
            self.refuse(session, receipt, refusal);
        }
        Ok(())
    }

    fn unsubscribe(
        &mut self,
        session: &mut Session,
        frame: &StompFrame,
        receipt: Option<&str>,
    ) -> Result<(), String> {
        let id = frame
            .header("id")
            .ok_or("UNSUBSCRIBE: header `id` is required")?;
        let Some(sub) = self.subscriptions.remove(id) else {
            // Unknown (or already ended): nothing to do, as for the JSON protocol.
            if let Some(receipt) = receipt {
                session.handle.outbox.push_control(Item::Native(text(
                    &StompFrame::new("RECEIPT").with("receipt-id", receipt),
                )));
            }
            return Ok(());
        };
        self.by_target.remove(sub.channel_id, sub.key.as_deref());
        let request = Request::Unsubscribe {
            id: receipt_id(receipt),
            channel: sub.channel,
            key: sub.key,
        };
        if let Err(refusal) = session.request(request) {
            self.refuse(session, receipt, refusal);
        }
        Ok(())
    }

    fn send(
        &mut self,
        session: &mut Session,
        frame: &StompFrame,
        receipt: Option<&str>,
    ) -> Result<(), String> {
        let destination = frame
            .header("destination")
            .ok_or("SEND: header `destination` is required")?;
        let channel = destination
            .strip_prefix(&self.prefixes.app_prefix)
            .ok_or_else(|| {
                format!(
                    "destination `{destination}`: expected {}<inbound channel>",
                    self.prefixes.app_prefix
                )
            })?;
        let plain = frame
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain"));
        let data: Box<RawValue> = if plain {
            let body = std::str::from_utf8(&frame.body)
                .map_err(|_| "SEND: a text/plain body must be UTF-8".to_owned())?;
            RawValue::from_string(serde_json::to_string(body).expect("a string encodes"))
                .expect("a JSON string")
        } else {
            serde_json::from_slice(&frame.body).map_err(|e| {
                format!("SEND: the body must be JSON (or content-type: text/plain): {e}")
            })?
        };
        let mut headers = BTreeMap::new();
        for (name, value) in &frame.headers {
            if !SEND_OWN_HEADERS.contains(&name.as_str()) {
                headers.entry(name.clone()).or_insert_with(|| value.clone());
            }
        }
        // Publishes answer for themselves (RECEIPT, or ERROR when refused).
        let _ = session.request(Request::Publish {
            id: receipt_id(receipt),
            channel,
            data: &data,
            headers: &headers,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heart_beats_and_tokens() {
        assert_eq!(parse_heart_beat("10000, 0").unwrap(), (10_000, 0));
        assert!(parse_heart_beat("x").unwrap_err().contains("cx,cy"));
        let connect = StompFrame::new("CONNECT").with("passcode", "t1");
        assert_eq!(connect_token(&connect).as_deref(), Some("t1"));
        let connect = StompFrame::new("CONNECT").with("Authorization", "Bearer t2");
        assert_eq!(connect_token(&connect).as_deref(), Some("t2"));
        assert_eq!(connect_token(&StompFrame::new("CONNECT")), None);
    }
}
