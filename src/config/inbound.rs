//! The `inbound` section (WebSocket → Kafka).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Allow;

/// One channel clients may publish on.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// Channel name clients publish on; unique among `inbound`.
    pub channel: String,
    /// Kafka topic the published records are produced to.
    pub topic: String,
    /// Record key: `user` (the authenticated user id), `none`, or `{pointer: /path}` into `data`.
    #[serde(default)]
    pub key: InboundKey,
    /// Who may publish: `anonymous`, `authenticated` (default), or `{roles: [...]}`.
    #[serde(default)]
    pub allow: Allow,
    /// Optional JSON Schema file that every published `data` must satisfy (error `invalid`).
    #[serde(default)]
    pub schema_file: Option<String>,
}

/// Record key of inbound publishes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum InboundKey {
    /// `user` or `none`.
    Level(InboundKeyLevel),
    /// A JSON pointer into the published `data`.
    Pointer {
        /// JSON pointer such as `/accountId`.
        pointer: String,
    },
}

impl Default for InboundKey {
    fn default() -> Self {
        InboundKey::Level(InboundKeyLevel::None)
    }
}

/// Simple inbound key rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InboundKeyLevel {
    /// The authenticated user id.
    User,
    /// No key: records spread over partitions.
    None,
}
