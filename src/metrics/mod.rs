//! Every Prometheus metric of the daemon, defined once. Names follow
//! `kafka_ws_bridge_<name>_<unit>[_total]`; labels come only from the config (channel, topic,
//! partition) or from closed sets (reason, code, result), never from users, keys or addresses.
//! Hot paths resolve their labelled handles once ([`ChannelMetrics`]) and only increment them.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

mod labels;

use labels::ERROR_CODES;
pub(crate) use labels::{
    CloseReason, DropReason, HttpResult, JwksFetch, RegistryRequest, RejectReason,
    SessionRegistryRecord, Transport,
};
pub use labels::{PublishResult, ReplaySource};

const NAMESPACE: &str = "kafka_ws_bridge";

/// Latency buckets in seconds, from 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The registry and every metric in it.
pub struct Metrics {
    pub registry: Registry,
    pub build_info: IntGaugeVec,
    pub sessions_open: IntGaugeVec,
    pub connections_accepted: IntCounter,
    pub connections_rejected: IntCounterVec,
    pub sessions_closed: IntCounterVec,
    pub subscriptions: IntGaugeVec,
    pub records_consumed: IntCounterVec,
    pub messages_delivered: IntCounterVec,
    pub bytes_sent: IntCounter,
    pub socket_writes: IntCounter,
    pub inflated_messages: IntCounter,
    pub messages_dropped: IntCounterVec,
    pub client_errors: IntCounterVec,
    pub publishes: IntCounterVec,
    pub publish_latency: HistogramVec,
    pub delivery_latency: HistogramVec,
    pub consumer_lag: IntGaugeVec,
    pub kafka_brokers_up: IntGauge,
    pub rebalances: IntCounter,
    pub assigned_partitions: IntGauge,
    pub ready: IntGauge,
    pub state_keys: IntGaugeVec,
    pub state_bytes: IntGaugeVec,
    pub state_evicted_keys: IntCounterVec,
    pub replayed: IntCounterVec,
    pub replay_gaps: IntCounterVec,
    pub snapshots_loaded: IntGauge,
    pub http_publishes: IntCounterVec,
    /// Fetches of the identity provider's key set, by result (`ok`, `failed`).
    pub jwks_fetches: IntCounterVec,
    pub jwks_keys: IntGauge,
    /// Requests to the schema registry, by result (`ok`, `not_found`, `error`, `timeout`).
    pub schema_registry_requests: IntCounterVec,
    pub schemas_cached: IntGauge,
    /// Records read from `auth.session_registry`'s topic, by result (`opened`, `closed`,
    /// `ignored`).
    pub session_registry_records: IntCounterVec,
    /// Records this instance failed to write to `auth.session_registry`'s topic.
    pub session_registry_write_failures: IntCounter,
}

/// The schema registry client's handles.
#[derive(Clone)]
pub struct RegistryMetrics {
    /// By result: `ok`, `not_found`, `error`, `timeout` (each attempt counts, retries too).
    pub requests: IntCounterVec,
    pub cached: IntGauge,
}

/// Handles for one channel, resolved once so the delivery path only increments.
#[derive(Clone)]
pub struct ChannelMetrics {
    pub delivered: IntCounter,
    pub dropped_undecodable: IntCounter,
    pub dropped_no_key: IntCounter,
    pub dropped_queue_full: IntCounter,
    pub dropped_undeliverable: IntCounter,
    pub dropped_redelivered: IntCounter,
    pub dropped_filtered: IntCounter,
    pub dropped_not_entitled: IntCounter,
    pub dropped_conflated: IntCounter,
    pub subscriptions: IntGauge,
    pub delivery_latency: Histogram,
    pub state_keys: IntGauge,
    pub state_bytes: IntGauge,
    pub state_evicted_keys: IntCounter,
    pub replayed_memory: IntCounter,
    pub replayed_kafka: IntCounter,
    pub replay_gaps: IntCounter,
}

fn name(short: &str) -> String {
    format!("{NAMESPACE}_{short}")
}

