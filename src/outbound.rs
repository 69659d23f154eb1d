//! Kafka → WebSocket: turns each consumed record into one `message` frame per channel reading
//! its topic — decoded once, routing key extracted once, encoded once — and hands it to the hub.
//! A record that cannot be decoded or has no key on a `by_key` channel is counted and logged
//! (rate-limited), never retried: the consumer must not stall on one bad record.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;

use crate::config::{ChannelConfig, Deliver, Format, KeySource};
use crate::hub::{ChannelId, Fetched, Hub, Need, Route};
use crate::kafka::{RangeReader, ReadRequest, Record, RecordSink};
use crate::metrics::{ChannelMetrics, Metrics};
use crate::protocol::{self, MessageParts, MessagePrefix};
use crate::state::Held;

/// Header naming the session a reply is for (set by the bridge on inbound records).
pub const SESSION_HEADER: &str = "bridge-session";
/// Header naming the user a reply is for (set by the bridge on inbound records).
pub const USER_HEADER: &str = "bridge-user";

struct ChannelPipe {
    id: ChannelId,
    name: String,
    topic: String,
    format: Format,
    key: Option<KeySource>,
    deliver: Deliver,
    snapshot: bool,
    prefix: MessagePrefix,
    metrics: ChannelMetrics,
    /// Seconds timestamp of the last warning logged for this channel.
    last_warning: AtomicU64,
}

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
}

struct TopicPipes {
    consumed: IntCounter,
    channels: Vec<ChannelId>,
}

pub struct Outbound {
    hub: Arc<Hub>,
    pipes: Vec<ChannelPipe>,
    topics: HashMap<String, TopicPipes>,
}

impl Outbound {
    pub fn new(channels: &[ChannelConfig], hub: Arc<Hub>, metrics: &Metrics) -> Self {
        let mut topics: HashMap<String, TopicPipes> = HashMap::new();
        let mut pipes = Vec::new();
        for (i, channel) in channels.iter().enumerate() {
            let id = i as ChannelId;
            topics
                .entry(channel.topic.clone())
                .or_insert_with(|| TopicPipes {
                    consumed: metrics
                        .records_consumed
                        .with_label_values(&[&channel.topic]),
                    channels: Vec::new(),
                })
                .channels
                .push(id);
            pipes.push(ChannelPipe {
                id,
                name: channel.name.clone(),
                topic: channel.topic.clone(),
                format: channel.format,
                key: channel.key.clone(),
                deliver: channel.deliver,
                snapshot: channel.snapshot,
                prefix: MessagePrefix::new(&channel.name),
                metrics: metrics.channel(&channel.name),
                last_warning: AtomicU64::new(0),
            });
        }
        Outbound { hub, pipes, topics }
    }

    /// Topics the consumer must subscribe to.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.topics.keys().cloned().collect();
        topics.sort();
        topics
    }

    /// Topics read at start to rebuild snapshots.
    pub fn snapshot_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .pipes
            .iter()
            .filter(|p| p.snapshot)
            .map(|p| p.topic.clone())
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// Reads from Kafka what a subscription needs before it can attach, encoded and filtered
    /// to its key, within `limit` records.
    pub async fn fetch(
        &self,
        reader: &RangeReader,
        id: ChannelId,
        key: Option<&str>,
        need: Need,
        limit: usize,
    ) -> Result<Fetched, String> {
        let pipe = &self.pipes[id as usize];
        let request = match need {
            Need::Ranges(missing) => ReadRequest::Ranges(
                missing
                    .iter()
                    .map(|m| (m.partition, m.from, m.until))
                    .collect(),
            ),
            Need::Tails(before) => ReadRequest::Tails(before),
        };
        let read = reader.read(&pipe.topic, request, limit).await?;
        let mut records = Vec::new();
        for owned in &read.records {
            let encoded = owned.with_record(&pipe.topic, |record| match pipe.encode(record) {
                Ok(encoded) if key.is_none() || encoded.key.as_deref() == key => Some(encoded.held),
                _ => None,
            });
            records.extend(encoded);
        }
        pipe.metrics.replayed_kafka.inc_by(records.len() as u64);
        Ok(Fetched {
            records,
            covered: read.covered,
            gap: read.gap,
        })
    }

    /// A sink that rebuilds snapshots (no routing, no history) from records read at start.
    pub fn snapshot_loader(self: &Arc<Self>) -> Arc<dyn RecordSink> {
        Arc::new(SnapshotLoader(self.clone()))
    }
}

