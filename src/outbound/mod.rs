//! Kafka → clients: turns each consumed record into one shared [`Delivery`] per channel reading
//! its topic — decoded once, routing key extracted once, transformed once — and hands it to the
//! hub; each transport encodes it when its first session needs it.
//! A record that cannot be decoded or has no key on a `by_key` channel is counted and logged
//! (rate-limited), never retried: the consumer must not stall on one bad record.

#[cfg(test)]
mod bench;
mod decode;
mod record;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;

use crate::catalogue::{Catalogue, Channel, ChannelId};
use crate::config::{Deliver, KeySource};
use crate::hub::{Fetched, Hub, Need, Route};
use crate::metrics::Metrics;
use crate::protocol::{self, DataJson, Delivery, Parts, SESSION_HEADER, USER_HEADER};
use crate::registry::Registry;
use crate::state::Held;
use crate::transform::Input;
use decode::{Decoded, Later, Needs};

pub use record::{OwnedRecord, RangeRead, ReadFuture, Record, RecordSink, Routed};

/// A record encoded for one channel.
struct Encoded<'r> {
    key: Option<Cow<'r, str>>,
    held: Held,
    tombstone: bool,
}

/// Why a record was not routed on a channel.
enum Skip {
    Undecodable(String),
    NoKey(String),
    /// Dropped by the channel's `transforms`.
    Filtered,
    /// No value at the channel's `subscribe.where` pointer: entitled to nobody.
    NotEntitled(String),
}

struct TopicPipes {
    consumed: IntCounter,
    channels: Vec<ChannelId>,
    /// What its channels need decoded through the schema registry.
    needs: Needs,
}

pub struct Outbound {
    hub: Arc<Hub>,
    catalogue: Arc<Catalogue>,
    /// foldhash: looked up for every consumed record.
    topics: HashMap<String, TopicPipes, foldhash::fast::RandomState>,
    /// `schema_registry`, when configured.
    registry: Option<Arc<Registry>>,
    /// Per channel: seconds timestamp of the last warning logged.
    last_warning: Vec<AtomicU64>,
}

impl Outbound {
    pub fn new(
        catalogue: Arc<Catalogue>,
        hub: Arc<Hub>,
        metrics: &Metrics,
        registry: Option<Arc<Registry>>,
    ) -> Self {
        let mut topics: HashMap<String, TopicPipes, foldhash::fast::RandomState> =
            HashMap::default();
        for channel in catalogue.channels() {
            let topic = &channel.spec.topic;
            let pipes = topics.entry(topic.clone()).or_insert_with(|| TopicPipes {
                consumed: metrics.records_consumed.with_label_values(&[topic]),
                channels: Vec::new(),
                needs: Needs::default(),
            });
            pipes.channels.push(channel.id);
            pipes.needs = pipes.needs.union(needs_of(channel));
        }
        Outbound {
            hub,
            registry,
            last_warning: catalogue
                .channels()
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            catalogue,
            topics,
        }
    }

    /// A sink that rebuilds snapshots (no routing, no history) from records read at start.
    pub fn snapshot_loader(self: &Arc<Self>) -> Arc<dyn RecordSink> {
        Arc::new(SnapshotLoader(self.clone()))
    }

    /// Decodes what the topic's channels need through the registry; [`Later`] while a schema
    /// is being fetched (nothing of the record is routed yet).
    fn decode(&self, needs: Needs, record: &Record<'_>) -> Result<Decoded, Later> {
        match (&self.registry, needs.any()) {
            (Some(registry), true) => decode::decode(registry, needs, record.key, record.value),
            // `check` refuses registry formats without a registry.
            _ => Ok(Decoded::default()),
        }
    }

