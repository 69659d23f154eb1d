//! A record as delivered: decoded, keyed and transformed once, then shared (reference counted)
//! by memory, the hub and every session that receives it. Each dialect's encoding is made the
//! first time a session of that dialect needs it, then shared too: the JSON `message` frame
//! ([`Delivery::json`]), the SSE `data:` lines ([`Delivery::sse_data`]), the text of a text
//! channel's value for STOMP bodies ([`Delivery::text`]); client filters read the value parsed
//! once ([`Delivery::value`]). No writer parses what the bridge encoded.

use std::sync::OnceLock;

use serde_json::Value;

use super::encode::{message, MessageParts, MessagePrefix};
use super::Frame;

/// A record's headers as text: name, and value (`None`: a null value).
pub type Headers = Box<[(Box<str>, Option<Box<str>>)]>;

/// One record of one channel, as every session receives it.
#[derive(Debug)]
pub struct Delivery {
    /// The channel's index in the catalogue.
    pub channel: u32,
    prefix: MessagePrefix,
    /// The routing key (by-key channels, or where the channel names a key source).
    pub key: Option<Box<str>>,
    /// The value as JSON text (after transforms): `data` of the `message` frame.
    pub data: Box<str>,
    pub partition: i32,
    pub offset: i64,
    /// Kafka timestamp (ms).
    pub timestamp: Option<i64>,
    /// Header values as text (invalid UTF-8 replaced by U+FFFD); `None`: a null value.
    pub headers: Headers,
    /// The Schema Registry id the value was written with (registry formats only).
    pub schema_id: Option<u32>,
    /// What the record counts for in a session's queue bounds and in memory.
    size: usize,
    value: OnceLock<Option<Value>>,
    json: OnceLock<Frame>,
    sse: OnceLock<bytes::Bytes>,
    text: OnceLock<Option<Box<str>>>,
}

/// What a [`Delivery`] is made of.
pub struct Parts<'a> {
    pub channel: u32,
    pub prefix: &'a MessagePrefix,
    pub key: Option<&'a str>,
    pub data: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
    pub schema_id: Option<u32>,
    /// The value as a tree, when the caller already has it (transforms, value keys).
    pub value: Option<Value>,
}

/// Fixed cost counted per record besides its texts: about the JSON frame's field names.
const OVERHEAD: usize = 96;