impl RecordSink for Outbound {
    fn record(&self, record: &Record<'_>) {
        let Some(topic) = self.topics.get(record.topic) else {
            return;
        };
        topic.consumed.inc();
        for id in &topic.channels {
            self.pipes[*id as usize].route(&self.hub, record);
        }
    }
}

struct SnapshotLoader(Arc<Outbound>);

impl RecordSink for SnapshotLoader {
    fn record(&self, record: &Record<'_>) {
        let outbound = &self.0;
        let Some(topic) = outbound.topics.get(record.topic) else {
            return;
        };
        for id in &topic.channels {
            let pipe = &outbound.pipes[*id as usize];
            if !pipe.snapshot {
                continue;
            }
            if let Ok(Encoded {
                key: Some(key),
                held,
                tombstone,
            }) = pipe.encode(record)
            {
                outbound.hub.load_snapshot(pipe.id, &key, &held, tombstone);
            }
        }
    }
}

impl ChannelPipe {
    fn route(&self, hub: &Hub, record: &Record<'_>) {
        let encoded = match self.encode(record) {
            Ok(encoded) => encoded,
            Err(skip) => {
                let (counter, what, reason) = match &skip {
                    Skip::Undecodable(reason) => (
                        &self.metrics.dropped_undecodable,
                        "record skipped: cannot decode",
                        reason,
                    ),
                    Skip::NoKey(reason) => (
                        &self.metrics.dropped_no_key,
                        "record skipped: no routing key",
                        reason,
                    ),
                };
                counter.inc();
                self.warn(record, what, reason);
                hub.skip(self.id, record.partition, record.offset);
                return;
            }
        };
        let route = match self.deliver {
            Deliver::Reply => Route::Reply {
                session: utf8(record.header(SESSION_HEADER)),
                user: utf8(record.header(USER_HEADER)),
            },
            _ => Route::Key(encoded.key.as_deref()),
        };
        hub.deliver(self.id, route, &encoded.held, encoded.tombstone)
            .wait_for_writers();
    }

    /// Decodes once, extracts the key once, encodes the frame once.
    fn encode<'r>(&self, record: &Record<'r>) -> Result<Encoded<'r>, Skip> {
        let data = protocol::encode_data(self.format, record.value).map_err(Skip::Undecodable)?;
        let key = self.key(record, data.as_str()).map_err(Skip::NoKey)?;
        let (frame, data_range) = protocol::message(
            &self.prefix,
            &MessageParts {
                key: key.as_deref(),
                data: data.as_str(),
                partition: record.partition,
                offset: record.offset,
                timestamp: record.timestamp,
                headers: record.headers,
            },
        );
        Ok(Encoded {
            key,
            held: Held {
                frame,
                partition: record.partition,
                offset: record.offset,
                data: data_range,
                timestamp: record.timestamp.unwrap_or_default(),
            },
            tombstone: record.value.is_none(),
        })
    }

    /// The routing key. `Ok(None)` where no key is needed; `Err` where one is needed and
    /// absent (by-key channels).
    fn key<'r>(&self, record: &Record<'r>, data: &str) -> Result<Option<Cow<'r, str>>, String> {
        let key = match &self.key {
            None => None,
            Some(KeySource::RecordKey) => match record.key {
                Some(bytes) => Some(Cow::Borrowed(
                    std::str::from_utf8(bytes).map_err(|_| "the record key is not UTF-8")?,
                )),
                None => None,
            },
            Some(KeySource::Header { name }) => match record.header(name) {
                Some(bytes) => Some(Cow::Borrowed(
                    std::str::from_utf8(bytes)
                        .map_err(|_| format!("header `{name}` is not UTF-8"))?,
                )),
                None => None,
            },
            Some(KeySource::Value { pointer }) => {
                let value: serde_json::Value =
                    serde_json::from_str(data).map_err(|e| e.to_string())?;
                protocol::key_at_pointer(&value, pointer).map(Cow::Owned)
            }
        };
        if key.is_none() && self.deliver == Deliver::ByKey {
            let source = match &self.key {
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

    /// Logs at most one warning per second per channel.
    fn warn(&self, record: &Record<'_>, what: &str, reason: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.last_warning.swap(now, Ordering::Relaxed) != now {
            tracing::warn!(
                channel = %self.name,
                topic = record.topic,
                partition = record.partition,
                offset = record.offset,
                reason,
                "{what} (further warnings for this channel suppressed for a second; see kafka_ws_bridge_messages_dropped_total)"
            );
        }
    }
}

