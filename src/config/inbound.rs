//! The `inbound` section (WebSocket → Kafka).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Allow, KeysLevel, KeysRule};

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
    /// Which record keys a session may write, checked on the key `key` computed, before
    /// producing: `any` (default), `own` (only its user id), or `{claim: name}` (one of the
    /// values of that token claim, a list of strings or one string). Another key is refused
    /// with `forbidden`. Needs a record key (`key: user` or `{pointer: ...}`).
    #[serde(default = "any_key")]
    pub keys: KeysRule,
    /// Roles that may publish records with any key, whatever `keys` says.
    #[serde(default)]
    pub any_key_roles: Vec<String>,
    /// Facts of the publisher's token written as record headers beside `bridge-user`:
    /// `roles` adds `bridge-roles` (the roles, comma-separated); any other name adds that claim
    /// as `bridge-claim-<name>` (a string as it is, any other value as JSON; nothing when the
    /// token lacks it). Clients may not set `bridge-roles` or `bridge-claim-*` headers.
    #[serde(default)]
    pub identity_headers: Vec<String>,
    /// Optional JSON Schema file that every published `data` must satisfy (error `invalid`).
    #[serde(default)]
    pub schema_file: Option<String>,
    /// How a published `data` is written: `json` (default: as sent), or `avro`, `protobuf`,
    /// `json_schema` — validated against `subject`'s schema in `schema_registry` and written in
    /// Confluent's wire format, so Confluent's deserializers read it.
    #[serde(default)]
    pub format: InboundFormat,
    /// Registry subject of the schema publishes are written with (registry formats only);
    /// default `<topic>-value` (TopicNameStrategy).
    #[serde(default)]
    pub subject: Option<String>,
    /// Which version of `subject`: `latest` (default; asked again every
    /// `schema_registry.latest_refresh_s`) or a version number.
    #[serde(default)]
    pub schema_version: super::SchemaVersion,
    /// Protobuf only: the fully qualified name of the message type written (e.g.
    /// `shop.Order`); default the first message of the schema.
    #[serde(default)]
    pub message: Option<String>,
}

/// Inbound channels check no key unless told to (v1 behaviour).
fn any_key() -> KeysRule {
    KeysRule::Level(KeysLevel::Any)
}

/// How published `data` becomes a record value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InboundFormat {
    /// The JSON as sent.
    #[default]
    Json,
    /// Avro in Confluent's wire format, with the subject's schema.
    Avro,
    /// Protobuf in Confluent's wire format, with the subject's schema.
    Protobuf,
    /// JSON in Confluent's wire format, validated against the subject's JSON Schema.
    JsonSchema,
}

impl InboundFormat {
    /// The registry formats.
    pub fn uses_registry(self) -> bool {
        !matches!(self, InboundFormat::Json)
    }
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
