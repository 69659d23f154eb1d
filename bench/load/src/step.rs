//! One measured step of `capacity` and `curve`: records offered at a fixed rate for `warm`
//! (not counted) then `measure` seconds (the window), every delivery counted.
//!
//! What each field means:
//! - `offered_records_per_sec`: the producer's schedule (records/s); `offered_deliveries_per_sec`
//!   the deliveries that implies (× sessions on broadcast, × 1 keyed);
//! - `expected_deliveries`: records actually produced with a scheduled time in the window ×
//!   the sessions each goes to (counted by the producer, not rate × time); `delivered`: those
//!   deliveries that arrived (counted by the sessions, whenever they arrived before the
//!   post-step drain ended); `delivered_ratio` = delivered / expected;
//!   `deliveries_per_sec` = delivered / measure seconds;
//! - latency (`p50_ms` … `max_ms`): receipt time − the record's *scheduled* send time, for the
//!   window's records: generator lag counts as latency (no coordinated omission);
//! - `generator_behind_ms_max`: the producer's largest lateness behind its own schedule (with
//!   `--raw`: the raw writer's own, since it paces itself); `produced` and `records_in_window`
//!   count what it handed over, `queue_full` how often librdkafka refused a record, `unsent`
//!   what it gave up on 10 s after the schedule's end;
//! - `drain_ms`: how long after the window's end its last delivery arrived (the backlog left
//!   at the end of the window; the producer stops at the window's end);
//! - `kept_up`: the step passes (see [`verdict`]); `why` says what failed;
//! - `peer_cpu_pct` (% of one core), `peer_cpu_us_per_delivery` (peer CPU over the window ÷
//!   deliveries received during it, whatever their schedule), `generator_cpu_pct` (the whole
//!   kwb-load process, all threads, % of one core), `broker_cpu_pct`; `steal_pct` and
//!   `iowait_pct`: share of all CPUs' time over the window (/proc/stat); `loadavg1` at the
//!   window's end; `peer_frames_per_write`: Δdelivered / Δsocket writes of the peer's metrics
//!   over the window (null without `--metrics-url`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::deliver::Run;
use crate::metrics;
use crate::pace::{self, ScheduledReport};
use crate::procstat::{loadavg1, now_us, CpuMeter, SysMeter};

/// A step passes only when at least this share of the expected deliveries arrived.
pub const MIN_DELIVERED_RATIO: f64 = 0.999;
/// … the producer was never more than this behind its schedule …
pub const MAX_BEHIND_MS: f64 = 100.0;
/// … and the window's last delivery arrived at most this long after the window's end.
pub const MAX_DRAIN_MS: f64 = 2000.0;

/// Quiet time that ends the drain after a step, and the longest drain.
pub const QUIET: Duration = Duration::from_secs(1);
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

/// The pass criterion: (kept_up, why). `drain_ms` is None when nothing of the window arrived.
pub fn verdict(delivered_ratio: f64, behind_ms: f64, drain_ms: Option<f64>) -> (bool, String) {
    let mut why = Vec::new();
    if delivered_ratio.is_nan() || delivered_ratio < MIN_DELIVERED_RATIO {
        why.push(format!(
            "delivered {:.2} % of expected (< {} %)",
            delivered_ratio * 100.0,
            MIN_DELIVERED_RATIO * 100.0
        ));
    }
    if behind_ms > MAX_BEHIND_MS {
        why.push(format!(
            "generator {behind_ms:.0} ms behind its schedule (> {MAX_BEHIND_MS} ms)"
        ));
    }
    match drain_ms {
        Some(d) if d > MAX_DRAIN_MS => why.push(format!(
            "backlog drained {d:.0} ms after the window (> {MAX_DRAIN_MS} ms)"
        )),
        None => why.push("nothing of the window arrived".into()),
        _ => {}
    }
    (why.is_empty(), why.join("; "))
}

