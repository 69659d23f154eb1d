//! The shape of `bridge.yaml`. These structs *are* the configuration reference: every field's doc
//! comment is its documentation, and the JSON schema derived from them drives validation (every
//! error at once, with line numbers) and the docs check. Loading lives in `source.rs`, checking in
//! `validate.rs`.

mod schema;
mod source;
mod validate;

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use schema::{config_schema, documented_keys, KeyDoc};
pub use source::{Node, NodeKind};
pub use validate::{load, load_str, Diagnostic, Plan, Severity};

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
    /// Kafka → WebSocket: each entry makes a topic readable by clients as a named channel.
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
    /// WebSocket → Kafka: each entry lets clients publish on a channel name into a topic.
    #[serde(default)]
    pub inbound: Vec<InboundConfig>,
}

/// Kafka client settings shared by the consumer and the producer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of brokers to bootstrap from.
    pub bootstrap_servers: String,
    /// Prefix of this instance's consumer group; the group is `<prefix>.<instance_id>`.
    #[serde(default = "default_group_id_prefix")]
    pub group_id_prefix: String,
    /// Where a consumer group with no committed offset starts: `latest` (only records produced
    /// from now on, the default) or `earliest` (everything the topic still holds).
    #[serde(default)]
    pub auto_offset_reset: OffsetReset,
    /// Extra librdkafka properties handed over verbatim to both consumer and producer
    /// (`security.protocol`, `sasl.*`, `ssl.*`, `client.id`, …). Keys the bridge manages itself
    /// (`bootstrap.servers`, `group.id`, `enable.auto.commit`, …) are refused.
    #[serde(default)]
    pub properties: BTreeMap<String, ScalarValue>,
    /// librdkafka properties for the outbound consumer only (`fetch.wait.max.ms`,
    /// `max.partition.fetch.bytes`, …); they override `properties`.
    #[serde(default)]
    pub consumer_properties: BTreeMap<String, ScalarValue>,
    /// librdkafka properties for the inbound producer only (`linger.ms`, `compression.type`,
    /// `acks`, …); they override `properties`.
    #[serde(default)]
    pub producer_properties: BTreeMap<String, ScalarValue>,
}

/// Offset a fresh consumer group starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OffsetReset {
    /// Only records produced after the group first joined.
    #[default]
    Latest,
    /// Everything the topic still retains.
    Earliest,
}

/// A YAML scalar used as a librdkafka property value (`5`, `true` and `"5"` are all fine).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ScalarValue {
    /// A string value.
    String(String),
    /// An integer value.
    Int(i64),
    /// A decimal value.
    Float(f64),
    /// A boolean value.
    Bool(bool),
}

impl fmt::Display for ScalarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScalarValue::String(s) => f.write_str(s),
            ScalarValue::Int(i) => write!(f, "{i}"),
            ScalarValue::Float(x) => write!(f, "{x}"),
            ScalarValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// The client-facing listener.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port the WebSocket/HTTP server binds.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// HTTP path of the WebSocket endpoint.
    #[serde(default = "default_ws_path")]
    pub ws_path: String,
    /// Browser origins allowed to open a WebSocket (`Origin` header). `"*"` allows any; requests
    /// without an `Origin` header (non-browser clients) are always allowed.
    #[serde(default = "default_allowed_origins")]
    pub allowed_origins: Vec<String>,
    /// Largest client frame accepted, in bytes; a larger one closes the session with 1009.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// Most simultaneous connections; beyond it new handshakes get HTTP 503.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most subscriptions one session may hold at once.
    #[serde(default = "default_max_subscriptions")]
    pub max_subscriptions_per_session: usize,
    /// Bound of each session's outbound queue, in messages. Over it, the Kafka consumer waits
    /// (at most 1 s) for the session to catch up; a session that does not is handled by its
    /// channel's `on_slow_client` policy (docs/operations.md, "Slow clients").
    #[serde(default = "default_send_queue_messages")]
    pub send_queue_messages: usize,
    /// The same bound in bytes (frames as written to the connection): whichever of the two is
    /// reached first applies. A single larger frame is still sent when nothing else waits.
    #[serde(default = "default_send_queue_bytes")]
    pub send_queue_bytes: usize,
    /// Most records replayed for one `resume` or `history` request (and most read from Kafka
    /// to serve it); a longer replay starts later and reports `gap: true`.
    #[serde(default = "default_replay_max_records")]
    pub replay_max_records: usize,
    /// Most publishes one session may have waiting for Kafka's acknowledgement; further
    /// frames from that session are not read until one completes.
    #[serde(default = "default_max_inflight_publishes")]
    pub max_inflight_publishes: usize,
    /// On SIGTERM/SIGINT, how long to wait for in-flight publishes and the producer flush
    /// before exiting anyway, in milliseconds.
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    /// A publish not acknowledged by Kafka within this many milliseconds is answered with
    /// error code `unavailable`.
    #[serde(default = "default_publish_timeout_ms")]
    pub publish_timeout_ms: u64,
    /// API keys accepted by `POST /api/v1/publish` (`Authorization: Bearer <key>`). Take them
    /// from the environment (`${BRIDGE_API_KEY}`); empty disables the endpoint.
    #[serde(default)]
    pub api_keys: Vec<Secret>,
    /// Serve the built-in demo page at `/`.
    #[serde(default)]
    pub demo_page: bool,
    /// Serve `wss://` and `https://` with this certificate instead of plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// How long a new connection may take to complete its TLS handshake and send its HTTP
    /// request headers, in milliseconds.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// The bridge pings every session this often, in milliseconds; `0` disables pings.
    #[serde(default = "default_ping_interval_ms")]
    pub ping_interval_ms: u64,
    /// A session from which nothing (not even a pong) arrived for this long is closed, in
    /// milliseconds; `0` disables the check.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Per-session publish rate limit (token bucket); beyond it publishes get `rate_limited`.
    #[serde(default)]
    pub publish_rate: PublishRate,
}

