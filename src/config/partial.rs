//! The parts of a config file that loaded despite structural errors elsewhere, so that the
//! semantic rules (`rules.rs`) can still check them and report every problem at once.

use super::source::{Node, NodeKind};
use super::{
    AuthConfig, ChannelConfig, InboundConfig, KafkaConfig, MetricsConfig, SchemaRegistryConfig,
    ServerConfig,
};

/// The parts of the config that loaded, each `None` (or absent from a list) when its subtree
/// has a structural error. List items keep their index for messages.
pub(super) struct Partial {
    pub(super) instance_id: Option<String>,
    pub(super) kafka: Option<KafkaConfig>,
    pub(super) server: Option<ServerConfig>,
    pub(super) metrics: Option<MetricsConfig>,
    pub(super) auth: Option<AuthConfig>,
    pub(super) channels: Vec<(usize, ChannelConfig)>,
    pub(super) inbound: Vec<(usize, InboundConfig)>,
    pub(super) schema_registry: Option<SchemaRegistryConfig>,
}

impl Partial {
    pub(super) fn load(tree: &Node, broken: &[String]) -> Self {
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
            schema_registry: section("schema_registry").and_then(typed),
        }
    }
}
