//! kafka-ws-bridge: a standalone daemon between Kafka and WebSocket clients, configured by one
//! YAML file.
//!
//! # Layout
//! Dependencies run one way, and `tests/architecture.rs` fails on an import that goes against
//! them (a module may use its own layer or any below, without loops):
//!
//! `main → app → {kafka, ws, ops} → {outbound, inbound} → {hub, state, outbox, auth, protocol,
//! transform, metrics, catalogue, sessions, server, registry} → {config, cli, predicate}`
//!
//! - [`app`]: builds every part from the validated plan, runs it under a supervisor, shuts it
//!   down in order (also when a part fails: then the process exits 1); the checks `check` runs.
//! - [`kafka`]: the only module importing rdkafka. It implements what the layers below ask
//!   for: [`outbound::RecordSink`] is fed by its consumer thread, [`outbound::RangeRead`] by
//!   its replay reader, [`inbound::RecordWriter`] by its producer, and the session registry's
//!   topic feeds [`sessions::Sessions`]. Connection and lag status.
//! - [`ws`]: the client listener: WebSocket handshake, one task per session (`session`,
//!   `requests`, `wire`), STOMP over WebSocket (`stomp`), Server-Sent Events (`sse`),
//!   permessage-deflate (`deflate` negotiates, `inflate` reads compressed client messages under
//!   tungstenite), the publish API and the demo page.
//! - [`ops`]: the operational listener: `/metrics`, `/healthz`, `/readyz`, `/api/v1/status`,
//!   pause and resume.
//! - [`outbound`]: Kafka → clients: record → decoded once → frame encoded once → hub; the
//!   [`outbound::Replayer`] the client listener uses to read what memory no longer holds.
//! - [`inbound`]: clients (WebSocket, HTTP) → Kafka: publish checks, record key and headers,
//!   ack; one [`protocol::Refusal`] per failure, mapped to an `error` frame or an HTTP status.
//! - [`catalogue`]: every channel resolved once from the plan (topic, format, routing,
//!   permissions, state bounds, metric handles), read by all of the above.
//! - [`hub`]: channels → subscribers, key and reply routing, fan-out of shared frames, and the
//!   hand-over of replays (`hub::replay`).
//! - [`outbox`]: each session's bounded send queue, slow-client policies, the close codes.
//! - [`state`]: snapshots and bounded history per channel, for subscribe, resume and history.
//! - [`sessions`]: the registry of open sessions (shutdown, `max_sessions_per_user` per user
//!   and group, across instances with `auth.session_registry`: the records the Kafka side
//!   writes and reads, [`sessions::RegistryLog`]).
//! - [`registry`]: Schema Registry formats: records in Confluent's wire format (Avro,
//!   Protobuf, JSON Schema) decoded to JSON once, publishes validated and encoded; schemas
//!   fetched by id from the registry, compiled once and cached.
//! - [`protocol`]: client frame decoding, server frame encoding, the bridge's header names.
//! - [`transform`]: channel `transforms` compiled once and applied once per record before
//!   fan-out (filter, drop, mask, extract, rename, headers_into).
//! - [`predicate`]: the predicate language of `filter` steps and client filters: parsed with
//!   the path of each problem and bounds on size and depth, evaluated per record.
//! - [`auth`]: identities, token verification, permission rules.
//! - [`metrics`]: every Prometheus metric, defined once; label values are closed enums.
//! - [`server`]: the accept loop shared by both listeners, and shared HTTP helpers.
//! - [`config`]: the YAML file as typed structs (their doc comments are the reference), loading
//!   with `${VAR}` expansion, and validation that reports every error with its line.
//! - [`cli`]: command-line flags (`run`, `check`, `create-topics`).

pub mod app;
pub mod auth;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod hub;
pub mod inbound;
pub mod kafka;
pub mod metrics;
pub mod ops;
pub mod outbound;
pub mod outbox;
pub mod predicate;
pub mod protocol;
pub mod registry;
pub mod server;
pub mod session;
pub mod sessions;
pub mod state;
pub mod transform;
pub mod ws;