    fn route(&self, channel: &Channel, record: &Record<'_>, decoded: &Decoded) {
        let encoded = match encode(channel, record, decoded) {
            Ok(encoded) => encoded,
            Err(skip) => {
                let (counter, what, reason) = match &skip {
                    Skip::Undecodable(reason) => (
                        &channel.metrics.dropped_undecodable,
                        "record skipped: cannot decode",
                        reason,
                    ),
                    Skip::NoKey(reason) => (
                        &channel.metrics.dropped_no_key,
                        "record skipped: no routing key",
                        reason,
                    ),
                    Skip::NotEntitled(reason) => (
                        &channel.metrics.dropped_not_entitled,
                        "record skipped: no value for subscribe.where",
                        reason,
                    ),
                    Skip::Filtered => {
                        // A choice of the config, not a problem: counted, not logged.
                        channel.metrics.dropped_filtered.inc();
                        self.hub.skip(channel.id, record.partition, record.offset);
                        return;
                    }
                };
                counter.inc();
                self.warn(channel, record, what, reason);
                self.hub.skip(channel.id, record.partition, record.offset);
                return;
            }
        };
        let route = match channel.deliver() {
            Deliver::Reply => Route::Reply {
                session: utf8(record.header(SESSION_HEADER)),
                user: utf8(record.header(USER_HEADER)),
            },
            _ => Route::Key(encoded.key.as_deref()),
        };
        self.hub
            .deliver(channel.id, route, &encoded.held, encoded.tombstone)
            .wait_for_writers();
    }

    /// Logs at most one warning per second per channel.
    fn warn(&self, channel: &Channel, record: &Record<'_>, what: &str, reason: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.last_warning[channel.id as usize].swap(now, Ordering::Relaxed) != now {
            tracing::warn!(
                channel = %channel.name(),
                topic = record.topic,
                partition = record.partition,
                offset = record.offset,
                reason,
                "{what} (further warnings for this channel suppressed for a second; see kafka_ws_bridge_messages_dropped_total)"
            );
        }
    }
}

impl RecordSink for Outbound {
    fn record(&self, record: &Record<'_>) -> Routed {
        let Some(topic) = self.topics.get(record.topic) else {
            return Routed::Done;
        };
        // Decoded once for every channel of the topic, and routed on all of them or on none.
        let Ok(decoded) = self.decode(topic.needs, record) else {
            return Routed::Later;
        };
        topic.consumed.inc();
        for id in &topic.channels {
            self.route(self.catalogue.channel(*id), record, &decoded);
        }
        Routed::Done
    }
}

struct SnapshotLoader(Arc<Outbound>);

impl RecordSink for SnapshotLoader {
    fn record(&self, record: &Record<'_>) -> Routed {
        let outbound = &self.0;
        let Some(topic) = outbound.topics.get(record.topic) else {
            return Routed::Done;
        };
        let Ok(decoded) = outbound.decode(topic.needs, record) else {
            return Routed::Later;
        };
        for id in &topic.channels {
            let channel = outbound.catalogue.channel(*id);
            if !channel.spec.snapshot {
                continue;
            }
            match encode(channel, record, &decoded) {
                Ok(Encoded {
                    key: Some(key),
                    held,
                    tombstone,
                }) => outbound
                    .hub
                    .load_snapshot(channel.id, &key, &held, tombstone),
                // Not counted: the records before the group's position are read here only
                // (nobody is sent them), the others are counted when the consumer routes them.
                Err(Skip::Undecodable(reason)) => outbound.warn(
                    channel,
                    record,
                    "record skipped while loading snapshots: cannot decode",
                    &reason,
                ),
                _ => {}
            }
        }
        Routed::Done
    }
}

/// What the client listener holds to serve replays beyond memory: reads from Kafka (never the
/// live consumer) and encodes for the channel, nothing else.
pub struct Replayer {
    catalogue: Arc<Catalogue>,
    reader: Arc<dyn RangeRead>,
    registry: Option<Arc<Registry>>,
}

impl Replayer {
    pub fn new(
        catalogue: Arc<Catalogue>,
        reader: Arc<dyn RangeRead>,
        registry: Option<Arc<Registry>>,
    ) -> Self {
        Replayer {
            catalogue,
            reader,
            registry,
        }
    }

