//! How much the hand-written `message` encoder saves over serde, measured rather than assumed.
//! Not part of the normal test run:
//!
//! ```text
//! cargo test --release --lib protocol::bench -- --ignored --nocapture
//! ```

use std::hint::black_box;
use std::time::Instant;

use serde::ser::SerializeMap;
use serde::Serialize;
use serde_json::value::RawValue;

use super::encode::Wire;
use super::{message, Frame, MessageParts, MessagePrefix};

/// The same `message` frame as [`message`], through serde_json (with the same escaping).
#[derive(Serialize)]
struct Message<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    data: &'a RawValue,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    headers: Headers<'a>,
}

struct Headers<'a>(&'a [(&'a str, Option<&'a str>)]);

impl Serialize for Headers<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// `data` as a `RawValue`: production holds the record's JSON as text (`DataJson`), so a serde
/// encoder would validate it again; `prevalidated` leaves that cost out (serde's best case).
fn serde_message(
    channel: &str,
    parts: &MessageParts<'_>,
    prevalidated: Option<&RawValue>,
) -> Frame {
    let data = match prevalidated {
        Some(data) => data,
        None => serde_json::from_str::<&RawValue>(parts.data).expect("data is JSON"),
    };
    let frame = Message {
        kind: "message",
        channel,
        key: parts.key,
        data,
        partition: parts.partition,
        offset: parts.offset,
        timestamp: parts.timestamp,
        headers: Headers(parts.headers),
    };
    let mut out = Vec::with_capacity(channel.len() + parts.data.len() + 96);
    frame
        .serialize(&mut serde_json::Serializer::with_formatter(&mut out, Wire))
        .expect("serializes");
    String::from_utf8(out).expect("UTF-8").into()
}

/// A typical record: 140 bytes of JSON, a key, a timestamp and two headers.
const DATA: &str = r#"{"accountId":"C-10442","balance":1523.75,"currency":"EUR","updatedAt":"2026-12-02T00:43:42Z","seq":91827,"status":"active","tags":["a","b"]}"#;
const HEADERS: [(&str, Option<&str>); 2] = [
    ("bridge-user", Some("alice")),
    (
        "traceparent",
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-01"),
    ),
];

fn parts() -> MessageParts<'static> {
    MessageParts {
        key: Some("C-10442"),
        data: DATA,
        partition: 3,
        offset: 918_273,
        timestamp: Some(1_764_636_222_000),
        headers: &HEADERS,
        schema_id: None,
        conflated: None,
    }
}

#[test]
fn serde_and_hand_encoders_agree() {
    let prefix = MessagePrefix::new("balances");
    let raw = serde_json::from_str::<&RawValue>(DATA).unwrap();
    let hand = message(&prefix, &parts());
    assert_eq!(serde_message("balances", &parts(), None), hand);
    assert_eq!(serde_message("balances", &parts(), Some(raw)), hand);
    assert!(hand.as_str().contains(DATA));
}

/// Nanoseconds per frame of each encoder, best and median of `rounds` rounds of `n` frames.
/// The encoders take turns within each round, so a busy machine slows them alike.
fn time<const E: usize>(
    rounds: usize,
    n: u32,
    encoders: [&dyn Fn() -> Frame; E],
) -> [(f64, f64); E] {
    let mut samples = vec![Vec::new(); E];
    for _ in 0..rounds {
        for (encode, samples) in encoders.iter().zip(&mut samples) {
            let start = Instant::now();
            for _ in 0..n {
                black_box(encode());
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
#[ignore = "a measurement, run in release: cargo test --release --lib protocol::bench -- --ignored --nocapture"]
fn message_encoding_hand_vs_serde() {
    assert_eq!(DATA.len(), 140, "the typical record is 140 bytes");
    let prefix = MessagePrefix::new("balances");
    let raw = serde_json::from_str::<&RawValue>(DATA).unwrap();
    let hand = || message(black_box(&prefix), &black_box(parts()));
    let serde_raw = || {
        serde_message(
            black_box("balances"),
            &black_box(parts()),
            Some(black_box(raw)),
        )
    };
    let serde_text = || serde_message(black_box("balances"), &black_box(parts()), None);
    // The first round warms caches and the allocator; it is not counted.
    time(1, 200_000, [&hand, &serde_raw, &serde_text]);
    let (rounds, n) = (15, 300_000);
    let [hand, serde_raw, serde_text] = time(rounds, n, [&hand, &serde_raw, &serde_text]);
    let len = message(&prefix, &parts()).len();
    println!(
        "message frame of {len} bytes, ns per frame (best / median of {rounds} rounds of {n}):"
    );
    println!(
        "  hand-encoded:                    {:6.1} / {:6.1}",
        hand.0, hand.1
    );
    println!(
        "  serde, data already a RawValue:  {:6.1} / {:6.1}",
        serde_raw.0, serde_raw.1
    );
    println!(
        "  serde, data validated as JSON:   {:6.1} / {:6.1}",
        serde_text.0, serde_text.1
    );
}
