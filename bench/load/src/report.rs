//! `kwb-load report --dir DIR`: the results (markdown) of a `scripts/bench.sh` run from the JSON
//! files it leaves in DIR (docs/performance.md, "Method", describes each):
//!
//! ```text
//! meta.json  measurements.jsonl  floor.json  plain.json  compression.json  registry.json
//! <peer>/capacity-fanout-r<N>.json  <peer>/capacity-keyed-r<N>.json  <peer>/curve-r<N>.json
//! raw/matched-fanout-r<N>.json  raw/matched-keyed-r<N>.json   the floor at the bridge's rate
//! bridge/curve-keyed-r<N>.json   the bridge keyed at 50 % of its keyed capacity
//! bridge/idle-<sessions>.json  centrifugo/idle-<sessions>.json  bridge/inbound.json
//! multi/multi.json  profiles/*.txt  latency.svg
//! ```
//!
//! peer ∈ bridge, centrifugo, raw (the rounds), bridge-2core, centrifugo-2core, centrifugo-gogc
//! (one round). A figure of several rounds is their median, with the min–max and the spread (the
//! larger distance from the median to either end, in % of the median). A directory of the earlier
//! layout (`bridge/fanout.json`, one round) is rendered as before, by `compare`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::results::{load, ms, thousands};

const PEERS: [(&str, &str); 6] = [
    ("bridge", "kafka-ws-bridge"),
    ("centrifugo", "Centrifugo (tuned)"),
    ("raw", "raw writer (floor)"),
    ("centrifugo-gogc", "Centrifugo, GOGC=200"),
    ("bridge-2core", "kafka-ws-bridge, 2 cores"),
    ("centrifugo-2core", "Centrifugo, 2 cores"),
];

fn name(peer: &str) -> &str {
    PEERS
        .iter()
        .find(|(p, _)| *p == peer)
        .map_or(peer, |(_, n)| n)
}

/// The files `DIR/PEER/PREFIX<N>.json`, by round N.
fn rounds(dir: &Path, peer: &str, prefix: &str) -> Vec<(u32, Value)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join(peer)) else {
        return out;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(n) = file
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".json"))
            .and_then(|r| r.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(v) = load(&e.path()) {
            out.push((n, v));
        }
    }
    out.sort_by_key(|(n, _)| *n);
    out
}

