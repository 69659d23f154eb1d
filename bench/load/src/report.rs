//! `kwb-load report --dir DIR`: the results table (markdown) from the JSON files a
//! `scripts/bench.sh` run leaves in DIR:
//!
//! ```text
//! meta.json                      machine, versions, mode, settings
//! floor.json  plain.json         plain librdkafka consumer latency / producer throughput
//! <bridge>/<scenario>.json       bridge ∈ {bridge, node, python}; scenario ∈ {fanout,
//!                                latency, keyed, inbound, idle}; {"error": ...} when it failed
//! ```

use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

use crate::results::{get, load, ms, num, thousands};

const BRIDGES: [(&str, &str); 3] = [
    ("bridge", "kafka-ws-bridge"),
    ("node", "Node (kafkajs + ws)"),
    ("python", "Python (aiokafka + websockets)"),
];

struct Results {
    meta: Value,
    floor: Option<Value>,
    plain: Option<Value>,
    by: Vec<[Option<Value>; 5]>,
}

const SCENARIOS: [&str; 5] = ["fanout", "latency", "keyed", "inbound", "idle"];

/// "×N" = how many times better the bridge is (higher throughput, or lower cost).
fn ratio(bridge: Option<f64>, other: Option<f64>, higher_is_better: bool) -> String {
    match (bridge, other) {
        (Some(b), Some(o)) if b > 0.0 && o > 0.0 => {
            let r = if higher_is_better { b / o } else { o / b };
            if r >= 10.0 {
                format!("{r:.0}×")
            } else {
                format!("{r:.1}×")
            }
        }
        _ => "—".into(),
    }
}

fn status(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "PASS",
        Some(false) => "MISS",
        None => "n/a",
    }
}

fn failure(r: &Option<Value>) -> Option<String> {
    match r {
        None => Some("not run".into()),
        Some(v) => v.get("error").map(|e| {
            let s = e
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string());
            let short: String = s.chars().take(60).collect();
            format!("failed: {short}")
        }),
    }
}

pub fn build(dir: &Path) -> Result<String, String> {
    let meta = load(&dir.join("meta.json")).unwrap_or(Value::Null);
    let res = Results {
        floor: load(&dir.join("floor.json")),
        plain: load(&dir.join("plain.json")),
        by: BRIDGES
            .iter()
            .map(|(b, _)| SCENARIOS.map(|s| load(&dir.join(b).join(format!("{s}.json")))))
            .collect(),
        meta,
    };
    let side = crate::compare::render(dir, &res.meta);
    let main = render(&res);
    // The title line first, then the side-by-side table, then the table with the baselines.
    let (title, rest) = main.split_once("\n\n").unwrap_or((&main, ""));
    Ok(format!(
        "{title}\n\n{side}## Next to the baselines (Node, Python)\n\n{rest}"
    ))
}

fn cell_or_failure<F: Fn(&Option<Value>) -> Option<String>>(r: &Option<Value>, f: F) -> String {
    match failure(r) {
        Some(why) => why,
        None => f(r).unwrap_or_else(|| "—".into()),
    }
}

