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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

use self::codec::{Decoded, StompFrame};
use super::session::Session;
use super::wire::{send_close, Socket};
use super::{ConnectionSlot, WsContext};
use crate::auth::Identity;
use crate::config::{Deliver, Format, StompConfig};
use crate::hub::Want;
use crate::metrics::RejectReason;
use crate::outbox::{Close, Outgoing};
use crate::protocol::{ErrorCode, Frame, Refusal, RequestId};

/// The subprotocols answered, preferred first.
const SUBPROTOCOLS: &[&str] = &["v12.stomp", "v11.stomp", "v10.stomp"];
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

/// The STOMP subprotocol to answer for a handshake's `Sec-WebSocket-Protocol`, if it offers one.
pub(super) fn subprotocol(headers: &warp::http::HeaderMap) -> Option<&'static str> {
    let offered: Vec<String> = headers
        .get_all(warp::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    SUBPROTOCOLS
        .iter()
        .copied()
        .find(|p| offered.iter().any(|o| o == p))
}

/// The STOMP side of a session: its subscriptions by id and how to reach them from a frame.
pub(super) struct Stomp {
    prefixes: StompConfig,
    version: &'static str,
    /// The interval of the server's heart-beats; `None`: none.
    pub(super) heart_beat: Option<Duration>,
    /// `heart-beat` of CONNECTED: what the server offers (`sx,sy`).
    offered: (u64, u64),
    subscriptions: HashMap<String, Subscribed>,
    /// (channel, key) → subscription id, to address a shared `message`.
    by_target: HashMap<(String, Option<String>), String>,
    /// An ERROR is on its way: nothing more is read.
    pub(super) failed: bool,
    /// DISCONNECT was read (with its receipt, if any): answered once publishes are acked.
    pub(super) disconnect: Option<Option<String>>,
}

struct Subscribed {
    destination: String,
    channel: String,
    key: Option<String>,
    /// Non-JSON channels send the text of their JSON string (base64 for bytes).
    json: bool,
}

impl Stomp {
    /// Whether the session may read another client frame.
    pub(super) fn reading(&self) -> bool {
        !self.failed && self.disconnect.is_none()
    }

    /// CONNECTED, the first frame of the session.
    fn connected(&self, session: &str, user: Option<&str>) -> Frame {
        let mut frame = StompFrame::new("CONNECTED")
            .with("version", self.version)
            .with(
                "heart-beat",
                format!("{},{}", self.offered.0, self.offered.1),
            )
            .with(
                "server",
                concat!("kafka-ws-bridge/", env!("CARGO_PKG_VERSION")),
            )
            .with("session", session);
        if let Some(user) = user {
            frame = frame.with("user-name", user);
        }
        text(&frame)
    }

    /// Re-encodes a batch taken from the outbox for this session. Returns whether the session
    /// must close after it (an ERROR was written; what followed it is dropped).
    pub(super) fn render(&mut self, batch: &mut Vec<Outgoing>) -> bool {
        let mut out = Vec::with_capacity(batch.len());
        let mut failed = false;
        for outgoing in batch.drain(..) {
            if outgoing.frame.as_str().starts_with('{') {
                let (frames, error) = self.translate(outgoing.frame.as_str());
                let mut stamp = outgoing.stamp;
                for frame in frames {
                    out.push(Outgoing {
                        frame,
                        stamp: stamp.take(),
                    });
                }
                if error {
                    failed = true;
                    break;
                }
            } else {
                out.push(outgoing);
            }
        }
        *batch = out;
        failed
    }

