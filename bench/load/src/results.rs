//! Reading a benchmark run's result files and writing their numbers, for the results table
//! (`report`) and the side-by-side comparison (`compare`).

use std::path::Path;

use serde_json::Value;

/// The result a scenario's JSON file ends with (its last non-empty line).
pub fn load(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(text.lines().rev().find(|l| !l.trim().is_empty())?).ok()
}

pub fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

pub fn get<'a>(r: &'a Option<Value>, path: &[&str]) -> Option<&'a Value> {
    let mut v = r.as_ref()?;
    if v.get("error").is_some() {
        return None;
    }
    for p in path {
        v = v.get(*p)?;
    }
    (!v.is_null()).then_some(v)
}

/// 1234567 → "1,234,567".
pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

pub fn ms(x: Option<f64>) -> String {
    x.map_or("—".into(), |v| format!("{v:.1}"))
}