    /// Reads from Kafka what a subscription needs before it can attach, encoded and filtered
    /// to its key, within `limit` records.
    pub async fn fetch(
        &self,
        id: ChannelId,
        key: Option<&str>,
        need: Need,
        limit: usize,
    ) -> Result<Fetched, String> {
        let channel = self.catalogue.channel(id);
        let topic = &channel.spec.topic;
        let read = self.reader.read(topic, need, limit).await?;
        let needs = needs_of(channel);
        let registry = self.registry.as_ref().filter(|_| needs.any());
        if let Some(registry) = registry {
            fetch_schemas(registry, needs, &read.records).await?;
        }
        let mut records = Vec::new();
        for owned in &read.records {
            let decoded = match registry {
                Some(registry) => decode::decode(
                    registry,
                    needs,
                    owned.key.as_deref(),
                    owned.value.as_deref(),
                )
                .map_err(|Later| {
                    "a schema of a replayed record is not available; try again".to_owned()
                })?,
                None => Decoded::default(),
            };
            let encoded =
                owned.with_record(topic, |record| match encode(channel, record, &decoded) {
                    Ok(encoded) if key.is_none() || encoded.key.as_deref() == key => {
                        Some(encoded.held)
                    }
                    _ => None,
                });
            records.extend(encoded);
        }
        channel.metrics.replayed_kafka.inc_by(records.len() as u64);
        Ok(Fetched {
            records,
            covered: read.covered,
            gap: read.gap,
        })
    }
}

