//! Schema Registry formats: records in Confluent's wire format (Avro, Protobuf, JSON Schema)
//! decoded to JSON text once per record, and publishes validated and encoded back into it.
//!
//! Limits: a schema's references serve Protobuf imports, Avro named types and JSON Schema
//! `$ref`s; Confluent's own Protobuf imports (`confluent/meta.proto`,
//! `confluent/type/decimal.proto`) and Google's well-known types are built in. Decoded values
//! nest at most 64 levels (Protobuf: prost's 100) and are at most the schema's
//! `max_json_bytes` long. Float NaN and infinities become the strings `"NaN"`, `"Infinity"`,
//! `"-Infinity"` (as in the proto3 mapping) and are read back from them.

mod avro;
mod json_out;
mod json_schema;
mod protobuf;
mod schema;
#[cfg(test)]
mod tests;
mod wire;

pub use schema::{DecodeError, InvalidData, Reference, Schema, SchemaKind};
pub use wire::{split_wire, WireError};
