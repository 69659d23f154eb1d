//! Client protocol v1: decoding client frames (with errors precise enough to send back) and
//! encoding server frames. Outbound `message` frames are encoded once per record into a
//! [`Frame`], a reference-counted buffer holding the complete WebSocket frame, which every
//! receiving session writes to its socket as it is.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// An encoded server frame, cheap to clone (reference counted), held as the complete WebSocket
/// text frame: server frames are not masked, so these bytes are the same for every session and
/// go to each connection's socket as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    wire: Bytes,
    header: usize,
}

impl Frame {
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.wire[self.header..]).expect("built from a String")
    }

    /// Length of the JSON text.
    pub fn len(&self) -> usize {
        self.wire.len() - self.header
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole frame as written to the connection: header (FIN, text opcode, length), then
    /// the text.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        let len = text.len();
        let mut wire = Vec::with_capacity(len + 10);
        wire.push(0x81); // FIN, opcode 1 (text)
        match len {
            0..=125 => wire.push(len as u8),
            126..=0xFFFF => {
                wire.push(126);
                wire.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                wire.push(127);
                wire.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        let header = wire.len();
        wire.extend_from_slice(text.as_bytes());
        Frame {
            wire: Bytes::from(wire),
            header,
        }
    }
}

/// Error codes of `error` frames (protocol v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    UnknownChannel,
    Forbidden,
    TooLarge,
    RateLimited,
    Invalid,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownChannel => "unknown_channel",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// A request refused: the code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

/// The client's request id, echoed in the answer. Any JSON string or number.
pub type RequestId = Option<Box<RawValue>>;

/// A decoded client frame.
#[derive(Debug)]
pub enum ClientFrame<'a> {
    Subscribe {
        id: RequestId,
        channel: String,
        key: Option<String>,
        /// Partition → last offset the client saw.
        resume: Option<BTreeMap<i32, i64>>,
        /// Newest N held records wanted before live ones.
        history: Option<usize>,
    },
    Unsubscribe {
        id: RequestId,
        channel: String,
        key: Option<String>,
    },
    Publish {
        id: RequestId,
        channel: String,
        /// The exact JSON text the client sent as `data`.
        data: &'a RawValue,
        headers: BTreeMap<String, String>,
    },
    Ping {
        id: RequestId,
    },
}

/// A frame that could not be decoded: what to answer, with the id when it could be read.
#[derive(Debug)]
pub struct DecodeError {
    pub id: RequestId,
    pub message: String,
}

/// Every field any frame type may carry; unknown fields are ignored for forward compatibility.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<Box<RawValue>>,
    channel: Option<String>,
    key: Option<KeyField>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    headers: Option<BTreeMap<String, String>>,
    resume: Option<BTreeMap<String, i64>>,
    history: Option<usize>,
}

/// Keys are strings; integers are accepted and used in their decimal form.
#[derive(Deserialize)]
#[serde(untagged)]
enum KeyField {
    Text(String),
    Int(i64),
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<Box<RawValue>>,
}