impl Metrics {
    /// Creates every metric, pre-creating label values known from the config so that
    /// dashboards see zeros rather than gaps.
    pub fn new(channels: &[&str], topics: &[&str], inbound: &[&str]) -> Self {
        let registry = Registry::new();
        macro_rules! register {
            ($metric:expr) => {{
                let metric = $metric.expect("metric definition is valid");
                registry
                    .register(Box::new(metric.clone()))
                    .expect("metric names are unique");
                metric
            }};
        }
        let build_info = register!(IntGaugeVec::new(
            Opts::new(name("build_info"), "Always 1; labels carry the version."),
            &["version"]
        ));
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let metrics = Metrics {
            build_info,
            sessions_open: register!(IntGaugeVec::new(
                Opts::new(
                    name("sessions_open"),
                    "Sessions currently open, by transport: websocket (the JSON protocol), stomp, sse (Server-Sent Events streams)."
                ),
                &["transport"]
            )),
            connections_accepted: register!(IntCounter::new(
                name("connections_accepted_total"),
                "WebSocket handshakes and Server-Sent Events streams accepted."
            )),
            connections_rejected: register!(IntCounterVec::new(
                Opts::new(
                    name("connections_rejected_total"),
                    "WebSocket handshakes refused, by reason."
                ),
                &["reason"]
            )),
            sessions_closed: register!(IntCounterVec::new(
                Opts::new(
                    name("sessions_closed_total"),
                    "Sessions ended, by transport and reason."
                ),
                &["transport", "reason"]
            )),
            subscriptions: register!(IntGaugeVec::new(
                Opts::new(name("subscriptions"), "Active subscriptions, by channel."),
                &["channel"]
            )),
            records_consumed: register!(IntCounterVec::new(
                Opts::new(
                    name("records_consumed_total"),
                    "Kafka records read by the outbound consumer, by topic."
                ),
                &["topic"]
            )),
            messages_delivered: register!(IntCounterVec::new(
                Opts::new(
                    name("messages_delivered_total"),
                    "Message frames queued to sessions, by channel (one per receiving session)."
                ),
                &["channel"]
            )),
            bytes_sent: register!(IntCounter::new(
                name("sent_bytes_total"),
                "Payload bytes of all frames written to sessions, as sent: compressed where permessage-deflate applied."
            )),
            socket_writes: register!(IntCounter::new(
                name("socket_writes_total"),
                "Batches of frames written to sessions' connections (WebSocket: one vectored write each, unless the kernel takes less; SSE: one stream chunk per event). messages_delivered_total / this = frames per write."
            )),
            inflated_messages: register!(IntCounter::new(
                name("inflated_messages_total"),
                "Client messages that arrived compressed (permessage-deflate) and were inflated."
            )),
            messages_dropped: register!(IntCounterVec::new(
                Opts::new(
                    name("messages_dropped_total"),
                    "Records or messages not delivered, by channel and reason."
                ),
                &["channel", "reason"]
            )),
            client_errors: register!(IntCounterVec::new(
                Opts::new(
                    name("client_errors_total"),
                    "Error frames sent to clients, by code."
                ),
                &["code"]
            )),
            publishes: register!(IntCounterVec::new(
                Opts::new(
                    name("publishes_total"),
                    "Inbound publishes answered, by channel and result."
                ),
                &["channel", "result"]
            )),
            publish_latency: register!(HistogramVec::new(
                HistogramOpts::new(
                    name("publish_ack_seconds"),
                    "Time from receiving a publish to answering it (ack or error)."
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["channel"]
            )),
            delivery_latency: register!(HistogramVec::new(
                HistogramOpts::new(
                    name("delivery_latency_seconds"),
                    "Time from a record's Kafka timestamp to its frame being written to a session."
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["channel"]
            )),
            consumer_lag: register!(IntGaugeVec::new(
                Opts::new(
                    name("consumer_lag_messages"),
                    "Records between the consumer's position and the partition's high watermark."
                ),
                &["topic", "partition"]
            )),
            kafka_brokers_up: register!(IntGauge::new(
                name("kafka_brokers_up"),
                "Kafka brokers the client currently has a connection to."
            )),
            rebalances: register!(IntCounter::new(
                name("consumer_rebalances_total"),
                "Partition assignments and revocations of the outbound consumer."
            )),
            assigned_partitions: register!(IntGauge::new(
                name("consumer_assigned_partitions"),
                "Partitions currently assigned to the outbound consumer."
            )),
            ready: register!(IntGauge::new(
                name("ready"),
                "1 when /readyz answers 200, else 0."
            )),
            state_keys: register!(IntGaugeVec::new(
                Opts::new(name("state_keys"), "Keys with a snapshot or history held, by channel."),
                &["channel"]
            )),
            state_bytes: register!(IntGaugeVec::new(
                Opts::new(
                    name("state_bytes"),
                    "Bytes of records held for snapshots and history, by channel."
                ),
                &["channel"]
            )),
            state_evicted_keys: register!(IntCounterVec::new(
                Opts::new(
                    name("state_evicted_keys_total"),
                    "Keys dropped from memory by max_keys or max_bytes, by channel."
                ),
                &["channel"]
            )),
            replayed: register!(IntCounterVec::new(
                Opts::new(
                    name("replayed_messages_total"),
                    "Records replayed for resume/history/snapshot requests, by channel and source (memory or kafka)."
                ),
                &["channel", "source"]
            )),
            replay_gaps: register!(IntCounterVec::new(
                Opts::new(
                    name("replay_gaps_total"),
                    "Resume requests answered with gap: true, by channel."
                ),
                &["channel"]
            )),
            jwks_fetches: register!(IntCounterVec::new(
                Opts::new(
                    name("jwks_fetches_total"),
                    "Fetches of the identity provider's signing keys (auth.jwt.jwks_url or discovery), by result (ok, failed)."
                ),
                &["result"]
            )),
            jwks_keys: register!(IntGauge::new(
                name("jwks_keys"),
                "Signing keys from the identity provider currently cached."
            )),
            schema_registry_requests: register!(IntCounterVec::new(
                Opts::new(
                    name("schema_registry_requests_total"),
                    "Requests to the schema registry, by result (ok, not_found, error, timeout); a retry counts again."
                ),
                &["result"]
            )),
            schemas_cached: register!(IntGauge::new(
                name("schemas_cached"),
                "Schemas from the schema registry compiled and cached."
            )),
            http_publishes: register!(IntCounterVec::new(
                Opts::new(
                    name("http_publishes_total"),
                    "Records published through POST /api/v1/publish, by channel and result."
                ),
                &["channel", "result"]
            )),
            session_registry_records: register!(IntCounterVec::new(
                Opts::new(
                    name("session_registry_records_total"),
                    "Records read from the session registry topic (auth.session_registry), by result: opened, closed (a tombstone), ignored (not a bridge's record)."
                ),
                &["result"]
            )),
            session_registry_write_failures: register!(IntCounter::new(
                name("session_registry_write_failures_total"),
                "Opens and closes of this instance's sessions that could not be written to the session registry topic."
            )),
            snapshots_loaded: register!(IntGauge::new(
                name("snapshots_loaded"),
                "1 once every snapshot channel has read its topic up to the high watermarks seen at start."
            )),
            registry,
        };
        for result in JwksFetch::ALL {
            metrics.jwks_fetches.with_label_values(&[result.as_str()]);
        }
        for result in SessionRegistryRecord::ALL {
            metrics
                .session_registry_records
                .with_label_values(&[result.as_str()]);
        }
        for result in RegistryRequest::ALL {
            metrics
                .schema_registry_requests
                .with_label_values(&[result.as_str()]);
        }
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                NAMESPACE,
            );
            metrics
                .registry
                .register(Box::new(process))
                .expect("process collector registers once");
        }
        for channel in channels {
            metrics.channel(channel);
            for result in HttpResult::ALL {
                metrics
                    .http_publishes
                    .with_label_values(&[channel, result.as_str()]);
            }
        }
        for topic in topics {
            metrics.records_consumed.with_label_values(&[topic]);
        }
        for channel in inbound {
            for result in PublishResult::all() {
                metrics
                    .publishes
                    .with_label_values(&[channel, result.as_str()]);
            }
            metrics.publish_latency.with_label_values(&[channel]);
        }
        for reason in RejectReason::ALL {
            metrics
                .connections_rejected
                .with_label_values(&[reason.as_str()]);
        }
        for transport in Transport::ALL {
            metrics
                .sessions_open
                .with_label_values(&[transport.as_str()]);
            for reason in CloseReason::ALL {
                metrics
                    .sessions_closed
                    .with_label_values(&[transport.as_str(), reason.as_str()]);
            }
        }
        for code in ERROR_CODES {
            metrics.client_errors.with_label_values(&[code.as_str()]);
        }
        metrics
    }