fn render(r: &Results) -> String {
    let mut out = String::new();
    let m = &r.meta;
    let smoke = m["mode"] == "smoke";
    let _ = writeln!(
        out,
        "# kafka-ws-bridge benchmark{} — {}\n",
        if smoke {
            " (SMOKE: tiny sizes, debug builds; the numbers mean nothing)"
        } else {
            ""
        },
        m["date"].as_str().unwrap_or("?")
    );
    let idx = |s: &str| SCENARIOS.iter().position(|x| *x == s).expect("scenario");
    let col = |s: &str| -> Vec<&Option<Value>> { r.by.iter().map(|b| &b[idx(s)]).collect() };

    let floor99 = num(get(&r.floor, &["p99_ms"]));
    let floor999 = num(get(&r.floor, &["p999_ms"]));

    let mut rows: Vec<[String; 8]> = Vec::new();
    let mut row =
        |label: &str, cells: [String; 3], better: [String; 2], target: &str, result: &str| {
            let result = if smoke && !result.is_empty() {
                "(smoke)"
            } else {
                result
            };
            rows.push([
                label.to_owned(),
                cells[0].clone(),
                cells[1].clone(),
                better[0].clone(),
                cells[2].clone(),
                better[1].clone(),
                target.to_owned(),
                result.to_owned(),
            ]);
        };

    // a. fan-out
    let fan = col("fanout");
    let fan_v: Vec<Option<f64>> = fan
        .iter()
        .map(|x| num(get(x, &["best_deliveries_per_sec"])))
        .collect();
    let sessions = get(fan[0], &["sessions"])
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let fan_ok = match (fan_v[0], fan_v[1], fan_v[2]) {
        (Some(b), Some(n), Some(p)) => Some(b >= 4.0 * n && b >= 6.0 * p),
        _ => None,
    };
    let fan_cells = [0, 1, 2].map(|i| {
        cell_or_failure(fan[i], |x| {
            let best = num(get(x, &["best_deliveries_per_sec"]))?;
            let p99 = num(get(x, &["best", "p99_ms"]));
            let next = num(get(x, &["first_failing_rate"]));
            let next = next
                .map(|n| format!(", next step {} fails", thousands(n * sessions as f64)))
                .unwrap_or_default();
            Some(format!(
                "**{}**/s (p99 {} ms{})",
                thousands(best),
                ms(p99),
                next
            ))
        })
    });
    row(
        &format!("a. fan-out: highest passing deliveries/s, {} sessions on one broadcast channel (p99 ≤ 50 ms, ≥ 99.9 % delivered)", thousands(sessions as f64)),
        fan_cells,
        [ratio(fan_v[0], fan_v[1], true), ratio(fan_v[0], fan_v[2], true)],
        "≥ 4× Node, ≥ 6× Python",
        status(fan_ok),
    );

    // b. latency
    let lat = col("latency");
    let lat_rate = get(lat[0], &["offered_deliveries_per_sec"])
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let lat_cells = [0, 1, 2].map(|i| {
        cell_or_failure(lat[i], |x| {
            let l = get(x, &["latency"])?;
            let ratio = num(get(x, &["delivered_ratio"])).unwrap_or(0.0);
            let short = if ratio < 0.999 {
                format!(" (only {:.1} % delivered)", ratio * 100.0)
            } else {
                String::new()
            };
            Some(format!(
                "{} / **{}** / **{}**{}",
                ms(num(l.get("p50_ms"))),
                ms(num(l.get("p99_ms"))),
                ms(num(l.get("p999_ms"))),
                short
            ))
        })
    });
    let p99: Vec<Option<f64>> = lat
        .iter()
        .map(|x| num(get(x, &["latency", "p99_ms"])))
        .collect();
    let p999: Vec<Option<f64>> = lat
        .iter()
        .map(|x| num(get(x, &["latency", "p999_ms"])))
        .collect();
    row(
        &format!(
            "b. latency at {} deliveries/s, produce → client receipt: p50 / p99 / p99.9 ms",
            thousands(lat_rate)
        ),
        lat_cells,
        [ratio(p99[0], p99[1], false), ratio(p99[0], p99[2], false)],
        "",
        "",
    );
    let above = |i: usize| -> String {
        match (p99[i], p999[i], floor99, floor999) {
            (Some(a), Some(b), Some(f1), Some(f2)) => format!("+{:.1} / +{:.1}", a - f1, b - f2),
            _ => "—".into(),
        }
    };
    let lat_ok = match (p99[0], p999[0], floor99, floor999) {
        (Some(a), Some(b), Some(f1), Some(f2)) => {
            let full = get(lat[0], &["delivered_ratio"])
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
                >= 0.999;
            Some(a - f1 <= 10.0 && b - f2 <= 20.0 && full)
        }
        _ => None,
    };
    row(
        "b. … above the floor (plain librdkafka consumer): p99 / p99.9 ms",
        [above(0), above(1), above(2)],
        ["".into(), "".into()],
        "p99 ≤ +10 ms, p99.9 ≤ +20 ms",
        status(lat_ok),
    );

    // c. CPU per delivery
    let cpu: Vec<Option<f64>> = lat
        .iter()
        .map(|x| num(get(x, &["bridge_cpu_us_per_delivery"])))
        .collect();
    let cpu_cells = [0, 1, 2].map(|i| {
        cell_or_failure(lat[i], |x| {
            let us = num(get(x, &["bridge_cpu_us_per_delivery"]))?;
            let pct = num(get(x, &["bridge_cpu_pct"]));
            Some(format!(
                "**{us:.2}** µs ({}% of a core)",
                pct.map_or("?".into(), |p| format!("{p:.0}"))
            ))
        })
    });
    row(
        &format!(
            "c. bridge CPU per delivery at {} deliveries/s (utime+stime)",
            thousands(lat_rate)
        ),
        cpu_cells,
        [ratio(cpu[0], cpu[1], false), ratio(cpu[0], cpu[2], false)],
        "≤ 2 µs",
        status(cpu[0].map(|c| c <= 2.0)),
    );

    // d. keyed
    let keyed = col("keyed");
    let kv: Vec<Option<f64>> = keyed
        .iter()
        .map(|x| num(get(x, &["best_deliveries_per_sec"])))
        .collect();
    let ksessions = get(keyed[0], &["sessions"])
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let klimit = num(get(keyed[0], &["p99_limit_ms"])).unwrap_or(20.0);
    let kcells = [0, 1, 2].map(|i| {
        cell_or_failure(keyed[i], |x| {
            let best = num(get(x, &["best_deliveries_per_sec"]))?;
            let p99 = num(get(x, &["best", "p99_ms"]));
            Some(format!("**{}**/s (p99 {} ms)", thousands(best), ms(p99)))
        })
    });
    row(
        &format!(
            "d. keyed: highest passing keyed records/s delivered, {} sessions each on its own key (p99 ≤ {klimit} ms = floor p99 + 20, ≥ 99.9 % delivered)",
            thousands(ksessions as f64)
        ),
        kcells,
        [ratio(kv[0], kv[1], true), ratio(kv[0], kv[2], true)],
        "≥ 150,000/s",
        status(kv[0].map(|v| v >= 150_000.0)),
    );

    // e. inbound
    let inb = col("inbound");
    let iv: Vec<Option<f64>> = inb.iter().map(|x| num(get(x, &["acks_per_sec"]))).collect();
    let plain = num(get(&r.plain, &["acks_per_sec"]));
    let clients = get(inb[0], &["clients"])
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let window = get(inb[0], &["window"])
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let icells = [0, 1, 2].map(|i| {
        cell_or_failure(inb[i], |x| {
            let a = num(get(x, &["acks_per_sec"]))?;
            let p99 = num(get(x, &["ack_latency", "p99_ms"]));
            let share = plain
                .map(|p| format!(", {:.0} % of plain", a / p * 100.0))
                .unwrap_or_default();
            let errs = get(x, &["errors"])
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty());
            let errs = errs
                .map(|m| format!(", errors {}", Value::Object(m.clone())))
                .unwrap_or_default();
            Some(format!(
                "**{}** acks/s, p99 {} ms{}{}",
                thousands(a),
                ms(p99),
                share,
                errs
            ))
        })
    });
    row(
        &format!(
            "e. inbound: {clients} clients × {window} publishes in flight; plain rdkafka producer (same settings, {} in flight): {} acks/s, p99 {} ms",
            clients * window,
            plain.map_or("—".into(), thousands),
            ms(num(get(&r.plain, &["ack_latency", "p99_ms"])))
        ),
        icells,
        [ratio(iv[0], iv[1], true), ratio(iv[0], iv[2], true)],
        "≥ 80 % of plain producer",
        status(match (iv[0], plain) {
            (Some(a), Some(p)) => Some(a >= 0.8 * p),
            _ => None,
        }),
    );

    // f. idle
    let idle = col("idle");
    let sess: Vec<Option<f64>> = idle.iter().map(|x| num(get(x, &["sessions"]))).collect();
    let rss: Vec<Option<f64>> = idle
        .iter()
        .map(|x| num(get(x, &["rss_per_session_kib"])))
        .collect();
    let icpu: Vec<Option<f64>> = idle
        .iter()
        .map(|x| num(get(x, &["idle_cpu_pct"])))
        .collect();
    let fd_cap = get(idle[0], &["bridge_nofile"]).and_then(Value::as_u64);
    let target_sessions = get(idle[0], &["sessions_target"])
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let scells = [0, 1, 2].map(|i| {
        cell_or_failure(idle[i], |x| {
            let s = num(get(x, &["sessions"]))?;
            let t = num(get(x, &["sessions_target"])).unwrap_or(0.0);
            Some(format!("**{}** of {}", thousands(s), thousands(t)))
        })
    });
    let capped = target_sessions < 50_000 && fd_cap.is_some_and(|n| target_sessions + 1000 >= n);
    let sessions_status = match sess[0] {
        Some(s) if s >= 50_000.0 => "PASS".to_owned(),
        Some(s) if capped && s >= target_sessions as f64 => format!(
            "LIMIT: all {} connected; the environment's open-file hard limit ({}) caps one process below 50,000",
            thousands(s),
            fd_cap.map_or("?".into(), |c| thousands(c as f64))
        ),
        Some(_) => "MISS".to_owned(),
        None => "n/a".to_owned(),
    };
    row(
        "f. idle sessions held (each subscribed to a broadcast channel)",
        scells,
        ["".into(), "".into()],
        "≥ 50,000",
        &sessions_status,
    );
    let rcells = [0, 1, 2].map(|i| {
        cell_or_failure(idle[i], |x| {
            num(get(x, &["rss_per_session_kib"])).map(|v| format!("**{v:.1}** KiB"))
        })
    });
    row(
        "f. RSS per idle session (RSS delta / sessions)",
        rcells,
        [ratio(rss[0], rss[1], false), ratio(rss[0], rss[2], false)],
        "≤ 12 KiB",
        status(rss[0].map(|v| v <= 12.0)),
    );
    let ccells = [0, 1, 2].map(|i| {
        cell_or_failure(idle[i], |x| {
            let c = num(get(x, &["idle_cpu_pct"]))?;
            let hold = num(get(x, &["hold_secs"])).unwrap_or(0.0);
            Some(format!("{c:.1} % of a core (over {hold:.0} s)"))
        })
    });
    row(
        "f. idle CPU with every session connected (keepalive pings included)",
        ccells,
        [
            ratio(icpu[0], icpu[1], false),
            ratio(icpu[0], icpu[2], false),
        ],
        "",
        "",
    );

    let _ = writeln!(
        out,
        "| Scenario | {} | {} | bridge vs Node | {} | bridge vs Python | Target | Result |",
        BRIDGES[0].1, BRIDGES[1].1, BRIDGES[2].1
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    let _ = writeln!(out, "\n\"bridge vs X\": how many times better kafka-ws-bridge is (more throughput, or less latency / CPU / memory).\n");

    // Floor, machine, versions, notes.
    let _ = writeln!(
        out,
        "**Floor** (plain librdkafka BaseConsumer, fetch.wait.max.ms = {}, {} records/s, same producer and broker): p50 {} / p99 {} / p99.9 {} ms.",
        r.floor.as_ref().and_then(|f| f.get("fetch_wait_ms")).map_or("?".into(), |v| v.to_string()),
        r.floor.as_ref().and_then(|f| f.get("rate")).map_or("?".into(), |v| v.to_string()),
        ms(num(get(&r.floor, &["p50_ms"]))),
        ms(floor99),
        ms(floor999),
    );
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
    // Harness notes: any step or run where the generator, producer or broker was the limit.
    let mut notes = Vec::new();
    for (bi, (_, name)) in BRIDGES.iter().enumerate() {
        for (si, s) in SCENARIOS.iter().enumerate() {
            let Some(v) = &r.by[bi][si] else { continue };
            if let Some(e) = v.get("error") {
                notes.push(format!("{name} / {s}: {}", e.as_str().unwrap_or("?")));
                continue;
            }
            let mut add = |n: &Value, what: &str| {
                if let Some(list) = n.as_array() {
                    for x in list {
                        notes.push(format!("{name} / {s}{what}: {}", x.as_str().unwrap_or("?")));
                    }
                }
            };
            add(&v["notes"], "");
            if let Some(steps) = v["steps"].as_array() {
                // Only the first failing step matters: it is what stopped the search.
                if let Some(first_fail) = steps
                    .iter()
                    .find(|st| st["pass"] == false && st["retried"] != true)
                {
                    add(
                        &first_fail["notes"],
                        &format!(
                            " (failing step {} rec/s: {})",
                            first_fail["records_per_sec"],
                            first_fail["why"].as_str().unwrap_or("")
                        ),
                    );
                }
            }
            if let Some(closes) = v["closes"].as_object() {
                let bad: Vec<String> = closes
                    .iter()
                    .filter(|(k, _)| k.as_str() != "done")
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                if !bad.is_empty() && *s != "idle" {
                    notes.push(format!("{name} / {s}: sessions ended: {}", bad.join(", ")));
                }
            }
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(
            out,
            "\n**Harness notes** (limits outside the bridge under test):\n"
        );
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}
