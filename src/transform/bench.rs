//! What a transform chain costs per record, measured rather than assumed. Not part
//! of the normal test run:
//!
//! ```text
//! cargo test --release --lib transform::bench -- --ignored --nocapture
//! ```
//!
//! Compares what outbound does per record without transforms (validate the value as JSON, as
//! `encode_data` does) with what it does with a chain of every step kind (parse into a tree, filter,
//! drop, mask, extract, write the JSON text back).

use std::hint::black_box;
use std::time::Instant;

use serde_json::json;
use serde_json::value::RawValue;

use super::{Chain, Input};
use crate::config::Transform;

const ROUNDS: usize = 15;
const PER_ROUND: usize = 20_000;

fn best_ns(mut f: impl FnMut()) -> f64 {
    (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..PER_ROUND {
                f();
            }
            started.elapsed().as_nanos() as f64 / PER_ROUND as f64
        })
        .fold(f64::MAX, f64::min)
}

#[test]
#[ignore = "a measurement: run with --release -- --ignored --nocapture"]
fn transform_chain_cost_per_record() {
    let record = json!({
        "orderId": "O-123456", "status": "FILLED", "tenantId": "t-17",
        "internal": {"trace": "a1b2c3", "shard": 4},
        "customer": {"id": "C-991", "ssn": "123-45-6789", "name": "Ann Example"},
        "card": {"number": "4111111111111111", "expiry": "12/29"},
        "payload": {"total": 142.5, "currency": "EUR", "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}]}
    })
    .to_string();
    let steps: Vec<Transform> = serde_json::from_value(json!([
        {"filter": {"pointer": "/status", "in": ["NEW", "FILLED"]}},
        {"drop": ["/internal", "/customer/ssn"]},
        {"mask": ["/card/number"]},
        {"extract": "/payload"}
    ]))
    .unwrap();
    let four = Chain::compile(&steps).unwrap();
    let three = Chain::compile(&steps[..3]).unwrap();
    let input = Input {
        key: Some("O-123456"),
        headers: &[],
    };
    let baseline = best_ns(|| {
        let raw: &RawValue = serde_json::from_str(black_box(&record)).unwrap();
        black_box(raw);
    });
    let run = |chain: &Chain| {
        best_ns(|| {
            let value = serde_json::from_str(black_box(&record)).unwrap();
            let out = chain.apply(value, &input).unwrap();
            black_box(serde_json::to_string(&out).unwrap());
        })
    };
    let (with_three, with_four) = (run(&three), run(&four));
    println!(
        "{}-byte record: validate only {baseline:.0} ns; filter+drop+mask {with_three:.0} ns; \
         filter+drop+mask+extract {with_four:.0} ns (best of {ROUNDS} rounds of {PER_ROUND})",
        record.len()
    );
}
