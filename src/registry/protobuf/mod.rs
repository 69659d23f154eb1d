//! Protobuf: the registry's schema (`.proto` text, or a base64 `FileDescriptorProto` as some
//! serializers register it) compiled with protox, its imports served from the schema's
//! references and protox's copies of Google's well-known types. Records are written in the
//! proto3 JSON mapping by `walk`, straight from the wire; what it does not cover goes through
//! prost-reflect's dynamic messages, whose output `walk` matches (see `registry::bench`: the
//! dynamic path costs several times more).

mod errors;
mod fields;
mod table;
mod time;
mod walk;

use std::collections::HashMap;
use std::io::Write;

use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, FileDescriptor, MessageDescriptor, SerializeOptions,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use super::json_out::MAX_DEPTH;
use super::schema::Reference;
use super::wire::{read_zigzag, write_zigzag};
use super::{DecodeError, InvalidData};
use table::Table;
use walk::Stop;

/// The file name the registry's main schema is compiled under when it has none of its own.
const MAIN: &str = "registry-schema.proto";

/// A compiled Protobuf schema: the main file, its first message (for the common message
/// index `[0]`) and the walker's tables.
pub struct Protobuf {
    file: FileDescriptor,
    first: MessageDescriptor,
    table: Table,
}

/// The proto3 JSON mapping (64-bit integers as strings, enum names, bytes in base64,
/// well-known types as the mapping says), with fields at their default value included: a
/// browser sees every field of the message, `0` and `""` as well.
const JSON: SerializeOptions = SerializeOptions::new().skip_default_fields(false);

impl Protobuf {
    pub fn compile(text: &str, references: &[Reference]) -> Result<Protobuf, String> {
        let main = file(MAIN, text)?;
        let main_name = main.name().to_owned();
        let mut files = HashMap::new();
        for reference in references {
            files.insert(
                reference.name.clone(),
                file(&reference.name, &reference.text)?,
            );
        }
        files.insert(main_name.clone(), main);
        let mut resolver = ChainFileResolver::new();
        resolver.add(Files(files));
        resolver.add(GoogleFileResolver::new());
        resolver.add(Confluent);
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.open_file(&main_name).map_err(|e| e.to_string())?;
        let pool = compiler.descriptor_pool();
        let file = pool
            .get_file_by_name(&main_name)
            .ok_or_else(|| format!("{main_name}: not compiled"))?;
        let first = file
            .messages()
            .next()
            .ok_or_else(|| "expected a schema with at least one message, found none".to_owned())?;
        let table = Table::new(&file);
        Ok(Protobuf { file, first, table })
    }

    pub fn decode(&self, payload: &[u8], max_bytes: usize) -> Result<String, DecodeError> {
        let (index, body) = self.message_at(payload)?;
        let message = &self.table.messages[index];
        if !message.slow {
            match walk::decode(&self.table, index, body, max_bytes) {
                Ok(text) => return Ok(text),
                Err(Stop::Failed(e)) => return Err(e),
                Err(Stop::Fallback | Stop::Unordered) => {}
            }
        }
        self.decode_dynamic(message.descriptor.clone(), body, max_bytes)
    }

    #[cfg(test)]
    pub fn descriptor(&self, index: usize) -> MessageDescriptor {
        self.table.messages[index].descriptor.clone()
    }

    /// The walker's reading (`None` when it leaves the record to prost-reflect) and
    /// prost-reflect's, for tests that hold the one to the other.
    #[cfg(test)]
    pub fn both_readings(
        &self,
        payload: &[u8],
        max_bytes: usize,
    ) -> (
        Option<Result<String, DecodeError>>,
        Result<String, DecodeError>,
    ) {
        let (index, body) = match self.message_at(payload) {
            Ok(found) => found,
            Err(e) => return (Some(Err(e.clone())), Err(e)),
        };
        let message = &self.table.messages[index];
        let walked = match message.slow {
            true => None,
            false => match walk::decode(&self.table, index, body, max_bytes) {
                Ok(text) => Some(Ok(text)),
                Err(Stop::Failed(e)) => Some(Err(e)),
                Err(Stop::Fallback | Stop::Unordered) => None,
            },
        };
        let dynamic = self.decode_dynamic(message.descriptor.clone(), body, max_bytes);
        (walked, dynamic)
    }

