//! The STOMP dialect of a session: which subprotocol a handshake asks for, the session's STOMP
//! subscriptions, and the encoding of its queue (a shared record becomes a MESSAGE with this
//! session's headers around the record's shared body, answers become RECEIPTs or ERRORs).
//! `stomp/mod.rs` turns client frames into the session's requests.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::value::RawValue;

use super::codec::StompFrame;
use crate::config::StompConfig;
use crate::outbox::Outgoing;
use crate::protocol::{Answer, Delivery, Frame, Item, RequestId};
use crate::ws::transport::Transport;

/// The subprotocols answered, preferred first.
const SUBPROTOCOLS: &[&str] = &["v12.stomp", "v11.stomp", "v10.stomp"];

/// The STOMP subprotocol to answer for a handshake's `Sec-WebSocket-Protocol`, if it offers one.
pub(in crate::ws) fn subprotocol(headers: &warp::http::HeaderMap) -> Option<&'static str> {
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
pub(in crate::ws) struct Stomp {
    pub(super) prefixes: StompConfig,
    pub(super) version: &'static str,
    /// The interval of the server's heart-beats; `None`: none.
    pub(in crate::ws) heart_beat: Option<Duration>,
    /// `heart-beat` of CONNECTED: what the server offers (`sx,sy`).
    pub(super) offered: (u64, u64),
    pub(super) subscriptions: HashMap<String, Subscribed>,
    /// (channel, key) → subscription id, to address a shared record.
    pub(super) by_target: Targets,
    /// An ERROR is on its way: nothing more is read.
    pub(in crate::ws) failed: bool,
    /// DISCONNECT was read (with its receipt, if any): answered once publishes are acked.
    pub(in crate::ws) disconnect: Option<Option<String>>,
}

pub(super) struct Subscribed {
    pub(super) destination: String,
    pub(super) channel_id: u32,
    pub(super) channel: String,
    pub(super) key: Option<String>,
    /// Non-JSON channels send the text of their JSON string (base64 for bytes).
    pub(super) json: bool,
}

impl Stomp {
    /// Whether the session may read another client frame.
    pub(in crate::ws) fn reading(&self) -> bool {
        !self.failed && self.disconnect.is_none()
    }

    /// CONNECTED, the first frame of the session.
    pub(super) fn connected(&self, session: &str, user: Option<&str>) -> Frame {
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

    /// The STOMP frames of one queued item, and whether it was an error (the session then
    /// closes after it).
    pub(super) fn translate(&mut self, item: &Item) -> (Vec<Frame>, bool) {
        let answer = match item {
            Item::Record(record) | Item::Conflated(record, _) => {
                // None when its subscription has just ended (UNSUBSCRIBE after it was queued).
                let frame = self
                    .find(record.channel, record.key())
                    .and_then(|id| self.message(id, record));
                return (frame.into_iter().collect(), false);
            }
            Item::Native(frame) => return (vec![frame.clone()], false),
            Item::Answer(answer) => &**answer,
        };
        let receipt_frame = |id: &RequestId| {
            receipt_of(id).map(|r| text(&StompFrame::new("RECEIPT").with("receipt-id", r)))
        };
        match answer {
            Answer::Subscribed(subscribed) => {
                let mut frames = Vec::new();
                if let (Some(snapshot), Some(id)) = (
                    &subscribed.snapshot,
                    self.find(subscribed.channel, subscribed.key.as_deref()),
                ) {
                    frames.extend(self.message(id, snapshot));
                }
                frames.extend(receipt_frame(&subscribed.id));
                (frames, false)
            }
            Answer::Ack { id, .. } => (receipt_frame(id).into_iter().collect(), false),
            Answer::Unsubscribed(unsubscribed) => match unsubscribed.reason {
                // The bridge ended the subscription (e.g. its permission is gone): the ERROR
                // names it by the SUBSCRIBE's `id`, as a receipt would.
                Some(reason) => {
                    let subscription = self
                        .find(unsubscribed.channel, unsubscribed.key.as_deref())
                        .map(str::to_owned);
                    let message =
                        format!("subscription to `{}` ended: {reason}", unsubscribed.name);
                    let mut frame = StompFrame::new("ERROR")
                        .with("message", message)
                        .with("code", "forbidden");
                    if let Some(subscription) = subscription {
                        frame = frame.with("subscription", subscription);
                    }
                    (vec![text(&frame)], true)
                }
                None => (receipt_frame(&unsubscribed.id).into_iter().collect(), false),
            },
            Answer::Error { id, refusal } => (
                vec![error_frame(
                    receipt_of(id),
                    refusal.code.as_str(),
                    &refusal.message,
                )],
                true,
            ),
            Answer::SessionReplaced => (
                vec![error_frame(
                    None,
                    "session_replaced",
                    "replaced by a newer session of the same user",
                )],
                true,
            ),
            // JSON protocol only.
            Answer::Welcome { .. }
            | Answer::Pong { .. }
            | Answer::TokenExpiring { .. }
            | Answer::Refreshed { .. } => (Vec::new(), false),
        }
    }

    /// The subscription a record of `channel`/`key` is for: the keyed one, else the channel's.
    pub(super) fn find(&self, channel: u32, key: Option<&str>) -> Option<&str> {
        let targets = self.by_target.0.get(&channel)?;
        key.and_then(|key| targets.keyed.get(key))
            .or(targets.any.as_ref())
            .map(String::as_str)
    }

    /// A MESSAGE of subscription `id`: this session's headers around the record's shared body
    /// (its JSON `data`, or for non-JSON channels the text of its JSON string), copied once.
    pub(super) fn message(&self, id: &str, record: &Delivery) -> Option<Frame> {
        let sub = self.subscriptions.get(id)?;
        let (body, content_type) = match (!sub.json).then(|| record.text()).flatten() {
            Some(text) => (text, "text/plain;charset=utf-8"),
            None => (record.data(), "application/json"),
        };
        let (mut partition, mut offset) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (partition, offset) = (
            partition.format(record.partition),
            offset.format(record.offset),
        );
        let mut head = String::with_capacity(160 + id.len() + sub.destination.len());
        head.push_str("MESSAGE\nsubscription:");
        push_escaped(&mut head, id);
        head.push_str("\nmessage-id:");
        push_escaped(&mut head, &sub.channel);
        for part in ["-", partition, "-", offset, "\ndestination:"] {
            head.push_str(part);
        }
        push_escaped(&mut head, &sub.destination);
        for part in [
            "\ncontent-type:",
            content_type,
            "\nkafka-partition:",
            partition,
            "\nkafka-offset:",
            offset,
            "\n",
        ] {
            head.push_str(part);
        }
        if let Some(key) = record.key() {
            head.push_str("kafka-key:");
            push_escaped(&mut head, key);
            head.push('\n');
        }
        if !body.is_empty() {
            head.push_str("content-length:");
            head.push_str(itoa::Buffer::new().format(body.len()));
            head.push('\n');
        }
        head.push('\n');
        Some(Frame::from_parts(&[&head, body, "\0"]))
    }
}

/// Appends a header name or value with STOMP's escapes (`\\`, `\n`, `\r`, `\c`).
fn push_escaped(out: &mut String, text: &str) {
    if !text
        .bytes()
        .any(|b| matches!(b, b'\\' | b'\n' | b'\r' | b':'))
    {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ':' => out.push_str("\\c"),
            other => out.push(other),
        }
    }
}