    /// The resolved handles of one channel.
    pub fn channel(&self, channel: &str) -> ChannelMetrics {
        let dropped = |reason: DropReason| {
            self.messages_dropped
                .with_label_values(&[channel, reason.as_str()])
        };
        ChannelMetrics {
            delivered: self.messages_delivered.with_label_values(&[channel]),
            dropped_undecodable: dropped(DropReason::Undecodable),
            dropped_no_key: dropped(DropReason::NoKey),
            dropped_queue_full: dropped(DropReason::QueueFull),
            dropped_undeliverable: dropped(DropReason::Undeliverable),
            dropped_redelivered: dropped(DropReason::Redelivered),
            dropped_filtered: dropped(DropReason::Filtered),
            dropped_not_entitled: dropped(DropReason::NotEntitled),
            dropped_conflated: dropped(DropReason::Conflated),
            subscriptions: self.subscriptions.with_label_values(&[channel]),
            delivery_latency: self.delivery_latency.with_label_values(&[channel]),
            state_keys: self.state_keys.with_label_values(&[channel]),
            state_bytes: self.state_bytes.with_label_values(&[channel]),
            state_evicted_keys: self.state_evicted_keys.with_label_values(&[channel]),
            replayed_memory: self
                .replayed
                .with_label_values(&[channel, ReplaySource::Memory.as_str()]),
            replayed_kafka: self
                .replayed
                .with_label_values(&[channel, ReplaySource::Kafka.as_str()]),
            replay_gaps: self.replay_gaps.with_label_values(&[channel]),
        }
    }

