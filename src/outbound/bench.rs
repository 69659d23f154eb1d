//! What the consumer stage costs per keyed record, load-free: a `by_key` channel with
//! `SESSIONS` sessions each subscribed to its own key, records spread over the keys and over
//! `PARTITIONS` partitions, each one routed through [`Outbound`] — decode, key, the shared
//! delivery, the hub's lookup and the session's queue — with no Kafka, no sockets and no
//! writer tasks (nobody drains the queues; each session gets a handful of records). Not part
//! of the normal test run:
//!
//! ```text
//! KWB_BENCH_N=20000 cargo test --release --lib outbound::bench -- --ignored --nocapture
//! ```
//!
//! `bench/callgrind-keyed.sh` runs it under callgrind twice (two record counts) and divides the
//! difference in instructions by the difference in records: instructions per record with the
//! set-up taken out.

use std::hint::black_box;
use std::time::Instant;

use super::tests::{session_with, setup};
use super::*;

const SESSIONS: usize = 10_000;
const PARTITIONS: i32 = 8;

/// A record value like the benchmark's: `{"ts": µs, "seq": n, "pad": "…"}`, about 140 bytes.
fn value(seq: u64) -> Vec<u8> {
    format!(
        "{{\"ts\":1733600000000000,\"seq\":{seq},\"pad\":\"{}\"}}",
        "x".repeat(96)
    )
    .into_bytes()
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture (see the module docs)"]
fn keyed_records_through_the_consumer_stage() {
    let n: u64 = std::env::var("KWB_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let (hub, outbound, _metrics) = setup(
        "[{name: keyed, topic: t, key: {from: record_key}, deliver: by_key, \
          subscribe: {allow: anonymous, keys: any}}]",
    );
    // Each session may hold every record of its key without pacing the consumer.
    let per_session = (n as usize).div_ceil(SESSIONS) + 1;
    let keys: Vec<String> = (0..SESSIONS).map(|i| format!("customer-{i:05}")).collect();
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let session = session_with(i as u64, per_session);
            hub.subscribe(0, Some(&keys[i]), &session, super::tests::ok());
            session
        })
        .collect();
    let values: Vec<Vec<u8>> = (0..64).map(value).collect();
    let headers: [(&str, Option<&[u8]>); 1] = [("centrifugo-channels", Some(b"keyed"))];
    let mut offsets = [0i64; PARTITIONS as usize];
    let start = Instant::now();
    for seq in 0..n {
        let partition = (seq % PARTITIONS as u64) as i32;
        let offset = &mut offsets[partition as usize];
        *offset += 1;
        let record = Record {
            topic: "t",
            partition,
            offset: *offset,
            timestamp: Some(1_733_600_000_000),
            key: Some(keys[(seq as usize * 7919) % SESSIONS].as_bytes()),
            value: Some(&values[(seq % 64) as usize]),
            headers: &headers,
        };
        assert_eq!(black_box(outbound.record(&record)), Routed::Done);
    }
    let elapsed = start.elapsed();
    let queued: usize = sessions.iter().map(|s| s.outbox.queued_messages()).sum();
    assert_eq!(queued as u64, n, "every record reached its key's session");
    println!(
        "bench-keyed: {n} records to {SESSIONS} sessions over {PARTITIONS} partitions: {:.0} ns per record",
        elapsed.as_nanos() as f64 / n as f64
    );
}
