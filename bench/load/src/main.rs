//! kwb-load: the load generator and benchmark driver of kafka-ws-bridge (see
//! docs/performance.md). It drives any bridge speaking the protocol subset of the baselines
//! (`--url`), produces to and consumes from Kafka directly for the reference measurements, and
//! prints one JSON object per run on stdout (progress goes to stderr). `scripts/bench.sh` runs
//! it and `kwb-load report` turns the results into the table.
//!
//! Method (capacity.rs, step.rs, pace.rs): `capacity` measures throughput alone — the highest
//! offered rate whose steps deliver ≥ 99.9 % of what they should, keep the generator on its
//! schedule and drain their backlog within 2 s; `curve` measures latency at fixed fractions of
//! that capacity. Every record carries its *scheduled* send time, so latency includes any lag
//! of the generator itself; `plot` draws the curves of several peers.

mod capacity;
mod cli;
mod compare;
mod deliver;
mod hist;
mod idle;
mod inbound;
mod kafka;
mod metrics;
mod pace;
mod plot;
mod procstat;
mod proto;
mod raw;
mod rawconn;
mod report;
mod results;
mod sessions;
mod soak;
mod sse;
mod step;
mod ws;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use cli::{Cli, Cmd, Outbound, Window};
use serde_json::{json, Value};

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
        bind: o.bridge.binds(),
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

fn step_opts(w: &Window) -> step::StepOpts {
    step::StepOpts {
        warm: secs(w.warm),
        measure: secs(w.measure),
        metrics_url: w.metrics_url.clone(),
    }
}

async fn dispatch(cmd: Cmd, out: Option<&std::path::Path>) -> Result<(Value, bool), String> {
    let nofile = procstat::raise_nofile();
    let keyed = matches!(cmd, Cmd::Keyed { .. });
    Ok(match cmd {
        Cmd::Capacity {
            o,
            scenario,
            low,
            high,
            precision,
            w,
            max_steps,
        } => {
            let mut run = deliver::setup(target(&o, scenario == cli::Scenario::Keyed)?).await?;
            let search = capacity::Search {
                low,
                high,
                precision,
                max_steps,
            };
            let v = capacity::capacity(&mut run, scenario.name(), search, &step_opts(&w)).await;
            (v, true)
        }
        Cmd::Curve {
            o,
            scenario,
            capacity,
            fractions,
            w,
        } => {
            let mut run = deliver::setup(target(&o, scenario == cli::Scenario::Keyed)?).await?;
            let v = capacity::curve(
                &mut run,
                scenario.name(),
                capacity,
                fractions,
                &step_opts(&w),
            )
            .await;
            (v, true)
        }
        Cmd::Plot { dir } => {
            let out = out.ok_or("plot: --out FILE.svg is required")?;
            eprintln!("  plot: {}", plot::run(&dir, out)?);
            return Ok((Value::Null, true));
        }
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
                bind: bridge.binds(),
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
                bind: bridge.binds(),
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
                bind: bridge.binds(),
            })
            .await
        }
        Cmd::RawWriter {
            listen,
            channel,
            size,
            frames_per_write,
            max_hold_ms,
            keyed,
        } => (
            raw::serve(raw::RawOpts {
                listen,
                channel,
                size,
                frames_per_write,
                max_hold: Duration::from_millis(max_hold_ms),
                keyed,
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
    let result = local.block_on(&runtime(), dispatch(cli.command, cli.out.as_deref()));
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
