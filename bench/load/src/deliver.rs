//! Outbound scenarios: many sessions subscribed to a channel, records produced to its topic at a
//! paced rate, produce → receipt latency of every delivery.
//!
//! - fan-out (a): broadcast channel; the rate steps up until a step fails;
//! - latency (b, c): one fixed rate, long window, the bridge's CPU per delivery;
//! - keyed (d): by_key channel, session i subscribed to key `k{i}`, records keyed round robin,
//!   rate stepped like fan-out.
//!
//! Everything runs on one current-thread runtime (the generator is pinned to one core); session
//! state is shared through `Rc`/`Cell`. Each session parses frames in place and finds the
//! record's `"ts":` without parsing the JSON; receipt time is taken once per `read`.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::kafka::{PaceReport, Pacer};
use crate::pace;
use crate::procstat::{now_us, CpuMeter};
use crate::proto::Protocol;
use crate::raw::RawControl;
pub use crate::sessions::map_json;
use crate::sessions::{session, Shared};
use crate::ws::Url;

#[derive(Clone)]
pub struct Target {
    pub url: Url,
    pub bootstrap: String,
    pub topic: String,
    pub channel: String,
    pub sessions: usize,
    /// by_key: session i subscribes to key `k{i}` and records are keyed over `sessions` keys.
    pub keyed: bool,
    pub bind: Vec<IpAddr>,
    pub size: usize,
    pub pid: Option<u32>,
    pub broker_pid: Option<u32>,
    pub connect_concurrency: usize,
    pub protocol: Protocol,
    /// Records come from the raw writer at `url` (paced by it, no Kafka) instead of Kafka.
    pub raw: bool,
    /// The `centrifugo-channels` header every produced record carries (see `Pacer`).
    pub channels_header: Option<String>,
}

pub struct Run {
    pub t: Rc<Target>,
    pub shared: Rc<Shared>,
    /// The load producer (taken by a step's producer thread while it runs).
    pub pacer: Option<Pacer>,
    /// Set when the records come from the raw writer (`Target::raw`) rather than Kafka.
    pub raw: Option<RawControl>,
    pub setup: Value,
}