impl Transport for Stomp {
    type Wire = Frame;

    /// Each item as this session's STOMP frames; after an ERROR, nothing more (the session
    /// closes).
    fn encode(&mut self, batch: &[Outgoing], out: &mut Vec<Frame>) -> bool {
        for outgoing in batch {
            let (frames, error) = self.translate(&outgoing.item);
            out.extend(frames);
            if error {
                return true;
            }
        }
        false
    }
}

/// Subscription ids by channel, then key: looked up for every delivery.
#[derive(Default)]
pub(in crate::ws) struct Targets(HashMap<u32, ChannelTargets>);

#[derive(Default)]
struct ChannelTargets {
    /// The subscription to the whole channel (or, on a by_key channel, to the user's own key
    /// when none was named).
    any: Option<String>,
    keyed: HashMap<String, String>,
}

impl Targets {
    /// The subscription to exactly `channel`/`key`.
    pub(super) fn get(&self, channel: u32, key: Option<&str>) -> Option<&String> {
        let targets = self.0.get(&channel)?;
        match key {
            Some(key) => targets.keyed.get(key),
            None => targets.any.as_ref(),
        }
    }

    pub(super) fn insert(&mut self, channel: u32, key: Option<&str>, id: String) {
        let targets = self.0.entry(channel).or_default();
        match key {
            Some(key) => {
                targets.keyed.insert(key.to_owned(), id);
            }
            None => targets.any = Some(id),
        }
    }

    pub(super) fn remove(&mut self, channel: u32, key: Option<&str>) {
        let Some(targets) = self.0.get_mut(&channel) else {
            return;
        };
        match key {
            Some(key) => {
                targets.keyed.remove(key);
            }
            None => targets.any = None,
        }
        if targets.any.is_none() && targets.keyed.is_empty() {
            self.0.remove(&channel);
        }
    }
}

/// A STOMP frame as a queued WebSocket text frame.
pub(super) fn text(frame: &StompFrame) -> Frame {
    // Headers and bodies are UTF-8 (JSON or text records): no copy in the usual case.
    let bytes = frame.encode();
    Frame::from(
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

pub(super) fn error_frame(receipt: Option<String>, code: &str, message: &str) -> Frame {
    let mut frame = StompFrame::new("ERROR")
        .with("message", message)
        .with("code", code);
    if let Some(receipt) = receipt {
        frame = frame.with("receipt-id", receipt);
    }
    text(&frame)
}

/// The receipt a request id carries (made by [`receipt_id`]), if any.
pub(super) fn receipt_of(id: &RequestId) -> Option<String> {
    id.as_ref()
        .and_then(|id| serde_json::from_str::<String>(id.get()).ok())
}

/// A request id carrying a receipt (a JSON string), or none.
pub(super) fn receipt_id(receipt: Option<&str>) -> RequestId {
    receipt.map(|r| {
        RawValue::from_string(serde_json::to_string(r).expect("a string encodes"))
            .expect("a JSON string")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_subscription_is_named_by_its_subscribe_id() {
        let mut stomp = Stomp {
            prefixes: crate::config::StompConfig::default(),
            version: "1.2",
            heart_beat: None,
            offered: (0, 0),
            subscriptions: HashMap::new(),
            by_target: Targets::default(),
            failed: false,
            disconnect: None,
        };
        stomp.by_target.insert(3, None, "sub-7".to_owned());
        let (frames, error) = stomp.translate(&Item::from(Answer::Unsubscribed(
            crate::protocol::Unsubscribed {
                id: receipt_id(Some("receipt-1")),
                channel: 3,
                name: "alerts".to_owned(),
                key: None,
                reason: Some("forbidden"),
            },
        )));
        assert!(error, "an ERROR ends a STOMP session");
        let text = frames[0].as_str();
        assert!(text.starts_with("ERROR\n"), "{text}");
        assert!(text.contains("\nsubscription:sub-7\n"), "{text}");
        assert!(
            // STOMP escapes `:` in header values as `\c`.
            text.contains("message:subscription to `alerts` ended\\c forbidden\n"),
            "{text}"
        );
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
