//! The `server` and `metrics` sections: the client-facing and the operational listener.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Secret;

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
    /// HTTP path of the Server-Sent Events endpoint (`GET {sse_path}?channel=C[&key=K]
    /// [&history=N][&access_token=T]`, one subscription per stream, resumed with
    /// `Last-Event-ID`; docs/protocol.md, "Server-Sent Events"). Empty disables it.
    #[serde(default = "default_sse_path")]
    pub sse_path: String,
    /// STOMP 1.2 over WebSocket on `ws_path`, for clients that ask for the subprotocol
    /// `v12.stomp` (or `v11.stomp`, `v10.stomp`); docs/protocol.md, "STOMP".
    #[serde(default)]
    pub stomp: StompConfig,
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
    /// for the session to catch up; a session whose socket stops taking bytes meanwhile is
    /// handled by its channel's `on_slow_client` policy (docs/operations.md, "Slow clients").
    #[serde(default = "default_send_queue_messages")]
    pub send_queue_messages: usize,
    /// The same bound in bytes: whichever of the two is reached first applies. A record counts
    /// for the size of its JSON `message` frame, reckoned without encoding it (its value, key
    /// and headers plus 96 bytes and the channel name), whatever the session's dialect. A
    /// single larger record is still sent when nothing else waits.
    #[serde(default = "default_send_queue_bytes")]
    pub send_queue_bytes: usize,
    /// How long, in milliseconds, the socket of a session whose queue went over its bounds may
    /// refuse bytes (in all, until the queue has drained to half its bounds) before the session
    /// is slow. Time in which the socket takes bytes does not count. Raise it for clients on
    /// links that stall for seconds (mobile networks); every consumer of the instance waits
    /// that long, at most, for a client that stopped reading.
    #[serde(default = "default_slow_client_grace_ms")]
    pub slow_client_grace_ms: u64,
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
    /// WebSocket compression (permessage-deflate, RFC 7692), negotiated with clients that offer
    /// it (every browser does). Each frame is compressed once and the same bytes go to every
    /// session; no session keeps a compression window (docs/protocol.md, "Compression").
    #[serde(default)]
    pub compression: CompressionConfig,
}

/// `server.compression`: permessage-deflate.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    /// Negotiate permessage-deflate with clients that offer it.
    #[serde(default = "default_compression_enabled")]
    pub enabled: bool,
    /// Frames whose JSON text is shorter than this many bytes are sent uncompressed (small
    /// frames gain little and cost CPU); a frame is also sent uncompressed when compressing
    /// does not make it smaller.
    #[serde(default = "default_compression_min_bytes")]
    pub min_bytes: usize,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: default_compression_enabled(),
            min_bytes: default_compression_min_bytes(),
        }
    }
}

/// `server.stomp`: Spring's destination conventions, with configurable prefixes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StompConfig {
    /// Answer the `v12.stomp`/`v11.stomp`/`v10.stomp` subprotocols; when false such clients
    /// get no subprotocol in the handshake answer (browsers then fail the connection).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// SUBSCRIBE `{topic_prefix}<channel>` (broadcast, or by_key with the user's own key) or
    /// `{topic_prefix}<channel>/<key>` (by_key).
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// SUBSCRIBE `{user_prefix}<channel>`: a by_key channel with the user's own key.
    #[serde(default = "default_user_prefix")]
    pub user_prefix: String,
    /// SEND `{app_prefix}<inbound channel>` publishes to that inbound channel.
    #[serde(default = "default_app_prefix")]
    pub app_prefix: String,
}

impl Default for StompConfig {
    fn default() -> Self {
        StompConfig {
            enabled: true,
            topic_prefix: default_topic_prefix(),
            user_prefix: default_user_prefix(),
            app_prefix: default_app_prefix(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_topic_prefix() -> String {
    "/topic/".into()
}
fn default_user_prefix() -> String {
    "/user/queue/".into()
}
fn default_app_prefix() -> String {
    "/app/".into()
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

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}
fn default_metrics_listen() -> String {
    "0.0.0.0:9464".into()
}
fn default_ws_path() -> String {
    "/ws".into()
}
fn default_sse_path() -> String {
    "/sse".into()
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
fn default_slow_client_grace_ms() -> u64 {
    1000
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
fn default_compression_enabled() -> bool {
    true
}
fn default_compression_min_bytes() -> usize {
    256
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
fn default_max_inflight_publishes() -> usize {
    256
}
fn default_shutdown_timeout_ms() -> u64 {
    10_000
}
fn default_publish_timeout_ms() -> u64 {
    5_000
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            ws_path: default_ws_path(),
            sse_path: default_sse_path(),
            stomp: StompConfig::default(),
            allowed_origins: default_allowed_origins(),
            max_frame_bytes: default_max_frame_bytes(),
            max_connections: default_max_connections(),
            max_subscriptions_per_session: default_max_subscriptions(),
            send_queue_messages: default_send_queue_messages(),
            send_queue_bytes: default_send_queue_bytes(),
            slow_client_grace_ms: default_slow_client_grace_ms(),
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
            compression: CompressionConfig::default(),
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
