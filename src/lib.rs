//! kafka-ws-bridge: a standalone daemon between Kafka and WebSocket clients, configured by one
//! YAML file.
//!
//! # Layout
//! Dependencies run one way: `main → app → {kafka, ws, ops} → {outbound, inbound} → {hub,
//! outbox, auth, metrics, protocol} → config`.
//!
//! - [`config`]: the YAML file as typed structs (their doc comments are the reference), loading
//!   with `${VAR}` expansion, and validation that reports every error with its line.
//! - [`cli`]: command-line flags (`run`, `check`); the pipeline itself lives in the YAML.
//! - [`app`]: builds every part from the validated plan, runs it, shuts it down in order.
//! - [`kafka`]: the only module importing rdkafka: client settings, the consumer thread, the
//!   producer, connection and lag status.
//! - [`outbound`]: Kafka → WebSocket: record → decoded once → frame encoded once → hub.
//! - [`inbound`]: WebSocket/HTTP → Kafka: publish checks, record key and headers, ack.
//! - [`hub`]: channels → subscribers, key and reply routing, fan-out of shared frames.
//! - [`outbox`]: each session's bounded send queue and slow-client policies.
//! - [`state`]: snapshots and bounded history per channel, for subscribe, resume and history.
//! - [`protocol`]: client frame decoding and server frame encoding (protocol v1).
//! - [`auth`]: identities, token verification, permission rules.
//! - [`ws`]: WebSocket handshake, the per-session task, client-listener routes.
//! - [`ops`]: `/metrics`, `/healthz`, `/readyz`, `/api/v1/status`.
//! - [`server`]: the accept loop shared by both listeners.
//! - [`metrics`]: every Prometheus metric, defined once.

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
pub mod protocol;
pub mod server;
pub mod sessions;
pub mod state;
pub mod ws;
