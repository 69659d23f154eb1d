//! Encoding server frames. Control frames (welcome, error, pong, ack, subscribed, unsubscribed,
//! session_replaced) are serde-serialized [`Control`] values; the per-record `message` frame is
//! written by hand from a per-channel prefix, because it is encoded once per Kafka record and
//! the hand encoder measured faster (see [`message`]). Both escape strings the same way
//! ([`push_json_str`] and [`Wire`]), so a frame's bytes do not depend on which path wrote it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};
use serde_json::value::RawValue;

use super::{Answer, ErrorCode, Frame, Refusal, RequestId};

/// Every control frame, tagged by `type`; fields are written in declaration order.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Control<'a> {
    Welcome {
        session: &'a str,
        user: Option<&'a str>,
        protocol: u32,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RawValue>,
        code: ErrorCode,
        message: &'a str,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RawValue>,
    },
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RawValue>,
        topic: &'a str,
        partition: i32,
        offset: Option<i64>,
    },
    Subscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RawValue>,
        channel: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<&'a str>,
        snapshot: Option<Snapshot<'a>>,
        replayed: usize,
        gap: bool,
        positions: &'a BTreeMap<i32, i64>,
    },
    Unsubscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RawValue>,
        channel: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<&'a str>,
        /// Why the server ended the subscription (`forbidden` after a refresh); absent when
        /// the client asked.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
    },
    SessionReplaced,
    Refreshed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RawValue>,
        expires_at: Option<u64>,
    },
    TokenExpiring {
        expires_at: u64,
    },
}

#[derive(Serialize)]
struct Snapshot<'a> {
    data: &'a RawValue,
    partition: i32,
    offset: i64,
}

/// serde_json's compact output with the bridge's string escaping: `\b` and `\f` as `\u0008`
/// and `\u000c`, and DEL (0x7f) escaped as well, exactly as [`push_json_str`] writes them.
pub(super) struct Wire;

impl Formatter for Wire {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, byte) in fragment.bytes().enumerate() {
            if byte == 0x7f {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                writer.write_all(b"\\u007f")?;
                start = i + 1;
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        match char_escape {
            CharEscape::Backspace => writer.write_all(b"\\u0008"),
            CharEscape::FormFeed => writer.write_all(b"\\u000c"),
            other => CompactFormatter.write_char_escape(writer, other),
        }
    }
}

fn control(frame: &Control<'_>) -> Frame {
    let mut out = Vec::with_capacity(128);
    frame
        .serialize(&mut serde_json::Serializer::with_formatter(&mut out, Wire))
        .expect("control frames serialize: string keys, no floats, valid raw JSON");
    String::from_utf8(out)
        .expect("serde_json writes UTF-8")
        .into()
}

/// An answer as a frame of the JSON protocol.
pub fn answer(answer: &Answer) -> Frame {
    match answer {
        Answer::Welcome { session, user } => welcome(session, user.as_deref()),
        Answer::Error { id, refusal } => error(id, refusal),
        Answer::Pong { id } => pong(id),
        Answer::Ack {
            id,
            topic,
            partition,
            offset,
        } => ack(id, topic, *partition, *offset),
        Answer::Subscribed(s) => subscribed(
            &s.id,
            &s.name,
            s.key.as_deref(),
            s.snapshot.as_deref().map(|d| SnapshotValue {
                data: d.data(),
                partition: d.partition,
                offset: d.offset,
            }),
            s.replayed,
            s.gap,
            &s.positions,
        ),
        Answer::Unsubscribed(u) => control(&Control::Unsubscribed {
            id: u.id.as_deref(),
            channel: &u.name,
            key: u.key.as_deref(),
            reason: u.reason,
        }),
        Answer::SessionReplaced => session_replaced(),
        Answer::Refreshed { id, expires_at } => refreshed(id, *expires_at),
        Answer::TokenExpiring { expires_at } => token_expiring(*expires_at),
    }
}

/// `{"type":"welcome",...}`
pub fn welcome(session: &str, user: Option<&str>) -> Frame {
    control(&Control::Welcome {
        session,
        user,
        protocol: 1,
    })
}

/// `{"type":"error",...}`
pub fn error(id: &RequestId, refusal: &Refusal) -> Frame {
    control(&Control::Error {
        id: id.as_deref(),
        code: refusal.code,
        message: &refusal.message,
    })
}

/// `{"type":"pong",...}`
pub fn pong(id: &RequestId) -> Frame {
    control(&Control::Pong { id: id.as_deref() })
}

/// `{"type":"ack",...}`
pub fn ack(id: &RequestId, topic: &str, partition: i32, offset: Option<i64>) -> Frame {
    control(&Control::Ack {
        id: id.as_deref(),
        topic,
        partition,
        offset,
    })
}

