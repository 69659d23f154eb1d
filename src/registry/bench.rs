//! What decoding a registry-format record costs next to the bridge's plain JSON path,
//! measured rather than assumed. Not part of the normal test run:
//!
//! ```text
//! cargo test --release --lib registry::bench -- --ignored --nocapture
//! ```
//!
//! Best of 11 rounds, ns per record, on the 2-core development machine while other builds
//! ran (load 3): the 258-byte Avro order → 637 bytes of JSON in 982 ns against 536 ns to
//! validate that JSON (1.8×) and 4,050 to parse and rewrite it; apache-avro's `Value` path
//! 9,250. The 270-byte Protobuf order → 558 bytes in 1,132 ns against 497 (2.3×) and 3,717;
//! prost-reflect's `DynamicMessage` path 7,740. What is left is writing JSON text itself:
//! formatting doubles (ryu, a fifth of the Protobuf time), checking and escaping strings.

use std::hint::black_box;
use std::time::Instant;

use serde_json::value::RawValue;

use super::tests::fixtures::*;
use super::{split_wire, Schema, SchemaKind};

/// The test order of each kind as a record value in the wire format, and as the JSON text it
/// decodes to.
fn records() -> [(Schema, Vec<u8>, String); 2] {
    let avro = compile(SchemaKind::Avro, AVRO_ORDER);
    let avro_bytes = avro.encode(1, &json(AVRO_ORDER_JSON)).unwrap();
    let proto = compile(SchemaKind::Protobuf, PROTO_ORDER);
    let proto_bytes = proto.encode(2, &json(PROTO_ORDER_JSON)).unwrap();
    [(avro, avro_bytes), (proto, proto_bytes)].map(|(schema, bytes)| {
        let text = schema.decode(split_wire(&bytes).unwrap().1).unwrap();
        (schema, bytes, text)
    })
}

/// Nanoseconds per call of each function, best and median of `rounds` rounds of `n` calls,
/// taking turns within each round so a busy machine slows them alike.
fn time<const E: usize>(rounds: usize, n: u32, runs: [&dyn Fn() -> usize; E]) -> [(f64, f64); E] {
    let mut samples = vec![Vec::new(); E];
    for _ in 0..rounds {
        for (run, samples) in runs.iter().zip(&mut samples) {
            let start = Instant::now();
            for _ in 0..n {
                black_box(run());
            }
            samples.push(start.elapsed().as_nanos() as f64 / f64::from(n));
        }
    }
    std::array::from_fn(|i| {
        samples[i].sort_by(f64::total_cmp);
        (samples[i][0], samples[i][rounds / 2])
    })
}

#[test]
fn the_bench_records_decode() {
    for (schema, bytes, text) in records() {
        let (_, payload) = split_wire(&bytes).unwrap();
        assert_eq!(schema.decode(payload).unwrap(), text);
        serde_json::from_str::<&RawValue>(&text).unwrap();
    }
}

#[test]
#[ignore = "a measurement, run in release: cargo test --release --lib registry::bench -- --ignored --nocapture"]
fn decoding_registry_formats_vs_json() {
    let [(avro, avro_bytes, avro_text), (proto, proto_bytes, proto_text)] = records();
    let apache = apache_avro::Schema::parse_str(AVRO_ORDER).unwrap();
    let avro_payload = &avro_bytes[5..];
    let proto_payload = split_wire(&proto_bytes).unwrap().1;
    // The bridge's `json` format: the value validated as JSON and borrowed (no copy).
    let validate = |text: &str| {
        serde_json::from_str::<&RawValue>(black_box(text))
            .unwrap()
            .get()
            .len()
    };
    // Parsed into a tree and written out again: what a JSON path with a transform costs.
    let reparse = |text: &str| {
        let value: serde_json::Value = serde_json::from_str(black_box(text)).unwrap();
        serde_json::to_string(&value).unwrap().len()
    };
    let runs: [&dyn Fn() -> usize; 8] = [
        &|| avro.decode(black_box(avro_payload)).unwrap().len(),
        &|| validate(&avro_text),
        &|| reparse(&avro_text),
        &|| {
            // apache-avro's generic `Value`, put in the same JSON mapping (the path the walker
            // replaces).
            let value = apache_read(&apache, black_box(avro_payload));
            serde_json::to_string(&super::tests::props::oracle(&value, &apache))
                .unwrap()
                .len()
        },
        &|| proto.decode(black_box(proto_payload)).unwrap().len(),
        &|| validate(&proto_text),
        &|| reparse(&proto_text),
        &|| {
            let (index, body) = proto
                .protobuf()
                .message_at(black_box(proto_payload))
                .unwrap();
            let descriptor = proto.protobuf().descriptor(index);
            proto
                .protobuf()
                .decode_dynamic(descriptor, body, MAX_JSON)
                .unwrap()
                .len()
        },
    ];
    // scripts/bench.sh --smoke runs it with tiny sizes (in a debug build) to keep it working.
    let size = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (rounds, n) = (
        size("KWB_BENCH_ROUNDS", 11) as usize,
        size("KWB_BENCH_N", 50_000),
    );
    time(1, n / 2, runs);
    let r = time(rounds, n, runs);
    println!("ns per record (best / median of {rounds} rounds of {n}):");
    let names = [
        "avro → JSON (this module's walker)",
        "same JSON validated (the `json` format's path)",
        "same JSON parsed to a serde_json::Value and written again",
        "avro → apache-avro Value → JSON (not used: 9× the walker)",
        "protobuf → JSON (this module's walker)",
        "same JSON validated (the `json` format's path)",
        "same JSON parsed to a serde_json::Value and written again",
        "protobuf → prost-reflect DynamicMessage → JSON (fallback)",
    ];
    for (i, ((best, median), name)) in r.into_iter().zip(names).enumerate() {
        match i {
            0 => println!(
                " avro: {} bytes → {} bytes of JSON",
                avro_payload.len(),
                avro_text.len()
            ),
            4 => println!(
                " protobuf: {} bytes → {} bytes of JSON",
                proto_payload.len(),
                proto_text.len()
            ),
            _ => {}
        }
        println!("  {name:58} {best:7.1} / {median:7.1}");
    }
    // One line for scripts/bench.sh: the best round, ns per record (on a shared machine the
    // best round is the one least disturbed; the median moves with the load).
    println!(
        "bench-json: {}",
        serde_json::json!({
            "avro": {"payload_bytes": avro_payload.len(), "json_bytes": avro_text.len(),
                "walker_ns": r[0].0, "json_validate_ns": r[1].0, "json_rewrite_ns": r[2].0},
            "protobuf": {"payload_bytes": proto_payload.len(), "json_bytes": proto_text.len(),
                "walker_ns": r[4].0, "json_validate_ns": r[5].0, "json_rewrite_ns": r[6].0},
            "rounds": rounds, "n": n,
        })
    );
}
