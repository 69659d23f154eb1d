//! A schema from the registry, compiled once: what it decodes records with and what it
//! validates and encodes publishes with.

use thiserror::Error;

use super::avro::Avro;
use super::json_schema::JsonSchema;
use super::protobuf::Protobuf;
use super::wire::with_header;

/// The registry's `schemaType` (absent means Avro).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    Avro,
    Protobuf,
    JsonSchema,
}

impl SchemaKind {
    /// From the registry's `schemaType`; `None` for a type this bridge does not read.
    pub fn from_registry(schema_type: Option<&str>) -> Option<SchemaKind> {
        match schema_type {
            None | Some("AVRO") => Some(SchemaKind::Avro),
            Some("PROTOBUF") => Some(SchemaKind::Protobuf),
            Some("JSON") => Some(SchemaKind::JsonSchema),
            Some(_) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SchemaKind::Avro => "avro",
            SchemaKind::Protobuf => "protobuf",
            SchemaKind::JsonSchema => "json_schema",
        }
    }
}

/// Why a record's payload could not be turned into JSON.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("expected {expected} at byte {at} of the payload, found its end")]
    Truncated { expected: &'static str, at: usize },
    #[error("at byte {at} of the payload: expected {expected}, found {found}")]
    Invalid {
        at: usize,
        expected: &'static str,
        found: String,
    },
    #[error("expected the value to end with the payload, found {left} byte(s) after it")]
    Trailing { left: usize },
    #[error("expected nesting of at most {0} levels, found deeper")]
    TooDeep(usize),
    #[error("expected decoded JSON of at most {0} bytes, found more")]
    TooLarge(usize),
    #[error("protobuf message indexes: {0}")]
    MessageIndex(String),
    #[error("protobuf: {0}")]
    Protobuf(String),
    #[error("expected JSON, found {0}")]
    NotJson(String),
}

/// A publish that does not match its schema: where (a dotted field path, `[i]` for array
/// items; empty for the whole value) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", render(path, problem))]
pub struct InvalidData {
    pub path: String,
    pub problem: String,
}

/// A JSON value in a few words, for errors (long strings shortened).
pub fn describe(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) if s.chars().count() > 40 => {
            let short: String = s.chars().take(40).collect();
            format!("{:?}…", short)
        }
        serde_json::Value::Object(_) => "an object".into(),
        serde_json::Value::Array(_) => "an array".into(),
        other => other.to_string(),
    }
}

fn render(path: &str, problem: &str) -> String {
    match path {
        "" => problem.to_owned(),
        path => format!("`{path}`: {problem}"),
    }
}

/// A compiled schema of one of the three kinds.
pub struct Schema {
    format: Format,
    max_json_bytes: usize,
}

enum Format {
    Avro(Avro),
    Protobuf(Protobuf),
    JsonSchema(JsonSchema),
}

/// Another registry schema a schema imports: its import name and its text.
#[derive(Debug, Clone)]
pub struct Reference {
    pub name: String,
    pub text: String,
}

impl Schema {
    /// Compiles the text of a registry answer with its references; `max_json_bytes` bounds
    /// what [`Schema::decode`] writes.
    pub fn compile(
        kind: SchemaKind,
        text: &str,
        references: &[Reference],
        max_json_bytes: usize,
    ) -> Result<Schema, String> {
        let format = match kind {
            SchemaKind::Avro => {
                let texts: Vec<&str> = references.iter().map(|r| r.text.as_str()).collect();
                Format::Avro(Avro::compile(text, &texts)?)
            }
            SchemaKind::Protobuf => Format::Protobuf(Protobuf::compile(text, references)?),
            SchemaKind::JsonSchema => Format::JsonSchema(JsonSchema::compile(text, references)?),
        };
        Ok(Schema {
            format,
            max_json_bytes,
        })
    }

    #[cfg(test)]
    pub fn protobuf(&self) -> &Protobuf {
        match &self.format {
            Format::Protobuf(proto) => proto,
            _ => panic!("not a Protobuf schema"),
        }
    }

    pub fn kind(&self) -> SchemaKind {
        match self.format {
            Format::Avro(_) => SchemaKind::Avro,
            Format::Protobuf(_) => SchemaKind::Protobuf,
            Format::JsonSchema(_) => SchemaKind::JsonSchema,
        }
    }

    /// The record's value as JSON text. `payload` is what follows the 5-byte header (for
    /// Protobuf it starts with the message-index list). Nesting deeper than 64 levels, or JSON
    /// longer than the registry's `max_json_bytes`, is an error.
    pub fn decode(&self, payload: &[u8]) -> Result<String, DecodeError> {
        match &self.format {
            Format::Avro(avro) => avro.decode(payload, self.max_json_bytes),
            Format::Protobuf(proto) => proto.decode(payload, self.max_json_bytes),
            Format::JsonSchema(json) => json.decode(payload, self.max_json_bytes),
        }
    }

    /// A publish's JSON → the record value in the wire format for schema `id` (for Protobuf,
    /// as the file's first message; see [`Schema::encode_as`]).
    pub fn encode(&self, id: u32, value: &serde_json::Value) -> Result<Vec<u8>, InvalidData> {
        self.encode_as(id, None, value)
    }

    /// [`Schema::encode`] as the Protobuf message `message` (its full name, or its name when
    /// that is unique in the file); `None` is the file's first message. Other kinds ignore it.
    pub fn encode_as(
        &self,
        id: u32,
        message: Option<&str>,
        value: &serde_json::Value,
    ) -> Result<Vec<u8>, InvalidData> {
        let mut out = with_header(id, 64);
        match &self.format {
            Format::Avro(avro) => avro.encode(value, &mut out)?,
            Format::Protobuf(proto) => proto.encode(message, value, &mut out)?,
            Format::JsonSchema(json) => json.encode(value, &mut out)?,
        }
        Ok(out)
    }
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}
