//! STOMP 1.2 over WebSocket (subprotocol `v12.stomp`, also `v11.stomp`/`v10.stomp`, on
//! `ws_path`). A STOMP session is the same [`Session`] as a JSON one (permissions, replay, hub,
//! outbox, slow-client policy, rate limits); only its dialect differs. Client frames are turned
//! into the session's requests here, and the writer re-encodes each queued frame for this
//! session (as the SSE writer does): a shared `message` becomes a MESSAGE with this session's
//! `subscription` header, `subscribed`/`ack`/`unsubscribed` with an id become RECEIPTs, and an
//! `error` becomes an ERROR after which the session closes (as STOMP requires).
//!
//! A request's id is its `receipt` header as a JSON string, so answers find their receipt.
//! Frames this module queues itself (CONNECTED, RECEIPT of DISCONNECT) are STOMP text already
//! and pass the writer unchanged (they never start with `{`). Not supported: `ack: client`
//! modes (ACK, NACK), transactions (BEGIN, COMMIT, ABORT).

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
use super::session::Session;
use super::wire::{send_close, Socket};
use super::{ConnectionSlot, WsContext};
use crate::auth::Identity;
use crate::config::Deliver;
use crate::hub::Want;
use crate::metrics::RejectReason;
use crate::outbox::Close;
use crate::protocol::{ErrorCode, Frame, Refusal};

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
        (token, _) => ctx.auth.authenticate(token).await,
    };
    let identity = match identity {
        Ok(identity) => identity,
        Err(reason) => {
            let message = format!("unauthorized: {reason}");
            return refuse(&mut socket, &ctx, RejectReason::Unauthorized, &message).await;
        }
    };
    super::session::run(socket, ctx, identity, group, slot, Some(Box::new(stomp))).await;
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
fn negotiate(connect: &StompFrame, ctx: &WsContext) -> Result<Stomp, String> {
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
    let ours = ctx.limits.ping_interval.map_or(0, |d| d.as_millis() as u64);
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
    ctx.metrics.rejected(reason);
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

impl Session {
    /// The CONNECTED frame of a STOMP session.
    pub(super) fn stomp_connected(&self) -> Option<Frame> {
        let stomp = self.stomp.as_ref()?;
        Some(stomp.connected(&self.handle.public_id, self.identity.user.as_deref()))
    }

    /// One client WebSocket message of a STOMP session.
    pub(super) fn on_stomp(&mut self, bytes: &[u8]) {
        let frame = match codec::decode(bytes) {
            Ok(Decoded::HeartBeat) => return,
            Ok(Decoded::Frame(frame)) => frame,
            Err(message) => {
                return self.stomp_refuse(None, Refusal::new(ErrorCode::BadRequest, message))
            }
        };
        let receipt = frame.header("receipt");
        let result = match frame.command.as_str() {
            "SUBSCRIBE" => self.stomp_subscribe(&frame, receipt),
            "UNSUBSCRIBE" => self.stomp_unsubscribe(&frame, receipt),
            "SEND" => self.stomp_send(&frame, receipt),
            "DISCONNECT" => {
                if let Some(stomp) = self.stomp.as_mut() {
                    stomp.disconnect = Some(receipt.map(str::to_owned));
                }
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
            self.stomp_refuse(receipt, Refusal::new(ErrorCode::BadRequest, message));
        }
    }

    /// Refuses a frame: an `error` (→ ERROR), after which nothing more is read.
    fn stomp_refuse(&mut self, receipt: Option<&str>, refusal: Refusal) {
        if let Some(stomp) = self.stomp.as_mut() {
            stomp.failed = true;
        }
        self.refuse(&receipt_id(receipt), refusal);
    }

    fn stomp_subscribe(&mut self, frame: &StompFrame, receipt: Option<&str>) -> Result<(), String> {
        let stomp = self.stomp.as_ref().expect("a STOMP session");
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
        if stomp.subscriptions.contains_key(&id) {
            return Err(format!("subscription id `{id}` is already in use"));
        }
        let prefixes = &stomp.prefixes;
        let (channel, key) = if let Some(channel) = destination.strip_prefix(&prefixes.user_prefix)
        {
            let keyed = self
                .ctx
                .catalogue
                .channel_id(channel)
                .is_some_and(|c| self.ctx.catalogue.channel(c).deliver() == Deliver::ByKey);
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
        let (channel_id, key) = match self.resolve(&channel, key) {
            Ok(resolved) => resolved,
            Err(refusal) => {
                self.stomp_refuse(receipt, refusal);
                return Ok(());
            }
        };
        let stomp = self.stomp.as_ref().expect("a STOMP session");
        if let Some(other) = stomp.by_target.get(&channel, key.as_deref()) {
            return Err(format!(
                "destination `{destination}`: already subscribed (subscription `{other}`)"
            ));
        }
        let json = self
            .ctx
            .catalogue
            .channel(channel_id)
            .spec
            .format
            .is_structured();
        // Registered first: the `subscribed` frame (and a snapshot) are queued by `subscribe`.
        let stomp = self.stomp.as_mut().expect("a STOMP session");
        stomp.by_target.insert(&channel, key.as_deref(), id.clone());
        stomp.subscriptions.insert(
            id.clone(),
            Subscribed {
                destination,
                channel: channel.clone(),
                key: key.clone(),
                json,
            },
        );
        if let Err(refusal) = self.subscribe(receipt_id(receipt), &channel, key, want, None, None) {
            let stomp = self.stomp.as_mut().expect("a STOMP session");
            if let Some(sub) = stomp.subscriptions.remove(&id) {
                stomp.by_target.remove(&sub.channel, sub.key.as_deref());
            }
            self.stomp_refuse(receipt, refusal);
        }
        Ok(())
    }

    fn stomp_unsubscribe(
        &mut self,
        frame: &StompFrame,
        receipt: Option<&str>,
    ) -> Result<(), String> {
        let id = frame
            .header("id")
            .ok_or("UNSUBSCRIBE: header `id` is required")?;
        let stomp = self.stomp.as_mut().expect("a STOMP session");
        let Some(sub) = stomp.subscriptions.remove(id) else {
            // Unknown (or already ended): nothing to do, as for the JSON protocol.
            if let Some(receipt) = receipt {
                self.handle.outbox.push_control(text(
                    &StompFrame::new("RECEIPT").with("receipt-id", receipt),
                ));
            }
            return Ok(());
        };
        stomp.by_target.remove(&sub.channel, sub.key.as_deref());
        if let Err(refusal) = self.unsubscribe(&receipt_id(receipt), &sub.channel, sub.key) {
            self.stomp_refuse(receipt, refusal);
        }
        Ok(())
    }

    fn stomp_send(&mut self, frame: &StompFrame, receipt: Option<&str>) -> Result<(), String> {
        let stomp = self.stomp.as_ref().expect("a STOMP session");
        let destination = frame
            .header("destination")
            .ok_or("SEND: header `destination` is required")?;
        let channel = destination
            .strip_prefix(&stomp.prefixes.app_prefix)
            .ok_or_else(|| {
                format!(
                    "destination `{destination}`: expected {}<inbound channel>",
                    stomp.prefixes.app_prefix
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
        let channel = channel.to_owned();
        self.publish(receipt_id(receipt), &channel, &data, &headers);
        Ok(())
    }

    /// DISCONNECT read and every publish answered: its RECEIPT, then the close.
    pub(super) fn stomp_disconnected(&mut self) {
        let Some(receipt) = self.stomp.as_mut().and_then(|s| s.disconnect.take()) else {
            return;
        };
        if let Some(receipt) = receipt {
            self.handle.outbox.push_control(text(
                &StompFrame::new("RECEIPT").with("receipt-id", receipt),
            ));
        }
        self.handle.outbox.close(Close::StompDisconnect);
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
