//! Tests of the registry module: each format's JSON mapping and errors, and property tests
//! (never a panic on any bytes; round trips; the Avro walker against apache-avro's own
//! reader, the Protobuf walker against prost-reflect).

mod avro;
pub mod fixtures;
mod json_schema;
pub mod props;
mod proto_walk;
mod protobuf;
