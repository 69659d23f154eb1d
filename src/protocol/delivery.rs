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

/// Where one header lies in [`Delivery`]'s texts: its name ends at `name_end`, its value (when
/// not null) at `value_end`; each starts where the previous text ends.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    name_end: u32,
    value_end: u32,
    null: bool,
}

/// Headers kept inline, without an allocation of their own, up to this many.
const INLINE_HEADERS: usize = 3;

#[derive(Debug)]
enum Spans {
    Inline(u8, [Span; INLINE_HEADERS]),
    Heap(Box<[Span]>),
}

impl Spans {
    fn as_slice(&self) -> &[Span] {
        match self {
            Spans::Inline(len, spans) => &spans[..usize::from(*len)],
            Spans::Heap(spans) => spans,
        }
    }
}

/// One record of one channel, as every session receives it. Its texts — the value's JSON, the
/// key, the headers' names and values — share one allocation.
#[derive(Debug)]
pub struct Delivery {
    /// The channel's index in the catalogue.
    pub channel: u32,
    prefix: MessagePrefix,
    /// `data`, then the key, then each header's name and value.
    texts: Box<str>,
    data_end: u32,
    /// Where the key ends, when the record has one.
    key_end: Option<u32>,
    spans: Spans,
    pub partition: i32,
    pub offset: i64,
    /// Kafka timestamp (ms).
    pub timestamp: Option<i64>,
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
        let capacity = parts.data.len()
            + parts.key.map_or(0, str::len)
            + parts
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.map_or(0, <[u8]>::len))
                .sum::<usize>();
        let mut texts = String::with_capacity(capacity);
        texts.push_str(parts.data);
        let data_end = texts.len() as u32;
        let key_end = parts.key.map(|key| {
            texts.push_str(key);
            texts.len() as u32
        });
        let span = |texts: &mut String, (name, value): &(&str, Option<&[u8]>)| {
            texts.push_str(name);
            let name_end = texts.len() as u32;
            if let Some(value) = value {
                match std::str::from_utf8(value) {
                    Ok(text) => texts.push_str(text),
                    // Invalid UTF-8 becomes U+FFFD (the text may grow beyond what was reserved).
                    Err(_) => texts.push_str(&String::from_utf8_lossy(value)),
                }
            }
            Span {
                name_end,
                value_end: texts.len() as u32,
                null: value.is_none(),
            }
        };
        let spans = if parts.headers.len() <= INLINE_HEADERS {
            let mut inline = [Span::default(); INLINE_HEADERS];
            for (slot, header) in inline.iter_mut().zip(parts.headers) {
                *slot = span(&mut texts, header);
            }
            Spans::Inline(parts.headers.len() as u8, inline)
        } else {
            Spans::Heap(parts.headers.iter().map(|h| span(&mut texts, h)).collect())
        };
        let texts: Box<str> = texts.into_boxed_str();
        let size = OVERHEAD
            + parts.prefix.len()
            + texts.len()
            // Quotes, colon and comma per header; `null` for a null value.
            + spans
                .as_slice()
                .iter()
                .map(|s| if s.null { 10 } else { 6 })
                .sum::<usize>();
        let value = OnceLock::new();
        if let Some(tree) = parts.value {
            let _ = value.set(Some(tree));
        }
        Delivery {
            channel: parts.channel,
            prefix: parts.prefix.clone(),
            texts,
            data_end,
            key_end,
            spans,
            partition: parts.partition,
            offset: parts.offset,
            timestamp: parts.timestamp,
            schema_id: parts.schema_id,
            size,
            value,
            json: OnceLock::new(),
            sse: OnceLock::new(),
            text: OnceLock::new(),
        }
    }

    /// The value as JSON text (after transforms): `data` of the `message` frame.
    pub fn data(&self) -> &str {
        &self.texts[..self.data_end as usize]
    }

    /// The routing key (by-key channels, or where the channel names a key source).
    pub fn key(&self) -> Option<&str> {
        self.key_end
            .map(|end| &self.texts[self.data_end as usize..end as usize])
    }

    /// The headers as text, in record order: name, and value (`None`: a null value; invalid
    /// UTF-8 replaced by U+FFFD).
    pub fn headers(&self) -> impl DoubleEndedIterator<Item = (&str, Option<&str>)> + '_ {
        let spans = self.spans.as_slice();
        let first = self.key_end.unwrap_or(self.data_end);
        (0..spans.len()).map(move |i| {
            let start = if i == 0 {
                first
            } else {
                spans[i - 1].value_end
            } as usize;
            let span = spans[i];
            let name_end = span.name_end as usize;
            (
                &self.texts[start..name_end],
                (!span.null).then(|| &self.texts[name_end..span.value_end as usize]),
            )
        })
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
        let headers: Vec<(&str, Option<&str>)> = self.headers().collect();
        message(
            &self.prefix,
            &MessageParts {
                key: self.key(),
                data: self.data(),
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
            .get_or_init(|| serde_json::from_str(self.data()).ok())
            .as_ref()
    }

    /// The text of a value that is a JSON string (text and base64 channels), for bodies that
    /// carry it as it was; `None` for other values.
    pub fn text(&self) -> Option<&str> {
        self.text
            .get_or_init(|| {
                self.data()
                    .starts_with('"')
                    .then(|| serde_json::from_str::<String>(self.data()).ok())
                    .flatten()
                    .map(Into::into)
            })
            .as_deref()
    }

    /// A header's value, if the record has it and it is not null (the last one of a repeated
    /// name, as in the frame's `headers` object).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .rev()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v)
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