impl Delivery {
    pub fn new(parts: Parts<'_>) -> Self {
        let headers: Headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    Box::from(*name),
                    value.map(|v| String::from_utf8_lossy(v).into()),
                )
            })
            .collect();
        let size = OVERHEAD
            + parts.prefix.len()
            + parts.data.len()
            + parts.key.map_or(0, str::len)
            + headers
                .iter()
                .map(|(n, v)| n.len() + v.as_deref().map_or(4, str::len) + 6)
                .sum::<usize>();
        let value = OnceLock::new();
        if let Some(tree) = parts.value {
            let _ = value.set(Some(tree));
        }
        Delivery {
            channel: parts.channel,
            prefix: parts.prefix.clone(),
            key: parts.key.map(Into::into),
            data: parts.data.into(),
            partition: parts.partition,
            offset: parts.offset,
            timestamp: parts.timestamp,
            headers,
            schema_id: parts.schema_id,
            size,
            value,
            json: OnceLock::new(),
            sse: OnceLock::new(),
            text: OnceLock::new(),
        }
    }

    /// Bytes the record counts for in a session's queue (`server.send_queue_bytes`) and in a
    /// channel's memory: its data, key and headers plus a fixed 96 — about its JSON frame,
    /// known without encoding it.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The record's `message` frame of the JSON protocol, encoded by the first session that
    /// sends it.
    pub fn json(&self) -> &Frame {
        self.json.get_or_init(|| self.encode_json(None))
    }

    /// The `message` frame with `"conflated": skipped` (records replaced by this one under
    /// `max_rate`): made per session, as it is sent to one.
    pub fn json_conflated(&self, skipped: u64) -> Frame {
        self.encode_json(Some(skipped))
    }

    fn encode_json(&self, conflated: Option<u64>) -> Frame {
        let headers: Vec<(&str, Option<&str>)> = self
            .headers
            .iter()
            .map(|(n, v)| (&**n, v.as_deref()))
            .collect();
        message(
            &self.prefix,
            &MessageParts {
                key: self.key.as_deref(),
                data: &self.data,
                partition: self.partition,
                offset: self.offset,
                timestamp: self.timestamp,
                headers: &headers,
                schema_id: self.schema_id,
                conflated,
            },
        )
    }

    /// The `data:` lines of the record's SSE `message` event (its JSON frame, one `data:` line
    /// per line of it, `\r` as a space), made by the first stream that sends it.
    pub fn sse_data(&self) -> &bytes::Bytes {
        self.sse.get_or_init(|| sse_lines(self.json().as_str()))
    }

    /// The value parsed, for client filters: parsed once, by the first filter that reads it.
    pub fn value(&self) -> Option<&Value> {
        self.value
            .get_or_init(|| serde_json::from_str(&self.data).ok())
            .as_ref()
    }

    /// The text of a value that is a JSON string (text and base64 channels), for bodies that
    /// carry it as it was; `None` for other values.
    pub fn text(&self) -> Option<&str> {
        self.text
            .get_or_init(|| {
                self.data
                    .starts_with('"')
                    .then(|| serde_json::from_str::<String>(&self.data).ok())
                    .flatten()
                    .map(Into::into)
            })
            .as_deref()
    }

    /// A header's value, if the record has it and it is not null (the last one of a repeated
    /// name, as in the frame's `headers` object).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| &**n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// `text` as SSE `data:` lines: a line break would end the field, so each line gets its own
/// (clients join them with `\n`); a `\r` (only whitespace between JSON tokens) becomes a space.
pub fn sse_lines(text: &str) -> bytes::Bytes {
    let mut out = Vec::with_capacity(text.len() + 8);
    for line in text.split('\n') {
        out.extend_from_slice(b"data:");
        let start = out.len();
        out.extend_from_slice(line.as_bytes());
        for byte in &mut out[start..] {
            if *byte == b'\r' {
                *byte = b' ';
            }
        }
        out.push(b'\n');
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(data: &str) -> Delivery {
        Delivery::new(Parts {
            channel: 0,
            prefix: &MessagePrefix::new("c"),
            key: Some("k"),
            data,
            partition: 1,
            offset: 2,
            timestamp: Some(3),
            headers: &[("h", Some(b"v")), ("n", None)],
            schema_id: None,
            value: None,
        })
    }

    #[test]
    fn encodings_are_made_once_and_agree() {
        let d = delivery("{\"a\":\r\n1}");
        let frame = d.json().clone();
        assert_eq!(
            frame.as_str(),
            "{\"type\":\"message\",\"channel\":\"c\",\"key\":\"k\",\"data\":{\"a\":\r\n1},\"partition\":1,\"offset\":2,\"timestamp\":3,\"headers\":{\"h\":\"v\",\"n\":null}}"
        );
        assert!(std::ptr::eq(d.json(), d.json()));
        assert_eq!(
            &d.sse_data()[..],
            b"data:{\"type\":\"message\",\"channel\":\"c\",\"key\":\"k\",\"data\":{\"a\": \ndata:1},\"partition\":1,\"offset\":2,\"timestamp\":3,\"headers\":{\"h\":\"v\",\"n\":null}}\n"
        );
        assert_eq!(d.value(), Some(&serde_json::json!({"a": 1})));
        assert_eq!(d.header("h"), Some("v"));
        assert_eq!(d.header("n"), None);
        assert_eq!(d.text(), None);
        assert_eq!(delivery("\"x\\ny\"").text(), Some("x\ny"));
        assert!(d
            .json_conflated(4)
            .as_str()
            .ends_with(",\"headers\":{\"h\":\"v\",\"n\":null},\"conflated\":4}"));
    }
}
