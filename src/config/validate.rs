//! From file text to a validated [`Plan`], collecting *every* problem: environment references,
//! YAML syntax, structure (unknown, missing and mistyped keys) and meaning (duplicate channels,
//! `by_key` without a key, missing files, …). Each diagnostic names the file, line and key path.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::schema::{config_schema, Checker};
use super::source::{expand_env, parse_yaml, Node, NodeKind};
use super::*;

/// How bad a diagnostic is: errors refuse the file, warnings are printed and accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub line: usize,
    /// Key path such as `channels[1].topic`; empty when the problem is not about one key.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        write!(f, "{}:{}: ", self.file, self.line)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// A configuration that passed every check, with the values derived while checking.
#[derive(Debug, Clone)]
pub struct Plan {
    pub config: Config,
    /// The file it came from, for messages.
    pub file: String,
    /// Directory relative file paths in the config are resolved against.
    pub base_dir: PathBuf,
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub warnings: Vec<Diagnostic>,
    /// Line of every key path, for diagnostics raised after loading (e.g. by librdkafka).
    lines: HashMap<String, usize>,
}

impl Plan {
    /// A diagnostic about `path`, placed on its line.
    pub fn diagnostic(&self, severity: Severity, path: &str, message: String) -> Diagnostic {
        Diagnostic {
            severity,
            file: self.file.clone(),
            line: line_of(&self.lines, path),
            path: path.to_owned(),
            message,
        }
    }

    /// A path from the config resolved against the config file's directory.
    pub fn resolve_path(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }

    /// The consumer group of this instance.
    pub fn group_id(&self) -> String {
        format!(
            "{}.{}",
            self.config.kafka.group_id_prefix, self.config.instance_id
        )
    }
}

/// Loads and checks a config file, expanding variables from the process environment.
pub fn load(path: &Path) -> Result<Plan, Vec<Diagnostic>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            severity: Severity::Error,
            file: file.clone(),
            line: 0,
            path: String::new(),
            message: format!("cannot read the file: {e}"),
        }]
    })?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    load_str(&text, &file, &base_dir, |name| std::env::var(name).ok())
}

