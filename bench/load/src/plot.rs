//! `kwb-load plot`: the latency curves of several peers in one SVG. Every `*curve*.json` under
//! a directory (recursively) is one round of one peer, the peer named by the file's parent
//! directory. Per peer and fraction of capacity: x = the median offered deliveries/s over the
//! rounds, y = the median p99 latency (ms, log scale), whiskers from the lowest to the highest
//! round's p99. The SVG is written as text (no plotting crate).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One point of a peer's curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub fraction: f64,
    pub x: f64,
    pub p99: f64,
    pub p99_min: f64,
    pub p99_max: f64,
    pub rounds: usize,
}

fn curve_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            curve_files(&p, out);
        } else {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.contains("curve") && name.ends_with(".json") {
                out.push(p);
            }
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The points of every peer under `dir` (peer → points by increasing fraction).
pub fn load(dir: &Path) -> BTreeMap<String, Vec<Point>> {
    let mut files = Vec::new();
    curve_files(dir, &mut files);
    // peer → fraction (in millionths) → (xs, p99s)
    type Rounds = BTreeMap<i64, (Vec<f64>, Vec<f64>)>;
    let mut raw: BTreeMap<String, Rounds> = BTreeMap::new();
    for f in files {
        let peer = f
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned();
        let Some(v) = std::fs::read_to_string(&f)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        else {
            continue;
        };
        for p in v["points"].as_array().into_iter().flatten() {
            let (Some(fr), Some(x), Some(y)) = (
                p["fraction"].as_f64(),
                p["offered_deliveries_per_sec"].as_f64(),
                p["p99_ms"].as_f64(),
            ) else {
                continue;
            };
            let e = raw
                .entry(peer.clone())
                .or_default()
                .entry((fr * 1e6).round() as i64)
                .or_default();
            e.0.push(x);
            e.1.push(y);
        }
    }
    raw.into_iter()
        .map(|(peer, by_f)| {
            let pts = by_f
                .into_iter()
                .map(|(f, (mut xs, mut ys))| Point {
                    fraction: f as f64 / 1e6,
                    x: median(&mut xs),
                    p99: median(&mut ys),
                    p99_min: ys[0],
                    p99_max: ys[ys.len() - 1],
                    rounds: ys.len(),
                })
                .collect();
            (peer, pts)
        })
        .collect()
}

/// A "nice" tick step (1, 2 or 5 × 10^k) giving about `n` ticks over `range`.
pub fn tick_step(range: f64, n: f64) -> f64 {
    let raw = (range / n).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let r = raw / mag;
    mag * if r <= 1.0 {
        1.0
    } else if r <= 2.0 {
        2.0
    } else if r <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(x: f64) -> String {
    if x >= 1e6 {
        format!("{}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{}k", x / 1e3)
    } else {
        format!("{x}")
    }
}

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// The SVG of `peers`' curves.
pub fn svg(peers: &BTreeMap<String, Vec<Point>>, title: &str) -> String {
    let (w, h) = (900.0, 560.0);
    let (l, r, t, b) = (80.0, 200.0, 50.0, 60.0);
    let (pw, ph) = (w - l - r, h - t - b);
    let all: Vec<&Point> = peers.values().flatten().collect();
    let xmax = all.iter().map(|p| p.x).fold(0.0, f64::max).max(1.0);
    let xstep = tick_step(xmax, 6.0);
    let xtop = (xmax / xstep).ceil() * xstep;
    let ymin = all.iter().map(|p| p.p99_min).fold(f64::INFINITY, f64::min);
    let ymax = all.iter().map(|p| p.p99_max).fold(0.0, f64::max);
    let lo = if ymin.is_finite() {
        ymin.max(0.01).log10().floor()
    } else {
        -1.0
    };
    let hi = ymax.max(0.01).log10().ceil().max(lo + 1.0);
    let px = |x: f64| l + x / xtop * pw;
    let py = |y: f64| t + ph - (y.max(0.01).log10() - lo) / (hi - lo) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{}" y="28" font-size="16" text-anchor="middle">{}</text>
"#,
        l + pw / 2.0,
        esc(title)
    );
    // Axes and grid.
    let mut x = 0.0;
    while x <= xtop + xstep / 2.0 {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#ddd"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"##,
            px(x),
            t,
            t + ph,
            t + ph + 18.0,
            num(x)
        );
        x += xstep;
    }
    for d in lo as i32..=hi as i32 {
        let y = 10f64.powi(d);
        let _ = writeln!(
            s,
            r##"<line x1="{0}" y1="{1:.1}" x2="{2}" y2="{1:.1}" stroke="#ddd"/><text x="{3}" y="{4:.1}" text-anchor="end">{5}</text>"##,
            l,
            py(y),
            l + pw,
            l - 6.0,
            py(y) + 4.0,
            y
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>
<text x="{}" y="{}" text-anchor="middle">offered deliveries/s</text>
<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">p99 latency, ms (log scale)</text>"##,
        l + pw / 2.0,
        h - 15.0,
        t + ph / 2.0,
        t + ph / 2.0
    );
    for (i, (peer, pts)) in peers.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let line: Vec<String> = pts
            .iter()
            .map(|p| format!("{:.1},{:.1}", px(p.x), py(p.p99)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            line.join(" ")
        );
        for p in pts {
            let _ = writeln!(
                s,
                r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{c}"/><circle cx="{0:.1}" cy="{3:.1}" r="3" fill="{c}"><title>{4}: {5} of capacity, {6} deliveries/s, p99 {7} ms ({8} rounds)</title></circle>"#,
                px(p.x),
                py(p.p99_min),
                py(p.p99_max),
                py(p.p99),
                esc(peer),
                p.fraction,
                p.x.round(),
                p.p99,
                p.rounds
            );
        }
        let ly = t + 10.0 + i as f64 * 20.0;
        let _ = writeln!(
            s,
            r#"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="{c}" stroke-width="2"/><text x="{3}" y="{4}">{5}</text>"#,
            l + pw + 15.0,
            ly,
            l + pw + 40.0,
            l + pw + 46.0,
            ly + 4.0,
            esc(peer)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// `kwb-load plot --dir DIR --out FILE.svg`.
pub fn run(dir: &Path, out: &Path) -> Result<String, String> {
    let peers = load(dir);
    if peers.is_empty() {
        return Err(format!(
            "no *curve*.json with points under {}",
            dir.display()
        ));
    }
    let text = svg(&peers, "p99 latency against offered load");
    std::fs::write(out, &text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(format!(
        "{} peers, {} points -> {}",
        peers.len(),
        peers.values().map(Vec::len).sum::<usize>(),
        out.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny well-formedness check: tags balance and nest, attributes are quoted.
    fn well_formed(s: &str) -> Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find('<') {
            let j = rest[i..].find('>').ok_or("unclosed tag")? + i;
            let tag = &rest[i + 1..j];
            rest = &rest[j + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if !tag.matches('"').count().is_multiple_of(2) {
                return Err(format!("odd quotes in <{tag}>"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop().as_deref() != Some(name) {
                    return Err(format!("</{name}> closes nothing open"));
                }
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed {stack:?}"))
        }
    }

    #[test]
    fn reads_rounds_per_peer_and_writes_well_formed_svg() {
        let dir = std::env::temp_dir().join(format!("kwb-plot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (peer, round, p99s) in [
            ("bridge", 1, [1.0, 2.0]),
            ("bridge", 2, [3.0, 4.0]),
            ("bridge", 3, [2.0, 9.0]),
            ("a<b", 1, [5.0, 50.0]),
        ] {
            std::fs::create_dir_all(dir.join(peer)).unwrap();
            let v = serde_json::json!({"command": "curve", "points": [
                {"fraction": 0.1, "offered_deliveries_per_sec": 1000.0, "p99_ms": p99s[0]},
                {"fraction": 0.5, "offered_deliveries_per_sec": 5000.0, "p99_ms": p99s[1]},
            ]});
            std::fs::write(
                dir.join(peer).join(format!("curve-fanout-r{round}.json")),
                v.to_string(),
            )
            .unwrap();
        }
        std::fs::write(dir.join("bridge").join("capacity-fanout.json"), "{}").unwrap();
        let peers = load(&dir);
        assert_eq!(peers.len(), 2);
        let b = &peers["bridge"];
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].p99, b[0].p99_min, b[0].p99_max, b[0].rounds),
            (2.0, 1.0, 3.0, 3)
        );
        assert_eq!((b[1].p99, b[1].x), (4.0, 5000.0));
        let svg = svg(&peers, "t & t");
        well_formed(&svg).unwrap();
        assert!(svg.contains("a&lt;b") && svg.contains("polyline"));
        assert!(well_formed("<a><b></a></b>").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tick_steps_are_nice() {
        assert_eq!(tick_step(100.0, 5.0), 20.0);
        assert_eq!(tick_step(1e6, 6.0), 200000.0);
        assert_eq!(tick_step(7.0, 7.0), 1.0);
    }
}
