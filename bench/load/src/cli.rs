//! The command line of kwb-load (clap derive): common peer/outbound arguments and the
//! subcommands.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::proto;

#[derive(Parser)]
#[command(
    name = "kwb-load",
    about = "Load generator for kafka-ws-bridge and its baselines"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
    /// Also write the JSON result to this file.
    #[arg(long, global = true)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct Bridge {
    /// WebSocket URL of the bridge, e.g. ws://127.0.0.1:8080/ws (with `--protocol sse`: the
    /// Server-Sent Events endpoint, e.g. http://127.0.0.1:8080/sse).
    #[arg(long)]
    pub url: String,
    /// PID of the bridge process (CPU and RSS are read from /proc).
    #[arg(long)]
    pub pid: Option<u32>,
    /// PID of the broker (its CPU is reported so a broker bottleneck shows).
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Source addresses client sockets bind to, round robin (e.g. 127.0.0.2,127.0.0.3): one
    /// source address gives ~28k ephemeral ports towards one server port.
    #[arg(long, value_delimiter = ',')]
    pub bind: Vec<IpAddr>,
    /// First of `--bind-count` consecutive loopback source addresses client sockets are spread
    /// over, round robin (all of 127.0.0.0/8 is local on Linux): sessions then do not run out of
    /// ephemeral ports (EADDRNOTAVAIL) when earlier runs left many in TIME_WAIT. Added to
    /// `--bind`; absent, sockets bind as `--bind` says (or not at all).
    #[arg(long)]
    pub bind_from: Option<Ipv4Addr>,
    /// How many consecutive source addresses `--bind-from` starts.
    #[arg(long, default_value_t = 16)]
    pub bind_count: u32,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// The client protocol the peer speaks.
    #[arg(long, value_enum, default_value_t = proto::Protocol::Kwb)]
    pub protocol: proto::Protocol,
}

impl Bridge {
    /// The source addresses sessions bind to: `--bind`, then the `--bind-from` range.
    pub fn binds(&self) -> Vec<IpAddr> {
        let mut out = self.bind.clone();
        if let Some(from) = self.bind_from {
            out.extend(address_range(from, self.bind_count));
        }
        out
    }
}

/// `count` consecutive IPv4 addresses from `from` (wrapping within the 32-bit space).
pub fn address_range(from: Ipv4Addr, count: u32) -> Vec<IpAddr> {
    let base = u32::from(from);
    (0..count.max(1))
        .map(|i| IpAddr::V4(Ipv4Addr::from(base.wrapping_add(i))))
        .collect()
}

#[derive(Args, Clone)]
pub struct Outbound {
    #[command(flatten)]
    pub bridge: Bridge,
    #[arg(long)]
    pub bootstrap: String,
    /// Topic the channel reads (the generator produces to it).
    #[arg(long)]
    pub topic: String,
    /// Channel the sessions subscribe to.
    #[arg(long)]
    pub channel: String,
    #[arg(long)]
    pub sessions: usize,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 140)]
    pub size: usize,
    /// The peer is `kwb-load raw-writer`: it writes the records itself, paced over its control
    /// connection; nothing is produced to Kafka.
    #[arg(long)]
    pub raw: bool,
    /// Every produced record carries the header `centrifugo-channels` with this value (the
    /// record's key on keyed load), so Centrifugo's Kafka consumer can route the same records.
    #[arg(long)]
    pub channels_header: Option<String>,
}

/// The outbound scenario of `capacity` and `curve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Broadcast channel: every record goes to every session.
    Fanout,
    /// by_key channel: session i subscribed to key `k{i}`, records keyed round robin.
    Keyed,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Keyed => "keyed",
        }
    }
}

