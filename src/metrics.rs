//! Every Prometheus metric of the daemon, defined once. Names follow
//! `kafka_ws_bridge_<name>_<unit>[_total]`; labels come only from the config (channel, topic,
//! partition) or from closed sets (reason, code, result), never from users, keys or addresses.
//! Hot paths resolve their labelled handles once ([`ChannelMetrics`]) and only increment them.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::protocol::ErrorCode;

const NAMESPACE: &str = "kafka_ws_bridge";

/// Latency buckets in seconds, from 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Defines a closed set of label values: an enum whose variants are the only values its label
/// can take, `ALL` to pre-create them, and `as_str` for the label text.
macro_rules! labels {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }
    };
}

labels! {
    /// Why a session ended (label `reason` of `sessions_closed_total`).
    CloseReason {
        /// The client closed the connection or it dropped.
        ClientClosed => "client_closed",
        /// The session did not take its records in time (close code 4001).
        SlowClient => "slow_client",
        /// A newer session of the same user replaced it (4000).
        Replaced => "replaced",
        /// The token expired (4002).
        TokenExpired => "token_expired",
        /// A frame over `max_frame_bytes` (1009).
        FrameTooLarge => "frame_too_large",
        /// A protocol violation such as a binary frame or invalid UTF-8 (1008 / 1007).
        Policy => "policy",
        /// The peer stopped answering pings.
        IdleTimeout => "idle_timeout",
        /// The bridge is shutting down (1001).
        Shutdown => "shutdown",
        /// A transport error.
        Error => "error",
    }
}

labels! {
    /// Why a connection was refused before becoming a session (label `reason`).
    RejectReason {
        Unauthorized => "unauthorized",
        ForbiddenOrigin => "forbidden_origin",
        TooManyConnections => "too_many_connections",
        BadRequest => "bad_request",
        ShuttingDown => "shutting_down",
    }
}

labels! {
    /// Why a record or message was not delivered (label `reason`).
    DropReason {
        /// The record's value does not decode in the channel's format.
        Undecodable => "undecodable",
        /// A `by_key` record without a routing key.
        NoKey => "no_key",
        /// Shed by the slow-client policy, or queued behind a closing session.
        QueueFull => "queue_full",
        /// A reply for a session and user with no subscription here.
        Undeliverable => "undeliverable",
        /// Read again after the consumer went back to its last commit; already routed.
        Redelivered => "redelivered",
    }
}

labels! {
    /// Outcomes of `POST /api/v1/publish` (label `result`). A request for a channel that does
    /// not exist is answered 404 and counted nowhere: the channel label would come from the
    /// caller.
    HttpResult {
        Ok => "ok",
        BadRequest => "bad_request",
        TooLarge => "too_large",
        Unavailable => "unavailable",
        Internal => "internal",
    }
}

impl From<ErrorCode> for HttpResult {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::TooLarge => HttpResult::TooLarge,
            ErrorCode::Unavailable => HttpResult::Unavailable,
            ErrorCode::Internal => HttpResult::Internal,
            ErrorCode::BadRequest
            | ErrorCode::Invalid
            | ErrorCode::Forbidden
            | ErrorCode::RateLimited
            | ErrorCode::UnknownChannel => HttpResult::BadRequest,
        }
    }
}

/// Outcome of an inbound publish (label `result`): `ok` or the error code sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishResult {
    Ok,
    Refused(ErrorCode),
}

impl PublishResult {
    /// Every counted outcome. `unknown_channel` is not one: it has no channel to count on.
    const ALL: [PublishResult; 8] = [
        PublishResult::Ok,
        PublishResult::Refused(ErrorCode::BadRequest),
        PublishResult::Refused(ErrorCode::Forbidden),
        PublishResult::Refused(ErrorCode::Invalid),
        PublishResult::Refused(ErrorCode::TooLarge),
        PublishResult::Refused(ErrorCode::RateLimited),
        PublishResult::Refused(ErrorCode::Unavailable),
        PublishResult::Refused(ErrorCode::Internal),
    ];

    pub fn all() -> impl Iterator<Item = PublishResult> {
        PublishResult::ALL.into_iter()
    }

    /// Position in [`Self::all`]; `unknown_channel` counts as `bad_request` (never reached:
    /// a publish on an unknown channel has no channel to count on).
    pub fn index(self) -> usize {
        PublishResult::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(1)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PublishResult::Ok => "ok",
            PublishResult::Refused(code) => code.as_str(),
        }
    }
}

/// Error codes sent to clients (label `code`).
const ERROR_CODES: [ErrorCode; 8] = [
    ErrorCode::BadRequest,
    ErrorCode::UnknownChannel,
    ErrorCode::Forbidden,
    ErrorCode::TooLarge,
    ErrorCode::RateLimited,
    ErrorCode::Invalid,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
];

/// The registry and every metric in it.
pub struct Metrics {
    pub registry: Registry,
    pub build_info: IntGaugeVec,
    pub sessions_open: IntGauge,
    pub connections_accepted: IntCounter,
    pub connections_rejected: IntCounterVec,
    pub sessions_closed: IntCounterVec,
    pub subscriptions: IntGaugeVec,
    pub records_consumed: IntCounterVec,
    pub messages_delivered: IntCounterVec,
    pub bytes_sent: IntCounter,
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
            sessions_open: register!(IntGauge::new(
                name("sessions_open"),
                "WebSocket sessions currently open."
            )),
            connections_accepted: register!(IntCounter::new(
                name("connections_accepted_total"),
                "WebSocket handshakes accepted."
            )),
            connections_rejected: register!(IntCounterVec::new(
                Opts::new(
                    name("connections_rejected_total"),
                    "WebSocket handshakes refused, by reason."
                ),
                &["reason"]
            )),
            sessions_closed: register!(IntCounterVec::new(
                Opts::new(name("sessions_closed_total"), "Sessions ended, by reason."),
                &["reason"]
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
                "Payload bytes of all frames written to WebSocket sessions."
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
            http_publishes: register!(IntCounterVec::new(
                Opts::new(
                    name("http_publishes_total"),
                    "Records published through POST /api/v1/publish, by channel and result."
                ),
                &["channel", "result"]
            )),
            snapshots_loaded: register!(IntGauge::new(
                name("snapshots_loaded"),
                "1 once every snapshot channel has read its topic up to the high watermarks seen at start."
            )),
            registry,
        };
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
                metrics.publishes.with_label_values(&[channel, result.as_str()]);
            }
            metrics.publish_latency.with_label_values(&[channel]);
        }
        for reason in RejectReason::ALL {
            metrics
                .connections_rejected
                .with_label_values(&[reason.as_str()]);
        }
        for reason in CloseReason::ALL {
            metrics
                .sessions_closed
                .with_label_values(&[reason.as_str()]);
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
            subscriptions: self.subscriptions.with_label_values(&[channel]),
            delivery_latency: self.delivery_latency.with_label_values(&[channel]),
            state_keys: self.state_keys.with_label_values(&[channel]),
            state_bytes: self.state_bytes.with_label_values(&[channel]),
            state_evicted_keys: self.state_evicted_keys.with_label_values(&[channel]),
            replayed_memory: self.replayed.with_label_values(&[channel, "memory"]),
            replayed_kafka: self.replayed.with_label_values(&[channel, "kafka"]),
            replay_gaps: self.replay_gaps.with_label_values(&[channel]),
        }
    }

    pub fn session_closed(&self, reason: CloseReason) {
        self.sessions_closed
            .with_label_values(&[reason.as_str()])
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
    }
}
