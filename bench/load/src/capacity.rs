//! `capacity` and `curve`: throughput and latency measured apart.
//!
//! - **capacity** is the highest offered record rate at which a step *keeps up* (step.rs
//!   [`verdict`](crate::step::verdict): ≥ 99.9 % of the window's deliveries arrive, the
//!   generator stays within 100 ms of its schedule, the backlog at the window's end drains
//!   within 2 s). Latency does not enter it. The search starts at `--low`, halves while no
//!   step has passed, doubles while steps pass (up to `--high`), then bisects between the last
//!   passing and the first failing rate until they are within `--precision` of each other or
//!   `--max-steps` steps ran ([`Search`]).
//! - **curve** measures latency at fixed fractions of a capacity measured before, one step per
//!   fraction, lowest first.
//!
//! Between steps the previous step's backlog drains: until nothing arrived for 1 s (at most
//! 60 s; a search stops when that deadline passes).

use serde_json::{json, Value};

use crate::deliver::{map_json, Run};
use crate::step::{self, StepOpts};

/// The rate search of `capacity` (pure: the measurements are its input).
#[derive(Clone, Copy, Debug)]
pub struct Search {
    pub low: f64,
    pub high: f64,
    /// Stop when first failing / last passing ≤ 1 + precision.
    pub precision: f64,
    pub max_steps: usize,
}

impl Search {
    /// The next rate to try after the steps `tried` ((rate, passed), in order); None when done.
    pub fn next(&self, tried: &[(f64, bool)]) -> Option<f64> {
        if tried.len() >= self.max_steps || self.low <= 0.0 {
            return None;
        }
        if tried.is_empty() {
            return Some(self.low.min(self.high));
        }
        let pass = Search::capacity(tried);
        if pass <= 0.0 {
            // Nothing kept up yet (a round that starts at 0.7× the last round's capacity on a
            // machine that got slower, or a noisy first step): halve the lowest rate tried.
            let lowest = tried.iter().map(|t| t.0).fold(f64::INFINITY, f64::min);
            return Some((lowest / 2.0).round());
        }
        let fail = tried
            .iter()
            .filter(|(r, ok)| !ok && *r > pass)
            .map(|(r, _)| *r)
            .fold(f64::INFINITY, f64::min);
        if fail.is_infinite() {
            // Still doubling.
            return (pass < self.high).then(|| (pass * 2.0).min(self.high));
        }
        if fail <= pass * (1.0 + self.precision) + 1e-9 {
            return None;
        }
        Some(((pass + fail) / 2.0).round())
    }

    /// The highest passing rate; 0 when none passed.
    pub fn capacity(tried: &[(f64, bool)]) -> f64 {
        tried
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(r, _)| *r)
            .fold(0.0, f64::max)
    }
}

/// Drains the previous step's backlog; an error when sessions closed or it never got quiet.
async fn ready(run: &Run) -> Result<(), String> {
    if !run.settle(step::QUIET, step::DRAIN_DEADLINE).await {
        return Err(format!(
            "deliveries still arriving after {} s of draining",
            step::DRAIN_DEADLINE.as_secs()
        ));
    }
    if run.alive() < run.t.sessions {
        return Err(format!(
            "{} of {} sessions closed",
            run.t.sessions - run.alive(),
            run.t.sessions
        ));
    }
    Ok(())
}

fn head(command: &str, run: &Run, scenario: &str) -> Value {
    json!({
        "command": command,
        "scenario": scenario,
        "protocol": run.t.protocol.name(),
        "sessions": run.t.sessions,
        "raw": run.t.raw,
        "setup": run.setup.clone(),
    })
}

/// `kwb-load capacity`.
pub async fn capacity(run: &mut Run, scenario: &str, s: Search, o: &StepOpts) -> Value {
    let mut tried = Vec::new();
    let mut steps = Vec::new();
    let mut stopped = None;
    while let Some(rate) = s.next(&tried) {
        if let Err(e) = ready(run).await {
            eprintln!("  capacity: {e}; stopping");
            stopped = Some(e);
            break;
        }
        let st = step::measure(run, rate, o).await;
        tried.push((rate, st["kept_up"].as_bool().unwrap_or(false)));
        steps.push(st);
    }
    let cap = Search::capacity(&tried);
    let fanout = if run.t.keyed {
        1.0
    } else {
        run.t.sessions as f64
    };
    eprintln!(
        "  capacity: {cap} records/s ({} deliveries/s) after {} steps",
        cap * fanout,
        tried.len()
    );
    let mut out = head("capacity", run, scenario);
    out["capacity_records_per_sec"] = json!(cap);
    out["capacity_deliveries_per_sec"] = json!(cap * fanout);
    out["search"] = json!({"low": s.low, "high": s.high, "precision": s.precision,
                           "max_steps": s.max_steps, "stopped": stopped});
    out["warm_secs"] = json!(o.warm.as_secs_f64());
    out["measure_secs"] = json!(o.measure.as_secs_f64());
    out["steps"] = json!(steps);
    out["closes"] = map_json(&run.shared.closes);
    out["errors"] = map_json(&run.shared.errors);
    out
}