/// The step timing of `capacity` and `curve`, and the peer's metrics.
#[derive(Args, Clone)]
pub struct Window {
    /// Seconds of each step before the measured window (not counted).
    #[arg(long, default_value_t = 5)]
    pub warm: u64,
    /// Seconds of each step's measured window.
    #[arg(long, default_value_t = 20)]
    pub measure: u64,
    /// The peer's Prometheus metrics (e.g. http://127.0.0.1:9090/metrics): steps then report
    /// its frames per socket write (`peer_frames_per_write`).
    #[arg(long)]
    pub metrics_url: Option<String>,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Create topics (existing ones are left alone).
    CreateTopics {
        #[arg(long)]
        bootstrap: String,
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        topics: Vec<String>,
    },
    /// Produce → receive latency of a plain librdkafka consumer (the floor).
    Floor {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        /// Records per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 3)]
        warm: u64,
        #[arg(long, default_value_t = 10)]
        measure: u64,
        #[arg(long, default_value_t = 10)]
        fetch_wait_ms: u32,
        #[arg(long, default_value_t = 140)]
        size: usize,
    },
    /// Produce timestamped records at a fixed rate (helper: warm-ups, broker checks).
    Produce {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Key records round robin over k0..k{keys-1}.
        #[arg(long)]
        keys: Option<u64>,
        #[arg(long, default_value_t = 140)]
        size: usize,
        /// librdkafka linger.ms of the load producer.
        #[arg(long)]
        linger_ms: Option<u32>,
        #[arg(long)]
        broker_pid: Option<u32>,
        /// Header `centrifugo-channels` on every record (the key on keyed load).
        #[arg(long)]
        channels_header: Option<String>,
    },
    /// Scenario a: broadcast fan-out, record rate stepped up until p99 or delivery fails (the
    /// older method that mixes capacity and latency; `capacity` and `curve` measure them apart).
    Fanout {
        #[command(flatten)]
        o: Outbound,
        /// First step, records per second.
        #[arg(long, default_value_t = 10.0)]
        start_rate: f64,
        /// Highest step, records per second.
        #[arg(long, default_value_t = 20000.0)]
        max_rate: f64,
        #[arg(long, default_value_t = 50.0)]
        p99_ms: f64,
        #[arg(long, default_value_t = 1)]
        warm: u64,
        #[arg(long, default_value_t = 4)]
        measure: u64,
    },
    /// Capacity as a throughput: the highest offered record rate a step keeps up with
    /// (≥ 99.9 % delivered, generator on schedule, backlog drained within 2 s); latency is
    /// reported per step but does not decide. Doubles from --low up to --high, then bisects.
    Capacity {
        #[command(flatten)]
        o: Outbound,
        #[arg(long, value_enum)]
        scenario: Scenario,
        /// First step, records per second.
        #[arg(long)]
        low: f64,
        /// Highest step, records per second.
        #[arg(long)]
        high: f64,
        /// Stop bisecting when first failing / last passing rate ≤ 1 + precision.
        #[arg(long, default_value_t = 0.1)]
        precision: f64,
        #[command(flatten)]
        w: Window,
        #[arg(long, default_value_t = 8)]
        max_steps: usize,
    },
    /// Latency at fixed fractions of a capacity measured before (one step per fraction).
    Curve {
        #[command(flatten)]
        o: Outbound,
        #[arg(long, value_enum)]
        scenario: Scenario,
        /// The peer's capacity, records per second (`capacity_records_per_sec`).
        #[arg(long)]
        capacity: f64,
        #[arg(long, value_delimiter = ',', default_value = "0.1,0.3,0.5,0.7")]
        fractions: Vec<f64>,
        #[command(flatten)]
        w: Window,
    },
    /// SVG of p99 latency against offered deliveries/s from every *curve*.json under --dir
    /// (one peer per parent directory); written to --out.
    Plot {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Scenarios b and c: latency and bridge CPU per delivery at one fixed rate.
    Latency {
        #[command(flatten)]
        o: Outbound,
        /// Records per second (deliveries/s = rate × sessions).
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 3)]
        warm: u64,
        #[arg(long, default_value_t = 10)]
        measure: u64,
    },
    /// Scenario d: by_key channel, session i subscribed to key k{i}, stepped rate (the older
    /// method, see `fanout`).
    Keyed {
        #[command(flatten)]
        o: Outbound,
        #[arg(long, default_value_t = 5000.0)]
        start_rate: f64,
        #[arg(long, default_value_t = 640000.0)]
        max_rate: f64,
        #[arg(long, default_value_t = 20.0)]
        p99_ms: f64,
        #[arg(long, default_value_t = 1)]
        warm: u64,
        #[arg(long, default_value_t = 4)]
        measure: u64,
    },
    /// Scenario e: clients publishing with a window of publishes in flight.
    Inbound {
        #[command(flatten)]
        bridge: Bridge,
        #[arg(long)]
        channel: String,
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Publishes in flight per client.
        #[arg(long, default_value_t = 16)]
        window: usize,
        #[arg(long, default_value_t = 3)]
        warm: u64,
        #[arg(long, default_value_t = 10)]
        measure: u64,
        #[arg(long, default_value_t = 140)]
        size: usize,
    },
    /// Scenario e's reference: a plain rdkafka FutureProducer with the bridge's settings.
    PlainProduce {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        /// Sends outstanding at any time (clients × window of the inbound run).
        #[arg(long, default_value_t = 1600)]
        inflight: usize,
        /// Extra librdkafka property (name=value), repeatable; overrides the defaults.
        #[arg(long = "property")]
        properties: Vec<String>,
        #[arg(long, default_value_t = 3)]
        warm: u64,
        #[arg(long, default_value_t = 10)]
        measure: u64,
        #[arg(long, default_value_t = 140)]
        size: usize,
    },
    /// Scenario f: idle sessions; RSS per session and idle CPU of the bridge.
    Idle {
        #[command(flatten)]
        bridge: Bridge,
        #[arg(long)]
        channel: String,
        #[arg(long)]
        sessions: usize,
        /// Seconds the CPU is measured with every session connected.
        #[arg(long, default_value_t = 20)]
        hold: u64,
        /// Seconds waited after the last connection before the RSS is read.
        #[arg(long, default_value_t = 5)]
        settle: u64,
        #[arg(long, default_value_t = 180)]
        connect_timeout: u64,
    },
    /// End-to-end soak with connection churn; exits 1 when an acked record was lost.
    Soak {
        #[command(flatten)]
        bridge: Bridge,
        /// Broadcast channel reading the topic the inbound channel writes.
        #[arg(long)]
        out_channel: String,
        #[arg(long)]
        in_channel: String,
        #[arg(long, default_value_t = 20)]
        subscribers: usize,
        #[arg(long, default_value_t = 5)]
        publishers: usize,
        /// Publishes per second per publisher.
        #[arg(long, default_value_t = 40.0)]
        rate: f64,
        /// Seconds of publishing with churn.
        #[arg(long, default_value_t = 120)]
        duration: u64,
        #[arg(long, default_value_t = 60)]
        drain_timeout: u64,
    },
    /// The physical floor: writes the bridge's message frames to every connected WebSocket at
    /// the rate a load generator asks for, with no Kafka and no logic (see raw.rs).
    RawWriter {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value = "fanout")]
        channel: String,
        #[arg(long, default_value_t = 140)]
        size: usize,
        /// Broadcast: frames per socket write (1: one frame per write); set it to the bridge's
        /// frames per write at the same rate to batch exactly as much as it did.
        #[arg(long, default_value_t = 1)]
        frames_per_write: usize,
        /// Broadcast: a partial group of frames is written once its oldest waited this long.
        #[arg(long, default_value_t = 2)]
        max_hold_ms: u64,
        /// Keyed floor: a session subscribing with key `k{i}` gets only the records keyed
        /// `k{i}`, each as one frame in one write (records go round robin over the keys).
        #[arg(long)]
        keyed: bool,
    },
    /// Builds the results table (markdown) from a directory of result files.
    Report {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_ranges_carry_into_the_next_octet() {
        let r = address_range(Ipv4Addr::new(127, 0, 0, 254), 3);
        let want: Vec<IpAddr> = ["127.0.0.254", "127.0.0.255", "127.0.1.0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(r, want);
    }
}