    /// Through prost-reflect's dynamic message: what the walker leaves to it.
    pub fn decode_dynamic(
        &self,
        message: MessageDescriptor,
        body: &[u8],
        max_bytes: usize,
    ) -> Result<String, DecodeError> {
        let message = DynamicMessage::decode(message, body)
            .map_err(|e| DecodeError::Protobuf(e.to_string()))?;
        let mut out = Bounded {
            bytes: Vec::with_capacity((body.len() * 2 + 16).min(max_bytes)),
            max: max_bytes,
            overflowed: false,
        };
        message
            .serialize_with_options(&mut serde_json::Serializer::new(&mut out), &JSON)
            .map_err(|e| match out.overflowed {
                true => DecodeError::TooLarge(max_bytes),
                false => DecodeError::Protobuf(e.to_string()),
            })?;
        String::from_utf8(out.bytes).map_err(|e| DecodeError::Protobuf(e.to_string()))
    }

    /// Reads the message-index list: `0` alone is the first message; else a count, then
    /// each index (into the file's messages, then into the nested messages of the last).
    /// Answers the message's index in the walker's table and the body after the list.
    pub fn message_at<'p>(&self, payload: &'p [u8]) -> Result<(usize, &'p [u8]), DecodeError> {
        let bad = |problem: String| DecodeError::MessageIndex(problem);
        let (count, mut at) =
            read_zigzag(payload).ok_or_else(|| bad("expected a count, found the end".into()))?;
        if count == 0 {
            return Ok((self.table.top[0], &payload[at..]));
        }
        if count < 0 || count as usize > MAX_DEPTH || count as usize > payload.len() - at {
            return Err(bad(format!(
                "expected a count of 1 to {MAX_DEPTH} within the payload, found {count}"
            )));
        }
        let mut message: Option<usize> = None;
        for _ in 0..count {
            let (index, n) = read_zigzag(&payload[at..])
                .ok_or_else(|| bad("expected an index, found the end".into()))?;
            at += n;
            let within = match message {
                None => &self.table.top,
                Some(m) => &self.table.messages[m].nested,
            };
            let found = usize::try_from(index).ok().and_then(|i| within.get(i));
            message = Some(*found.ok_or_else(|| {
                let within = match message {
                    None => format!("the {} message(s) of the file", within.len()),
                    Some(m) => format!(
                        "the {} nested in {}",
                        within.len(),
                        self.table.messages[m].descriptor.full_name()
                    ),
                };
                bad(format!("index {index} is not one of {within}"))
            })?);
        }
        let message = message.expect("count is at least 1");
        Ok((message, &payload[at..]))
    }

    /// Appends the message indexes and the message made from `value`.
    pub fn encode(
        &self,
        message: Option<&str>,
        value: &serde_json::Value,
        out: &mut Vec<u8>,
    ) -> Result<(), InvalidData> {
        let descriptor = match message {
            None => self.first.clone(),
            Some(name) => self.find(name)?,
        };
        let mut track = serde_path_to_error::Track::new();
        let options = DeserializeOptions::new();
        let decoded = DynamicMessage::deserialize_with_options(
            descriptor.clone(),
            serde_path_to_error::Deserializer::new(value, &mut track),
            &options,
        );
        let message = decoded
            .map_err(|e| errors::invalid(&descriptor, value, &track.path(), e.to_string()))?;
        let indexes = self.indexes(&descriptor);
        if indexes == [0] {
            out.push(0);
        } else {
            write_zigzag(out, indexes.len() as i64);
            for i in indexes {
                write_zigzag(out, i as i64);
            }
        }
        message.encode(out).map_err(|e| InvalidData {
            path: String::new(),
            problem: e.to_string(),
        })
    }

    /// A message of the main file by full name, or by name when only one has it.
    fn find(&self, name: &str) -> Result<MessageDescriptor, InvalidData> {
        let mut all = Vec::new();
        let mut stack: Vec<MessageDescriptor> = self.file.messages().collect();
        while let Some(m) = stack.pop() {
            stack.extend(nested(&m));
            all.push(m);
        }
        let by_full = all.iter().find(|m| m.full_name() == name);
        let by_name: Vec<_> = all.iter().filter(|m| m.name() == name).collect();
        match (by_full, by_name.as_slice()) {
            (Some(m), _) | (None, &[m]) => Ok(m.clone()),
            _ => Err(InvalidData {
                path: String::new(),
                problem: format!(
                    "expected a message of the schema, found {name:?} (messages: {})",
                    all.iter()
                        .map(|m| m.full_name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    /// Where `message` is: its index in the file, then in each enclosing message.
    fn indexes(&self, message: &MessageDescriptor) -> Vec<usize> {
        let mut path = Vec::new();
        let mut current = message.clone();
        while let Some(parent) = current.parent_message() {
            path.push(nested(&parent).position(|m| m == current).unwrap_or(0));
            current = parent;
        }
        path.push(self.file.messages().position(|m| m == current).unwrap_or(0));
        path.reverse();
        path
    }
}

/// The messages declared inside `message`, as message indexes count them: without the
/// entry types the compiler makes for map fields (Confluent's Java serializers count the
/// messages of the `.proto` source, where those do not appear).
fn nested(message: &MessageDescriptor) -> impl Iterator<Item = MessageDescriptor> + '_ {
    message.child_messages().filter(|m| !m.is_map_entry())
}

/// A schema text as a file: a base64 `FileDescriptorProto` (keeping its own name), else
/// `.proto` source.
fn file(name: &str, text: &str) -> Result<File, String> {
    let text = text.trim();
    let base64_only = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if base64_only {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("{name}: expected a base64 FileDescriptorProto: {e}"))?;
        let mut descriptor = prost_types::FileDescriptorProto::decode(bytes.as_slice())
            .map_err(|e| format!("{name}: expected a base64 FileDescriptorProto: {e}"))?;
        if descriptor.name().is_empty() {
            descriptor.name = Some(name.to_owned());
        }
        return Ok(File::from_file_descriptor_proto(descriptor));
    }
    File::from_source(name, text).map_err(|e| e.to_string())
}

/// The schema's own files and its references, by import name.
struct Files(HashMap<String, File>);

impl FileResolver for Files {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| protox::Error::file_not_found(name))
    }
}

/// Confluent's own imports, which its serializers know without registering them.
struct Confluent;

impl FileResolver for Confluent {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        let source = match name {
            "confluent/meta.proto" => CONFLUENT_META,
            "confluent/type/decimal.proto" => CONFLUENT_DECIMAL,
            _ => return Err(protox::Error::file_not_found(name)),
        };
        File::from_source(name, source)
    }
}

const CONFLUENT_META: &str = r#"syntax = "proto3";
package confluent;
import "google/protobuf/descriptor.proto";
message Meta {
  string doc = 1;
  map<string, string> params = 2;
  repeated string tags = 3;
}
extend google.protobuf.FileOptions { Meta file_meta = 1088; }
extend google.protobuf.MessageOptions { Meta message_meta = 1088; }
extend google.protobuf.FieldOptions { Meta field_meta = 1088; }
extend google.protobuf.EnumOptions { Meta enum_meta = 1088; }
extend google.protobuf.EnumValueOptions { Meta enum_value_meta = 1088; }
"#;

const CONFLUENT_DECIMAL: &str = r#"syntax = "proto3";
package confluent.type;
message Decimal {
  bytes value = 1;
  uint32 precision = 2;
  int32 scale = 3;
}
"#;

/// A writer that refuses to grow past `max` bytes.
struct Bounded {
    bytes: Vec<u8>,
    max: usize,
    overflowed: bool,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.max {
            self.overflowed = true;
            return Err(std::io::Error::other("too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