/// A value held for a key, sent in `subscribed.snapshot`.
#[derive(Debug, Clone)]
pub struct SnapshotValue<'a> {
    /// JSON text, as held from the record's `message` frame.
    pub data: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// `{"type":"subscribed",...}`
pub fn subscribed(
    id: &RequestId,
    channel: &str,
    key: Option<&str>,
    snapshot: Option<SnapshotValue<'_>>,
    replayed: usize,
    gap: bool,
    positions: &BTreeMap<i32, i64>,
) -> Frame {
    // The held data was cut from a frame this module encoded, so it is valid JSON; serde needs
    // it as a `RawValue`, which costs one parse per subscribe (not per record).
    let snapshot = snapshot.and_then(|s| {
        let data = serde_json::from_str::<&RawValue>(s.data).ok();
        debug_assert!(data.is_some(), "held data is JSON: {}", s.data);
        Some(Snapshot {
            data: data?,
            partition: s.partition,
            offset: s.offset,
        })
    });
    control(&Control::Subscribed {
        id: id.as_deref(),
        channel,
        key,
        snapshot,
        replayed,
        gap,
        positions,
    })
}

/// `{"type":"unsubscribed",...}`
pub fn unsubscribed(id: &RequestId, channel: &str, key: Option<&str>) -> Frame {
    control(&Control::Unsubscribed {
        id: id.as_deref(),
        channel,
        key,
        reason: None,
    })
}

/// `{"type":"unsubscribed","id":…,"reason":…}`: the server ended the subscription that the
/// subscribe `id` made.
pub fn unsubscribed_because(
    id: &RequestId,
    channel: &str,
    key: Option<&str>,
    reason: &str,
) -> Frame {
    control(&Control::Unsubscribed {
        id: id.as_deref(),
        channel,
        key,
        reason: Some(reason),
    })
}

/// `{"type":"refreshed",...}`: the session runs on the new token, valid until `expires_at`
/// (milliseconds since the epoch).
pub fn refreshed(id: &RequestId, expires_at: Option<u64>) -> Frame {
    control(&Control::Refreshed {
        id: id.as_deref(),
        expires_at,
    })
}

/// `{"type":"token_expiring","expires_at":…}`: send `refresh` before then (ms since the epoch).
pub fn token_expiring(expires_at: u64) -> Frame {
    control(&Control::TokenExpiring { expires_at })
}

/// `{"type":"session_replaced"}`: sent just before closing with 4000.
pub fn session_replaced() -> Frame {
    control(&Control::SessionReplaced)
}

/// Appends `text` as a JSON string literal.
pub fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    let mut start = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f | 0x7f => "",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

/// The start of every `message` frame of one channel, encoded once per channel (shared by its
/// records: cloning it is a reference count).
#[derive(Debug, Clone)]
pub struct MessagePrefix(std::sync::Arc<str>);

impl MessagePrefix {
    pub fn new(channel: &str) -> Self {
        let mut out = String::from("{\"type\":\"message\",\"channel\":");
        push_json_str(&mut out, channel);
        MessagePrefix(out.into())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The parts of a `message` frame that vary per record.
pub struct MessageParts<'a> {
    pub key: Option<&'a str>,
    /// Already-encoded JSON for `data`.
    pub data: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub headers: &'a [(&'a str, Option<&'a str>)],
    /// The Schema Registry id the value was written with (registry formats only).
    pub schema_id: Option<u32>,
    /// Records replaced by this one under `max_rate` (sent as `conflated`, the last member).
    pub conflated: Option<u64>,
}

/// Encodes a `message` frame. Header values are sent as strings, null header values as `null`.
///
/// Written by hand, not with serde, because it runs once per Kafka record and measured faster:
/// for a typical 140-byte JSON record with key, timestamp and two headers (a 348-byte frame),
/// 386-538 ns per frame by hand against 638-771 ns through serde_json with [`Wire`] even when
/// `data` is already a `RawValue`, and 990-1382 ns when it must be validated into one (which
/// serde would need here: outbound holds `data` as text); best of 15 rounds, 4 runs, release
/// build on a shared 2-core machine (2026-12-02), so the ratio (serde 1.5-1.9x slower) matters
/// more than the absolute figures. Same bytes either way; `protocol::bench` checks that and
/// measures: `cargo test --release --lib protocol::bench -- --ignored --nocapture`.
pub fn message(prefix: &MessagePrefix, parts: &MessageParts<'_>) -> Frame {
    let mut out = String::with_capacity(prefix.0.len() + parts.data.len() + 96);
    out.push_str(&prefix.0);
    if let Some(key) = parts.key {
        out.push_str(",\"key\":");
        push_json_str(&mut out, key);
    }
    out.push_str(",\"data\":");
    out.push_str(parts.data);
    let _ = write!(
        out,
        ",\"partition\":{},\"offset\":{},\"timestamp\":",
        parts.partition, parts.offset
    );
    match parts.timestamp {
        Some(ts) => {
            let _ = write!(out, "{ts}");
        }
        None => out.push_str("null"),
    }
    if let Some(id) = parts.schema_id {
        let _ = write!(out, ",\"schema_id\":{id}");
    }
    out.push_str(",\"headers\":{");
    for (i, (name, value)) in parts.headers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(&mut out, name);
        out.push(':');
        match value {
            Some(text) => push_json_str(&mut out, text),
            None => out.push_str("null"),
        }
    }
    out.push('}');
    if let Some(skipped) = parts.conflated {
        let _ = write!(out, ",\"conflated\":{skipped}");
    }
    out.push('}');
    out.into()
}