fn utf8(bytes: Option<&[u8]>) -> Option<&str> {
    bytes.and_then(|b| std::str::from_utf8(b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::SessionHandle;
    use crate::outbox::Outbox;

    fn setup(channels: &str) -> (Arc<Hub>, Outbound, Metrics) {
        let channels: Vec<ChannelConfig> = serde_yaml::from_str(channels).unwrap();
        let metrics = Metrics::new(&[], &[], &[]);
        let hub = Arc::new(Hub::new(&channels, |name| metrics.channel(name)));
        let outbound = Outbound::new(&channels, hub.clone(), &metrics);
        (hub, outbound, metrics)
    }

    fn session(id: u64) -> Arc<SessionHandle> {
        Arc::new(SessionHandle {
            id,
            public_id: format!("s{id}"),
            user: None,
            outbox: Outbox::new(crate::outbox::Bounds {
                messages: 64,
                bytes: usize::MAX,
            }),
        })
    }

    fn ok() -> crate::protocol::Frame {
        crate::protocol::Frame::from("{\"type\":\"subscribed\"}".to_owned())
    }

    /// The message frames queued on a session.
    fn frames(session: &SessionHandle) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        session.outbox.take(&mut out, 100);
        out.iter()
            .map(|o| serde_json::from_str::<serde_json::Value>(o.frame.as_str()).unwrap())
            .filter(|f| f["type"] == "message")
            .collect()
    }

    fn record<'a>(
        topic: &'a str,
        key: Option<&'a [u8]>,
        value: &'a [u8],
        headers: &'a [(&'a str, Option<&'a [u8]>)],
    ) -> Record<'a> {
        // Each record a new offset, as the consumer reads them (one read again is skipped).
        static OFFSET: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        Record {
            topic,
            partition: 1,
            offset: OFFSET.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            timestamp: Some(5),
            key,
            value: Some(value),
            headers,
        }
    }

    #[test]
    fn one_record_feeds_every_channel_of_its_topic() {
        let (hub, outbound, _) =
            setup("[{name: a, topic: t}, {name: b, topic: t, format: text}, {name: c, topic: u}]");
        let (sa, sb, sc) = (session(1), session(2), session(3));
        hub.subscribe(0, None, &sa, ok());
        hub.subscribe(1, None, &sb, ok());
        hub.subscribe(2, None, &sc, ok());
        outbound.record(&record("t", None, b"{\"x\":1}", &[]));
        assert_eq!(frames(&sa)[0]["data"], serde_json::json!({"x": 1}));
        assert_eq!(frames(&sb)[0]["data"], "{\"x\":1}");
        assert!(frames(&sc).is_empty());
        assert_eq!(outbound.topics(), ["t", "u"]);
    }

    #[test]
    fn keys_from_record_header_and_value() {
        let (hub, outbound, _) = setup(
            "[{name: k, topic: t1, deliver: by_key, key: {from: record_key}},
              {name: h, topic: t2, deliver: by_key, key: {from: header, name: cid}},
              {name: v, topic: t3, deliver: by_key, key: {from: value, pointer: /c}}]",
        );
        let s = session(1);
        for channel in 0..3 {
            hub.subscribe(channel, Some("C-1"), &s, ok());
        }
        outbound.record(&record("t1", Some(b"C-1"), b"1", &[]));
        outbound.record(&record("t1", Some(b"C-2"), b"2", &[]));
        outbound.record(&record("t2", None, b"3", &[("cid", Some(b"C-1"))]));
        outbound.record(&record("t3", None, b"{\"c\":\"C-1\"}", &[]));
        outbound.record(&record("t3", None, b"{\"c\":\"C-2\"}", &[]));
        let got: Vec<String> = frames(&s)
            .iter()
            .map(|f| format!("{}:{}", f["channel"], f["key"]))
            .collect();
        assert_eq!(got, ["\"k\":\"C-1\"", "\"h\":\"C-1\"", "\"v\":\"C-1\""]);
    }

    #[test]
    fn bad_records_are_counted_not_fatal() {
        let (hub, outbound, metrics) =
            setup("[{name: j, topic: t, deliver: by_key, key: {from: record_key}}]");
        let s = session(1);
        hub.subscribe(0, Some("k"), &s, ok());
        outbound.record(&record("t", Some(b"k"), b"{not json", &[]));
        outbound.record(&record("t", None, b"{}", &[]));
        outbound.record(&record("t", Some(b"k"), b"{}", &[]));
        assert_eq!(frames(&s).len(), 1);
        let text = metrics.render();
        assert!(
            text.contains(
                "kafka_ws_bridge_messages_dropped_total{channel=\"j\",reason=\"undecodable\"} 1"
            ),
            "{text}"
        );
        assert!(text
            .contains("kafka_ws_bridge_messages_dropped_total{channel=\"j\",reason=\"no_key\"} 1"));
    }
}
