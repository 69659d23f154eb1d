//! A publish that does not fit its Protobuf message: prost-reflect's error, with the field it
//! is about named and what that field expects and what it got.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::Value;
use serde_path_to_error::{Path, Segment};

use crate::registry::schema::describe;
use crate::registry::InvalidData;

/// Follows `path` (where deserialization stopped) through the message and the value.
pub fn invalid(root: &MessageDescriptor, value: &Value, path: &Path, error: String) -> InvalidData {
    let mut at: Option<&Value> = Some(value);
    let mut rendered = String::new();
    // What the value at the current position must be; `within` when it is a list or a map
    // whose items come next.
    let mut kind = Some(Kind::Message(root.clone()));
    let mut within: Option<FieldDescriptor> = None;
    for segment in path.iter() {
        match segment {
            Segment::Map { key } => {
                at = at.and_then(|v| v.get(key));
                push_name(&mut rendered, key);
                match (within.take(), &kind) {
                    (Some(map), _) if map.is_map() => {
                        kind = message_of(&map.kind()).map(|e| e.map_entry_value_field().kind());
                    }
                    (_, Some(Kind::Message(message))) => {
                        let field = message
                            .get_field_by_json_name(key)
                            .or_else(|| message.get_field_by_name(key));
                        kind = field.as_ref().map(|f| f.kind());
                        within = field.filter(|f| f.is_list() || f.is_map());
                    }
                    _ => kind = None,
                }
            }
            Segment::Seq { index } => {
                at = at.and_then(|v| v.get(index));
                rendered.push_str(&format!("[{index}]"));
                // The item of a list: the field's kind is its items'.
                within = None;
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    // An unknown field is reported at the message that does not have it.
    if let Some(name) = error
        .strip_prefix("unrecognized field name '")
        .and_then(|rest| rest.strip_suffix('\''))
    {
        if let Some(Kind::Message(message)) = &kind {
            push_name(&mut rendered, name);
            let names: Vec<String> = message.fields().map(|f| f.json_name().to_owned()).collect();
            return InvalidData {
                path: rendered,
                problem: format!(
                    "not a field of message `{}` (its fields: {})",
                    message.full_name(),
                    names.join(", ")
                ),
            };
        }
    }
    let expected = match (&within, &kind) {
        (Some(f), _) if f.is_map() => "an object (a map)".to_owned(),
        (Some(_), _) => "an array".to_owned(),
        (None, Some(kind)) => expectation(kind),
        (None, None) => String::new(),
    };
    let problem = match (expected.is_empty(), at) {
        (false, Some(found)) => format!("expected {expected}, found {}: {error}", describe(found)),
        _ => error,
    };
    InvalidData {
        path: rendered,
        problem,
    }
}

fn push_name(path: &mut String, name: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(name);
}

fn message_of(kind: &Kind) -> Option<MessageDescriptor> {
    match kind {
        Kind::Message(m) => Some(m.clone()),
        _ => None,
    }
}

/// What the proto3 JSON mapping accepts for a value of `kind`.
fn expectation(kind: &Kind) -> String {
    let text = match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => "an int32 (a 32-bit integer)",
        Kind::Uint32 | Kind::Fixed32 => "a uint32 (a 32-bit unsigned integer)",
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            "an int64 (a 64-bit integer, as a number or a string)"
        }
        Kind::Uint64 | Kind::Fixed64 => {
            "a uint64 (a 64-bit unsigned integer, as a number or a string)"
        }
        Kind::Float | Kind::Double => "a number (or \"NaN\", \"Infinity\", \"-Infinity\")",
        Kind::Bool => "a boolean",
        Kind::String => "a string",
        Kind::Bytes => "bytes as a base64 string",
        Kind::Enum(e) => {
            let names: Vec<String> = e.values().take(12).map(|v| v.name().to_owned()).collect();
            let more = if e.values().len() > 12 { ", …" } else { "" };
            return format!(
                "a symbol of enum `{}` ({}{more}) or its number",
                e.full_name(),
                names.join(", ")
            );
        }
        Kind::Message(m) => {
            return match m.full_name() {
                "google.protobuf.Timestamp" => {
                    "an RFC 3339 timestamp such as \"2026-01-02T03:04:05Z\"".into()
                }
                "google.protobuf.Duration" => "a duration such as \"1.5s\"".into(),
                name => match m.get_field_by_name("value") {
                    Some(value)
                        if name.starts_with("google.protobuf.")
                            && name.ends_with("Value")
                            && m.fields().len() == 1 =>
                    {
                        expectation(&value.kind())
                    }
                    _ => format!("an object (message `{name}`)"),
                },
            }
        }
    };
    text.to_owned()
}
