//! Record values ↔ the JSON `data` of frames, per the channel's `format`: `json` values are the
//! JSON itself, `text` values a JSON string, `base64` values a base64 string. One codec for both
//! directions, so the Kafka → client path ([`encode_data`]) and the HTTP publish API
//! ([`decode_data`]) cannot drift apart.

use serde_json::value::RawValue;
use serde_json::Value;

use super::push_json_str;
use crate::config::Format;

/// Encodes a record value per the channel format, as JSON text for `data`.
pub fn encode_data(format: Format, value: Option<&[u8]>) -> Result<DataJson<'_>, String> {
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
        // Decoded with their schema before this (outbound), never here.
        Format::Avro | Format::Protobuf | Format::JsonSchema => {
            Err("a Schema Registry format needs its schema to decode".into())
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

/// Why a publish's `data` does not fit its channel's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("this channel's format is text: `data` must be a JSON string")]
    NotAString,
    #[error("this channel's format is base64: `data` must be a base64 string")]
    NotABase64String,
    #[error("`data` is not valid base64: {0}")]
    BadBase64(#[from] base64::DecodeError),
    #[error("this channel's format needs its schema from the Schema Registry")]
    NeedsSchema,
}

/// The record value for a channel's format, from the `data` a client sent: JSON as sent;
/// `text` channels take a JSON string and write its text; `base64` channels take a base64
/// string and write its bytes. The inverse of [`encode_data`].
pub fn decode_data(format: Format, data: &RawValue) -> Result<Vec<u8>, DataError> {
    match format {
        Format::Json => Ok(data.get().as_bytes().to_vec()),
        Format::Text => serde_json::from_str::<String>(data.get())
            .map(String::into_bytes)
            .map_err(|_| DataError::NotAString),
        Format::Base64 => {
            use base64::Engine as _;
            let text = serde_json::from_str::<String>(data.get())
                .map_err(|_| DataError::NotABase64String)?;
            Ok(base64::engine::general_purpose::STANDARD.decode(text)?)
        }
        Format::Avro | Format::Protobuf | Format::JsonSchema => Err(DataError::NeedsSchema),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_data_inverts_encoding_it() {
        let value: &[u8] = b"\xff\x00 caf\xc3\xa9";
        let base64 = RawValue::from_string(
            encode_data(Format::Base64, Some(value))
                .unwrap()
                .as_str()
                .into(),
        )
        .unwrap();
        assert_eq!(decode_data(Format::Base64, &base64).unwrap(), value);
        let text = RawValue::from_string(r#""caf\u00e9 \n""#.into()).unwrap();
        assert_eq!(
            decode_data(Format::Text, &text).unwrap(),
            "café \n".as_bytes()
        );
        let json = RawValue::from_string("{\"a\": 1}".into()).unwrap();
        assert_eq!(decode_data(Format::Json, &json).unwrap(), b"{\"a\": 1}");
        // The messages HttpPublish has always answered with.
        assert_eq!(
            decode_data(Format::Text, &json).unwrap_err().to_string(),
            "this channel's format is text: `data` must be a JSON string"
        );
        assert_eq!(
            decode_data(Format::Base64, &json).unwrap_err().to_string(),
            "this channel's format is base64: `data` must be a base64 string"
        );
        let bad = RawValue::from_string("\"%%\"".into()).unwrap();
        assert!(decode_data(Format::Base64, &bad)
            .unwrap_err()
            .to_string()
            .starts_with("`data` is not valid base64: "));
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