/// Connects every session, subscribes, and waits until each one has received a record.
pub async fn setup(t: Target) -> Result<Run, String> {
    let t = Rc::new(t);
    let shared = Rc::new(Shared::default());
    shared.win_start.set(u64::MAX);
    shared.win_end.set(u64::MAX);
    let gate = Rc::new(Semaphore::new(t.connect_concurrency.max(1)));
    let bufsize = if t.sessions > 2000 { 8 << 10 } else { 64 << 10 };
    let started = Instant::now();
    for i in 0..t.sessions {
        tokio::task::spawn_local(session(i, t.clone(), shared.clone(), gate.clone(), bufsize));
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while shared.subscribed.get() < t.sessions {
        if shared.done.get() > 0 || Instant::now() > deadline {
            return Err(format!(
                "{} of {} sessions subscribed; connect failures {:?}, closes {:?}, errors {:?}",
                shared.subscribed.get(),
                t.sessions,
                shared.connect_failures.borrow(),
                shared.closes.borrow(),
                shared.errors.borrow()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "  {} sessions subscribed in {connect_secs:.1} s",
        t.sessions
    );
    // Probe until every session received something: the bridge's consumer has joined its group
    // and resolved its start offsets, and every route is in place.
    let mut pacer = Pacer::new(
        &t.bootstrap,
        &t.topic,
        t.size,
        t.keyed.then_some(t.sessions as u64),
    )?
    .with_channels_header(t.channels_header.clone());
    let mut raw = if t.raw {
        let mut r = RawControl::connect(t.url.addr).await?;
        if t.keyed {
            // Records go round robin over the sessions' keys; a probe round reaches them all.
            r.keys(t.sessions as u64).await?;
            r.set_rate(t.sessions as f64).await?;
        } else {
            r.set_rate(5.0).await?;
        }
        Some(r)
    } else {
        None
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while shared.probed.get() < t.sessions {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {} sessions received a probe record within 90 s",
                shared.probed.get(),
                t.sessions
            ));
        }
        if shared.done.get() > 0 {
            return Err(format!(
                "sessions closed during the probe: {:?}",
                shared.closes.borrow()
            ));
        }
        let round = if t.keyed { t.sessions } else { 1 };
        for _ in 0..round {
            if raw.is_none() {
                pacer.send_one();
            }
        }
        tokio::time::sleep(Duration::from_millis(if t.keyed { 1000 } else { 200 })).await;
    }
    if let Some(r) = raw.as_mut() {
        r.set_rate(0.0).await?;
    }
    let probe_secs = started.elapsed().as_secs_f64() - connect_secs;
    eprintln!("  every session received a probe after {probe_secs:.1} s");
    let setup = json!({"connect_secs": (connect_secs * 10.0).round() / 10.0,
                       "probe_secs": (probe_secs * 10.0).round() / 10.0});
    Ok(Run {
        t,
        shared,
        pacer: Some(pacer),
        raw,
        setup,
    })
}

impl Run {
    /// Waits until no delivery arrived for `quiet` (at most `max`); true when it got quiet.
    pub async fn settle(&self, quiet: Duration, max: Duration) -> bool {
        let deadline = Instant::now() + max;
        loop {
            let last = self.shared.last_rx_us.get();
            if now_us().saturating_sub(last) >= quiet.as_micros() as u64 {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn alive(&self) -> usize {
        self.t.sessions - self.shared.done.get()
    }

    /// One measured step at `rate` records/s: `warm` unmeasured, then `measure`.
    pub async fn step(
        &mut self,
        rate: f64,
        warm: Duration,
        measure: Duration,
        drain: Duration,
    ) -> Value {
        let sh = self.shared.clone();
        let fanout = if self.t.keyed {
            1
        } else {
            self.t.sessions as u64
        };
        sh.hist.borrow_mut().clear();
        sh.in_window.set(0);
        let closes_before = sh.closed_total();
        let errors_before: u64 = sh.errors.borrow().values().sum();
        let start = now_us();
        let t0 = start + warm.as_micros() as u64;
        let t1 = t0 + measure.as_micros() as u64;
        sh.win_start.set(t0);
        sh.win_end.set(t1);
        let mut pacer = self.pacer.take().expect("the pacer is back between steps");
        let seq_before = pacer.seq;
        pacer.window = (t0, t1);
        pacer.in_window = 0;
        let (pid, broker_pid) = (self.t.pid, self.t.broker_pid);
        let shm = sh.clone();
        let meters = async move {
            tokio::time::sleep(warm).await;
            let m = (
                CpuMeter::start(pid),
                CpuMeter::start(Some(std::process::id())),
                CpuMeter::start(broker_pid),
            );
            let received = shm.received.get();
            tokio::time::sleep(measure).await;
            let received = shm.received.get() - received;
            (
                m.0.read(),
                m.1.percent(),
                m.2.percent(),
                m.0.split(),
                received,
            )
        };
        sh.seq_min.set(u64::MAX);
        sh.seq_max.set(0);
        // The Kafka producer runs on its own thread (pace.rs), records stamped with their
        // scheduled send time.
        let source = async {
            match self.raw.as_mut() {
                None => {
                    let (p, r) = pace::spawn(pacer, rate, warm + measure, (t0, t1))
                        .await
                        .expect("the producer thread returns the pacer");
                    let report = PaceReport {
                        produced: r.produced,
                        secs: r.secs,
                        max_behind: (r.behind_us_max as f64 * rate / 1e6) as u64,
                    };
                    (report, p)
                }
                Some(raw) => (raw.run(rate, warm + measure).await, pacer),
            }
        };
        let ((report, pacer), (bridge_cpu, gen_cpu, broker_cpu, bridge_split, received)) =
            tokio::join!(source, meters);
        if self.raw.is_some() {
            self.settle(Duration::from_millis(300), drain).await;
        }
        let (produced, expected) = if self.raw.is_some() {
            // The writer numbers its records without gaps: the window's are seq_min..seq_max.
            let n = sh
                .seq_max
                .get()
                .saturating_sub(sh.seq_min.get().min(sh.seq_max.get()));
            (n, n * fanout)
        } else {
            (pacer.seq - seq_before, pacer.in_window * fanout)
        };
        self.pacer = Some(pacer);
        let deadline = Instant::now() + drain;
        while sh.in_window.get() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let delivered = sh.in_window.get();
        let hist = sh.hist.borrow().clone();
        let secs = measure.as_secs_f64();
        let p99_ms = hist.quantile(0.99) as f64 / 1000.0;
        let new_closes = sh.closed_total() - closes_before;
        let new_errors: u64 = sh.errors.borrow().values().sum::<u64>() - errors_before;
        let behind_limit = ((rate * 0.05) as u64).max(2);
        let producer_ok = report.max_behind <= behind_limit;
        let mut out = json!({
            "records_per_sec": rate,
            "offered_deliveries_per_sec": (expected as f64 / secs).round(),
            "delivered_per_sec": (delivered as f64 / secs).round(),
            "delivered_ratio": if expected > 0 { (delivered as f64 / expected as f64 * 10000.0).round() / 10000.0 } else { 0.0 },
            "latency": hist.summary_ms(),
            "p99_ms": p99_ms,
            "bridge_cpu_pct": bridge_cpu.map(|(c, w)| (c / w * 1000.0).round() / 10.0),
            "generator_cpu_pct": gen_cpu,
            "broker_cpu_pct": broker_cpu,
            "producer_max_behind": report.max_behind,
            "producer_ok": producer_ok,
            "new_closes": new_closes,
            "new_errors": new_errors,
            "produced": produced,
            "producer_secs": (report.secs * 100.0).round() / 100.0,
        });
        // CPU per delivery: the peer's CPU over the measured seconds divided by the deliveries
        // that arrived in those seconds (whatever their produce time). For a peer that keeps up
        // this is the window's deliveries; for one that falls behind it is still what its CPU
        // bought (it may be cheaper per delivery then, as a backlog batches its writes).
        out["received_during_measure"] = json!(received);
        if let Some((cpu, _)) = bridge_cpu {
            if received > 0 {
                out["bridge_cpu_us_per_delivery"] =
                    json!((cpu * 1e6 / received as f64 * 1000.0).round() / 1000.0);
            }
            out["bridge_cpu_secs"] = json!(cpu);
        }
        if let Some((u, s)) = bridge_split {
            out["bridge_user_secs"] = json!((u * 100.0).round() / 100.0);
            out["bridge_sys_secs"] = json!((s * 100.0).round() / 100.0);
        }
        out
    }
}

/// What was saturated during a step: the bridge's core, or (a harness limit) the generator,
/// the broker, their shared core, or the load producer's schedule.
pub fn harness_notes(step: &Value) -> Vec<String> {
    let mut notes = Vec::new();
    let cpu = step["bridge_cpu_pct"].as_f64().unwrap_or(0.0);
    if cpu >= 95.0 {
        notes.push(format!("bridge saturated ({cpu:.0}% of its core)"));
    }
    let g = step["generator_cpu_pct"].as_f64().unwrap_or(0.0);
    let b = step["broker_cpu_pct"].as_f64().unwrap_or(0.0);
    if g >= 90.0 {
        notes.push(format!("generator saturated ({g:.0}% of its core)"));
    }
    if b >= 90.0 {
        notes.push(format!("broker saturated ({b:.0}% of a core)"));
    }
    if g + b >= 95.0 && g < 90.0 && b < 90.0 {
        notes.push(format!(
            "generator+broker core saturated ({g:.0}% + {b:.0}%)"
        ));
    }
    if !step["producer_ok"].as_bool().unwrap_or(true) {
        notes.push(format!(
            "the load producer fell behind its schedule by {} records (broker or producer bound)",
            step["producer_max_behind"]
        ));
    }
    notes
}

fn step_passes(step: &Value, p99_limit_ms: f64) -> (bool, String) {
    let mut why = Vec::new();
    let p99 = step["p99_ms"].as_f64().unwrap_or(f64::MAX);
    if p99 > p99_limit_ms {
        why.push(format!("p99 {p99:.1} ms > {p99_limit_ms} ms"));
    }
    let ratio = step["delivered_ratio"].as_f64().unwrap_or(0.0);
    if ratio < 0.999 {
        why.push(format!("delivered {:.2} % of expected", ratio * 100.0));
    }
    if step["new_closes"].as_u64().unwrap_or(0) > 0 {
        why.push(format!("{} sessions closed", step["new_closes"]));
    }
    if !step["producer_ok"].as_bool().unwrap_or(true) {
        why.push("producer behind schedule".into());
    }
    (why.is_empty(), why.join("; "))
}

/// Steps the record rate up: doubling from `start` until a step fails, then refining upward
/// from the last passing rate by 2^(1/4) (≈ +19 %) until one fails again. Returns every step
/// and the highest passing one.
#[allow(clippy::too_many_arguments)]
pub async fn stepped(
    run: &mut Run,
    scenario: &str,
    start: f64,
    max: f64,
    p99_limit_ms: f64,
    warm: Duration,
    measure: Duration,
) -> Value {
    let mut steps = Vec::new();
    let mut best: Option<Value> = None;
    let mut rate = start;
    let mut failed_at: Option<f64> = None;
    let mut refining = false;
    let mut refine_base = 0.0;
    let mut refine_i = 0;
    loop {
        if !run
            .settle(Duration::from_millis(300), Duration::from_secs(30))
            .await
        {
            eprintln!("  deliveries still arriving after 30 s of settling; stopping");
            break;
        }
        if run.alive() < run.t.sessions {
            eprintln!(
                "  {} sessions closed; stopping",
                run.t.sessions - run.alive()
            );
            break;
        }
        let mut step = run.step(rate, warm, measure, Duration::from_secs(2)).await;
        let (mut pass, mut why) = step_passes(&step, p99_limit_ms);
        if !pass && run.alive() == run.t.sessions {
            // One retry after settling: a single failing step (a GC pause, a noisy neighbour)
            // must not end the search. Both attempts are kept.
            eprintln!("  {scenario} {rate:>9.0} rec/s failed ({why}); retrying once");
            let mut first = step.clone();
            first["pass"] = json!(false);
            first["why"] = json!(why);
            first["notes"] = json!(harness_notes(&first));
            first["retried"] = json!(true);
            steps.push(first);
            if run
                .settle(Duration::from_millis(300), Duration::from_secs(30))
                .await
            {
                step = run.step(rate, warm, measure, Duration::from_secs(2)).await;
                (pass, why) = step_passes(&step, p99_limit_ms);
            }
        }
        let notes = harness_notes(&step);
        step["pass"] = json!(pass);
        step["why"] = json!(why);
        step["notes"] = json!(notes);
        eprintln!(
            "  {scenario} {:>9.0} rec/s -> {:>9} deliveries/s  p50 {:>6} p99 {:>6} ms  bridge cpu {:>5}%  gen {:>5}%  broker {:>5}%  {}{}",
            rate,
            step["delivered_per_sec"],
            step["latency"]["p50_ms"],
            step["latency"]["p99_ms"],
            step["bridge_cpu_pct"],
            step["generator_cpu_pct"],
            step["broker_cpu_pct"],
            if pass { "PASS".to_owned() } else { format!("FAIL ({why})") },
            if notes.is_empty() { String::new() } else { format!(" [{}]", notes.join("; ")) },
        );
        steps.push(step.clone());
        if pass {
            best = Some(step);
        }
        if !refining {
            if pass {
                if rate * 2.0 > max {
                    break;
                }
                rate *= 2.0;
            } else {
                failed_at = Some(rate);
                if best.is_none() {
                    break;
                }
                refining = true;
                refine_base = rate / 2.0;
                refine_i = 1;
                rate = refine_base * 2f64.powf(0.25);
            }
        } else {
            if !pass {
                break;
            }
            refine_i += 1;
            if refine_i >= 4 {
                break;
            }
            rate = refine_base * 2f64.powf(0.25 * refine_i as f64);
        }
    }
    let mut out = json!({
        "scenario": scenario,
        "sessions": run.t.sessions,
        "p99_limit_ms": p99_limit_ms,
        "setup": run.setup.clone(),
        "steps": steps,
        "first_failing_rate": failed_at,
        "closes": map_json(&run.shared.closes),
        "errors": map_json(&run.shared.errors),
    });
    if let Some(b) = best {
        out["best_deliveries_per_sec"] = b["delivered_per_sec"].clone();
        out["best"] = b;
    } else {
        out["best_deliveries_per_sec"] = json!(0);
    }
    out
}
