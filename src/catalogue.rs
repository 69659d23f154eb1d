//! The channels of the config, resolved once: per channel its topic, format, routing,
//! permissions, state bounds, encoded `message` prefix and metric handles. The hub, outbound,
//! inbound, the client listener and the operational listener all read this one catalogue
//! instead of keeping copies of their own, so a new channel option is added in one place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prometheus::{Histogram, IntCounter};

use crate::config::{ChannelConfig, Deliver, InboundConfig, Plan};
use crate::metrics::{ChannelMetrics, HttpResult, Metrics, PublishResult};
use crate::protocol::MessagePrefix;
use crate::state::MemoryLimits;
use crate::transform::Chain;

/// Index of an outbound channel in the config's `channels` list.
pub(crate) type ChannelId = u32;

/// An outbound channel (Kafka → clients).
pub struct Channel {
    pub id: ChannelId,
    /// The channel as configured: name, topic, format, key, deliver, subscribe rules, …
    pub spec: ChannelConfig,
    /// What the channel remembers for snapshots and history.
    pub limits: MemoryLimits,
    /// The start of every `message` frame of this channel.
    pub prefix: MessagePrefix,
    /// `transforms`, compiled: applied to every record before it is routed or remembered.
    pub transforms: Chain,
    pub metrics: ChannelMetrics,
    /// `POST /api/v1/publish` outcomes on this channel, indexed by [`HttpResult`].
    http_results: Vec<IntCounter>,
}

impl Channel {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn deliver(&self) -> Deliver {
        self.spec.deliver
    }

    /// Counts one `POST /api/v1/publish` outcome.
    pub fn count_http(&self, result: HttpResult) {
        self.http_results[result as usize].inc();
    }
}

/// An inbound channel (clients → Kafka).
pub struct InboundChannel {
    pub spec: InboundConfig,
    /// `schema_file`, compiled: every published `data` must satisfy it.
    pub schema: Option<jsonschema::Validator>,
    /// Publish outcomes, indexed by [`PublishResult::index`].
    results: Vec<IntCounter>,
    pub latency: Histogram,
}

impl InboundChannel {
    pub fn name(&self) -> &str {
        &self.spec.channel
    }

    /// Counts one publish outcome.
    pub fn count(&self, result: PublishResult) {
        self.results[result.index()].inc();
    }
}

/// Every channel of the config.
pub struct Catalogue {
    channels: Vec<Channel>,
    index: HashMap<String, ChannelId>,
    inbound: Vec<InboundChannel>,
    inbound_index: HashMap<String, usize>,
}

impl Catalogue {
    /// The catalogue of a plan, with the inbound channels' JSON Schemas compiled.
    pub fn from_plan(plan: &Plan, metrics: &Metrics) -> Result<Self, SchemaFileError> {
        let mut catalogue = Catalogue::new(&plan.config.channels, &plan.config.inbound, metrics);
        for inbound in &mut catalogue.inbound {
            if let Some(file) = &inbound.spec.schema_file {
                inbound.schema = Some(load_schema(&plan.resolve_path(file))?);
            }
        }
        Ok(catalogue)
    }

    pub fn new(channels: &[ChannelConfig], inbound: &[InboundConfig], metrics: &Metrics) -> Self {
        let channels: Vec<Channel> = channels
            .iter()
            .enumerate()
            .map(|(i, spec)| Channel {
                id: i as ChannelId,
                limits: MemoryLimits {
                    snapshot: spec.snapshot,
                    history: spec.history,
                    keyed_history: spec.deliver == Deliver::ByKey,
                    max_keys: spec.max_keys,
                    max_bytes: spec.max_bytes,
                },
                prefix: MessagePrefix::new(&spec.name),
                // `check` refuses a chain that does not compile, with its line: a config that
                // reaches here has none (a chain built without it fails loudly, not silently).
                transforms: Chain::compile(&spec.transforms).unwrap_or_else(|e| {
                    panic!("channels `{}`: {e} (the config was not checked)", spec.name)
                }),
                metrics: metrics.channel(&spec.name),
                http_results: HttpResult::ALL
                    .iter()
                    .map(|r| {
                        metrics
                            .http_publishes
                            .with_label_values(&[spec.name.as_str(), r.as_str()])
                    })
                    .collect(),
                spec: spec.clone(),
            })
            .collect();
        let inbound: Vec<InboundChannel> = inbound
            .iter()
            .map(|spec| InboundChannel {
                results: PublishResult::all()
                    .map(|r| {
                        metrics
                            .publishes
                            .with_label_values(&[spec.channel.as_str(), r.as_str()])
                    })
                    .collect(),
                latency: metrics.publish_latency.with_label_values(&[&spec.channel]),
                schema: None,
                spec: spec.clone(),
            })
            .collect();
        Catalogue {
            index: channels
                .iter()
                .map(|c| (c.spec.name.clone(), c.id))
                .collect(),
            inbound_index: inbound
                .iter()
                .enumerate()
                .map(|(i, c)| (c.spec.channel.clone(), i))
                .collect(),
            channels,
            inbound,
        }
    }

    pub fn channel(&self, id: ChannelId) -> &Channel {
        &self.channels[id as usize]
    }

    pub fn channel_id(&self, name: &str) -> Option<ChannelId> {
        self.index.get(name).copied()
    }

    pub fn find(&self, name: &str) -> Option<&Channel> {
        self.channel_id(name).map(|id| self.channel(id))
    }

    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    pub fn inbound(&self, name: &str) -> Option<&InboundChannel> {
        self.inbound_index.get(name).map(|i| &self.inbound[*i])
    }

    pub fn inbound_channels(&self) -> &[InboundChannel] {
        &self.inbound
    }

    /// Topics the consumer subscribes to, sorted, each once.
    pub fn topics(&self) -> Vec<String> {
        self.topics_where(|_| true)
    }

    /// Topics read at start to rebuild snapshots.
    pub fn snapshot_topics(&self) -> Vec<String> {
        self.topics_where(|c| c.spec.snapshot)
    }

    fn topics_where(&self, keep: impl Fn(&Channel) -> bool) -> Vec<String> {
        let mut topics: Vec<String> = self
            .channels
            .iter()
            .filter(|c| keep(c))
            .map(|c| c.spec.topic.clone())
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }
}

/// Why an inbound channel's `schema_file` does not load.
#[derive(Debug, thiserror::Error)]
pub enum SchemaFileError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not JSON: {source}", path.display())]
    NotJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: not a valid JSON Schema: {reason}", path.display())]
    NotSchema { path: PathBuf, reason: String },
}

/// Reads and compiles a JSON Schema file (the draft its `$schema` names, else 2020-12).
/// References to other documents are not fetched: a schema must be self-contained.
pub(crate) fn load_schema(path: &Path) -> Result<jsonschema::Validator, SchemaFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| SchemaFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let schema: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| SchemaFileError::NotJson {
            path: path.to_owned(),
            source,
        })?;
    jsonschema::validator_for(&schema).map_err(|e| SchemaFileError::NotSchema {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}
