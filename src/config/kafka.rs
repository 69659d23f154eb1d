//! The `kafka` section: how to reach the brokers and the librdkafka properties handed over.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// Threads routing consumed records (decode, key, transforms, fan-out to the sessions'
    /// queues), each taking a share of the partitions: a partition's records are always routed
    /// by one thread, in order, and different partitions at once. `1` (the default): the
    /// polling thread routes, with no hand-off. `0`: one per core this process may run on, at
    /// most 8. More than one costs CPU per record (a copy and a hand-off); it pays where a
    /// topic has several partitions and routing saturates a core (docs/operations.md).
    #[serde(default = "one_thread")]
    pub consumer_threads: u16,
}

fn one_thread() -> u16 {
    1
}

/// Most routing threads `consumer_threads: 0` starts.
const AUTO_LANES_MAX: usize = 8;

impl KafkaConfig {
    /// How many threads route consumed records (see `consumer_threads`).
    pub fn lanes(&self) -> usize {
        match self.consumer_threads {
            0 => std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(AUTO_LANES_MAX),
            n => usize::from(n),
        }
    }
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

fn default_group_id_prefix() -> String {
    "kafka-ws-bridge".into()
}