/// Fetches every schema the replayed records name before they are decoded: a replay may wait
/// for the registry (the live consumer never does). Ids the registry does not have are left
/// for decoding to count as undecodable; an unreachable registry fails the replay.
async fn fetch_schemas(
    registry: &Registry,
    needs: Needs,
    records: &[OwnedRecord],
) -> Result<(), String> {
    let mut ids: Vec<u32> = records
        .iter()
        .flat_map(|r| decode::ids(needs, r.key.as_deref(), r.value.as_deref()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        match registry.schema(id).await {
            Ok(_)
            | Err(crate::registry::RegistryError::NotFound { .. })
            | Err(crate::registry::RegistryError::Invalid { .. }) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// What a channel needs decoded through the registry.
fn needs_of(channel: &Channel) -> Needs {
    Needs {
        value: channel.spec.format.uses_registry(),
        key: matches!(&channel.spec.key, Some(KeySource::RecordKey { format }) if decode::key_uses_registry(*format)),
    }
}

/// The value's JSON for `data` (and the schema id it was written with): decoded by the
/// registry for registry formats, else per the channel's format.
fn data<'d>(
    channel: &Channel,
    record: &Record<'d>,
    decoded: &'d Decoded,
) -> Result<(DataJson<'d>, Option<u32>), Skip> {
    let Some(kind) = decode::kind_of(channel.spec.format) else {
        let data =
            protocol::encode_data(channel.spec.format, record.value).map_err(Skip::Undecodable)?;
        return Ok((data, None));
    };
    match &decoded.value {
        None => Ok((DataJson::Borrowed("null"), None)),
        Some(Ok(value)) if value.kind == kind => {
            Ok((DataJson::Borrowed(&value.json), Some(value.schema_id)))
        }
        Some(Ok(value)) => Err(Skip::Undecodable(format!(
            "schema {} is {}, the channel reads {}",
            value.schema_id,
            value.kind.as_str(),
            kind.as_str()
        ))),
        Some(Err(reason)) => Err(Skip::Undecodable(reason.clone())),
    }
}

/// Decodes once, extracts the key once, transforms once: the record every session shares.
fn encode<'r>(
    channel: &Channel,
    record: &Record<'r>,
    decoded: &'r Decoded,
) -> Result<Encoded<'r>, Skip> {
    if let Some(Err(reason)) = &decoded.key {
        return Err(Skip::Undecodable(reason.clone()));
    }
    let (data, schema_id) = data(channel, record, decoded)?;
    // The value as a tree, only when something reads into it: a value-pointer key or transforms.
    let rule = channel.spec.subscribe.where_.as_ref();
    let needs_tree = matches!(channel.spec.key, Some(KeySource::Value { .. }))
        || !channel.transforms.is_empty()
        || rule.is_some();
    let tree: Option<serde_json::Value> = match needs_tree {
        true => Some(
            serde_json::from_str(data.as_str()).map_err(|e| Skip::Undecodable(e.to_string()))?,
        ),
        false => None,
    };
    // Routing is decided on the record as consumed: transforms shape what is delivered.
    let key = key(channel, record, tree.as_ref(), decoded).map_err(Skip::NoKey)?;
    let scope: Option<Arc<str>> = match rule {
        None => None,
        Some(rule) => Some(
            tree.as_ref()
                .and_then(|value| protocol::key_at_pointer(value, &rule.pointer))
                .ok_or_else(|| {
                    Skip::NotEntitled(format!("no string or number at `{}`", rule.pointer))
                })?
                .into(),
        ),
    };
    let (transformed, tree) = match tree {
        Some(tree) if !channel.transforms.is_empty() && record.value.is_some() => {
            let input = Input {
                key: key.as_deref(),
                headers: record.headers,
            };
            let value = channel
                .transforms
                .apply(tree, &input)
                .ok_or(Skip::Filtered)?;
            (Some(value.to_string()), Some(value))
        }
        tree => (None, tree),
    };
    let data = transformed.as_deref().unwrap_or(data.as_str());
    let delivery = Delivery::new(Parts {
        channel: channel.id,
        prefix: &channel.prefix,
        key: key.as_deref(),
        data,
        partition: record.partition,
        offset: record.offset,
        timestamp: record.timestamp,
        headers: record.headers,
        schema_id,
        value: tree,
    });
    Ok(Encoded {
        key,
        held: Held {
            record: Arc::new(delivery),
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp.unwrap_or_default(),
            scope,
        },
        tombstone: record.value.is_none(),
    })
}

/// The routing key. `Ok(None)` where no key is needed; `Err` where one is needed and absent
/// (by-key channels).
fn key<'r>(
    channel: &Channel,
    record: &Record<'r>,
    tree: Option<&serde_json::Value>,
    decoded: &'r Decoded,
) -> Result<Option<Cow<'r, str>>, String> {
    let key = match &channel.spec.key {
        None => None,
        Some(KeySource::RecordKey { format }) if decode::key_uses_registry(*format) => {
            match &decoded.key {
                Some(Ok(key)) => Some(Cow::Borrowed(key.as_str())),
                _ => None,
            }
        }
        Some(KeySource::RecordKey { .. }) => match record.key {
            Some(bytes) => Some(Cow::Borrowed(
                std::str::from_utf8(bytes).map_err(|_| "the record key is not UTF-8")?,
            )),
            None => None,
        },
        Some(KeySource::Header { name }) => match record.header(name) {
            Some(bytes) => Some(Cow::Borrowed(
                std::str::from_utf8(bytes).map_err(|_| format!("header `{name}` is not UTF-8"))?,
            )),
            None => None,
        },
        Some(KeySource::Value { pointer }) => tree
            .and_then(|value| protocol::key_at_pointer(value, pointer))
            .map(Cow::Owned),
    };
    if key.is_none() && channel.deliver() == Deliver::ByKey {
        let source = match &channel.spec.key {
            Some(KeySource::Header { name }) => format!("no header `{name}`"),
            Some(KeySource::Value { pointer }) => {
                format!("no string or number at `{pointer}` in the value")
            }
            _ => "the record has no key".to_owned(),
        };
        return Err(source);
    }
    Ok(key)
}

fn utf8(bytes: Option<&[u8]>) -> Option<&str> {
    bytes.and_then(|b| std::str::from_utf8(b).ok())
}