/// The fractions of a curve, in increasing order, without duplicates or non-positive ones.
pub fn fractions(mut f: Vec<f64>) -> Vec<f64> {
    f.retain(|x| *x > 0.0 && x.is_finite());
    f.sort_by(|a, b| a.total_cmp(b));
    f.dedup();
    f
}

/// `kwb-load curve`.
pub async fn curve(
    run: &mut Run,
    scenario: &str,
    capacity: f64,
    fr: Vec<f64>,
    o: &StepOpts,
) -> Value {
    let mut points = Vec::new();
    let mut stopped = None;
    for f in fractions(fr) {
        if let Err(e) = ready(run).await {
            eprintln!("  curve: {e}; stopping");
            stopped = Some(e);
            break;
        }
        let st = step::measure(run, capacity * f, o).await;
        let mut p = json!({"fraction": f});
        if let (Some(p), Value::Object(m)) = (p.as_object_mut(), st) {
            p.extend(m);
        }
        points.push(p);
    }
    let mut out = head("curve", run, scenario);
    out["capacity_records_per_sec"] = json!(capacity);
    out["warm_secs"] = json!(o.warm.as_secs_f64());
    out["measure_secs"] = json!(o.measure.as_secs_f64());
    out["stopped"] = json!(stopped);
    out["points"] = json!(points);
    out["closes"] = map_json(&run.shared.closes);
    out["errors"] = map_json(&run.shared.errors);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a peer that keeps up exactly up to `limit`.
    fn simulate(s: Search, limit: f64) -> (Vec<f64>, f64) {
        let mut tried = Vec::new();
        while let Some(r) = s.next(&tried) {
            tried.push((r, r <= limit));
        }
        let rates = tried.iter().map(|t| t.0).collect();
        (rates, Search::capacity(&tried))
    }

    fn search(low: f64, high: f64, max_steps: usize) -> Search {
        Search {
            low,
            high,
            precision: 0.1,
            max_steps,
        }
    }

    #[test]
    fn doubles_then_bisects_until_within_precision() {
        let (rates, cap) = simulate(search(1000.0, 64000.0, 20), 10000.0);
        assert_eq!(
            rates,
            [1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 12000.0, 10000.0, 11000.0]
        );
        assert_eq!(cap, 10000.0);
    }

    #[test]
    fn stops_at_max_steps() {
        let (rates, cap) = simulate(search(1000.0, 64000.0, 6), 10000.0);
        assert_eq!(rates, [1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 12000.0]);
        assert_eq!(cap, 8000.0);
    }

    #[test]
    fn passing_high_ends_the_search_at_high() {
        let (rates, cap) = simulate(search(1000.0, 5000.0, 8), 1e9);
        assert_eq!(rates, [1000.0, 2000.0, 4000.0, 5000.0]);
        assert_eq!(cap, 5000.0);
    }

    #[test]
    fn a_failing_first_step_halves_then_bisects() {
        let (rates, cap) = simulate(search(1000.0, 5000.0, 8), 500.0);
        assert_eq!(rates, [1000.0, 500.0, 750.0, 625.0, 563.0, 532.0]);
        assert_eq!(cap, 500.0);
    }

    #[test]
    fn a_peer_that_keeps_up_with_nothing_gives_zero_after_max_steps() {
        let (rates, cap) = simulate(search(1000.0, 5000.0, 4), 0.0);
        assert_eq!(rates, [1000.0, 500.0, 250.0, 125.0]);
        assert_eq!(cap, 0.0);
    }

    #[test]
    fn a_noisy_failure_below_a_pass_is_not_the_upper_bound() {
        let s = search(1000.0, 64000.0, 20);
        // 2000 failed once, then 4000 passed (a hiccup): keep doubling from 4000.
        let tried = [(1000.0, true), (2000.0, false)];
        assert_eq!(s.next(&tried), Some(1500.0));
        let tried = [
            (1000.0, true),
            (2000.0, false),
            (1500.0, true),
            (4000.0, true),
        ];
        assert_eq!(s.next(&tried), Some(8000.0));
    }

    #[test]
    fn curve_fractions_are_sorted_and_clean() {
        assert_eq!(
            fractions(vec![0.7, 0.1, 0.5, 0.1, -1.0, 0.3]),
            [0.1, 0.3, 0.5, 0.7]
        );
    }
}