pub struct StepOpts {
    pub warm: Duration,
    pub measure: Duration,
    /// The peer's Prometheus metrics (its frames per write).
    pub metrics_url: Option<String>,
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Sleeps until `at` (µs since the epoch).
async fn until(at: u64) {
    let now = now_us();
    if at > now {
        tokio::time::sleep(Duration::from_micros(at - now)).await;
    }
}

/// One step at `rate` records/s; drains afterwards (until nothing arrived for [`QUIET`]).
/// `settled` in the result is false when deliveries were still arriving at [`DRAIN_DEADLINE`].
pub async fn measure(run: &mut Run, rate: f64, o: &StepOpts) -> Value {
    let sh = run.shared.clone();
    let fanout = if run.t.keyed {
        1
    } else {
        run.t.sessions as u64
    };
    sh.hist.borrow_mut().clear();
    sh.in_window.set(0);
    sh.last_win_rx_us.set(0);
    let closes_before = sh.closed_total();
    let errors_before: u64 = sh.errors.borrow().values().sum();
    let t0 = now_us() + o.warm.as_micros() as u64;
    let t1 = t0 + o.measure.as_micros() as u64;
    sh.win_start.set(t0);
    sh.win_end.set(t1);
    let dur = o.warm + o.measure;
    let (pid, broker_pid) = (run.t.pid, run.t.broker_pid);
    let shm = sh.clone();
    let url = o.metrics_url.clone();
    let meters = async move {
        until(t0).await;
        let m = (
            CpuMeter::start(pid),
            CpuMeter::start(Some(std::process::id())),
            CpuMeter::start(broker_pid),
            SysMeter::start(),
        );
        let received = shm.received.get();
        let before = match &url {
            Some(u) => metrics::counters(u).await,
            None => None,
        };
        until(t1).await;
        let received = shm.received.get() - received;
        let out = (
            m.0.read(),
            m.1.percent(),
            m.2.percent(),
            m.3.read(),
            loadavg1(),
            received,
        );
        let after = match &url {
            Some(u) => metrics::counters(u).await,
            None => None,
        };
        (out, metrics::frames_per_write(before, after))
    };
    let source = async {
        match run.raw.as_mut() {
            None => {
                let pacer = run.pacer.take().expect("the pacer is back between steps");
                match pace::spawn(pacer, rate, dur, (t0, t1)).await {
                    Ok((pacer, report)) => {
                        run.pacer = Some(pacer);
                        Ok((report, Value::Null))
                    }
                    Err(_) => Err("the producer thread died".to_owned()),
                }
            }
            Some(raw) => {
                raw.window(t0, t1).await?;
                raw.set_rate_until(rate, t1).await?;
                until(t1).await;
                raw.set_rate(0.0).await?;
                let stats = raw.stats().await?;
                let report = ScheduledReport {
                    produced: stats["records"].as_u64().unwrap_or(0),
                    in_window: stats["in_window"].as_u64().unwrap_or(0),
                    behind_us_max: stats["behind_us_max"].as_u64().unwrap_or(u64::MAX),
                    queue_full: 0,
                    unsent: 0,
                    secs: dur.as_secs_f64(),
                };
                Ok((report, stats))
            }
        }
    };
    let (source, ((cpu, gen_cpu, broker_cpu, (steal, iowait), load, received), fpw)) =
        tokio::join!(source, meters);
    let settled = run.settle(QUIET, DRAIN_DEADLINE).await;
    let (report, raw_stats, source_error) = match source {
        Ok((r, s)) => (r, s, None),
        Err(e) => (ScheduledReport::default(), Value::Null, Some(e)),
    };
    let expected = report.in_window * fanout;
    let delivered = sh.in_window.get();
    let ratio = if expected > 0 {
        delivered as f64 / expected as f64
    } else {
        0.0
    };
    let last = sh.last_win_rx_us.get();
    let drain_ms = (last > 0).then(|| r2(last.saturating_sub(t1) as f64 / 1000.0));
    let behind_ms = report.behind_us_max as f64 / 1000.0;
    let (mut kept_up, mut why) = verdict(ratio, behind_ms, drain_ms);
    if let Some(e) = &source_error {
        kept_up = false;
        why = format!("{e}; {why}");
    }
    let hist = sh.hist.borrow().clone();
    let ms = |q: f64| r2(hist.quantile(q) as f64 / 1000.0);
    let secs = o.measure.as_secs_f64();
    let mut out = json!({
        "offered_records_per_sec": rate,
        "offered_deliveries_per_sec": rate * fanout as f64,
        "expected_deliveries": expected,
        "delivered": delivered,
        "delivered_ratio": (ratio * 1e5).round() / 1e5,
        "deliveries_per_sec": (delivered as f64 / secs).round(),
        "kept_up": kept_up,
        "why": if kept_up { Value::Null } else { json!(why) },
        "drain_ms": drain_ms,
        "settled": settled,
        "p50_ms": ms(0.5),
        "p90_ms": ms(0.9),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
        "max_ms": ms(1.0),
        "generator_behind_ms_max": r2(behind_ms),
        "produced": report.produced,
        "records_in_window": report.in_window,
        "queue_full": report.queue_full,
        "unsent": report.unsent,
        "peer_cpu_pct": cpu.map(|(c, w)| (c / w.max(1e-9) * 1000.0).round() / 10.0),
        "peer_cpu_us_per_delivery": cpu.filter(|_| received > 0).map(|(c, _)| r2(c * 1e6 / received as f64)),
        "received_during_window": received,
        "generator_cpu_pct": gen_cpu,
        "broker_cpu_pct": broker_cpu,
        "steal_pct": steal,
        "iowait_pct": iowait,
        "loadavg1": load,
        "peer_frames_per_write": fpw,
        "new_closes": sh.closed_total() - closes_before,
        "new_errors": sh.errors.borrow().values().sum::<u64>() - errors_before,
    });
    if !raw_stats.is_null() {
        let writes = raw_stats["writes"].as_f64().unwrap_or(0.0);
        let frames = raw_stats["frames_asked"].as_f64().unwrap_or(0.0);
        out["raw_frames_per_write"] = json!((writes > 0.0).then(|| r2(frames / writes)));
        out["raw_writer"] = raw_stats;
    }
    eprintln!(
        "  {:>9.0} rec/s {:>10.0} deliveries/s offered: delivered {:.4} drain {:?} ms behind {:.1} ms  p50 {} p99 {} ms  peer {}%  gen {}%  {}",
        rate,
        rate * fanout as f64,
        ratio,
        drain_ms,
        behind_ms,
        out["p50_ms"],
        out["p99_ms"],
        out["peer_cpu_pct"],
        out["generator_cpu_pct"],
        if kept_up { "PASS".to_owned() } else { format!("FAIL ({why})") },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_passes_only_on_all_three_counts() {
        assert_eq!(verdict(1.0, 3.0, Some(40.0)), (true, String::new()));
        assert!(verdict(0.999, 100.0, Some(2000.0)).0);
        let (ok, why) = verdict(0.998, 3.0, Some(40.0));
        assert!(!ok && why.contains("delivered"), "{why}");
        let (ok, why) = verdict(1.0, 101.0, Some(40.0));
        assert!(!ok && why.contains("behind"), "{why}");
        let (ok, why) = verdict(1.0, 3.0, Some(2001.0));
        assert!(!ok && why.contains("drained"), "{why}");
        let (ok, why) = verdict(0.0, 3.0, None);
        assert!(!ok && why.contains("nothing"), "{why}");
        assert!(!verdict(f64::NAN, 0.0, Some(0.0)).0);
    }
}
