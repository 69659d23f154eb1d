//! kwb-load: the load generator and benchmark driver of kafka-ws-bridge (see
//! docs/performance.md). It drives any bridge speaking the protocol subset of the baselines
//! (`--url`), produces to and consumes from Kafka directly for the reference measurements, and
//! prints one JSON object per run on stdout (progress goes to stderr). `scripts/bench.sh` runs
//! it and `kwb-load report` turns the results into the table.

mod compare;
mod deliver;
mod hist;
mod idle;
mod inbound;
mod kafka;
mod procstat;
mod proto;
mod raw;
mod report;
mod results;
mod soak;
mod sse;
mod ws;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "kwb-load",
    about = "Load generator for kafka-ws-bridge and its baselines"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Also write the JSON result to this file.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct Bridge {
    /// WebSocket URL of the bridge, e.g. ws://127.0.0.1:8080/ws (with `--protocol sse`: the
    /// Server-Sent Events endpoint, e.g. http://127.0.0.1:8080/sse).
    #[arg(long)]
    url: String,
    /// PID of the bridge process (CPU and RSS are read from /proc).
    #[arg(long)]
    pid: Option<u32>,
    /// PID of the broker (its CPU is reported so a broker bottleneck shows).
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Source addresses client sockets bind to, round robin (e.g. 127.0.0.2,127.0.0.3): one
    /// source address gives ~28k ephemeral ports towards one server port.
    #[arg(long, value_delimiter = ',')]
    bind: Vec<IpAddr>,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// The client protocol the peer speaks.
    #[arg(long, value_enum, default_value_t = proto::Protocol::Kwb)]
    protocol: proto::Protocol,
}

