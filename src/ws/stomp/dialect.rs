//! The STOMP dialect of a session: which subprotocol a handshake asks for, the session's STOMP
//! subscriptions, and the per-session encoding of its queued frames (a shared `message` becomes a
//! MESSAGE with this session's `subscription` header, answers become RECEIPTs or ERRORs). It
//! knows nothing of the session loop, which holds it (`session.rs`); `stomp/mod.rs` turns client
//! frames into the session's requests.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::codec::StompFrame;
use crate::config::StompConfig;
use crate::outbox::Outgoing;
use crate::protocol::{Frame, RequestId};

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
    /// (channel, key) → subscription id, to address a shared `message`.
    pub(super) by_target: Targets,
    /// An ERROR is on its way: nothing more is read.
    pub(in crate::ws) failed: bool,
    /// DISCONNECT was read (with its receipt, if any): answered once publishes are acked.
    pub(in crate::ws) disconnect: Option<Option<String>>,
}

pub(super) struct Subscribed {
    pub(super) destination: String,
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

    /// Re-encodes a batch taken from the outbox for this session. Returns whether the session
    /// must close after it (an ERROR was written; what followed it is dropped).
    pub(in crate::ws) fn render(&mut self, batch: &mut Vec<Outgoing>) -> bool {
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
    pub(super) fn translate(&mut self, json: &str) -> (Vec<Frame>, bool) {
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
                // The bridge ended the subscription (e.g. its permission is gone): the ERROR
                // names it by the SUBSCRIBE's `id`, as a receipt would.
                Some(reason) => {
                    let subscription = self
                        .find(head.channel.as_deref(), head.key.as_deref())
                        .map(str::to_owned);
                    let message = format!(
                        "subscription to `{}` ended: {reason}",
                        head.channel.unwrap_or_default()
                    );
                    let mut frame = StompFrame::new("ERROR")
                        .with("message", message)
                        .with("code", "forbidden");
                    if let Some(subscription) = subscription {
                        frame = frame.with("subscription", subscription);
                    }
                    (vec![text(&frame)], true)
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
    pub(super) fn find(&self, channel: Option<&str>, key: Option<&str>) -> Option<&str> {
        let targets = self.by_target.0.get(channel?)?;
        key.and_then(|key| targets.keyed.get(key))
            .or(targets.any.as_ref())
            .map(String::as_str)
    }

    pub(super) fn message(
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

/// Subscription ids by channel, then key: looked up with borrowed names for every delivery.
#[derive(Default)]
pub(in crate::ws) struct Targets(HashMap<String, ChannelTargets>);

#[derive(Default)]
struct ChannelTargets {
    /// The subscription to the whole channel (or, on a by_key channel, to the user's own key
    /// when none was named).
    any: Option<String>,
    keyed: HashMap<String, String>,
}

impl Targets {
    /// The subscription to exactly `channel`/`key`.
    pub(super) fn get(&self, channel: &str, key: Option<&str>) -> Option<&String> {
        let targets = self.0.get(channel)?;
        match key {
            Some(key) => targets.keyed.get(key),
            None => targets.any.as_ref(),
        }
    }

    pub(super) fn insert(&mut self, channel: &str, key: Option<&str>, id: String) {
        let targets = self.0.entry(channel.to_owned()).or_default();
        match key {
            Some(key) => {
                targets.keyed.insert(key.to_owned(), id);
            }
            None => targets.any = Some(id),
        }
    }

    pub(super) fn remove(&mut self, channel: &str, key: Option<&str>) {
        let Some(targets) = self.0.get_mut(channel) else {
            return;
        };
        match key {
            Some(key) => {
                targets.keyed.remove(key);
            }
            None => targets.any = None,
        }
        if targets.any.is_none() && targets.keyed.is_empty() {
            self.0.remove(channel);
        }
    }
}

/// The fields of a queued JSON frame the translation needs.
#[derive(Deserialize)]
pub(super) struct Head<'a> {
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
pub(super) struct SnapshotHead<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
    partition: i32,
    offset: i64,
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
        stomp.by_target.insert("alerts", None, "sub-7".to_owned());
        let (frames, error) = stomp.translate(
            r#"{"type":"unsubscribed","id":"receipt-1","channel":"alerts","reason":"forbidden"}"#,
        );
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
