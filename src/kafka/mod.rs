//! Everything that touches librdkafka: client settings, the outbound consumer (one per
//! instance, on its own thread), the inbound producer, and the connection/assignment status
//! that readiness and metrics report. No other module imports `rdkafka`.

mod admin;
mod consumer;
mod lanes;
mod producer;
mod reader;
mod session_registry;
mod side;
mod status;

use std::collections::BTreeMap;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::BaseProducer;

use crate::config::{OffsetReset, Plan, Severity};

pub use admin::{create_topics, AdminError, TopicOutcome};
pub(crate) use side::{KafkaSide, Outlets};
pub use status::{KafkaStatus, PartitionStatus};

/// Errors that stop the Kafka side from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("kafka client configuration: {0}")]
    Config(#[from] KafkaError),
    #[error("cannot subscribe to topics {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        source: KafkaError,
    },
    #[error("cannot start the consumer thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Which client a set of settings is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Consumer,
    Producer,
}

/// The user's properties for one client: `kafka.properties`, then the client's own map.
fn user_properties(plan: &Plan, client: Client) -> BTreeMap<&str, String> {
    let kafka = &plan.config.kafka;
    let specific = match client {
        Client::Consumer => &kafka.consumer_properties,
        Client::Producer => &kafka.producer_properties,
    };
    kafka
        .properties
        .iter()
        .chain(specific)
        .map(|(name, value)| (name.as_str(), value.to_string()))
        .collect()
}

/// Settings both clients share (brokers), the bridge's defaults for `client`, then the user's
/// properties, which override the defaults.
fn client_config(plan: &Plan, client: Client, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &plan.config.kafka.bootstrap_servers);
    config.set("client.id", "kafka-ws-bridge");
    for (name, value) in defaults {
        config.set(*name, *value);
    }
    for (name, value) in user_properties(plan, client) {
        config.set(name, value);
    }
    config
}

/// Whether the user chose the consumer group protocol of KIP-848 (`group.protocol: consumer`),
/// under which the broker owns the session timeout, heartbeats and assignment, and librdkafka
/// refuses the classic protocol's settings (`session.timeout.ms`, `heartbeat.interval.ms`,
/// `partition.assignment.strategy`, `group.protocol.type`).
fn consumer_group_protocol(plan: &Plan) -> bool {
    user_properties(plan, Client::Consumer)
        .get("group.protocol")
        .is_some_and(|protocol| protocol.eq_ignore_ascii_case("consumer"))
}

/// The outbound consumer's settings. Offsets are committed automatically from the records
/// handed to the bridge; `fetch.wait.max.ms` is lowered from librdkafka's 500 ms because some
/// Kafka-compatible brokers (Tansu) answer a fetch only when it expires, which would add that
/// much latency (Apache Kafka answers as soon as data arrives; there it only bounds idle polls).
pub(crate) fn consumer_config(plan: &Plan) -> ClientConfig {
    let group_id = plan.group_id();
    // Each group has one member (this instance): after a crash, its restart gets the partitions
    // back once the old member's session expires — 10 s, not librdkafka's 45 s. (Static
    // membership, `group.instance.id`, avoids even that wait on brokers that support it; see
    // docs/operations.md.) Not under the consumer protocol, where the broker sets it.
    let session_timeout =
        (!consumer_group_protocol(plan)).then_some(("session.timeout.ms", "10000"));
    let defaults: Vec<(&str, &str)> = session_timeout
        .into_iter()
        .chain([
            ("statistics.interval.ms", "1000"),
            ("fetch.wait.max.ms", "50"),
            ("topic.metadata.refresh.interval.ms", "10000"),
        ])
        .collect();
    let mut config = client_config(plan, Client::Consumer, &defaults);
    config.set("group.id", &group_id);
    config.set(
        "auto.offset.reset",
        match plan.config.kafka.auto_offset_reset {
            OffsetReset::Latest => "latest",
            OffsetReset::Earliest => "earliest",
        },
    );
    config.set("enable.auto.commit", "true");
    // Stored by the consumer thread once a record is routed: one held back for its schema
    // must not be committed over.
    config.set("enable.auto.offset.store", "false");
    config.set("enable.partition.eof", "false");
    config
}

/// The inbound producer's settings: idempotent (no duplicates or reordering from retries), and
/// a delivery timeout equal to `server.publish_timeout_ms`, so that a publish answered
/// `unavailable` is one librdkafka has given up on too.
pub(crate) fn producer_config(plan: &Plan) -> ClientConfig {
    let mut config = client_config(
        plan,
        Client::Producer,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "1"),
            ("statistics.interval.ms", "1000"),
        ],
    );
    config.set(
        "message.timeout.ms",
        plan.config.server.publish_timeout_ms.to_string(),
    );
    config
}

/// The context of the throwaway clients `check_properties` creates: they may start
/// connecting before they are dropped, and nobody wants to read about it.
struct Quiet;

impl rdkafka::client::ClientContext for Quiet {
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, _: &str, _: &str) {}
    fn error(&self, _: KafkaError, _: &str) {}
}

impl rdkafka::consumer::ConsumerContext for Quiet {}