fn f(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn error(v: &Value) -> Option<String> {
    v.get("error").map(|e| {
        let s = e.as_str().map_or_else(|| e.to_string(), str::to_owned);
        s.chars().take(80).collect()
    })
}

/// Median, min, max and spread (% of the median) of some figures.
struct Spread {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

impl Spread {
    fn of(mut xs: Vec<f64>) -> Option<Spread> {
        xs.retain(|x| x.is_finite());
        if xs.is_empty() {
            return None;
        }
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        let median = if n % 2 == 1 {
            xs[n / 2]
        } else {
            (xs[n / 2 - 1] + xs[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: xs[0],
            max: xs[n - 1],
            n,
        })
    }

    fn pct(&self) -> f64 {
        if self.median <= 0.0 {
            return 0.0;
        }
        (self.max - self.median).max(self.median - self.min) / self.median * 100.0
    }
}

fn spread_cells(s: &Option<Spread>, fmt: impl Fn(f64) -> String) -> [String; 3] {
    match s {
        None => ["—".into(), "—".into(), "—".into()],
        Some(s) if s.n == 1 => [
            format!("**{}**", fmt(s.median)),
            "one round".into(),
            "—".into(),
        ],
        Some(s) => [
            format!("**{}**", fmt(s.median)),
            format!("{} – {}", fmt(s.min), fmt(s.max)),
            format!("±{:.1} %", s.pct()),
        ],
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn times(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{r:.2}×"))
}

fn us(x: f64) -> String {
    format!("{x:.2} µs")
}

/// The step of a capacity result at its capacity (the highest offered rate kept up).
fn capacity_step(v: &Value) -> Option<&Value> {
    let c = f(v, "capacity_records_per_sec")?;
    v.get("steps")?.as_array()?.iter().find(|s| {
        f(s, "offered_records_per_sec").is_some_and(|o| (o - c).abs() < 1e-6)
            && s.get("kept_up") == Some(&Value::Bool(true))
    })
}

/// " (the search's ceiling: not reached)" when a capacity is its search's high end, which only
/// says the peer kept up with everything offered.
fn ceiling(v: &Value) -> &'static str {
    match (
        f(v, "capacity_records_per_sec"),
        v.get("search").and_then(|s| f(s, "high")),
    ) {
        (Some(c), Some(h)) if c >= h => " (the search's ceiling: not reached)",
        _ => "",
    }
}

/// The point of a curve result at FRACTION.
fn point(v: &Value, fraction: f64) -> Option<&Value> {
    v.get("points")?
        .as_array()?
        .iter()
        .find(|p| f(p, "fraction").is_some_and(|x| (x - fraction).abs() < 1e-6))
}

struct Run {
    dir: PathBuf,
    meta: Value,
    smoke: bool,
    notes: Vec<String>,
}

impl Run {
    fn status(&self, ok: Option<bool>) -> &'static str {
        match ok {
            _ if self.smoke => "(smoke)",
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a",
        }
    }

    /// Capacities (deliveries/s) of PEER's rounds for SCENARIO; failed rounds become notes.
    fn capacities(&mut self, peer: &str, scenario: &str, key: &str) -> Vec<(u32, f64, Value)> {
        let mut out = Vec::new();
        for (n, v) in rounds(&self.dir, peer, &format!("capacity-{scenario}-r")) {
            match (error(&v), f(&v, key)) {
                (Some(e), _) => self.notes.push(format!(
                    "{} / {scenario} capacity, round {n}: failed: {e}",
                    name(peer)
                )),
                (None, Some(c)) => out.push((n, c, v)),
                (None, None) => {}
            }
        }
        out
    }
}

pub fn build(dir: &Path) -> Result<String, String> {
    let meta = load(&dir.join("meta.json")).unwrap_or(Value::Null);
    if dir.join("bridge").join("fanout.json").exists()
        || dir.join("bridge").join("latency.json").exists()
    {
        // A run of the earlier layout (one round, stepped p99 searches).
        return Ok(format!(
            "# kafka-ws-bridge benchmark — {} (earlier method)\n\n{}",
            meta["date"].as_str().unwrap_or("?"),
            crate::compare::render(dir, &meta)
        ));
    }
    let mut run = Run {
        dir: dir.to_path_buf(),
        smoke: meta["mode"] == "smoke",
        meta,
        notes: Vec::new(),
    };
    Ok(render(&mut run))
}

fn render(run: &mut Run) -> String {
    let mut out = String::new();
    let m = run.meta.clone();
    let fan_sessions = m["method"]["fanout_sessions"].as_u64().unwrap_or(0) as f64;
    let _ = writeln!(
        out,
        "# kafka-ws-bridge benchmark{} — {}\n",
        if run.smoke {
            " (SMOKE: tiny sizes, debug builds; the numbers mean nothing)"
        } else {
            ""
        },
        m["date"].as_str().unwrap_or("?")
    );
    let orders: Vec<String> = m["orders"]
        .as_array()
        .map(|o| {
            o.iter()
                .enumerate()
                .map(|(i, r)| {
                    let names: Vec<&str> = r
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    format!("{}: {}", i + 1, names.join(", "))
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} interleaved round(s) (order per round — {}); steps of {} s warm-up + {} s measured; \
         capacity to a precision of {} (at most {} steps); load average {} before the first \
         measurement (the run refuses to start above {}), {} after; {} s in all. Method: \
         docs/performance.md. Raw results: this directory's JSON files.\n",
        m["rounds"],
        orders.join("; "),
        m["method"]["warm_secs"],
        m["method"]["measure_secs"],
        m["method"]["precision"],
        m["method"]["max_steps"],
        m["loadavg_before"].as_str().unwrap_or("?"),
        m["max_load"],
        m["loadavg_after"].as_str().unwrap_or("?"),
        m["secs"],
    );

    // Capacity.
    let _ = writeln!(
        out,
        "## Capacity: fan-out, {} sessions on one broadcast channel\n\nThe highest offered rate \
         kept up (≥ 99.9 % delivered, the generator on schedule, the backlog drained), in \
         deliveries/s; one core each unless named.\n",
        thousands(fan_sessions)
    );
    let fan = capacity_table(run, &mut out, "fanout", "capacity_deliveries_per_sec");

    // The curve.
    let _ = writeln!(
        out,
        "\n## Latency at 10, 30, 50 and 70 % of each peer's own capacity\n\nEach round's curve \
         is taken at fractions of that round's capacity; latency runs from each record's \
         scheduled send time to the client's read (no coordinated omission). Medians over the \
         rounds, in ms.\n"
    );
    let _ = writeln!(
        out,
        "| Peer | fraction | offered deliveries/s | p50 | p99 | p99.9 | max | delivered | CPU per delivery | frames per write |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut p99_half = std::collections::HashMap::new();
    for (peer, label) in PEERS {
        let curves = rounds(&run.dir, peer, "curve-r");
        if curves.is_empty() {
            continue;
        }
        for (n, v) in &curves {
            if let Some(e) = error(v) {
                run.notes
                    .push(format!("{} / curve, round {n}: failed: {e}", name(peer)));
            }
        }
        for fraction in [0.1, 0.3, 0.5, 0.7] {
            let pts: Vec<&Value> = curves
                .iter()
                .filter_map(|(_, v)| point(v, fraction))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let med = |k: &str| Spread::of(pts.iter().filter_map(|p| f(p, k)).collect());
            let val = |k: &str| med(k).map(|s| s.median);
            if fraction == 0.5 {
                p99_half.insert(peer, val("p99_ms"));
            }
            let _ = writeln!(
                out,
                "| {label} | {:.0} % | {} | {} | **{}** | {} | {} | {} | {} | {} |",
                fraction * 100.0,
                val("offered_deliveries_per_sec").map_or("—".into(), thousands),
                ms(val("p50_ms")),
                ms(val("p99_ms")),
                ms(val("p999_ms")),
                ms(val("max_ms")),
                val("delivered_ratio").map_or("—".into(), |r| format!("{:.2} %", r * 100.0)),
                val("peer_cpu_us_per_delivery").map_or("—".into(), us),
                val("peer_frames_per_write").map_or("—".into(), |x| format!("{x:.1}")),
            );
        }
    }
    let svg = run.dir.join("latency.svg");
    if svg.exists() {
        let base = run
            .dir
            .file_name()
            .map_or(String::new(), |d| format!("{}/", d.to_string_lossy()));
        let _ = writeln!(
            out,
            "\n![p99 against offered deliveries/s, every round of every peer]({base}latency.svg)"
        );
    }

    // CPU per delivery against the floor at the bridge's own rate and batching.
    let _ = writeln!(
        out,
        "\n## CPU per delivery against the raw floor, at the bridge's rate and batching\n\nFan-out: \
         at 50 % of the bridge's capacity of that round, the raw writer writing as many frames \
         per write(2) as the bridge did there. Keyed: at 50 % of the bridge's keyed capacity of \
         that round, the raw writer writing one frame per write to each socket (more only when \
         a socket would block).\n"
    );
    let _ = writeln!(
        out,
        "| Round | fan-out: bridge | raw floor | ratio | keyed: bridge | keyed raw floor | ratio |\n|---|---|---|---|---|---|---|"
    );
    let bridge_curves = rounds(&run.dir, "bridge", "curve-r");
    let bridge_keyed = rounds(&run.dir, "bridge", "curve-keyed-r");
    let matched = rounds(&run.dir, "raw", "matched-fanout-r");
    let matched_keyed = rounds(&run.dir, "raw", "matched-keyed-r");
    let (mut fan_ratios, mut keyed_ratios) = (Vec::new(), Vec::new());
    let mut round_ids: Vec<u32> = bridge_curves.iter().map(|(n, _)| *n).collect();
    round_ids.extend(bridge_keyed.iter().map(|(n, _)| *n));
    round_ids.sort_unstable();
    round_ids.dedup();
    let of =
        |list: &[(u32, Value)], n: u32| list.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
    // CPU per delivery at a point, and whether that point kept up (a point that did not is
    // shown, marked, and left out of the ratios).
    let cpu = |p: Option<&Value>| -> (Option<f64>, bool) {
        let kept = p.is_some_and(|p| p.get("kept_up") != Some(&Value::Bool(false)));
        (p.and_then(|p| f(p, "peer_cpu_us_per_delivery")), kept)
    };
    for n in round_ids {
        let (bc, rc) = (of(&bridge_curves, n), of(&matched, n));
        let (kbc, krc) = (of(&bridge_keyed, n), of(&matched_keyed, n));
        let (b, b_ok) = cpu(bc.as_ref().and_then(|v| point(v, 0.5)));
        let (r, r_ok) = cpu(rc.as_ref().and_then(|v| point(v, 0.5)));
        let (kb, kb_ok) = cpu(kbc.as_ref().and_then(|v| point(v, 0.5)));
        let (kr, kr_ok) = cpu(krc.as_ref().and_then(|v| point(v, 0.5)));
        let fr = ratio(b, r).filter(|_| b_ok && r_ok);
        let kr_ratio = ratio(kb, kr).filter(|_| kb_ok && kr_ok);
        fan_ratios.extend(fr);
        keyed_ratios.extend(kr_ratio);
        let c = |x: Option<f64>, ok: bool| {
            let v = x.map_or("—".into(), us);
            if ok || x.is_none() {
                v
            } else {
                format!("{v} (not kept up)")
            }
        };
        let _ = writeln!(
            out,
            "| {n} | {} | {} | {} | {} | {} | {} |",
            c(b, b_ok),
            c(r, r_ok),
            times(fr),
            c(kb, kb_ok),
            c(kr, kr_ok),
            times(kr_ratio)
        );
    }
    let fan_ratio = Spread::of(fan_ratios);
    let keyed_ratio = Spread::of(keyed_ratios);

    // Keyed.
    let keyed_sessions = m["method"]["keyed_sessions"].as_u64().unwrap_or(0) as f64;
    let _ = writeln!(
        out,
        "\n## Keyed capacity: {} sessions, each on its own key (Centrifugo: its own channel)\n\nIn records/s (each record is one delivery).\n",
        thousands(keyed_sessions)
    );
    let keyed = capacity_table(run, &mut out, "keyed", "capacity_records_per_sec");

    // Idle sessions.
    let mut idle_rows = String::new();
    let mut rss_ok: Option<bool> = None;
    let mut sizes: Vec<u64> = std::fs::read_dir(run.dir.join("bridge"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_prefix("idle-")?.strip_suffix(".json")?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort_unstable();
    for n in sizes {
        let b = load(&run.dir.join(format!("bridge/idle-{n}.json")));
        let c = load(&run.dir.join(format!("centrifugo/idle-{n}.json")));
        let cell = |v: &Option<Value>| -> String {
            match v {
                None => "not run".into(),
                Some(v) => match error(v) {
                    Some(e) => format!("failed: {e}"),
                    None => format!(
                        "**{}** KiB ({} of {} sessions; idle CPU {})",
                        f(v, "rss_per_session_kib").map_or("—".into(), |x| format!("{x:.1}")),
                        f(v, "sessions").map_or("—".into(), thousands),
                        thousands(n as f64),
                        f(v, "idle_cpu_pct").map_or("—".into(), |x| format!("{x:.1} %")),
                    ),
                },
            }
        };
        let rb = b.as_ref().and_then(|v| f(v, "rss_per_session_kib"));
        let rc = c.as_ref().and_then(|v| f(v, "rss_per_session_kib"));
        let r = ratio(rb, rc);
        if let Some(r) = r {
            rss_ok = Some(rss_ok.unwrap_or(true) && r <= 0.5);
        }
        let _ = writeln!(
            idle_rows,
            "| {} | {} | {} | {} |",
            thousands(n as f64),
            cell(&b),
            cell(&c),
            times(r)
        );
    }
    if !idle_rows.is_empty() {
        let _ = writeln!(
            out,
            "\n## Idle sessions: RSS per session (RSS growth ÷ sessions)\n\n| Sessions | kafka-ws-bridge | Centrifugo (tuned) | bridge ÷ Centrifugo |\n|---|---|---|---|\n{idle_rows}"
        );
    }
    if let Some(v) = load(&run.dir.join("multi/multi.json")) {
        let _ = writeln!(
            out,
            "**Several instances** (a demonstration, not a target): {}",
            match error(&v) {
                Some(e) => format!("failed: {e}"),
                None => format!(
                    "{} idle sessions on {} kafka-ws-bridge instances ({} each, own consumer group and port), {} KiB RSS per session; a broadcast of {} records reached {:.2} % of the deliveries, p99 {} ms (worst instance).",
                    f(&v, "sessions").map_or("—".into(), thousands),
                    v["instances"],
                    f(&v, "sessions_per_instance").map_or("—".into(), thousands),
                    f(&v, "rss_per_session_kib").map_or("—".into(), |x| format!("{x:.1}")),
                    v["records"],
                    f(&v, "broadcast_delivered_ratio").unwrap_or(0.0) * 100.0,
                    ms(f(&v, "broadcast_p99_ms_worst")),
                ),
            }
        );
    }

    // Targets.
    let med = |m: &Medians, p: &str| m.get(p).and_then(|s| s.as_ref().map(|s| s.median));
    let fan_ratio_c = ratio(med(&fan, "bridge"), med(&fan, "centrifugo"));
    let bridge_spread = fan.get("bridge").and_then(|s| s.as_ref().map(Spread::pct));
    let keyed_ratio_c = ratio(med(&keyed, "bridge"), med(&keyed, "centrifugo"));
    let p99b = p99_half.get("bridge").copied().flatten();
    let p99c = p99_half.get("centrifugo").copied().flatten();
    let fr = fan_ratio.as_ref().map(|s| s.median);
    let kr = keyed_ratio.as_ref().map(|s| s.median);
    let _ = writeln!(
        out,
        "\n## Against the targets\n\n| Target | Measured | Result |\n|---|---|---|"
    );
    let rows = [
        (
            "fan-out capacity on one core ≥ 3× tuned Centrifugo's (medians)".to_owned(),
            times(fan_ratio_c),
            run.status(fan_ratio_c.map(|r| r >= 3.0)),
        ),
        (
            "the bridge's fan-out capacity rounds within ±15 % of their median".to_owned(),
            bridge_spread.map_or("—".into(), |p| format!("±{p:.1} %")),
            run.status(
                bridge_spread
                    .filter(|_| fan.get("bridge").and_then(|s| s.as_ref()).is_some_and(|s| s.n >= 2))
                    .map(|p| p <= 15.0),
            ),
        ),
        (
            "CPU per delivery at 50 % of capacity ≤ 1.3× the raw floor at the same rate and batching (median of the rounds' ratios)".to_owned(),
            times(fr),
            run.status(fr.map(|r| r <= 1.3)),
        ),
        (
            "p99 at 50 % of each peer's own capacity: the bridge ≤ Centrifugo (medians)".to_owned(),
            format!("{} vs {} ms", ms(p99b), ms(p99c)),
            run.status(match (p99b, p99c) {
                (Some(b), Some(c)) => Some(b <= c),
                _ => None,
            }),
        ),
        (
            "keyed capacity ≥ 3× Centrifugo's (medians)".to_owned(),
            times(keyed_ratio_c),
            run.status(keyed_ratio_c.map(|r| r >= 3.0)),
        ),
        (
            "keyed CPU per delivery ≤ 1.3× the keyed raw floor (median of the rounds' ratios)".to_owned(),
            times(kr),
            run.status(kr.map(|r| r <= 1.3)),
        ),
        (
            "RSS per idle session ≤ ½ of tuned Centrifugo's (every size)".to_owned(),
            if rss_ok.is_some() { "see the idle table".into() } else { "—".into() },
            run.status(rss_ok),
        ),
    ];
    for (t, v, s) in rows {
        let _ = writeln!(out, "| {t} | {v} | {s} |");
    }

    other_tables(run, &mut out);
    steps_table(run, &mut out);
    machine(run, &mut out);
    if !run.notes.is_empty() {
        let _ = writeln!(out, "\n**Failures and notes:**\n");
        for n in &run.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

type Medians = std::collections::HashMap<&'static str, Option<Spread>>;

/// The capacity table of SCENARIO (KEY: the figure), every peer that ran it: each round, the
/// median, min–max and spread, the peer's CPU at its capacity, and the median as a share of
/// the raw floor's. Returns each peer's figures.
fn capacity_table(run: &mut Run, out: &mut String, scenario: &str, key: &str) -> Medians {
    let mut rows = Vec::new();
    let mut all = Medians::new();
    for (peer, label) in PEERS {
        let caps = run.capacities(peer, scenario, key);
        if caps.is_empty() {
            continue;
        }
        let each: Vec<String> = caps
            .iter()
            .map(|(n, c, v)| {
                if *c > 0.0 {
                    format!("r{n}: {}{}", thousands(*c), ceiling(v))
                } else {
                    format!("r{n}: none (no step kept up; left out of the median)")
                }
            })
            .collect();
        let cpu: Vec<String> = caps
            .iter()
            .filter_map(|(_, _, v)| capacity_step(v).and_then(|s| f(s, "peer_cpu_pct")))
            .map(|p| format!("{p:.0} %"))
            .collect();
        rows.push((peer, label, each.join(", "), cpu.join(", ")));
        // A search in which no step kept up measured no capacity: it is not a capacity of 0.
        let measured = caps
            .iter()
            .map(|(_, c, _)| *c)
            .filter(|c| *c > 0.0)
            .collect();
        all.insert(peer, Spread::of(measured));
    }
    let median = |p: &str| all.get(p).and_then(|s| s.as_ref().map(|s| s.median));
    let _ = writeln!(
        out,
        "| Peer | each round | median | min – max | spread | its CPU at capacity | ÷ raw floor |\n|---|---|---|---|---|---|---|"
    );
    for (peer, label, each, cpu) in rows {
        let [med, range, pct] = spread_cells(&all[peer], thousands);
        let share = match ratio(median(peer), median("raw")) {
            Some(r) if peer != "raw" => format!("{:.0} %", r * 100.0),
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {label} | {each} | {med}/s | {range} | {pct} | {cpu} | {share} |"
        );
    }
    all
}

/// Inbound, compression, registry formats, the floor, and the profiles.
fn other_tables(run: &Run, out: &mut String) {
    let dir = &run.dir;
    if let Some(v) = load(&dir.join("bridge/inbound.json")) {
        let plain = load(&dir.join("plain.json"));
        let p = plain.as_ref().and_then(|p| f(p, "acks_per_sec"));
        let _ = writeln!(
            out,
            "\n**Inbound (e):** {}",
            match error(&v) {
                Some(e) => format!("failed: {e}"),
                None => format!(
                    "{} acks/s, p99 {} ms, {} clients × {} publishes in flight; a plain rdkafka producer with the same settings: {} acks/s ({}).",
                    f(&v, "acks_per_sec").map_or("—".into(), thousands),
                    ms(v.get("ack_latency").and_then(|l| f(l, "p99_ms"))),
                    v["clients"],
                    v["window"],
                    p.map_or("—".into(), thousands),
                    ratio(f(&v, "acks_per_sec"), p)
                        .map_or("—".into(), |r| format!("{:.0} % of plain", r * 100.0)),
                ),
            }
        );
    }
    if let Some(v) = load(&dir.join("compression.json")) {
        match error(&v) {
            Some(e) => {
                let _ = writeln!(out, "\n**Compression:** {e}");
            }
            None => {
                let g = |side: &str, k: &str| v.get(side).and_then(|s| f(s, k));
                let _ = writeln!(
                    out,
                    "\n| permessage-deflate: ~1 KiB JSON records to {} sessions at {} records/s (Node `ws` clients) | off | on | on vs off |\n|---|---|---|---|",
                    v["sessions"], v["rate"]
                );
                let _ = writeln!(
                    out,
                    "| bytes on the wire per delivery | {} | {} | {} fewer |",
                    g("off", "sent_bytes_per_delivery").map_or("—".into(), |x| format!("{x:.0}")),
                    g("on", "sent_bytes_per_delivery").map_or("—".into(), |x| format!("{x:.0}")),
                    times(ratio(
                        g("off", "sent_bytes_per_delivery"),
                        g("on", "sent_bytes_per_delivery")
                    ))
                );
                let _ = writeln!(
                    out,
                    "| kafka-ws-bridge CPU per delivery | {} | {} | {} |",
                    g("off", "cpu_us_per_delivery").map_or("—".into(), us),
                    g("on", "cpu_us_per_delivery").map_or("—".into(), us),
                    times(ratio(
                        g("on", "cpu_us_per_delivery"),
                        g("off", "cpu_us_per_delivery")
                    ))
                );
                let _ = writeln!(
                    out,
                    "| RSS per idle session | {} | {} | |",
                    g("off", "rss_kib_per_idle_session")
                        .map_or("—".into(), |x| format!("{x:.1} KiB")),
                    g("on", "rss_kib_per_idle_session")
                        .map_or("—".into(), |x| format!("{x:.1} KiB")),
                );
            }
        }
    }
    if let Some(v) = load(&dir.join("registry.json")) {
        match error(&v) {
            Some(e) => {
                let _ = writeln!(out, "\n**Registry formats:** {e}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "\n| Schema Registry formats: decode + JSON per record (best of {} rounds of {}) | this format | the json path on the same JSON | ratio |\n|---|---|---|---|",
                    v["rounds"], v["n"]
                );
                for k in ["avro", "protobuf"] {
                    let x = &v[k];
                    let _ = writeln!(
                        out,
                        "| {k}: {} bytes → {} bytes of JSON | {} ns | {} ns | {} |",
                        x["payload_bytes"],
                        x["json_bytes"],
                        f(x, "walker_ns").map_or("—".into(), |n| format!("{n:.0}")),
                        f(x, "json_validate_ns").map_or("—".into(), |n| format!("{n:.0}")),
                        times(ratio(f(x, "walker_ns"), f(x, "json_validate_ns")))
                    );
                }
            }
        }
    }
    if let Some(v) = load(&dir.join("floor.json")) {
        let _ = writeln!(
            out,
            "\n**Floor** (plain librdkafka consumer, fetch.wait.max.ms = {}, {} records/s, same producer and broker): p50 {} / p99 {} / p99.9 {} ms.",
            v["fetch_wait_ms"],
            v["rate"],
            ms(f(&v, "p50_ms")),
            ms(f(&v, "p99_ms")),
            ms(f(&v, "p999_ms"))
        );
    }
    let base = dir
        .file_name()
        .map_or(String::new(), |d| format!("{}/", d.to_string_lossy()));
    let profiles: Vec<String> = [
        "bridge-perf.txt",
        "bridge-perf-flat.txt",
        "centrifugo-pprof-top.txt",
    ]
    .iter()
    .filter(|p| dir.join("profiles").join(p).exists())
    .map(|p| format!("[{p}]({base}profiles/{p})"))
    .collect();
    if !profiles.is_empty() {
        let _ = writeln!(
            out,
            "\n**Profiles** at 50 % of the bridge's fan-out capacity (perf, cpu-clock, call graphs; Go pprof CPU profile): {}.",
            profiles.join(", ")
        );
    }
}

/// Every step of every capacity search and curve: what it offered, whether it kept up, and the
/// machine's state (steal, iowait, load) next to the CPU of the peer, the generator and the broker.
fn steps_table(run: &Run, out: &mut String) {
    let mut rows = String::new();
    for (peer, label) in PEERS {
        let dir = run.dir.join(peer);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.ends_with(".json")
                    && (n.starts_with("capacity-")
                        || n.starts_with("curve-")
                        || n.starts_with("matched-"))
            })
            .collect();
        files.sort();
        for file in files {
            let Some(v) = load(&dir.join(&file)) else {
                continue;
            };
            let list = v
                .get("steps")
                .or_else(|| v.get("points"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for s in list {
                let pct = |k: &str| f(&s, k).map_or("—".into(), |x| format!("{x:.0}"));
                let _ = writeln!(
                    rows,
                    "| {label} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} | {} | {} |",
                    file.trim_end_matches(".json"),
                    f(&s, "offered_deliveries_per_sec").map_or("—".into(), thousands),
                    match s.get("kept_up").and_then(Value::as_bool) {
                        Some(true) => "yes".to_owned(),
                        Some(false) => format!("no: {}", s["why"].as_str().unwrap_or("?")),
                        None => "—".into(),
                    },
                    f(&s, "delivered_ratio")
                        .map_or("—".into(), |r| format!("{:.2} %", r * 100.0)),
                    ms(f(&s, "p99_ms")),
                    f(&s, "generator_behind_ms_max").map_or("—".into(), |x| format!("{x:.0} ms")),
                    pct("peer_cpu_pct"),
                    pct("generator_cpu_pct"),
                    pct("broker_cpu_pct"),
                    f(&s, "steal_pct").map_or("—".into(), |x| format!("{x:.1} %")),
                    f(&s, "iowait_pct").map_or("—".into(), |x| format!("{x:.1} %")),
                    f(&s, "loadavg1").map_or("—".into(), |x| format!("{x:.2}")),
                );
            }
        }
    }
    if !rows.is_empty() {
        let _ = writeln!(
            out,
            "\n## Every step: steal and load\n\n<details><summary>Each capacity step and curve point, with the CPU (% of a core) of the peer / the generator / the broker and the machine's steal, iowait and 1-minute load during it</summary>\n\n| Peer | file | offered deliveries/s | kept up | delivered | p99 ms | generator behind (max) | CPU peer / gen / broker | steal | iowait | load |\n|---|---|---|---|---|---|---|---|---|---|---|\n{rows}\n</details>"
        );
    }
}

fn machine(run: &Run, out: &mut String) {
    let m = &run.meta;
    let mach = &m["machine"];
    let _ = writeln!(
        out,
        "\n**Machine:** {} cores ({}), {} GiB RAM, Linux {}; open-file hard limit {}. Pinning: {}.",
        mach["nproc"],
        mach["cpu_model"].as_str().unwrap_or("?"),
        mach["mem_gib"],
        mach["kernel"].as_str().unwrap_or("?"),
        mach["nofile_hard"],
        m["pinning"].as_str().unwrap_or("?")
    );
    if let Some(v) = m["versions"].as_object() {
        let list: Vec<String> = v
            .iter()
            .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("?")))
            .collect();
        let _ = writeln!(out, "\n**Versions:** {}.", list.join(", "));
    }
    if let Some(s) = m["settings"].as_str() {
        let _ = writeln!(out, "\n**Settings:** {s}");
    }
}