#[cfg(test)]
mod tests;

/// Control frames must not change by a byte when their encoder does: clients and tests compare
/// them as text.
#[cfg(test)]
mod golden {
    use super::*;
    use crate::protocol::ErrorCode;

    #[test]
    fn control_frames_are_byte_for_byte_what_they_were() {
        let id: RequestId = Some(RawValue::from_string("\"p1\"".into()).unwrap());
        let num: RequestId = Some(RawValue::from_string("-7".into()).unwrap());
        let positions = BTreeMap::from([(0, 4), (3, 9)]);
        let snapshot = SnapshotValue {
            data: "{\"a\":[1,\"x\"]}",
            partition: 0,
            offset: 4,
        };
        let cases = [
            (
                welcome("s\"1", Some("C-1")),
                r#"{"type":"welcome","session":"s\"1","user":"C-1","protocol":1}"#,
            ),
            (
                welcome("s", None),
                r#"{"type":"welcome","session":"s","user":null,"protocol":1}"#,
            ),
            (
                error(&id, &Refusal::new(ErrorCode::Forbidden, "no \n way")),
                r#"{"type":"error","id":"p1","code":"forbidden","message":"no \n way"}"#,
            ),
            (
                error(&None, &Refusal::new(ErrorCode::BadRequest, "x")),
                r#"{"type":"error","code":"bad_request","message":"x"}"#,
            ),
            (pong(&None), r#"{"type":"pong"}"#),
            (pong(&num), r#"{"type":"pong","id":-7}"#),
            (
                ack(&id, "t", 1, Some(7)),
                r#"{"type":"ack","id":"p1","topic":"t","partition":1,"offset":7}"#,
            ),
            (
                ack(&None, "t", -1, None),
                r#"{"type":"ack","topic":"t","partition":-1,"offset":null}"#,
            ),
            (
                subscribed(&id, "c", Some("k"), Some(snapshot), 2, true, &positions),
                r#"{"type":"subscribed","id":"p1","channel":"c","key":"k","snapshot":{"data":{"a":[1,"x"]},"partition":0,"offset":4},"replayed":2,"gap":true,"positions":{"0":4,"3":9}}"#,
            ),
            (
                subscribed(&None, "c", None, None, 0, false, &BTreeMap::new()),
                r#"{"type":"subscribed","channel":"c","snapshot":null,"replayed":0,"gap":false,"positions":{}}"#,
            ),
            (
                unsubscribed(&id, "c", None),
                r#"{"type":"unsubscribed","id":"p1","channel":"c"}"#,
            ),
            (
                unsubscribed(&None, "c", Some("k")),
                r#"{"type":"unsubscribed","channel":"c","key":"k"}"#,
            ),
            (
                unsubscribed_because(&id, "c", Some("k"), "forbidden"),
                r#"{"type":"unsubscribed","id":"p1","channel":"c","key":"k","reason":"forbidden"}"#,
            ),
            (session_replaced(), r#"{"type":"session_replaced"}"#),
        ];
        for (frame, expected) in cases {
            assert_eq!(frame.as_str(), expected);
        }
    }

    #[test]
    fn serde_strings_are_escaped_like_push_json_str() {
        let mut every: String = (0u8..=0x7f).map(char::from).collect();
        every.push_str("é€😀\u{80}\u{2028}/");
        for text in every.chars().map(String::from).chain([every.clone()]) {
            let mut expected = String::from("{\"type\":\"welcome\",\"session\":");
            push_json_str(&mut expected, &text);
            expected.push_str(",\"user\":null,\"protocol\":1}");
            assert_eq!(welcome(&text, None).as_str(), expected, "{text:?}");
        }
    }
}