/// Decodes one client text frame.
pub fn decode_client(text: &str) -> Result<ClientFrame<'_>, DecodeError> {
    let envelope: Envelope = serde_json::from_str(text).map_err(|e| DecodeError {
        // A well-formed object with a mistyped field still tells us its id.
        id: serde_json::from_str::<IdOnly>(text).ok().and_then(|i| i.id),
        message: describe_json_error(&e),
    })?;
    if let Some(id) = &envelope.id {
        if !(id.get().starts_with('"')
            || id
                .get()
                .starts_with(|c: char| c == '-' || c.is_ascii_digit()))
        {
            return Err(DecodeError {
                id: None,
                message: "`id` must be a string or a number".into(),
            });
        }
    }
    let id = envelope.id;
    let fail = |id: RequestId, message: String| Err(DecodeError { id, message });
    let Some(kind) = envelope.kind else {
        return fail(id, "missing field `type`".into());
    };
    let key = envelope.key.map(|k| match k {
        KeyField::Text(s) => s,
        KeyField::Int(i) => i.to_string(),
    });
    match kind.as_str() {
        "subscribe" | "unsubscribe" | "publish" => {}
        "ping" => return Ok(ClientFrame::Ping { id }),
        other => {
            return fail(
                id,
                format!(
                    "unknown type `{}`; expected subscribe, unsubscribe, publish or ping",
                    truncate(other, 40)
                ),
            )
        }
    }
    let Some(channel) = envelope.channel else {
        return fail(id, "missing field `channel`".into());
    };
    match kind.as_str() {
        "subscribe" => {
            let resume = match envelope.resume {
                None => None,
                Some(map) => {
                    let mut parsed = BTreeMap::new();
                    for (partition, offset) in map {
                        match partition.parse::<i32>() {
                            Ok(p) if p >= 0 => {
                                parsed.insert(p, offset);
                            }
                            _ => {
                                return fail(
                                    id,
                                    format!(
                                        "`resume` keys are partition numbers, found \"{}\"",
                                        truncate(&partition, 20)
                                    ),
                                )
                            }
                        }
                    }
                    Some(parsed)
                }
            };
            if resume.is_some() && envelope.history.is_some() {
                return fail(id, "`resume` and `history` cannot be combined".into());
            }
            Ok(ClientFrame::Subscribe {
                id,
                channel,
                key,
                resume,
                history: envelope.history,
            })
        }
        "unsubscribe" => Ok(ClientFrame::Unsubscribe { id, channel, key }),
        _ => {
            let Some(data) = envelope.data else {
                return fail(id, "missing field `data`".into());
            };
            if key.is_some() {
                return fail(
                    id,
                    "`key` is not accepted on publish: the record key comes from the channel's configuration".into(),
                );
            }
            if nesting_depth(data.get()) > MAX_DATA_DEPTH {
                return fail(
                    id,
                    format!("`data` nests deeper than {MAX_DATA_DEPTH} levels"),
                );
            }
            Ok(ClientFrame::Publish {
                id,
                channel,
                data,
                headers: envelope.headers.unwrap_or_default(),
            })
        }
    }
}

/// Deepest nesting accepted in published `data`: deeper documents are refused before they
/// reach Kafka, where consumers with recursive parsers would choke on them.
pub const MAX_DATA_DEPTH: usize = 64;

/// Maximum nesting of arrays and objects in (valid) JSON text.
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in json.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => "invalid JSON",
        Category::Data => "invalid frame",
    };
    format!("{what}: {error}")
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
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

fn push_id(out: &mut String, id: &RequestId) {
    if let Some(id) = id {
        out.push_str(",\"id\":");
        out.push_str(id.get());
    }
}

fn push_key(out: &mut String, key: Option<&str>) {
    if let Some(key) = key {
        out.push_str(",\"key\":");
        push_json_str(out, key);
    }
}

/// `{"type":"welcome",...}`
pub fn welcome(session: &str, user: Option<&str>) -> Frame {
    let mut out = String::from("{\"type\":\"welcome\",\"session\":");
    push_json_str(&mut out, session);
    out.push_str(",\"user\":");
    match user {
        Some(user) => push_json_str(&mut out, user),
        None => out.push_str("null"),
    }
    out.push_str(",\"protocol\":1}");
    out.into()
}

/// `{"type":"error",...}`
pub fn error(id: &RequestId, refusal: &Refusal) -> Frame {
    let mut out = String::from("{\"type\":\"error\"");
    push_id(&mut out, id);
    out.push_str(",\"code\":\"");
    out.push_str(refusal.code.as_str());
    out.push_str("\",\"message\":");
    push_json_str(&mut out, &refusal.message);
    out.push('}');
    out.into()
}

/// `{"type":"pong",...}`
pub fn pong(id: &RequestId) -> Frame {
    let mut out = String::from("{\"type\":\"pong\"");
    push_id(&mut out, id);
    out.push('}');
    out.into()
}

/// `{"type":"ack",...}`
pub fn ack(id: &RequestId, topic: &str, partition: i32, offset: Option<i64>) -> Frame {
    let mut out = String::from("{\"type\":\"ack\"");
    push_id(&mut out, id);
    out.push_str(",\"topic\":");
    push_json_str(&mut out, topic);
    match offset {
        Some(offset) => {
            let _ = write!(out, ",\"partition\":{partition},\"offset\":{offset}}}");
        }
        None => {
            let _ = write!(out, ",\"partition\":{partition},\"offset\":null}}");
        }
    }
    out.into()
}

/// A value held for a key, sent in `subscribed.snapshot`.
#[derive(Debug, Clone)]
pub struct SnapshotValue<'a> {
    pub data: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// `{"type":"subscribed",...}`