impl rdkafka::producer::ProducerContext for Quiet {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// Lets librdkafka check `kafka.properties` (names and values) without connecting anywhere.
pub(crate) fn check_properties(plan: &Plan) -> Vec<crate::config::Diagnostic> {
    let mut diagnostics = Vec::new();
    let mut seen = BTreeMap::new();
    let kafka = &plan.config.kafka;
    for (config, own) in [
        (
            consumer_config(plan),
            ("consumer_properties", &kafka.consumer_properties),
        ),
        (
            producer_config(plan),
            ("producer_properties", &kafka.producer_properties),
        ),
    ] {
        if let Err(e) = config.create_native_config() {
            let (path, message) = match &e {
                KafkaError::ClientConfig(_, description, key, _) => (
                    if own.1.contains_key(key) {
                        format!("kafka.{}.{key}", own.0)
                    } else if kafka.properties.contains_key(key) {
                        format!("kafka.properties.{key}")
                    } else {
                        "kafka.properties".to_owned()
                    },
                    description.clone(),
                ),
                other => ("kafka.properties".to_owned(), other.to_string()),
            };
            if seen.insert(path.clone(), ()).is_none() {
                diagnostics.push(plan.diagnostic(
                    Severity::Error,
                    &path,
                    format!("rejected by librdkafka: {message}"),
                ));
            }
        }
    }
    if diagnostics.is_empty() {
        // Some constraints span properties (fetch.max.bytes >= message.max.bytes …) and are
        // only checked when a client is created. Creating one connects nothing synchronously;
        // it is dropped at once.
        let created = consumer_config(plan)
            .create_with_context::<_, BaseConsumer<Quiet>>(Quiet)
            .map(drop)
            .and_then(|()| {
                producer_config(plan)
                    .create_with_context::<_, BaseProducer<Quiet>>(Quiet)
                    .map(drop)
            });
        if let Err(e) = created {
            diagnostics.push(plan.diagnostic(
                Severity::Error,
                "kafka",
                format!("rejected by librdkafka: {e}"),
            ));
        }
    }
    diagnostics
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan(properties: &str) -> Plan {
        let text = format!("instance_id: i\nkafka:\n  bootstrap_servers: 'k:9092'\n  properties: {properties}\n  producer_properties: {{linger.ms: 7}}\nauth: {{mode: none}}\n");
        crate::config::load_str(&text, "b.yaml", Path::new("."), |_| None).unwrap()
    }

    #[test]
    fn valid_properties_pass_and_bad_ones_name_their_key() {
        assert!(check_properties(&plan("{linger.ms: 5, client.id: x}")).is_empty());
        let diagnostics = check_properties(&plan("{no.such.thing: 1}"));
        assert_eq!(diagnostics.len(), 1);
        let text = diagnostics[0].to_string();
        assert!(
            text.starts_with("b.yaml:4: kafka.properties.no.such.thing: rejected by librdkafka"),
            "{text}"
        );
        let diagnostics = check_properties(&plan("{linger.ms: soon}"));
        assert!(
            diagnostics[0]
                .to_string()
                .contains("kafka.properties.linger.ms"),
            "{diagnostics:?}"
        );
    }

    #[test]
    fn tls_and_sasl_properties_are_supported_by_this_build() {
        // The example of docs/deployment.md.
        let plan = plan("{security.protocol: SASL_SSL, sasl.mechanism: SCRAM-SHA-512, sasl.username: u, sasl.password: p}");
        assert!(
            check_properties(&plan).is_empty(),
            "{:?}",
            check_properties(&plan)
        );
    }

    #[test]
    fn the_consumer_protocol_gets_no_classic_only_default() {
        let classic = plan("{}");
        assert_eq!(
            consumer_config(&classic).get("session.timeout.ms"),
            Some("10000")
        );
        let consumer = plan("{group.protocol: consumer}");
        assert_eq!(consumer_config(&consumer).get("session.timeout.ms"), None);
        assert!(
            check_properties(&consumer).is_empty(),
            "{:?}",
            check_properties(&consumer)
        );
        // Set explicitly, a classic-only setting gets librdkafka's own refusal from `check`.
        let both = plan("{group.protocol: consumer, session.timeout.ms: 6000}");
        let diagnostics = check_properties(&both);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert!(
            diagnostics[0]
                .to_string()
                .contains("`session.timeout.ms` is not supported for `group.protocol=consumer`"),
            "{diagnostics:?}"
        );
    }

    #[test]
    fn users_may_override_defaults_but_not_managed_settings() {
        let plan = plan("{fetch.wait.max.ms: 5}");
        let consumer = consumer_config(&plan);
        assert_eq!(consumer.get("fetch.wait.max.ms"), Some("5"));
        assert_eq!(consumer.get("group.id"), Some("kafka-ws-bridge.i"));
        assert_eq!(
            producer_config(&plan).get("message.timeout.ms"),
            Some("5000")
        );
        assert_eq!(
            producer_config(&plan).get("enable.idempotence"),
            Some("true")
        );
        assert_eq!(producer_config(&plan).get("linger.ms"), Some("7"));
        assert_eq!(consumer_config(&plan).get("linger.ms"), None);
    }
}