/// Loads and checks config text; `env` answers `${VAR}` references.
pub fn load_str(
    text: &str,
    file: &str,
    base_dir: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Plan, Vec<Diagnostic>> {
    let mut report = Report::new(file);
    let (expanded, env_errors) = expand_env(text, env);
    let tree = match parse_yaml(&expanded) {
        Ok(tree) => tree,
        Err(e) => {
            for error in env_errors {
                report.error_at(error.line, "", error.message);
            }
            report.error_at(e.line, "", e.message);
            return Err(report.finish());
        }
    };
    let mut lines = HashMap::new();
    index_lines(&tree, "", &mut lines);
    // An unset variable became an empty value; its type error would only repeat the problem.
    let env_lines: HashSet<usize> = env_errors.iter().map(|e| e.line).collect();
    for error in env_errors {
        let path = path_at_line(&tree, "", error.line).unwrap_or_default();
        report.error_at(error.line, &path, error.message);
    }
    if !matches!(tree.kind, NodeKind::Map(_)) {
        report.error_at(
            tree.line,
            "",
            format!(
                "expected a mapping at the top level, found {}",
                tree.type_name()
            ),
        );
        return Err(report.finish());
    }
    let structural = Checker::new(config_schema()).check(&tree);
    let broken: Vec<String> = structural.iter().map(|f| f.path.clone()).collect();
    for found in structural {
        if !env_lines.contains(&found.line) {
            report.error_at(found.line, &found.path, found.message);
        }
    }
    // Check the meaning of every part that is structurally sound, even when others are not,
    // so that one run reports every error.
    let partial = Partial::load(&tree, &broken);
    let mut semantic = Semantic {
        report: &mut report,
        lines: &lines,
        base_dir,
    };
    let (listen, metrics_listen) = semantic.check(&partial);
    if report.has_errors() || !broken.is_empty() {
        return Err(report.finish());
    }
    let config: Config = match serde_yaml::from_value(tree.to_yaml_value()) {
        Ok(config) => config,
        Err(e) => {
            // The schema check should have caught it; report rather than panic if it did not.
            report.error_at(1, "", format!("cannot load the config: {e}"));
            return Err(report.finish());
        }
    };
    let (Some(listen), Some(metrics_listen)) = (listen, metrics_listen) else {
        unreachable!("addresses are checked above");
    };
    Ok(Plan {
        config,
        file: file.to_owned(),
        base_dir: base_dir.to_path_buf(),
        listen,
        metrics_listen,
        warnings: report.finish(),
        lines,
    })
}

/// The parts of the config that loaded, each `None` (or absent from a list) when its subtree
/// has a structural error. List items keep their index for messages.
struct Partial {
    instance_id: Option<String>,
    kafka: Option<KafkaConfig>,
    server: Option<ServerConfig>,
    metrics: Option<MetricsConfig>,
    auth: Option<AuthConfig>,
    channels: Vec<(usize, ChannelConfig)>,
    inbound: Vec<(usize, InboundConfig)>,
}

impl Partial {
    fn load(tree: &Node, broken: &[String]) -> Self {
        let sound = |path: &str| {
            !broken.iter().any(|b| {
                b == path
                    || b.starts_with(&format!("{path}."))
                    || b.starts_with(&format!("{path}["))
            })
        };
        fn typed<T: serde::de::DeserializeOwned>(node: &Node) -> Option<T> {
            serde_yaml::from_value(node.to_yaml_value()).ok()
        }
        let section = |key: &str| tree.get(key).filter(|_| sound(key));
        let items = |key: &str| -> Vec<(usize, &Node)> {
            match tree.get(key).map(|n| &n.kind) {
                Some(NodeKind::Seq(items)) => items
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| sound(&format!("{key}[{i}]")))
                    .collect(),
                _ => Vec::new(),
            }
        };
        fn or_default<T: serde::de::DeserializeOwned + Default>(
            tree: &Node,
            section: Option<&Node>,
            key: &str,
        ) -> Option<T> {
            match tree.get(key) {
                None => Some(T::default()),
                Some(_) => section.and_then(typed),
            }
        }
        Partial {
            instance_id: section("instance_id").and_then(typed),
            kafka: section("kafka").and_then(typed),
            server: or_default(tree, section("server"), "server"),
            metrics: or_default(tree, section("metrics"), "metrics"),
            auth: section("auth").and_then(typed),
            channels: items("channels")
                .into_iter()
                .filter_map(|(i, n)| typed(n).map(|c| (i, c)))
                .collect(),
            inbound: items("inbound")
                .into_iter()
                .filter_map(|(i, n)| typed(n).map(|c| (i, c)))
                .collect(),
        }
    }
}

/// Collects diagnostics for one file.
struct Report {
    file: String,
    items: Vec<Diagnostic>,
}

impl Report {
    fn new(file: &str) -> Self {
        Report {
            file: file.to_owned(),
            items: Vec::new(),
        }
    }

    fn push(&mut self, severity: Severity, line: usize, path: &str, message: String) {
        self.items.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line,
            path: path.to_owned(),
            message,
        });
    }

    fn error_at(&mut self, line: usize, path: &str, message: String) {
        self.push(Severity::Error, line, path, message);
    }

    fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// All diagnostics, in file order.
    fn finish(&mut self) -> Vec<Diagnostic> {
        let mut items = std::mem::take(&mut self.items);
        items.sort_by_key(|d| d.line);
        items
    }
}

fn index_lines(node: &Node, path: &str, lines: &mut HashMap<String, usize>) {
    lines.insert(path.to_owned(), node.line);
    match &node.kind {
        NodeKind::Map(entries) => {
            for (key, key_line, value) in entries {
                let key_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                index_lines(value, &key_path, lines);
                lines.insert(key_path, *key_line);
            }
        }
        NodeKind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                index_lines(item, &format!("{path}[{i}]"), lines);
            }
        }
        _ => {}
    }
}

/// The line of a key path, or of its nearest ancestor present in the file.
fn line_of(lines: &HashMap<String, usize>, path: &str) -> usize {
    let mut path = path;
    loop {
        if let Some(line) = lines.get(path) {
            return *line;
        }
        match path.rfind(['.', '[']) {
            Some(cut) => path = &path[..cut],
            None => return lines.get("").copied().unwrap_or(1),
        }
    }
}