#[allow(clippy::too_many_arguments)]
pub fn subscribed(
    id: &RequestId,
    channel: &str,
    key: Option<&str>,
    snapshot: Option<SnapshotValue<'_>>,
    replayed: usize,
    gap: bool,
    positions: &BTreeMap<i32, i64>,
) -> Frame {
    let mut out = String::from("{\"type\":\"subscribed\"");
    push_id(&mut out, id);
    out.push_str(",\"channel\":");
    push_json_str(&mut out, channel);
    push_key(&mut out, key);
    out.push_str(",\"snapshot\":");
    match snapshot {
        Some(s) => {
            let _ = write!(
                out,
                "{{\"data\":{},\"partition\":{},\"offset\":{}}}",
                s.data, s.partition, s.offset
            );
        }
        None => out.push_str("null"),
    }
    let _ = write!(
        out,
        ",\"replayed\":{replayed},\"gap\":{gap},\"positions\":{{"
    );
    for (i, (partition, offset)) in positions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{partition}\":{offset}");
    }
    out.push_str("}}");
    out.into()
}

/// `{"type":"unsubscribed",...}`
pub fn unsubscribed(id: &RequestId, channel: &str, key: Option<&str>) -> Frame {
    let mut out = String::from("{\"type\":\"unsubscribed\"");
    push_id(&mut out, id);
    out.push_str(",\"channel\":");
    push_json_str(&mut out, channel);
    push_key(&mut out, key);
    out.push('}');
    out.into()
}

/// `{"type":"session_replaced"}`: sent just before closing with 4000.
pub fn session_replaced() -> Frame {
    String::from("{\"type\":\"session_replaced\"}").into()
}

/// The start of every `message` frame of one channel, encoded once per channel.
#[derive(Debug, Clone)]
pub struct MessagePrefix(String);

impl MessagePrefix {
    pub fn new(channel: &str) -> Self {
        let mut out = String::from("{\"type\":\"message\",\"channel\":");
        push_json_str(&mut out, channel);
        MessagePrefix(out)
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
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

/// Encodes a `message` frame; also returns where `data` sits in it. Header values are sent as
/// strings (invalid UTF-8 replaced by U+FFFD), null header values as `null`.
pub fn message(
    prefix: &MessagePrefix,
    parts: &MessageParts<'_>,
) -> (Frame, std::ops::Range<usize>) {
    let mut out = String::with_capacity(prefix.0.len() + parts.data.len() + 96);
    out.push_str(&prefix.0);
    push_key(&mut out, parts.key);
    out.push_str(",\"data\":");
    let data_start = out.len();
    out.push_str(parts.data);
    let data = data_start..out.len();
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
    out.push_str(",\"headers\":{");
    for (i, (name, value)) in parts.headers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(&mut out, name);
        out.push(':');
        match value {
            Some(bytes) => push_json_str(&mut out, &String::from_utf8_lossy(bytes)),
            None => out.push_str("null"),
        }
    }
    out.push_str("}}");
    (out.into(), data)
}

/// Encodes a record value per the channel format, as JSON text for `data`.
pub fn encode_data(
    format: crate::config::Format,
    value: Option<&[u8]>,
) -> Result<DataJson<'_>, String> {
    use crate::config::Format;
    let Some(value) = value else {
        return Ok(DataJson::Borrowed("null"));
    };
    match format {
        Format::Json => {
            let raw: &RawValue = serde_json::from_slice(value)
                .map_err(|e| format!("value is not valid JSON: {e}"))?;
            Ok(DataJson::Borrowed(raw.get()))
        }
        Format::Text => {
            let text =
                std::str::from_utf8(value).map_err(|e| format!("value is not valid UTF-8: {e}"))?;
            let mut out = String::with_capacity(text.len() + 2);
            push_json_str(&mut out, text);
            Ok(DataJson::Owned(out))
        }
        Format::Base64 => {
            use base64::Engine as _;
            let mut out = String::with_capacity(value.len() * 4 / 3 + 4);
            out.push('"');
            base64::engine::general_purpose::STANDARD.encode_string(value, &mut out);
            out.push('"');
            Ok(DataJson::Owned(out))
        }
    }
}

/// JSON text for `data`, borrowed from the record when it already is JSON.
pub enum DataJson<'a> {
    Borrowed(&'a str),
    Owned(String),
}

impl DataJson<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            DataJson::Borrowed(s) => s,
            DataJson::Owned(s) => s,
        }
    }
}

