//! The meaning of a configuration, checked on every part that is structurally sound: values in
//! range, names valid for Kafka, cross references between sections, files that must be
//! readable. Each rule reports at the key it is about; warnings do not refuse the file.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;

use super::diagnostic::{Report, Severity};
use super::partial::Partial;
use super::plan::line_of;
use super::*;

/// Most routing threads `kafka.consumer_threads` may ask for.
const MAX_CONSUMER_THREADS: u16 = 64;

mod auth;
mod inbound;
mod registry;
mod transforms;

/// Properties the bridge sets itself; users configure them through dedicated keys.
const MANAGED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set kafka.bootstrap_servers instead"),
    (
        "metadata.broker.list",
        "set kafka.bootstrap_servers instead",
    ),
    (
        "group.id",
        "the group is <kafka.group_id_prefix>.<instance_id>",
    ),
    ("auto.offset.reset", "set kafka.auto_offset_reset instead"),
    ("enable.auto.commit", "the bridge commits offsets itself"),
    (
        "enable.auto.offset.store",
        "the bridge stores offsets itself",
    ),
    (
        "message.timeout.ms",
        "set server.publish_timeout_ms instead",
    ),
    (
        "delivery.timeout.ms",
        "set server.publish_timeout_ms instead",
    ),
];

/// Highest `server.compression.min_bytes` accepted (1 MiB).
const MAX_COMPRESSION_MIN_BYTES: usize = 1024 * 1024;
const HMAC_ALGORITHMS: &[&str] = &["HS256", "HS384", "HS512"];
const KEY_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Checks that need the typed config: meaning, cross references, files.
pub(super) struct Semantic<'a> {
    report: &'a mut Report,
    lines: &'a HashMap<String, usize>,
    base_dir: &'a Path,
}

impl<'a> Semantic<'a> {
    pub(super) fn new(
        report: &'a mut Report,
        lines: &'a HashMap<String, usize>,
        base_dir: &'a Path,
    ) -> Self {
        Semantic {
            report,
            lines,
            base_dir,
        }
    }

    pub(super) fn error(&mut self, path: &str, message: impl Into<String>) {
        let line = line_of(self.lines, path);
        self.report
            .push(Severity::Error, line, path, message.into());
    }

    pub(super) fn warn(&mut self, path: &str, message: impl Into<String>) {
        let line = line_of(self.lines, path);
        self.report
            .push(Severity::Warning, line, path, message.into());
    }

    /// Checks every sound part; the two listen addresses when they parse.
    pub(super) fn check(&mut self, partial: &Partial) -> (Option<SocketAddr>, Option<SocketAddr>) {
        if let Some(id) = &partial.instance_id {
            self.check_instance_id(id);
        }
        if let Some(kafka) = &partial.kafka {
            self.check_kafka(kafka);
        }
        let listen = partial
            .server
            .as_ref()
            .and_then(|server| self.address("server.listen", &server.listen));
        let metrics_listen = partial
            .metrics
            .as_ref()
            .and_then(|metrics| self.address("metrics.listen", &metrics.listen));
        if let Some(server) = &partial.server {
            self.check_server(server);
        }
        if let Some(auth) = &partial.auth {
            self.check_auth(auth);
        }
        let auth_mode = partial.auth.as_ref().map(|a| a.mode);
        if partial.channels.is_empty()
            && partial.inbound.is_empty()
            && self.lines.get("channels").is_none()
            && self.lines.get("inbound").is_none()
        {
            self.warn(
                "",
                "no `channels` and no `inbound`: the bridge will not move anything",
            );
        }
        self.check_channels(&partial.channels, auth_mode);
        self.check_inbound(&partial.inbound, auth_mode);
        self.check_registry(partial);
        if let Some(registry) = partial
            .auth
            .as_ref()
            .and_then(|auth| auth.session_registry.as_ref().map(|r| (auth, r)))
        {
            self.check_session_registry(registry.0, registry.1, partial);
        }
        (listen, metrics_listen)
    }