    /// The STOMP frames of one JSON frame of the session's queue, and whether it was an error.
    fn translate(&mut self, json: &str) -> (Vec<Frame>, bool) {
        let Ok(head) = serde_json::from_str::<Head<'_>>(json) else {
            return (Vec::new(), false);
        };
        let receipt = head
            .id
            .and_then(|id| serde_json::from_str::<String>(id.get()).ok());
        let receipt_frame = |receipt: Option<String>| {
            receipt.map(|r| text(&StompFrame::new("RECEIPT").with("receipt-id", r)))
        };
        match head.kind {
            "message" => {
                // None when its subscription has just ended (UNSUBSCRIBE after it was queued).
                let frame = head
                    .data
                    .zip(self.find(head.channel.as_deref(), head.key.as_deref()))
                    .and_then(|(data, id)| {
                        self.message(id, data, head.partition, head.offset, head.key.as_deref())
                    });
                (frame.into_iter().collect(), false)
            }
            "subscribed" => {
                let mut frames = Vec::new();
                if let (Some(snapshot), Some(id)) = (
                    head.snapshot,
                    self.find(head.channel.as_deref(), head.key.as_deref()),
                ) {
                    frames.extend(self.message(
                        id,
                        snapshot.data,
                        Some(snapshot.partition),
                        Some(snapshot.offset),
                        head.key.as_deref(),
                    ));
                }
                frames.extend(receipt_frame(receipt));
                (frames, false)
            }
            "ack" => (receipt_frame(receipt).into_iter().collect(), false),
            "unsubscribed" => match head.reason {
                // The bridge ended the subscription (e.g. its permission is gone).
                Some(reason) => {
                    let message = format!(
                        "subscription to `{}` ended: {reason}",
                        head.channel.unwrap_or_default()
                    );
                    (vec![error_frame(None, "forbidden", &message)], true)
                }
                None => (receipt_frame(receipt).into_iter().collect(), false),
            },
            "error" => {
                let code = head.code.unwrap_or_else(|| "internal".into());
                let message = head.message.unwrap_or_default();
                (vec![error_frame(receipt, &code, &message)], true)
            }
            "session_replaced" => (
                vec![error_frame(
                    None,
                    "session_replaced",
                    "replaced by a newer session of the same user",
                )],
                true,
            ),
            // welcome, pong, token_expiring, refreshed: JSON protocol only.
            _ => (Vec::new(), false),
        }
    }

    /// The subscription a frame of `channel`/`key` is for: the keyed one, else the channel's.
    fn find(&self, channel: Option<&str>, key: Option<&str>) -> Option<&str> {
        let channel = channel?.to_owned();
        self.by_target
            .get(&(channel.clone(), key.map(str::to_owned)))
            .or_else(|| self.by_target.get(&(channel, None)))
            .map(String::as_str)
    }

    fn message(
        &self,
        id: &str,
        data: &RawValue,
        partition: Option<i32>,
        offset: Option<i64>,
        key: Option<&str>,
    ) -> Option<Frame> {
        let sub = self.subscriptions.get(id)?;
        let (partition, offset) = (partition.unwrap_or(-1), offset.unwrap_or(-1));
        let mut frame = StompFrame::new("MESSAGE")
            .with("subscription", id)
            .with(
                "message-id",
                format!("{}-{partition}-{offset}", sub.channel),
            )
            .with("destination", sub.destination.as_str());
        let body = match serde_json::from_str::<String>(data.get()) {
            Ok(text) if !sub.json => {
                frame = frame.with("content-type", "text/plain;charset=utf-8");
                text.into_bytes()
            }
            _ => {
                frame = frame.with("content-type", "application/json");
                data.get().as_bytes().to_vec()
            }
        };
        frame = frame
            .with("kafka-partition", partition.to_string())
            .with("kafka-offset", offset.to_string());
        if let Some(key) = key {
            frame = frame.with("kafka-key", key);
        }
        frame.body = body;
        Some(text(&frame))
    }
}

/// The fields of a queued JSON frame the translation needs.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    partition: Option<i32>,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default, borrow)]
    snapshot: Option<SnapshotHead<'a>>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct SnapshotHead<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
    partition: i32,
    offset: i64,
}

/// A STOMP frame as a queued WebSocket text frame.
fn text(frame: &StompFrame) -> Frame {
    Frame::from(String::from_utf8_lossy(&frame.encode()).into_owned())
}

fn error_frame(receipt: Option<String>, code: &str, message: &str) -> Frame {
    let mut frame = StompFrame::new("ERROR")
        .with("message", message)
        .with("code", code);
    if let Some(receipt) = receipt {
        frame = frame.with("receipt-id", receipt);
    }
    text(&frame)
}

/// A request id carrying a receipt (a JSON string), or none.
fn receipt_id(receipt: Option<&str>) -> RequestId {
    receipt.map(|r| {
        RawValue::from_string(serde_json::to_string(r).expect("a string encodes"))
            .expect("a JSON string")
    })
}

/// A STOMP connection after its handshake: waits for CONNECT, authenticates (the CONNECT
/// frame's `passcode` or `Authorization: Bearer` header, else the handshake's token), answers
/// CONNECTED and runs the session. A connection without valid credentials gets an ERROR and
/// is closed.
pub(super) async fn run(
    mut socket: Socket,
    ctx: Arc<WsContext>,
    handshake: Option<Identity>,
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
    super::session::run(socket, ctx, identity, slot, Some(Box::new(stomp))).await;
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
        by_target: HashMap::new(),
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
    super::upgrade::bearer(value)
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
            (Some(resume), _) => Want::Resume(super::sse::parse_event_id(resume).map_err(|e| {
                format!("resume: expected `partition:offset,…`, found `{resume}` ({e})")
            })?),
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
        let target = (channel.clone(), key.clone());
        let stomp = self.stomp.as_ref().expect("a STOMP session");
        if let Some(other) = stomp.by_target.get(&target) {
            return Err(format!(
                "destination `{destination}`: already subscribed (subscription `{other}`)"
            ));
        }
        let json = self.ctx.catalogue.channel(channel_id).spec.format == Format::Json;
        // Registered first: the `subscribed` frame (and a snapshot) are queued by `subscribe`.
        let stomp = self.stomp.as_mut().expect("a STOMP session");
        stomp.by_target.insert(target.clone(), id.clone());
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
            stomp.by_target.remove(&target);
            stomp.subscriptions.remove(&id);
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
        stomp
            .by_target
            .remove(&(sub.channel.clone(), sub.key.clone()));
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

    #[test]
    fn subprotocols_prefer_1_2() {
        let mut headers = warp::http::HeaderMap::new();
        assert_eq!(subprotocol(&headers), None);
        headers.insert(
            warp::http::header::SEC_WEBSOCKET_PROTOCOL,
            "v10.stomp, v12.stomp, v11.stomp".parse().unwrap(),
        );
        assert_eq!(subprotocol(&headers), Some("v12.stomp"));
    }
}
