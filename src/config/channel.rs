//! The `channels` section (Kafka → WebSocket) and the permission types it shares with
//! `inbound`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::transform::{Transform, WhereRule};

/// One Kafka topic exposed to clients as a channel.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Channel name clients subscribe to; unique among `channels`.
    pub name: String,
    /// Kafka topic read for this channel. Several channels may read one topic.
    pub topic: String,
    /// How record values become the `data` of a `message` frame.
    #[serde(default)]
    pub format: Format,
    /// Where a record's routing key comes from; required for `deliver: by_key`.
    #[serde(default)]
    pub key: Option<KeySource>,
    /// Who receives each record.
    #[serde(default)]
    pub deliver: Deliver,
    /// Who may subscribe, and to which keys.
    #[serde(default)]
    pub subscribe: SubscribeRules,
    /// Keep the last value per key and send it with `subscribed`.
    #[serde(default)]
    pub snapshot: bool,
    /// Records kept in memory per key (`by_key`) or per channel (`broadcast`) to serve `resume`
    /// and `history` requests; `0` keeps none.
    #[serde(default)]
    pub history: usize,
    /// What happens to a session whose send queue is full: `disconnect` closes it with 4001;
    /// `drop_oldest` drops the channel's oldest queued message; `latest_per_key` drops the
    /// queued messages of the new record's key, so a key's last frame is always its newest.
    #[serde(default)]
    pub on_slow_client: SlowClientPolicy,
    /// Most keys whose snapshot and history are kept; beyond it the key updated least recently
    /// is dropped (a later resume for it is served from Kafka).
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// Most bytes of records kept for snapshots and history; beyond it the key updated least
    /// recently is dropped (on broadcast channels: the oldest record).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Steps applied in order to each record, once, before fan-out, snapshots and history:
    /// `filter`, `drop`, `mask`, `extract`, `rename`, `headers_into` (docs/configuration.md,
    /// "Transforms and filters").
    #[serde(default)]
    pub transforms: Vec<Transform>,
    /// Conflation: per subscription and key, at most this many messages per second; between
    /// two sends only the newest record of a key is kept, and the message sent carries
    /// `conflated: <records skipped>`. Replays (resume, history) are never conflated. A
    /// subscribe may ask for a lower rate. Unset: every record is sent.
    #[serde(default)]
    pub max_rate: Option<u32>,
}

/// Decoding of record values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The value is JSON and is sent as-is; a value that is not valid JSON is counted and skipped.
    #[default]
    Json,
    /// The value is UTF-8 text, sent as a JSON string.
    Text,
    /// The value is arbitrary bytes, sent as a base64 string.
    Base64,
    /// Avro in Confluent's wire format, decoded with its writer schema from
    /// `schema_registry` (records → objects, see docs/configuration.md "Schema Registry").
    Avro,
    /// Protobuf in Confluent's wire format, decoded with its schema from `schema_registry`
    /// to the proto3 canonical JSON mapping.
    Protobuf,
    /// JSON in Confluent's wire format (JSON Schema serializers): the JSON after the header.
    JsonSchema,
}

impl Format {
    /// The registry formats: values carry a schema id and are decoded with `schema_registry`.
    pub fn uses_registry(self) -> bool {
        matches!(self, Format::Avro | Format::Protobuf | Format::JsonSchema)
    }

    /// Whether `data` is structured JSON that pointers, transforms and filters can read:
    /// `json` and the registry formats (`text` and `base64` are strings).
    pub fn is_structured(self) -> bool {
        !matches!(self, Format::Text | Format::Base64)
    }
}

/// Decoding of record keys (`key: {from: record_key, format: …}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyFormat {
    /// The key is UTF-8 text and is the routing key as it is.
    #[default]
    Text,
    /// Avro in Confluent's wire format; the decoded key is the routing key when it is a string
    /// or a number, else its compact JSON text.
    Avro,
    /// Protobuf in Confluent's wire format; routing key as for `avro`.
    Protobuf,
    /// JSON in Confluent's wire format; routing key as for `avro`.
    JsonSchema,
}

/// Where a record's routing key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeySource {
    /// The Kafka record key: `{from: record_key}` (UTF-8 text), or with
    /// `format: avro | protobuf | json_schema` decoded through `schema_registry`.
    RecordKey {
        /// How the key bytes are read; `text` unless the topic's keys are in a registry format.
        #[serde(default)]
        format: KeyFormat,
    },
    /// A record header.
    Header {
        /// Header name.
        name: String,
    },
    /// A JSON pointer into the record value (json channels only); strings and numbers qualify.
    Value {
        /// JSON pointer such as `/customerId`.
        pointer: String,
    },
}

/// Delivery rule of a channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Deliver {
    /// Every subscriber of the channel gets every record.
    #[default]
    Broadcast,
    /// Only subscribers of the record's key get it.
    ByKey,
    /// Each record goes to the session named in its `bridge-session` header, else to the
    /// sessions of the user in `bridge-user`.
    Reply,
}

/// Subscription permissions of a channel.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRules {
    /// Who may subscribe: `anonymous` (anyone), `authenticated` (default), or `{roles: [...]}`.
    #[serde(default)]
    pub allow: Allow,
    /// On `by_key` channels, which keys a user may subscribe to: `own` (default: only the
    /// user's id), `any`, or `{claim: name}` (the key must be one of that token claim's values).
    #[serde(default)]
    pub keys: KeysRule,
    /// Users with any of these roles may subscribe to any key.
    #[serde(default)]
    pub any_key_roles: Vec<String>,
    /// Per-record entitlement: each record reaches only the sessions whose token claim equals
    /// a value of the record, e.g. `{pointer: /tenantId, equals_claim: tenant}`. A record
    /// without that value reaches nobody (counted as `reason="not_entitled"`).
    #[serde(default, rename = "where")]
    pub where_: Option<WhereRule>,
    /// Clients may add a `filter` (a predicate, as in `transforms`) to a subscribe; it is
    /// evaluated per subscription on the transformed record.
    #[serde(default)]
    pub filters: bool,
}

/// Who may do something.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Allow {
    /// `anonymous` or `authenticated`.
    Level(AllowLevel),
    /// Only users holding at least one of these roles.
    Roles {
        /// Role names, matched against the token's roles claim.
        roles: Vec<String>,
    },
}

impl Default for Allow {
    fn default() -> Self {
        Allow::Level(AllowLevel::Authenticated)
    }
}

/// Coarse permission levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllowLevel {
    /// Anyone, including anonymous sessions.
    Anonymous,
    /// Any session with a verified token.
    Authenticated,
}

/// Which keys a user may subscribe to (on a `by_key` channel) or publish records with (on an
/// inbound channel).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum KeysRule {
    /// `own` or `any`.
    Level(KeysLevel),
    /// Keys listed in a token claim.
    Claim {
        /// Claim name; its value is a list of strings (or one string).
        claim: String,
    },
}

impl Default for KeysRule {
    fn default() -> Self {
        KeysRule::Level(KeysLevel::Own)
    }
}

/// Simple key rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeysLevel {
    /// Only the key equal to the user's id.
    Own,
    /// Any key.
    Any,
}

/// Policy for a session whose send queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlowClientPolicy {
    /// Close the session with code 4001; the client reconnects and resumes.
    #[default]
    Disconnect,
    /// Drop the oldest queued message of this channel to make room (counted).
    DropOldest,
    /// Keep only the newest queued message per key of this channel (counted).
    LatestPerKey,
}

fn default_max_keys() -> usize {
    100_000
}
fn default_max_bytes() -> usize {
    64 * 1024 * 1024
}
