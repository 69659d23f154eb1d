//! The side-by-side table of `kwb-load report`: kafka-ws-bridge, Centrifugo and the raw writer
//! (the physical floor) from one run's `bridge/`, `centrifugo/`, `raw/` and `multi/` results,
//! each row with the ratio the targets are stated in.

use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

use crate::results::{get, load, ms, num, thousands};

struct Peers {
    bridge: Dir,
    centrifugo: Dir,
    raw: Dir,
}

/// One peer's results by scenario file name.
struct Dir(Vec<(&'static str, Option<Value>)>);

const FILES: [&str; 7] = [
    "fanout", "latency", "sat", "keyed", "idle10k", "idle", "inbound",
];

impl Dir {
    fn read(dir: &Path) -> Dir {
        Dir(FILES
            .iter()
            .map(|f| (*f, load(&dir.join(format!("{f}.json")))))
            .collect())
    }

    fn of(&self, scenario: &str) -> &Option<Value> {
        &self
            .0
            .iter()
            .find(|(s, _)| *s == scenario)
            .expect("a known scenario")
            .1
    }

    fn num(&self, scenario: &str, path: &[&str]) -> Option<f64> {
        num(get(self.of(scenario), path))
    }

    /// The cell text: `f`'s, or why there is none.
    fn cell(&self, scenario: &str, f: impl Fn(&Value) -> Option<String>) -> String {
        match self.of(scenario) {
            None => "not run".into(),
            Some(v) => match v.get("error") {
                Some(e) => {
                    let s: String = e.as_str().unwrap_or("?").chars().take(60).collect();
                    format!("failed: {s}")
                }
                None => f(v).unwrap_or_else(|| "—".into()),
            },
        }
    }
}

/// A figure that describes the scenario (sessions, rate): from whichever peer ran it.
fn any(p: &Peers, scenario: &str, path: &[&str]) -> Option<f64> {
    [&p.bridge, &p.centrifugo, &p.raw]
        .iter()
        .find_map(|d| d.num(scenario, path))
}

fn times(x: Option<f64>) -> String {
    match x {
        Some(r) if r.is_finite() && r > 0.0 => {
            if r >= 10.0 {
                format!("{r:.0}×")
            } else {
                format!("{r:.2}×")
            }
        }
        _ => "—".into(),
    }
}

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn status(ok: Option<bool>, smoke: bool) -> String {
    match (smoke, ok) {
        (true, _) => "(smoke)".into(),
        (_, Some(true)) => "PASS".into(),
        (_, Some(false)) => "MISS".into(),
        (_, None) => "n/a".into(),
    }
}

fn f64_at(v: &Value, path: &[&str]) -> Option<f64> {
    let mut v = v;
    for p in path {
        v = v.get(*p)?;
    }
    v.as_f64()
}

/// The CPU of every process at a stepped scenario's first failing step (what stopped it).
fn failing_step_cpu(v: &Value) -> Option<String> {
    let steps = v["steps"].as_array()?;
    // The step that ended the search (a first attempt that was retried did not).
    let st = steps
        .iter()
        .rev()
        .find(|s| s["pass"] == false && s["retried"] != true)?;
    Some(format!(
        "at the failing {} rec/s: peer {}%, generator {}%, broker {}% of a core",
        thousands(st["records_per_sec"].as_f64()?),
        st["bridge_cpu_pct"]
            .as_f64()
            .map_or("?".into(), |c| format!("{c:.0}")),
        st["generator_cpu_pct"]
            .as_f64()
            .map_or("?".into(), |c| format!("{c:.0}")),
        st["broker_cpu_pct"]
            .as_f64()
            .map_or("?".into(), |c| format!("{c:.0}")),
    ))
}

pub fn render(dir: &Path, meta: &Value) -> String {
    let p = Peers {
        bridge: Dir::read(&dir.join("bridge")),
        centrifugo: Dir::read(&dir.join("centrifugo")),
        raw: Dir::read(&dir.join("raw")),
    };
    let multi = load(&dir.join("multi").join("multi.json"));
    if p.centrifugo.0.iter().all(|(_, v)| v.is_none())
        && p.raw.0.iter().all(|(_, v)| v.is_none())
        && multi.is_none()
    {
        return String::new();
    }
    let smoke = meta["mode"] == "smoke";
    let mut rows: Vec<[String; 8]> = Vec::new();
    let mut row = |cells: [String; 8]| rows.push(cells);

    // a. fan-out ceiling
    let fan = |d: &Dir| {
        d.cell("fanout", |v| {
            let best = f64_at(v, &["best_deliveries_per_sec"])?;
            Some(format!(
                "**{}**/s (p99 {} ms, {}% of its core)",
                thousands(best),
                ms(f64_at(v, &["best", "p99_ms"])),
                f64_at(v, &["best", "bridge_cpu_pct"]).map_or("?".into(), |c| format!("{c:.0}"))
            ))
        })
    };
    let fb = p.bridge.num("fanout", &["best_deliveries_per_sec"]);
    let fc = p.centrifugo.num("fanout", &["best_deliveries_per_sec"]);
    let fr = p.raw.num("fanout", &["best_deliveries_per_sec"]);
    let sessions = any(&p, "fanout", &["sessions"]).unwrap_or(0.0);
    row([
        format!("a. fan-out ceiling: highest passing deliveries/s, {} sessions on one broadcast channel, p99 ≤ 50 ms, each peer on one pinned core", thousands(sessions)),
        fan(&p.bridge),
        fan(&p.centrifugo),
        times(div(fb, fc)),
        fan(&p.raw),
        div(fb, fr).map_or("—".into(), |x| format!("{:.0} % of raw", x * 100.0)),
        "≥ 2× Centrifugo per core".into(),
        status(div(fb, fc).map(|r| r >= 2.0), smoke),
    ]);

    // b. latency at 100k/s
    let lat = |d: &Dir, s: &str| {
        d.cell(s, |v| {
            let l = v.get("latency")?;
            let ratio = f64_at(v, &["delivered_ratio"]).unwrap_or(0.0);
            Some(format!(
                "{} / **{}** / {}{}",
                ms(f64_at(l, &["p50_ms"])),
                ms(f64_at(l, &["p99_ms"])),
                ms(f64_at(l, &["p999_ms"])),
                if ratio < 0.999 {
                    format!(" (only {:.1} % delivered)", ratio * 100.0)
                } else {
                    String::new()
                }
            ))
        })
    };
    let rate = p
        .bridge
        .num("latency", &["offered_deliveries_per_sec"])
        .unwrap_or(0.0);
    let lb = p.bridge.num("latency", &["latency", "p99_ms"]);
    let lc = p.centrifugo.num("latency", &["latency", "p99_ms"]);
    row([
        format!(
            "b. latency at {} deliveries/s, produce → client receipt: p50 / p99 / p99.9 ms",
            thousands(rate)
        ),
        lat(&p.bridge, "latency"),
        lat(&p.centrifugo, "latency"),
        times(div(lc, lb)),
        lat(&p.raw, "latency"),
        "".into(),
        "p99 lower than Centrifugo's".into(),
        status(lb.zip(lc).map(|(b, c)| b < c), smoke),
    ]);

    // c. CPU per delivery, at 100k/s and at saturation
    let cpu = |d: &Dir, s: &str| {
        d.cell(s, |v| {
            let us = f64_at(v, &["bridge_cpu_us_per_delivery"])?;
            let pct = f64_at(v, &["bridge_cpu_pct"]);
            let got = f64_at(v, &["delivered_per_sec"]);
            Some(format!(
                "**{us:.2}** µs ({}% of a core, {}/s delivered)",
                pct.map_or("?".into(), |c| format!("{c:.0}")),
                got.map_or("?".into(), thousands)
            ))
        })
    };
    let ran = |s: &str| {
        [&p.bridge, &p.centrifugo, &p.raw]
            .iter()
            .any(|d| d.of(s).is_some())
    };
    for (s, label, target) in [
        (
            "latency",
            format!(
                "c. CPU per delivery at {} deliveries/s (utime + stime)",
                thousands(rate)
            ),
            "",
        ),
        (
            "sat",
            format!(
                "c. CPU per delivery at saturation: {} deliveries/s offered",
                p.bridge
                    .num("sat", &["offered_deliveries_per_sec"])
                    .map_or("?".into(), thousands)
            ),
            "≤ 1.5× the raw writer",
        ),
    ] {
        if !ran(s) {
            continue;
        }
        let b = p.bridge.num(s, &["bridge_cpu_us_per_delivery"]);
        let c = p.centrifugo.num(s, &["bridge_cpu_us_per_delivery"]);
        let r = p.raw.num(s, &["bridge_cpu_us_per_delivery"]);
        let ok = if target.is_empty() {
            String::new()
        } else {
            status(div(b, r).map(|x| x <= 1.5), smoke)
        };
        row([
            label,
            cpu(&p.bridge, s),
            cpu(&p.centrifugo, s),
            times(div(c, b)),
            cpu(&p.raw, s),
            div(b, r).map_or("—".into(), |x| format!("{x:.2}× raw")),
            target.into(),
            ok,
        ]);
    }

    // d. keyed
    let keyed = |d: &Dir| {
        d.cell("keyed", |v| {
            let best = f64_at(v, &["best_deliveries_per_sec"])?;
            let limit = failing_step_cpu(v)
                .map(|s| format!("; {s}"))
                .unwrap_or_default();
            Some(format!(
                "**{}**/s (p99 {} ms{limit})",
                thousands(best),
                ms(f64_at(v, &["best", "p99_ms"]))
            ))
        })
    };
    let kb = p.bridge.num("keyed", &["best_deliveries_per_sec"]);
    let kc = p.centrifugo.num("keyed", &["best_deliveries_per_sec"]);
    let ksessions = any(&p, "keyed", &["sessions"]).unwrap_or(0.0);
    let klimit = any(&p, "keyed", &["p99_limit_ms"]).unwrap_or(0.0);
    row([
        format!("d. keyed: highest passing records/s, {} sessions each on its own key (Centrifugo: its own channel), p99 ≤ {klimit} ms (floor p99 + 20)", thousands(ksessions)),
        keyed(&p.bridge),
        keyed(&p.centrifugo),
        times(div(kb, kc)),
        "".into(),
        "".into(),
        "≥ 150,000/s".into(),
        status(kb.map(|k| k >= 150_000.0), smoke),
    ]);

    // f. idle
    for s in ["idle10k", "idle"] {
        if p.bridge.of(s).is_none() && p.centrifugo.of(s).is_none() {
            continue;
        }
        let cell = |d: &Dir| {
            d.cell(s, |v| {
                let kib = f64_at(v, &["rss_per_session_kib"])?;
                Some(format!(
                    "**{kib:.1}** KiB ({} sessions)",
                    f64_at(v, &["sessions"]).map_or("?".into(), thousands)
                ))
            })
        };
        let b = p.bridge.num(s, &["rss_per_session_kib"]);
        let c = p.centrifugo.num(s, &["rss_per_session_kib"]);
        let n = any(&p, s, &["sessions_target"]).map_or("?".into(), thousands);
        row([
            format!("f. RSS per idle session at {n} sessions (RSS growth ÷ sessions)"),
            cell(&p.bridge),
            cell(&p.centrifugo),
            times(div(c, b)),
            "".into(),
            "".into(),
            "≤ ½ of Centrifugo's".into(),
            status(div(c, b).map(|r| r >= 2.0), smoke),
        ]);
    }
    let icpu = |d: &Dir| {
        d.cell("idle", |v| {
            f64_at(v, &["idle_cpu_pct"]).map(|c| {
                format!(
                    "{c:.1} % of a core over {} s",
                    f64_at(v, &["hold_secs"]).unwrap_or(0.0)
                )
            })
        })
    };
    row([
        "f. idle CPU, every session connected (keepalive pings included)".into(),
        icpu(&p.bridge),
        icpu(&p.centrifugo),
        times(div(
            p.centrifugo.num("idle", &["idle_cpu_pct"]),
            p.bridge.num("idle", &["idle_cpu_pct"]),
        )),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
    ]);

    // Several instances
    if let Some(m) = &multi {
        let cell = if let Some(e) = m.get("error") {
            format!("failed: {}", e.as_str().unwrap_or("?"))
        } else {
            format!(
                "**{}** sessions on {} instances ({} each), {} KiB RSS per session; a broadcast of {} records reached {:.2} % of deliveries, p99 {} ms (worst instance)",
                f64_at(m, &["sessions"]).map_or("?".into(), thousands),
                m["instances"],
                f64_at(m, &["sessions_per_instance"]).map_or("?".into(), thousands),
                f64_at(m, &["rss_per_session_kib"]).map_or("?".into(), |k| format!("{k:.1}")),
                m["records"],
                f64_at(m, &["broadcast_delivered_ratio"]).unwrap_or(0.0) * 100.0,
                ms(f64_at(m, &["broadcast_p99_ms_worst"])),
            )
        };
        let ok = m.get("error").is_none()
            && f64_at(m, &["sessions"]).unwrap_or(0.0) >= 50_000.0
            && f64_at(m, &["broadcast_delivered_ratio"]).unwrap_or(0.0) >= 0.999;
        row([
            "f. past one process's open-file limit: idle sessions held by several kafka-ws-bridge instances (own consumer group each, own port), one broadcast to all".into(),
            cell,
            "".into(),
            "".into(),
            "".into(),
            "".into(),
            "≥ 50,000 sessions, all reached".into(),
            status(Some(ok), smoke),
        ]);
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Side by side: kafka-ws-bridge, Centrifugo, the raw writer\n"
    );
    let _ = writeln!(
        out,
        "| Scenario | kafka-ws-bridge | Centrifugo | bridge vs Centrifugo | raw writer (floor) | bridge vs raw | Target | Result |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    let _ = writeln!(
        out,
        "\n\"bridge vs Centrifugo\": how many times better kafka-ws-bridge is (more throughput, less latency / CPU / memory; below 1× it loses). Raw writer: the bridge's frames written to the same sockets by a program with no Kafka and no logic (`kwb-load raw-writer`)."
    );
    if let (Some(b), Some(a)) = (
        meta["loadavg_before"].as_str(),
        meta["loadavg_after"].as_str(),
    ) {
        let _ = writeln!(
            out,
            "\n**Load average** (1, 5, 15 min) before the run: {b}; after: {a}."
        );
    }
    let _ = writeln!(out);
    out
}
