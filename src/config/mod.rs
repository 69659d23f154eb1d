//! The shape of `bridge.yaml`. These structs *are* the configuration reference: every field's doc
//! comment is its documentation, and the JSON schema derived from them drives validation (every
//! error at once, with line numbers) and the docs check.
//!
//! Layout: one file per section of the YAML (`kafka`, `server` + `metrics`, `auth`, `channel`,
//! `inbound`); `source.rs` reads the text (variables, YAML tree with lines), `schema.rs` checks
//! its structure, `rules.rs` its meaning, `load.rs` runs the pipeline into a [`Plan`]
//! (`plan.rs`), reporting [`Diagnostic`]s (`diagnostic.rs`); `reference.rs` lists every key for
//! docs/configuration.md.

mod auth;
mod channel;
mod diagnostic;
mod inbound;
mod kafka;
mod load;
mod partial;
mod plan;
mod reference;
mod registry;
mod rules;
mod rules_jwt;
mod schema;
mod server;
mod source;
mod transform;

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use auth::{AuthConfig, AuthMode, JwtConfig, SessionRegistryConfig};
pub use channel::{
    Allow, AllowLevel, ChannelConfig, Deliver, Format, KeyFormat, KeySource, KeysLevel, KeysRule,
    SlowClientPolicy, SubscribeRules,
};
pub use diagnostic::{Diagnostic, Severity};
pub use inbound::{InboundConfig, InboundFormat, InboundKey, InboundKeyLevel};
pub use kafka::{KafkaConfig, OffsetReset, ScalarValue};
pub use load::{load, load_str};
pub use plan::Plan;
pub use reference::{documented_keys, KeyDoc};
pub use registry::{BasicAuth, LatestVersion, SchemaRegistryConfig, SchemaVersion};
pub(crate) use rules_jwt::read_ca_certificates;
pub use rules_jwt::CaFileError;
pub use server::{
    CompressionConfig, MetricsConfig, PublishRate, ServerConfig, StompConfig, TlsConfig,
};
pub use transform::{HeadersInto, PredicateSpec, Transform, WhereRule};

/// The whole `bridge.yaml` file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name of this instance, unique among the instances sharing a Kafka cluster. The consumer
    /// group is `<kafka.group_id_prefix>.<instance_id>`, so it must be stable across restarts.
    /// Typically `${HOSTNAME}` (a pod name).
    pub instance_id: String,
    /// How to reach Kafka.
    pub kafka: KafkaConfig,
    /// The WebSocket (and HTTP) listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// The metrics and health listener.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Who the clients are. Must be stated explicitly (`mode: jwt` or `mode: none`).
    pub auth: AuthConfig,
    /// Where channels and inbound channels of `format: avro | protobuf | json_schema` find
    /// their schemas.
    #[serde(default)]
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// Kafka → WebSocket: each entry makes a topic readable by clients as a named channel.
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
    /// WebSocket → Kafka: each entry lets clients publish on a channel name into a topic.
    #[serde(default)]
    pub inbound: Vec<InboundConfig>,
}

/// A string that never appears in logs or debug output.
#[derive(Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl Secret {
    /// The secret value; call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