/// A token bucket: `per_second` tokens added each second, at most `burst` held.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRate {
    /// Sustained publishes per second per session; `0` disables the limit.
    #[serde(default = "default_publish_rate")]
    pub per_second: u32,
    /// Publishes a session may send at once after being quiet.
    #[serde(default = "default_publish_burst")]
    pub burst: u32,
}

impl Default for PublishRate {
    fn default() -> Self {
        PublishRate {
            per_second: default_publish_rate(),
            burst: default_publish_burst(),
        }
    }
}

/// Certificate and key for the client listener.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert_file: String,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
}

/// The operational listener.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address and port serving `/metrics`, `/healthz`, `/readyz` and `/api/v1/status`.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

/// Client authentication.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `jwt`: every connection must present a valid token. `none`: every session is anonymous
    /// (internal deployments only).
    pub mode: AuthMode,
    /// Token verification; required when `mode: jwt`.
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// Most sessions one user may hold; `0` means unlimited. When exceeded the newest session
    /// wins and the oldest is closed with code 4000.
    #[serde(default)]
    pub max_sessions_per_user: usize,
}

/// How clients are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Verify a JSON Web Token on every connection.
    Jwt,
    /// No authentication: every session is anonymous.
    None,
}

/// JSON Web Token verification.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Accepted signature algorithms (`HS256`, `HS384`, `HS512`, `RS256`, `RS384`, `RS512`,
    /// `PS256`, `PS384`, `PS512`, `ES256`, `ES384`). HMAC and public-key algorithms cannot be
    /// mixed.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Shared secret for the HS* algorithms; take it from the environment.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// PEM public key for the RS*/PS*/ES* algorithms.
    #[serde(default)]
    pub public_key_file: Option<String>,
    /// When set, the `iss` claim must equal it.
    #[serde(default)]
    pub issuer: Option<String>,
    /// When set, the `aud` claim must contain it.
    #[serde(default)]
    pub audience: Option<String>,
    /// Claim holding the user id.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Claim holding the user's roles (a list of strings, or one string).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

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
}

/// Where a record's routing key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeySource {
    /// The Kafka record key, as UTF-8: `{from: record_key}`.
    RecordKey,
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

/// Which keys of a `by_key` channel a user may subscribe to.
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

fn default_group_id_prefix() -> String {
    "kafka-ws-bridge".into()
}
fn default_listen() -> String {
    "0.0.0.0:8080".into()
}
fn default_metrics_listen() -> String {
    "0.0.0.0:9464".into()
}
fn default_ws_path() -> String {
    "/ws".into()
}
fn default_allowed_origins() -> Vec<String> {
    vec!["*".into()]
}
fn default_max_frame_bytes() -> usize {
    65536
}
fn default_max_connections() -> usize {
    100_000
}
fn default_max_subscriptions() -> usize {
    100
}
fn default_send_queue_messages() -> usize {
    8192
}
fn default_send_queue_bytes() -> usize {
    1024 * 1024
}
fn default_handshake_timeout_ms() -> u64 {
    10_000
}
fn default_ping_interval_ms() -> u64 {
    20_000
}
fn default_idle_timeout_ms() -> u64 {
    60_000
}
fn default_publish_rate() -> u32 {
    100
}
fn default_publish_burst() -> u32 {
    200
}
fn default_replay_max_records() -> usize {
    10_000
}
fn default_max_keys() -> usize {
    100_000
}
fn default_max_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_max_inflight_publishes() -> usize {
    256
}
fn default_shutdown_timeout_ms() -> u64 {
    10_000
}
fn default_publish_timeout_ms() -> u64 {
    5_000
}
fn default_algorithms() -> Vec<String> {
    vec!["HS256".into()]
}
fn default_user_claim() -> String {
    "sub".into()
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_leeway() -> u64 {
    30
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            ws_path: default_ws_path(),
            allowed_origins: default_allowed_origins(),
            max_frame_bytes: default_max_frame_bytes(),
            max_connections: default_max_connections(),
            max_subscriptions_per_session: default_max_subscriptions(),
            send_queue_messages: default_send_queue_messages(),
            send_queue_bytes: default_send_queue_bytes(),
            replay_max_records: default_replay_max_records(),
            max_inflight_publishes: default_max_inflight_publishes(),
            shutdown_timeout_ms: default_shutdown_timeout_ms(),
            publish_timeout_ms: default_publish_timeout_ms(),
            api_keys: Vec::new(),
            demo_page: false,
            tls: None,
            handshake_timeout_ms: default_handshake_timeout_ms(),
            ping_interval_ms: default_ping_interval_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            publish_rate: PublishRate::default(),
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics_listen(),
        }
    }
}