#[derive(Args, Clone)]
struct Outbound {
    #[command(flatten)]
    bridge: Bridge,
    #[arg(long)]
    bootstrap: String,
    /// Topic the channel reads (the generator produces to it).
    #[arg(long)]
    topic: String,
    /// Channel the sessions subscribe to.
    #[arg(long)]
    channel: String,
    #[arg(long)]
    sessions: usize,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 140)]
    size: usize,
    /// The peer is `kwb-load raw-writer`: it writes the records itself, paced over its control
    /// connection; nothing is produced to Kafka.
    #[arg(long)]
    raw: bool,
    /// Every produced record carries the header `centrifugo-channels` with this value (the
    /// record's key on keyed load), so Centrifugo's Kafka consumer can route the same records.
    #[arg(long)]
    channels_header: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
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
    /// Scenario a: broadcast fan-out, record rate stepped up until p99 or delivery fails.
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
    /// Scenario d: by_key channel, session i subscribed to key k{i}, stepped rate.
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
    },
    /// Builds the results table (markdown) from a directory of result files.
    Report {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

fn url(s: &str) -> Result<ws::Url, String> {
    ws::Url::parse(s)
}

fn target(o: &Outbound, keyed: bool) -> Result<deliver::Target, String> {
    Ok(deliver::Target {
        url: url(&o.bridge.url)?,
        bootstrap: o.bootstrap.clone(),
        topic: o.topic.clone(),
        channel: o.channel.clone(),
        sessions: o.sessions,
        keyed,
        bind: o.bridge.bind.clone(),
        size: o.size,
        pid: o.bridge.pid,
        broker_pid: o.bridge.broker_pid,
        connect_concurrency: o.bridge.connect_concurrency,
        protocol: o.bridge.protocol,
        raw: o.raw,
        channels_header: o.channels_header.clone(),
    })
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

async fn dispatch(cmd: Cmd) -> Result<(Value, bool), String> {
    let nofile = procstat::raise_nofile();
    let keyed = matches!(cmd, Cmd::Keyed { .. });
    Ok(match cmd {
        Cmd::CreateTopics {
            bootstrap,
            partitions,
            topics,
        } => {
            kafka::create_topics(&bootstrap, &topics, partitions).await?;
            (json!({"created": topics, "partitions": partitions}), true)
        }
        Cmd::Floor {
            bootstrap,
            topic,
            rate,
            warm,
            measure,
            fetch_wait_ms,
            size,
        } => (
            kafka::floor(
                &bootstrap,
                &topic,
                rate,
                secs(warm),
                secs(measure),
                fetch_wait_ms,
                size,
            )
            .await?,
            true,
        ),
        Cmd::Produce {
            bootstrap,
            topic,
            rate,
            duration,
            keys,
            size,
            linger_ms,
            broker_pid,
            channels_header,
        } => {
            let mut pacer = kafka::Pacer::new(&bootstrap, &topic, size, keys)?;
            if let Some(l) = linger_ms {
                pacer = pacer.with_linger(&bootstrap, l)?;
            }
            let mut pacer = pacer.with_channels_header(channels_header);
            let broker = procstat::CpuMeter::start(broker_pid);
            let me = procstat::CpuMeter::start(Some(std::process::id()));
            let report = pacer.run(rate, secs(duration)).await;
            let broker_cpu = broker.percent();
            let my_cpu = me.percent();
            pacer.flush(secs(30));
            use std::sync::atomic::Ordering::Relaxed;
            (
                json!({
                    "produced": report.produced,
                    "rate": rate,
                    "achieved_per_sec": (report.produced as f64 / report.secs).round(),
                    "max_behind": report.max_behind,
                    "queue_full": pacer.queue_full,
                    "delivered": pacer.counts.delivered.load(Relaxed),
                    "failed": pacer.counts.failed.load(Relaxed),
                    "broker_cpu_pct": broker_cpu,
                    "producer_cpu_pct": my_cpu,
                }),
                true,
            )
        }
        Cmd::Fanout {
            o,
            start_rate,
            max_rate,
            p99_ms,
            warm,
            measure,
        }
        | Cmd::Keyed {
            o,
            start_rate,
            max_rate,
            p99_ms,
            warm,
            measure,
        } => {
            let name = if keyed { "keyed" } else { "fanout" };
            let mut run = deliver::setup(target(&o, keyed)?).await?;
            let v = deliver::stepped(
                &mut run,
                name,
                start_rate,
                max_rate,
                p99_ms,
                secs(warm),
                secs(measure),
            )
            .await;
            (v, true)
        }
        Cmd::Latency {
            o,
            rate,
            warm,
            measure,
        } => {
            let mut run = deliver::setup(target(&o, false)?).await?;
            run.settle(Duration::from_millis(300), Duration::from_secs(10))
                .await;
            let mut step = run.step(rate, secs(warm), secs(measure), secs(5)).await;
            step["notes"] = json!(deliver::harness_notes(&step));
            step["scenario"] = json!("latency");
            step["sessions"] = json!(o.sessions);
            step["setup"] = run.setup.clone();
            step["closes"] = deliver::map_json(&run.shared.closes);
            step["errors"] = deliver::map_json(&run.shared.errors);
            eprintln!(
                "  latency at {} deliveries/s: p50 {} p99 {} p99.9 {} ms; bridge {}% cpu, {} µs/delivery",
                step["delivered_per_sec"],
                step["latency"]["p50_ms"],
                step["latency"]["p99_ms"],
                step["latency"]["p999_ms"],
                step["bridge_cpu_pct"],
                step["bridge_cpu_us_per_delivery"]
            );
            (step, true)
        }
        Cmd::Inbound {
            bridge,
            channel,
            clients,
            window,
            warm,
            measure,
            size,
        } => {
            let v = inbound::run(inbound::InboundOpts {
                url: url(&bridge.url)?,
                channel,
                clients,
                window,
                warm: secs(warm),
                measure: secs(measure),
                size,
                pid: bridge.pid,
                broker_pid: bridge.broker_pid,
                bind: bridge.bind,
            })
            .await;
            eprintln!(
                "  inbound: {} acks/s, ack p50 {} p99 {} ms",
                v["acks_per_sec"], v["ack_latency"]["p50_ms"], v["ack_latency"]["p99_ms"]
            );
            (v, true)
        }
        Cmd::PlainProduce {
            bootstrap,
            topic,
            inflight,
            properties,
            warm,
            measure,
            size,
        } => {
            let v = kafka::plain_produce(
                &bootstrap,
                &topic,
                inflight,
                secs(warm),
                secs(measure),
                size,
                &properties,
            )
            .await?;
            eprintln!(
                "  plain producer: {} acks/s, p50 {} p99 {} ms",
                v["acks_per_sec"], v["ack_latency"]["p50_ms"], v["ack_latency"]["p99_ms"]
            );
            (v, true)
        }
        Cmd::Idle {
            bridge,
            channel,
            sessions,
            hold,
            settle,
            connect_timeout,
        } => {
            if bridge.protocol == proto::Protocol::Sse {
                return Err(
                    "idle: --protocol sse is not supported (latency, fanout, keyed are)".into(),
                );
            }
            let mut v = idle::run(idle::IdleOpts {
                url: url(&bridge.url)?,
                channel,
                sessions,
                bind: bridge.bind,
                pid: bridge.pid,
                hold: secs(hold),
                settle: secs(settle),
                connect_concurrency: bridge.connect_concurrency,
                connect_timeout: secs(connect_timeout),
                protocol: bridge.protocol,
            })
            .await;
            v["generator_nofile"] = json!(nofile);
            v["bridge_nofile"] = json!(bridge.pid.and_then(procstat::nofile_of));
            eprintln!(
                "  idle: {} sessions, {} KiB RSS per session, idle CPU {}%",
                v["sessions"], v["rss_per_session_kib"], v["idle_cpu_pct"]
            );
            (v, true)
        }
        Cmd::Soak {
            bridge,
            out_channel,
            in_channel,
            subscribers,
            publishers,
            rate,
            duration,
            drain_timeout,
        } => {
            soak::run(soak::SoakOpts {
                url: url(&bridge.url)?,
                out_channel,
                in_channel,
                subscribers,
                publishers,
                rate,
                duration: secs(duration),
                sub_life_ms: (300, 4000),
                pub_life_ms: (2000, 10000),
                pause_ms: (0, 500),
                long_pause_share: 0.1,
                long_pause_ms: (3000, 6000),
                pid: bridge.pid,
                drain_timeout: secs(drain_timeout),
            })
            .await
        }
        Cmd::RawWriter {
            listen,
            channel,
            size,
        } => (
            raw::serve(raw::RawOpts {
                listen,
                channel,
                size,
            })
            .await?,
            true,
        ),
        Cmd::Report { dir } => {
            let table = report::build(&dir)?;
            print!("{table}");
            return Ok((Value::Null, true));
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&runtime(), dispatch(cli.command));
    match result {
        Ok((Value::Null, ok)) => {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok((v, ok)) => {
            let text = v.to_string();
            println!("{text}");
            if let Some(path) = cli.out {
                if let Err(e) = std::fs::write(&path, format!("{text}\n")) {
                    eprintln!("kwb-load: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("kwb-load: {e}");
            ExitCode::from(2)
        }
    }
}
