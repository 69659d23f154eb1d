//! The meaning of `schema_registry` and of the registry formats: a channel or inbound channel
//! in `avro`, `protobuf` or `json_schema` needs a registry, and the registry's keys must be
//! usable. Whether the subjects exist is `check --online`'s business (it asks the registry).

use super::Semantic;
use crate::config::partial::Partial;
use crate::config::{KeyFormat, KeySource, SchemaRegistryConfig};

/// Bounds of `schema_registry.timeout_ms`.
const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=60_000;
/// Bounds of `schema_registry.latest_refresh_s`.
const LATEST_REFRESH_S: std::ops::RangeInclusive<u64> = 1..=86_400;

impl Semantic<'_> {
    pub(super) fn check_registry(&mut self, partial: &Partial) {
        if let Some(registry) = &partial.schema_registry {
            self.check_registry_keys(registry);
        }
        // Present but broken: its structural error is reported already.
        let configured = self.lines.contains_key("schema_registry");
        for (i, channel) in &partial.channels {
            let key_format = match &channel.key {
                Some(KeySource::RecordKey { format }) => *format,
                _ => KeyFormat::Text,
            };
            if channel.format.uses_registry() && !configured {
                self.error(
                    &format!("channels[{i}].format"),
                    "needs schema_registry (the URL of a Confluent-compatible registry)",
                );
            }
            if key_format != KeyFormat::Text && !configured {
                self.error(
                    &format!("channels[{i}].key.format"),
                    "needs schema_registry (the URL of a Confluent-compatible registry)",
                );
            }
        }
        for (i, inbound) in &partial.inbound {
            let at = |key: &str| format!("inbound[{i}].{key}");
            if inbound.format.uses_registry() {
                if !configured {
                    self.error(
                        &at("format"),
                        "needs schema_registry (the URL of a Confluent-compatible registry)",
                    );
                }
                if let Some(subject) = &inbound.subject {
                    if subject.trim().is_empty() {
                        self.error(&at("subject"), "must not be empty");
                    }
                }
                if inbound.message.is_some()
                    && inbound.format != crate::config::InboundFormat::Protobuf
                {
                    self.warn(
                        &at("message"),
                        "ignored: only protobuf schemas hold several messages",
                    );
                }
            } else {
                for key in ["subject", "schema_version", "message"] {
                    if self.lines.contains_key(&at(key)) {
                        self.warn(
                            &at(key),
                            "ignored: only format avro, protobuf or json_schema write with a registry schema",
                        );
                    }
                }
            }
        }
    }

    fn check_registry_keys(&mut self, registry: &SchemaRegistryConfig) {
        if let Err(reason) = super::super::rules_jwt::http_url(&registry.url) {
            self.error("schema_registry.url", reason);
        }
        if let Some(file) = &registry.ca_file {
            self.readable_file("schema_registry.ca_file", file);
        }
        if !TIMEOUT_MS.contains(&registry.timeout_ms) {
            self.error(
                "schema_registry.timeout_ms",
                format!(
                    "must be between {} and {} milliseconds, found {}",
                    TIMEOUT_MS.start(),
                    TIMEOUT_MS.end(),
                    registry.timeout_ms
                ),
            );
        }
        if registry.max_schemas == 0 {
            self.error("schema_registry.max_schemas", "must be at least 1");
        }
        if !LATEST_REFRESH_S.contains(&registry.latest_refresh_s) {
            self.error(
                "schema_registry.latest_refresh_s",
                format!(
                    "must be between {} and {} seconds, found {}",
                    LATEST_REFRESH_S.start(),
                    LATEST_REFRESH_S.end(),
                    registry.latest_refresh_s
                ),
            );
        }
        if let Some(auth) = &registry.basic_auth {
            if auth.username.is_empty() {
                self.error("schema_registry.basic_auth.username", "must not be empty");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn errors(body: &str) -> Vec<String> {
        let text = format!(
            "instance_id: a\nkafka: {{bootstrap_servers: 'k:9092'}}\nauth: {{mode: none}}\n{body}"
        );
        match crate::config::load_str(&text, "bridge.yaml", Path::new("."), |_| None) {
            Ok(plan) => plan.warnings.iter().map(ToString::to_string).collect(),
            Err(found) => found.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn registry_formats_need_a_registry() {
        assert_eq!(
            errors("channels:\n  - {name: o, topic: o, format: avro, subscribe: {allow: anonymous}, key: {from: record_key, format: protobuf}}\ninbound:\n  - {channel: p, topic: o, format: json_schema, allow: anonymous}\n"),
            [
                "bridge.yaml:5: channels[0].format: needs schema_registry (the URL of a Confluent-compatible registry)",
                "bridge.yaml:5: channels[0].key.format: needs schema_registry (the URL of a Confluent-compatible registry)",
                "bridge.yaml:7: inbound[0].format: needs schema_registry (the URL of a Confluent-compatible registry)",
            ]
        );
    }

    #[test]
    fn registry_keys_are_checked_all_at_once() {
        assert_eq!(
            errors("schema_registry: {url: registry:8081, timeout_ms: 5, max_schemas: 0, latest_refresh_s: 0, ca_file: /nope.pem}\nchannels:\n  - {name: o, topic: o, format: avro, subscribe: {allow: anonymous}}\n"),
            [
                "bridge.yaml:4: schema_registry.url: expected an http:// or https:// URL, found \"registry:8081\"",
                "bridge.yaml:4: schema_registry.ca_file: cannot read /nope.pem: No such file or directory (os error 2)",
                "bridge.yaml:4: schema_registry.timeout_ms: must be between 100 and 60000 milliseconds, found 5",
                "bridge.yaml:4: schema_registry.max_schemas: must be at least 1",
                "bridge.yaml:4: schema_registry.latest_refresh_s: must be between 1 and 86400 seconds, found 0",
            ]
        );
        assert_eq!(
            errors("schema_registry:\n  url: http://registry:8080/apis/ccompat/v7\n  basic_auth: {username: u, password: p}\nchannels:\n  - {name: o, topic: o, format: protobuf, subscribe: {allow: anonymous}}\ninbound:\n  - {channel: p, topic: o, format: avro, subject: orders-value, schema_version: 3, allow: anonymous}\n  - {channel: q, topic: o, subject: x, allow: anonymous}\n"),
            ["warning: bridge.yaml:11: inbound[1].subject: ignored: only format avro, protobuf or json_schema write with a registry schema"]
        );
    }

    #[test]
    fn a_bad_format_names_the_choices() {
        let found = errors(
            "channels:\n  - {name: o, topic: o, format: thrift, subscribe: {allow: anonymous}}\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("channels[0].format") && found[0].contains("avro"),
            "{found:?}"
        );
    }
}