/// Looks up a JSON pointer in a value and renders it as a routing key: strings as they are,
/// numbers and booleans in JSON form; anything else is no key.
pub fn key_at_pointer(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The record value a client's `data` stands for on a channel of `format` (the reverse of
/// [`encode_data`]): JSON as sent; `text` channels take a JSON string and write its text;
/// `base64` channels take a base64 string and write its bytes.
pub fn decode_data(format: crate::config::Format, data: &RawValue) -> Result<Vec<u8>, String> {
    use crate::config::Format;
    match format {
        Format::Json => Ok(data.get().as_bytes().to_vec()),
        Format::Text => serde_json::from_str::<String>(data.get())
            .map(String::into_bytes)
            .map_err(|_| "this channel's format is text: `data` must be a JSON string".to_owned()),
        Format::Base64 => {
            use base64::Engine as _;
            let text = serde_json::from_str::<String>(data.get()).map_err(|_| {
                "this channel's format is base64: `data` must be a base64 string".to_owned()
            })?;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("`data` is not valid base64: {e}"))
        }
    }
}

/// Header naming the session a reply is for (set by the bridge on inbound records).
pub const SESSION_HEADER: &str = "bridge-session";
/// Header naming the user a reply is for (set by the bridge on inbound records).
pub const USER_HEADER: &str = "bridge-user";
/// Header carrying the client's publish id.
pub const CORRELATION_HEADER: &str = "correlation-id";
/// Headers only the bridge sets; a publish that carries one is refused.
pub const RESERVED_HEADERS: &[&str] = &[USER_HEADER, SESSION_HEADER, CORRELATION_HEADER];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;

    #[test]
    fn a_frame_on_the_wire_is_what_tungstenite_would_write() {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let text = "x".repeat(len);
            let frame = Frame::from(text.clone());
            let mut expected = Vec::new();
            tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
                text.clone(),
                OpCode::Data(Data::Text),
                true,
            )
            .format(&mut expected)
            .unwrap();
            assert_eq!(frame.wire(), expected.as_slice(), "length {len}");
            assert_eq!(frame.as_str(), text);
            assert_eq!(frame.len(), len);
        }
    }

    fn decode_err(text: &str) -> (Option<String>, String) {
        let err = decode_client(text).unwrap_err();
        (err.id.map(|id| id.get().to_owned()), err.message)
    }

    #[test]
    fn decodes_every_frame_type() {
        match decode_client(r#"{"type":"subscribe","id":"s1","channel":"balances","key":"C-1","resume":{"0":41,"3":7}}"#).unwrap() {
            ClientFrame::Subscribe { id, channel, key, resume, history } => {
                assert_eq!(id.unwrap().get(), "\"s1\"");
                assert_eq!(channel, "balances");
                assert_eq!(key.as_deref(), Some("C-1"));
                assert_eq!(resume.unwrap(), BTreeMap::from([(0, 41), (3, 7)]));
                assert_eq!(history, None);
            }
            other => panic!("{other:?}"),
        }
        match decode_client(r#"{"type":"publish","id":7,"channel":"c","data":{"op":"x","n":1.50},"headers":{"h":"v"}}"#).unwrap() {
            ClientFrame::Publish { id, data, headers, .. } => {
                assert_eq!(id.unwrap().get(), "7");
                assert_eq!(data.get(), r#"{"op":"x","n":1.50}"#, "data is kept byte for byte");
                assert_eq!(headers["h"], "v");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_client(r#"{"type":"ping"}"#).unwrap(),
            ClientFrame::Ping { id: None }
        ));
        match decode_client(r#"{"type":"unsubscribe","channel":"c","key":42}"#).unwrap() {
            ClientFrame::Unsubscribe { key, .. } => assert_eq!(key.as_deref(), Some("42")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_are_precise_and_keep_the_id() {
        assert_eq!(decode_err("not json").0, None);
        assert!(decode_err("not json").1.starts_with("invalid JSON"));
        assert_eq!(
            decode_err(r#"{"type":"dance","id":"d1"}"#),
            (
                Some("\"d1\"".into()),
                "unknown type `dance`; expected subscribe, unsubscribe, publish or ping".into()
            )
        );
        assert_eq!(
            decode_err(r#"{"type":"subscribe","id":"s"}"#),
            (Some("\"s\"".into()), "missing field `channel`".into())
        );
        assert_eq!(decode_err(r#"{"id":"s"}"#).1, "missing field `type`");
        assert_eq!(
            decode_err(r#"{"type":"publish","id":"p","channel":"c"}"#).1,
            "missing field `data`"
        );
        let (id, message) = decode_err(r#"{"type":"subscribe","id":"s","channel":5}"#);
        assert_eq!(id.as_deref(), Some("\"s\""));
        assert!(
            message.starts_with("invalid frame: invalid type: integer `5`"),
            "{message}"
        );
        assert!(
            decode_err(r#"{"type":"subscribe","channel":"c","resume":{"x":1}}"#)
                .1
                .contains("partition numbers")
        );
        assert!(decode_err(r#"{"type":"ping","id":{"a":1}}"#)
            .1
            .contains("`id` must be"));
        assert!(decode_err(r#"[1,2]"#).1.starts_with("invalid frame"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let bomb = format!(
            "{{\"type\":\"publish\",\"channel\":\"c\",\"data\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            decode_client(&bomb).unwrap_err().message,
            "`data` nests deeper than 64 levels"
        );
        let fine = format!(
            "{{\"type\":\"publish\",\"channel\":\"c\",\"data\":{}\"]}}\"{}}}",
            "[".repeat(64),
            "]".repeat(64)
        );
        assert!(decode_client(&fine).is_ok(), "strings do not count: {fine}");
    }

    #[test]
    fn server_frames_are_valid_json() {
        let id: RequestId = Some(RawValue::from_string("\"p1\"".into()).unwrap());
        let frames = [
            welcome("s\"1", Some("C-1")),
            welcome("s", None),
            error(&id, &Refusal::new(ErrorCode::Forbidden, "no \n way")),
            pong(&None),
            ack(&id, "t", 1, Some(7)),
            ack(&id, "t", 1, None),
            subscribed(
                &id,
                "c",
                Some("k"),
                Some(SnapshotValue {
                    data: "{\"a\":1}",
                    partition: 0,
                    offset: 4,
                }),
                2,
                true,
                &BTreeMap::from([(0, 4), (3, 9)]),
            ),
            subscribed(&None, "c", None, None, 0, false, &BTreeMap::new()),
            unsubscribed(&id, "c", None),
            session_replaced(),
        ];
        for frame in frames {
            let value: Value = serde_json::from_str(frame.as_str())
                .unwrap_or_else(|e| panic!("{e}: {}", frame.as_str()));
            assert!(value["type"].is_string());
        }
    }

    #[test]
    fn message_frame_carries_everything() {
        let prefix = MessagePrefix::new("bal\"ances");
        let headers: [(&str, Option<&[u8]>); 2] = [("h", Some(b"v\x01")), ("n", None)];
        let (frame, data) = message(
            &prefix,
            &MessageParts {
                key: Some("C-1"),
                data: "{\"x\":1}",
                partition: 2,
                offset: 41,
                timestamp: Some(1700),
                headers: &headers,
            },
        );
        assert_eq!(&frame.as_str()[data], "{\"x\":1}");
        let value: Value = serde_json::from_str(frame.as_str()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type":"message","channel":"bal\"ances","key":"C-1","data":{"x":1},"partition":2,"offset":41,"timestamp":1700,"headers":{"h":"v\u{1}","n":null}})
        );
    }

    #[test]
    fn data_encoding_per_format() {
        assert_eq!(
            encode_data(Format::Json, Some(b" {\"a\": 1} "))
                .unwrap()
                .as_str(),
            "{\"a\": 1}"
        );
        assert!(encode_data(Format::Json, Some(b"{oops")).is_err());
        assert_eq!(encode_data(Format::Json, None).unwrap().as_str(), "null");
        assert_eq!(
            encode_data(Format::Text, Some("é\"".as_bytes()))
                .unwrap()
                .as_str(),
            "\"é\\\"\""
        );
        assert!(encode_data(Format::Text, Some(b"\xff")).is_err());
        assert_eq!(
            encode_data(Format::Base64, Some(b"\xff\x00"))
                .unwrap()
                .as_str(),
            "\"/wA=\""
        );
    }

    #[test]
    fn pointer_keys() {
        let value = serde_json::json!({"c": "C-1", "n": 42, "o": {}});
        assert_eq!(key_at_pointer(&value, "/c").as_deref(), Some("C-1"));
        assert_eq!(key_at_pointer(&value, "/n").as_deref(), Some("42"));
        assert_eq!(key_at_pointer(&value, "/o"), None);
        assert_eq!(key_at_pointer(&value, "/missing"), None);
    }
}
