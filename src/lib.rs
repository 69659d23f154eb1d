//! kafka-ws-bridge: a standalone daemon between Kafka and WebSocket clients, configured by one
//! YAML file.
//!
//! # Layout
//! Dependencies run one way: each line below is one floor of the import graph, from the top;
//! a module may use any layer below its own, never one above, and modules of one layer do not
//! use each other. `tests/architecture.rs` fails on an import that goes against them, and on
//! this list drifting from its own.
//!
//! main
//! app
//! {ws, ops}
//! {session, kafka}
//! {outbound, sessions}
//! {hub, inbound}
//! {catalogue, outbox, registry}
//! {metrics, state}
//! {auth, protocol, transform}
//! config
//! {cli, predicate, server}
//!
//! - [`app`]: builds every part from the validated plan, runs it under a supervisor, shuts it
//!   down in order (also when a part fails: then the process exits 1); the checks `check` runs.
//! - [`ws`]: the client listener and its transports: the WebSocket handshake, the JSON
//!   protocol (`json`) and STOMP (`stomp`) over a WebSocket (`socket`, `wire`), Server-Sent
//!   Events (`sse`), permessage-deflate (`deflate`, `inflate`), the publish API and the demo
//!   page. A transport decodes client frames into the session's requests and encodes the
//!   session's queue in its dialect.
//! - [`ops`]: the operational listener: `/metrics`, `/healthz`, `/readyz`, `/api/v1/status`,
//!   pause and resume.
//! - [`session`]: one client session whatever its transport: subscriptions (permissions,
//!   replay and resume, filters, rates), publishes, token refresh; one file per request kind.
//! - [`kafka`]: the only module importing rdkafka. It implements what the layers below ask
//!   for: [`outbound::RecordSink`] is fed by its consumer thread, [`outbound::RangeRead`] by
//!   its replay reader, [`inbound::RecordWriter`] by its producer, and the session registry's
//!   topic feeds [`sessions::Sessions`]. Connection and lag status.
//! - [`outbound`]: Kafka → clients: record → decoded once → one shared
//!   [`protocol::Delivery`] per channel → hub; the [`outbound::Replayer`] sessions use to read
//!   what memory no longer holds.
//! - [`sessions`]: the registry of open sessions (shutdown, `max_sessions_per_user` per user
//!   and group, across instances with `auth.session_registry`: the records the Kafka side
//!   writes and reads, [`sessions::RegistryLog`]).
//! - [`hub`]: channels → subscribers, key and reply routing, fan-out of shared records, and the
//!   hand-over of replays (`hub::replay`).
//! - [`inbound`]: clients (WebSocket, HTTP) → Kafka: publish checks, record key and headers,
//!   ack; one [`protocol::Refusal`] per failure, mapped to an `error` answer or an HTTP status.
//! - [`catalogue`]: every channel resolved once from the plan (topic, format, routing,
//!   permissions, state bounds, metric handles), read by all of the above.
//! - [`outbox`]: each session's bounded send queue, slow-client policies, the close codes.
//! - [`registry`]: Schema Registry formats: records in Confluent's wire format (Avro,
//!   Protobuf, JSON Schema) decoded to JSON once, publishes validated and encoded; schemas
//!   fetched by id from the registry, compiled once and cached.
//! - [`metrics`]: every Prometheus metric, defined once; label values are closed enums.
//! - [`state`]: snapshots and bounded history per channel, for subscribe, resume and history.
//! - [`auth`]: identities, token verification, permission rules.
//! - [`protocol`]: what a session sends, typed (a shared [`protocol::Delivery`] per record, an
//!   [`protocol::Answer`] per reply), the JSON protocol's frames (client frames decoded, server
//!   frames encoded), the bridge's header names.
//! - [`transform`]: channel `transforms` compiled once and applied once per record before
//!   fan-out (filter, drop, mask, extract, rename, headers_into).
//! - [`config`]: the YAML file as typed structs (their doc comments are the reference), loading
//!   with `${VAR}` expansion, and validation that reports every error with its line.
//! - [`cli`]: command-line flags (`run`, `check`, `create-topics`).
//! - [`predicate`]: the predicate language of `filter` steps and client filters: parsed with
//!   the path of each problem and bounds on size and depth, evaluated per record.
//! - [`server`]: the accept loop shared by both listeners, and shared HTTP helpers.

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