    /// The schema registry client's handles.
    pub fn schema_registry(&self) -> RegistryMetrics {
        RegistryMetrics {
            requests: self.schema_registry_requests.clone(),
            cached: self.schemas_cached.clone(),
        }
    }

    pub fn session_opened(&self, transport: Transport) {
        self.sessions_open
            .with_label_values(&[transport.as_str()])
            .inc();
    }

    pub fn session_closed(&self, transport: Transport, reason: CloseReason) {
        self.sessions_open
            .with_label_values(&[transport.as_str()])
            .dec();
        self.sessions_closed
            .with_label_values(&[transport.as_str(), reason.as_str()])
            .inc();
    }

    pub fn rejected(&self, reason: RejectReason) {
        self.connections_rejected
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding of gathered metrics cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_preset_labels_and_names() {
        let metrics = Metrics::new(&["balances"], &["account-balances"], &["commands"]);
        metrics.channel("balances").delivered.inc_by(3);
        let text = metrics.render();
        assert!(text.contains("kafka_ws_bridge_messages_delivered_total{channel=\"balances\"} 3"));
        assert!(
            text.contains("kafka_ws_bridge_records_consumed_total{topic=\"account-balances\"} 0")
        );
        assert!(text.contains(
            "kafka_ws_bridge_publishes_total{channel=\"commands\",result=\"unavailable\"} 0"
        ));
        assert!(text.contains("kafka_ws_bridge_build_info{version="));
        metrics.schema_registry().cached.set(2);
        let text = metrics.render();
        assert!(text.contains("kafka_ws_bridge_schemas_cached 2"));
        assert!(
            text.contains("kafka_ws_bridge_schema_registry_requests_total{result=\"timeout\"} 0")
        );
    }
}
