//! Tests of the registry module: each format's JSON mapping and errors, the registry's
//! answers as parsed, the fetch state machine against sockets that refuse or never answer,
//! and property tests (never a panic on any bytes; round trips; the Avro walker against
//! apache-avro's own reader).

mod avro;
mod client;
pub mod fixtures;
mod json_schema;
pub(crate) mod props;
mod proto_walk;
mod protobuf;
mod registry;
