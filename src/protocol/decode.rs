//! Decoding client text frames into [`ClientFrame`]s. Unknown fields are ignored (forward
//! compatibility); every refusal says what was wrong and keeps the request id when it could be
//! read, so the client can match the error to its request.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::RequestId;

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
        /// A client filter (a predicate, parsed by the session: see `predicate`).
        filter: Option<serde_json::Value>,
        /// At most this many messages per second and key (`max_rate`).
        max_rate: Option<u32>,
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
    /// A fresh token for this session: it continues on it (`refresh`).
    Refresh {
        id: RequestId,
        token: String,
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
    token: Option<String>,
    filter: Option<serde_json::Value>,
    max_rate: Option<u32>,
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
        "refresh" => {
            return match envelope.token {
                Some(token) if !token.is_empty() => Ok(ClientFrame::Refresh { id, token }),
                _ => fail(id, "missing field `token` (the new JWT)".into()),
            }
        }
        other => {
            return fail(
                id,
                format!(
                    "unknown type `{}`; expected subscribe, unsubscribe, publish, ping or refresh",
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
                filter: envelope.filter,
                max_rate: envelope.max_rate,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_err(text: &str) -> (Option<String>, String) {
        let err = decode_client(text).unwrap_err();
        (err.id.map(|id| id.get().to_owned()), err.message)
    }

    #[test]
    fn decodes_every_frame_type() {
        match decode_client(r#"{"type":"subscribe","id":"s1","channel":"balances","key":"C-1","resume":{"0":41,"3":7}}"#).unwrap() {
            ClientFrame::Subscribe { id, channel, key, resume, history, .. } => {
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
                "unknown type `dance`; expected subscribe, unsubscribe, publish, ping or refresh"
                    .into()
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
}