    fn check_instance_id(&mut self, id: &str) {
        if id.is_empty() {
            self.error(
                "instance_id",
                "must not be empty (it names this instance's consumer group)",
            );
        } else if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            self.error(
                "instance_id",
                format!("\"{id}\" may only contain letters, digits, `.`, `_` and `-`"),
            );
        }
    }

    fn check_kafka(&mut self, kafka: &KafkaConfig) {
        if kafka.bootstrap_servers.trim().is_empty() {
            self.error("kafka.bootstrap_servers", "must not be empty");
        }
        for server in kafka.bootstrap_servers.split(',').map(str::trim) {
            let port_ok = server
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !server.is_empty() && !port_ok {
                self.error(
                    "kafka.bootstrap_servers",
                    format!("\"{server}\": expected host:port"),
                );
            }
        }
        if kafka.group_id_prefix.is_empty() {
            self.error("kafka.group_id_prefix", "must not be empty");
        }
        if kafka.consumer_threads > MAX_CONSUMER_THREADS {
            self.error(
                "kafka.consumer_threads",
                format!(
                    "{}: at most {MAX_CONSUMER_THREADS} (each routes a share of the partitions; more threads than partitions sit idle)",
                    kafka.consumer_threads
                ),
            );
        }
        for (map, properties) in [
            ("properties", &kafka.properties),
            ("consumer_properties", &kafka.consumer_properties),
            ("producer_properties", &kafka.producer_properties),
        ] {
            for name in properties.keys() {
                if let Some((_, hint)) = MANAGED_PROPERTIES.iter().find(|(p, _)| p == name) {
                    self.error(
                        &format!("kafka.{map}.{name}"),
                        format!("is managed by the bridge: {hint}"),
                    );
                }
            }
        }
    }

    fn address(&mut self, path: &str, value: &str) -> Option<SocketAddr> {
        match value.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    path,
                    format!("\"{value}\": expected an IP address and port such as 0.0.0.0:8080"),
                );
                None
            }
        }
    }

    fn check_server(&mut self, server: &ServerConfig) {
        if !server.ws_path.starts_with('/') {
            self.error(
                "server.ws_path",
                format!("\"{}\": must start with `/`", server.ws_path),
            );
        }
        if !server.sse_path.is_empty() && !server.sse_path.starts_with('/') {
            self.error(
                "server.sse_path",
                format!(
                    "\"{}\": must start with `/` (or be empty to disable)",
                    server.sse_path
                ),
            );
        } else if server.sse_path == server.ws_path {
            self.error(
                "server.sse_path",
                format!("\"{}\": must differ from `server.ws_path`", server.sse_path),
            );
        }
        let stomp = &server.stomp;
        for (path, prefix) in [
            ("server.stomp.topic_prefix", &stomp.topic_prefix),
            ("server.stomp.user_prefix", &stomp.user_prefix),
            ("server.stomp.app_prefix", &stomp.app_prefix),
        ] {
            if !prefix.starts_with('/') || !prefix.ends_with('/') {
                self.error(
                    path,
                    format!("\"{prefix}\": must start and end with `/` (e.g. \"/topic/\")"),
                );
            }
        }
        if stomp.topic_prefix == stomp.user_prefix {
            self.error(
                "server.stomp.user_prefix",
                format!(
                    "\"{}\": must differ from `server.stomp.topic_prefix`",
                    stomp.user_prefix
                ),
            );
        }
        for (path, value, min) in [
            ("server.max_frame_bytes", server.max_frame_bytes, 64),
            ("server.max_connections", server.max_connections, 1),
            (
                "server.max_subscriptions_per_session",
                server.max_subscriptions_per_session,
                1,
            ),
            ("server.send_queue_messages", server.send_queue_messages, 1),
            ("server.send_queue_bytes", server.send_queue_bytes, 1024),
            (
                "server.slow_client_grace_ms",
                server.slow_client_grace_ms as usize,
                1,
            ),
            (
                "server.max_inflight_publishes",
                server.max_inflight_publishes,
                1,
            ),
            (
                "server.publish_timeout_ms",
                server.publish_timeout_ms as usize,
                1,
            ),
        ] {
            if value < min {
                self.error(path, format!("must be at least {min}, found {value}"));
            }
        }
        // A threshold this high is a typo (a frame size in bits, an extra zero), not a wish:
        // turning compression off is `enabled: false`.
        if server.compression.min_bytes > MAX_COMPRESSION_MIN_BYTES {
            self.error(
                "server.compression.min_bytes",
                format!(
                    "must be at most {MAX_COMPRESSION_MIN_BYTES} (set `enabled: false` to turn compression off), found {}",
                    server.compression.min_bytes
                ),
            );
        }
        if server.ping_interval_ms > 0
            && server.idle_timeout_ms > 0
            && server.idle_timeout_ms <= server.ping_interval_ms
        {
            self.error(
                "server.idle_timeout_ms",
                format!(
                    "must be longer than server.ping_interval_ms ({}), or healthy idle sessions are closed before their pong can arrive",
                    server.ping_interval_ms
                ),
            );
        }
        if server.publish_rate.per_second > 0 && server.publish_rate.burst == 0 {
            self.error(
                "server.publish_rate.burst",
                "must be at least 1 when per_second is set",
            );
        }
        for (i, key) in server.api_keys.iter().enumerate() {
            if key.expose().len() < 16 {
                self.error(
                    &format!("server.api_keys[{i}]"),
                    "an API key must be at least 16 characters (is the variable set?)",
                );
            }
        }
        if let Some(tls) = &server.tls {
            self.readable_file("server.tls.cert_file", &tls.cert_file);
            self.readable_file("server.tls.key_file", &tls.key_file);
        }
    }

    pub(super) fn readable_file(&mut self, path: &str, file: &str) {
        let resolved = self.base_dir.join(file);
        if let Err(e) = std::fs::metadata(&resolved).and_then(|m| {
            if m.is_file() {
                Ok(())
            } else {
                Err(std::io::Error::other("not a regular file"))
            }
        }) {
            self.error(path, format!("cannot read {}: {e}", resolved.display()));
        }
    }

    /// A readable PEM file of CA certificates (see [`super::rules_jwt::read_ca_certificates`]).
    pub(super) fn ca_certificates_file(&mut self, path: &str, file: &str) {
        let resolved = self.base_dir.join(file);
        if let Err(e) = super::rules_jwt::read_ca_certificates(&resolved) {
            self.error(path, e.to_string());
        }
    }

    fn check_channels(&mut self, channels: &[(usize, ChannelConfig)], auth_mode: Option<AuthMode>) {
        let mut names = HashSet::new();
        for (i, channel) in channels {
            let at = |key: &str| format!("channels[{i}].{key}");
            self.channel_name(&at("name"), &channel.name, &mut names, "channels");
            self.topic_name(&at("topic"), &channel.topic);
            let keyed = channel.key.is_some();
            match channel.deliver {
                Deliver::ByKey if !keyed => self.error(
                    &at("key"),
                    "missing (required for deliver: by_key): e.g. {from: record_key}",
                ),
                Deliver::Reply if keyed => self.warn(
                    &at("key"),
                    "ignored: reply channels route by the bridge-session and bridge-user headers",
                ),
                _ => {}
            }
            if let Some(KeySource::Value { pointer }) = &channel.key {
                if !channel.format.is_structured() {
                    self.error(
                        &at("key.from"),
                        "`value` needs structured values (format json, avro, protobuf or json_schema)",
                    );
                }
                self.pointer(&at("key.pointer"), pointer);
            }
            if let Some(KeySource::Header { name }) = &channel.key {
                if name.is_empty() {
                    self.error(&at("key.name"), "must not be empty");
                }
            }
            if channel.deliver == Deliver::Reply && (channel.snapshot || channel.history > 0) {
                self.error(
                    &at(if channel.snapshot {
                        "snapshot"
                    } else {
                        "history"
                    }),
                    "reply channels keep no snapshot or history: a reply is for one session",
                );
            }
            if channel.max_keys == 0 {
                self.error(&at("max_keys"), "must be at least 1");
            }
            if channel.snapshot && !keyed {
                self.error(
                    &at("snapshot"),
                    "needs a `key`: the snapshot is the last value per key",
                );
            }
            if channel.on_slow_client == SlowClientPolicy::LatestPerKey && !keyed {
                self.error(&at("on_slow_client"), "latest_per_key needs a `key`");
            }
            if channel.deliver != Deliver::ByKey
                && (channel.subscribe.keys != KeysRule::default()
                    || !channel.subscribe.any_key_roles.is_empty())
            {
                self.warn(
                    &at("subscribe"),
                    "`keys` and `any_key_roles` only apply to deliver: by_key channels",
                );
            }
            self.check_transforms(*i, channel, auth_mode);
            if auth_mode == Some(AuthMode::None) {
                if channel.subscribe.allow != Allow::Level(AllowLevel::Anonymous) {
                    self.warn(
                        &at("subscribe.allow"),
                        "no session can subscribe: auth.mode is none, so every session is anonymous (set allow: anonymous)",
                    );
                } else if channel.deliver == Deliver::ByKey
                    && !matches!(channel.subscribe.keys, KeysRule::Level(KeysLevel::Any))
                {
                    self.warn(
                        &at("subscribe.keys"),
                        "anonymous sessions have no user id or claims: only `keys: any` lets them subscribe",
                    );
                }
            }
        }
    }

    fn channel_name(&mut self, path: &str, name: &str, seen: &mut HashSet<String>, list: &str) {
        if name.is_empty() {
            self.error(path, "must not be empty");
        } else if name.len() > 200 || name.chars().any(|c| c.is_control()) {
            self.error(path, "must be at most 200 printable characters");
        } else if !seen.insert(name.to_owned()) {
            self.error(path, format!("\"{name}\" is used twice in {list}"));
        }
    }

    fn topic_name(&mut self, path: &str, topic: &str) {
        let valid = !topic.is_empty()
            && topic.len() <= 249
            && topic != "."
            && topic != ".."
            && topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid {
            self.error(
                path,
                format!("\"{topic}\" is not a valid Kafka topic name (1-249 of letters, digits, `.`, `_`, `-`)"),
            );
        }
    }

    fn pointer(&mut self, path: &str, pointer: &str) {
        if !pointer.is_empty() && !pointer.starts_with('/') {
            self.error(
                path,
                format!(
                    "\"{pointer}\" is not a JSON pointer; it must start with `/`, e.g. /customerId"
                ),
            );
        }
    }
}