/// The deepest key whose value sits on `line`.
fn path_at_line(node: &Node, path: &str, line: usize) -> Option<String> {
    match &node.kind {
        NodeKind::Map(entries) => entries.iter().find_map(|(key, key_line, value)| {
            let key_path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            path_at_line(value, &key_path, line).or((*key_line == line).then_some(key_path))
        }),
        NodeKind::Seq(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| path_at_line(item, &format!("{path}[{i}]"), line)),
        _ => (node.line == line).then(|| path.to_owned()),
    }
}

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

const HMAC_ALGORITHMS: &[&str] = &["HS256", "HS384", "HS512"];
const KEY_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
];

/// Checks that need the typed config: meaning, cross references, files.
struct Semantic<'a> {
    report: &'a mut Report,
    lines: &'a HashMap<String, usize>,
    base_dir: &'a Path,
}

impl Semantic<'_> {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        let line = line_of(self.lines, path);
        self.report
            .push(Severity::Error, line, path, message.into());
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        let line = line_of(self.lines, path);
        self.report
            .push(Severity::Warning, line, path, message.into());
    }

    fn check(&mut self, partial: &Partial) -> (Option<SocketAddr>, Option<SocketAddr>) {
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

    fn readable_file(&mut self, path: &str, file: &str) {
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

    fn check_auth(&mut self, auth: &AuthConfig) {
        match (auth.mode, &auth.jwt) {
            (AuthMode::Jwt, None) => {
                self.error("auth.jwt", "missing (required when auth.mode is jwt)")
            }
            (AuthMode::Jwt, Some(jwt)) => self.check_jwt(jwt),
            (AuthMode::None, Some(_)) => self.warn(
                "auth.jwt",
                "ignored: auth.mode is none, so no token is verified",
            ),
            (AuthMode::None, None) => {}
        }
        if auth.mode == AuthMode::None && auth.max_sessions_per_user > 0 {
            self.warn(
                "auth.max_sessions_per_user",
                "ignored: with auth.mode none every session is anonymous",
            );
        }
    }

    fn check_jwt(&mut self, jwt: &JwtConfig) {
        if jwt.algorithms.is_empty() {
            self.error("auth.jwt.algorithms", "must list at least one algorithm");
        }
        let mut hmac = false;
        let mut public_key = false;
        for (i, alg) in jwt.algorithms.iter().enumerate() {
            if HMAC_ALGORITHMS.contains(&alg.as_str()) {
                hmac = true;
            } else if KEY_ALGORITHMS.contains(&alg.as_str()) {
                public_key = true;
            } else {
                self.error(
                    &format!("auth.jwt.algorithms[{i}]"),
                    format!(
                        "\"{alg}\" is not supported; expected one of {}, {}",
                        HMAC_ALGORITHMS.join(", "),
                        KEY_ALGORITHMS.join(", ")
                    ),
                );
            }
        }
        if hmac && public_key {
            self.error(
                "auth.jwt.algorithms",
                "HMAC (HS*) and public-key algorithms cannot be mixed: a public key must never be usable as an HMAC secret",
            );
        }
        if hmac {
            match &jwt.secret {
                None => self.error("auth.jwt.secret", "missing (required for HS* algorithms)"),
                Some(secret) if secret.expose().len() < 32 => self.error(
                    "auth.jwt.secret",
                    "must be at least 32 bytes for HS* algorithms (is the variable set?)",
                ),
                Some(_) => {}
            }
        }
        if public_key {
            match &jwt.public_key_file {
                None => self.error(
                    "auth.jwt.public_key_file",
                    "missing (required for RS*/PS*/ES* algorithms)",
                ),
                Some(file) => self.readable_file("auth.jwt.public_key_file", file),
            }
        }
        if jwt.user_claim.is_empty() {
            self.error("auth.jwt.user_claim", "must not be empty");
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
                if channel.format != Format::Json {
                    self.error(&at("key.from"), "`value` needs format: json");
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

    fn check_inbound(&mut self, inbound: &[(usize, InboundConfig)], auth_mode: Option<AuthMode>) {
        let mut names = HashSet::new();
        for (i, inbound) in inbound {
            let at = |key: &str| format!("inbound[{i}].{key}");
            self.channel_name(&at("channel"), &inbound.channel, &mut names, "inbound");
            self.topic_name(&at("topic"), &inbound.topic);
            match &inbound.key {
                InboundKey::Pointer { pointer } => self.pointer(&at("key.pointer"), pointer),
                InboundKey::Level(InboundKeyLevel::User) if auth_mode == Some(AuthMode::None) => {
                    self.warn(
                        &at("key"),
                        "with auth.mode none there is no user id: records get no key",
                    )
                }
                InboundKey::Level(_) => {}
            }
            if auth_mode == Some(AuthMode::None)
                && inbound.allow != Allow::Level(AllowLevel::Anonymous)
            {
                self.warn(
                    &at("allow"),
                    "no session can publish: auth.mode is none, so every session is anonymous (set allow: anonymous)",
                );
            }
            if let Some(file) = &inbound.schema_file {
                self.readable_file(&at("schema_file"), file);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Plan, Vec<Diagnostic>> {
        load_str(text, "bridge.yaml", Path::new("."), |name| {
            (name == "SET").then(|| "value-from-env".to_owned())
        })
    }

    /// The errors only (no warnings), as printed.
    fn errors(text: &str) -> Vec<String> {
        messages(text)
            .into_iter()
            .filter(|m| !m.starts_with("warning"))
            .collect()
    }

    fn messages(text: &str) -> Vec<String> {
        match load_text(text) {
            Ok(plan) => plan.warnings.iter().map(ToString::to_string).collect(),
            Err(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
        }
    }

    const BASE: &str = "instance_id: a\nkafka: {bootstrap_servers: 'k:9092'}\nauth: {mode: none}\n";

    #[test]
    fn minimal_config_loads_with_defaults() {
        let plan = load_text(BASE).unwrap();
        assert_eq!(plan.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(plan.config.server.send_queue_messages, 8192);
        assert_eq!(plan.group_id(), "kafka-ws-bridge.a");
        let warnings: Vec<String> = plan.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            ["warning: bridge.yaml:1: no `channels` and no `inbound`: the bridge will not move anything"]
        );
    }

    #[test]
    fn unset_variable_names_the_variable_and_key() {
        let text = "instance_id: ${NOPE}\nkafka: {bootstrap_servers: 'k:9092'}\nauth: {mode: none}\ninbound: [{channel: c, topic: t, allow: anonymous}]\n";
        assert_eq!(
            messages(text),
            ["bridge.yaml:1: instance_id: environment variable NOPE is not set and `${NOPE}` has no default (write `${NOPE:-default}` to give one)"]
        );
    }

    #[test]
    fn semantic_errors_point_at_their_keys() {
        let text = format!(
            "{BASE}channels:\n  - name: a\n    topic: t\n    deliver: by_key\n  - name: a\n    topic: 'bad topic'\n"
        );
        assert_eq!(
            errors(&text),
            [
                "bridge.yaml:5: channels[0].key: missing (required for deliver: by_key): e.g. {from: record_key}",
                "bridge.yaml:8: channels[1].name: \"a\" is used twice in channels",
                "bridge.yaml:9: channels[1].topic: \"bad topic\" is not a valid Kafka topic name (1-249 of letters, digits, `.`, `_`, `-`)",
            ]
        );
    }

    #[test]
    fn structural_and_semantic_errors_are_reported_together() {
        let text = format!(
            "{BASE}server: {{max_frame_bytes: lots}}\nchannels:\n  - name: a\n    topic: t\n    deliver: by_key\n  - name: a\n    topic: t\n    format: xml\n  - name: a\n    topic: u\n"
        );
        assert_eq!(
            errors(&text),
            [
                "bridge.yaml:4: server.max_frame_bytes: expected a non-negative integer, found \"lots\"",
                "bridge.yaml:6: channels[0].key: missing (required for deliver: by_key): e.g. {from: record_key}",
                "bridge.yaml:11: channels[1].format: expected `json`, `text` or `base64`, found \"xml\"",
                "bridge.yaml:12: channels[2].name: \"a\" is used twice in channels",
            ]
        );
    }

    #[test]
    fn secrets_are_not_printed() {
        let text = "instance_id: a\nkafka: {bootstrap_servers: 'k:9092'}\nauth:\n  mode: jwt\n  jwt: {secret: short-secret}\n";
        let out = messages(text).join("\n");
        assert!(
            out.contains("auth.jwt.secret: must be at least 32 bytes"),
            "{out}"
        );
        assert!(!out.contains("short-secret"), "{out}");
    }
}
