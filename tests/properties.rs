//! Property tests on the parts that meet hostile or arbitrary input: the client frame decoder
//! and the config loader never panic; the outbox and channel memory keep their bounds and
//! order whatever sequence of operations they see. No broker needed.

use std::collections::BTreeMap;
use std::path::Path;

use kafka_ws_bridge::config::{self, SlowClientPolicy};
use kafka_ws_bridge::outbox::{Bounds, Outbox, Pushed};
use kafka_ws_bridge::protocol::{self, Frame};
use kafka_ws_bridge::state::{ChannelMemory, Held, MemoryLimits, Target};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// JSON-ish text built from the protocol's own vocabulary, so that many inputs get past the
/// JSON parser and exercise the per-type checks.
fn frame_like() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("type"),
        Just("id"),
        Just("channel"),
        Just("key"),
        Just("data"),
        Just("headers"),
        Just("resume"),
        Just("history"),
        Just("x"),
    ];
    let value = prop_oneof![
        Just("\"subscribe\"".to_owned()),
        Just("\"publish\"".to_owned()),
        Just("\"ping\"".to_owned()),
        Just("\"unsubscribe\"".to_owned()),
        Just("null".to_owned()),
        Just("[]".to_owned()),
        Just("{\"0\":5}".to_owned()),
        Just("{\"h\":\"v\"}".to_owned()),
        Just("-1".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-z\\\\\"{}\\[\\]:,0-9]{0,12}".prop_map(|s| format!("\"{s}\"")),
        "[\\[\\]{}]{0,40}",
    ];
    prop::collection::vec((key, value), 0..8).prop_map(|pairs| {
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_decoder_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = protocol::decode_client(&text);
    }

    #[test]
    fn the_decoder_never_panics_on_frame_like_text(text in frame_like()) {
        if let Err(error) = protocol::decode_client(&text) {
            // Every refusal has a message to send back.
            prop_assert!(!error.message.is_empty());
        }
    }

    #[test]
    fn encoded_server_frames_are_json_for_any_names(channel in any::<String>(), key in any::<String>(), session in any::<String>()) {
        let frames = [
            protocol::welcome(&session, Some(&key)),
            protocol::unsubscribed(&None, &channel, Some(&key)),
            protocol::subscribed(&None, &channel, Some(&key), None, 3, true, &BTreeMap::from([(0, 1)])),
            protocol::message(&protocol::MessagePrefix::new(&channel), &protocol::MessageParts {
                key: Some(&key), data: "null", partition: 1, offset: 2, timestamp: None, headers: &[(&session, Some(key.as_str()))], schema_id: Some(7), conflated: None,
            }),
        ];
        for frame in frames {
            let value: serde_json::Value = serde_json::from_str(frame.as_str()).map_err(|e| TestCaseError::fail(format!("{e}: {}", frame.as_str())))?;
            prop_assert!(value["type"].is_string());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn the_config_loader_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = config::load_str(&text, "fuzz.yaml", Path::new("."), |_| None);
    }

    /// Mutations of the real example: lines dropped, duplicated, re-indented or truncated.
    #[test]
    fn the_config_loader_never_panics_on_mutated_examples(
        edits in prop::collection::vec((0usize..200, 0u8..4, 0usize..40), 1..12)
    ) {
        let example = std::fs::read_to_string("bridge.yaml").unwrap();
        let mut lines: Vec<String> = example.lines().map(str::to_owned).collect();
        for (at, kind, amount) in edits {
            if lines.is_empty() { break; }
            let i = at % lines.len();
            match kind {
                0 => { lines.remove(i); }
                1 => { let copy = lines[i].clone(); lines.insert(i, copy); }
                2 => { lines[i] = format!("{}{}", " ".repeat(amount % 7), lines[i].trim_start()); }
                _ => { let cut = amount.min(lines[i].len()); lines[i].truncate(cut); }
            }
        }
        let text = lines.join("\n");
        // Every diagnostic says where, within the file.
        if let Err(diagnostics) = config::load_str(&text, "fuzz.yaml", Path::new("."), |_| None) {
            for d in diagnostics {
                prop_assert!(d.line <= lines.len() + 1, "{d}");
            }
        }
    }

    /// The outbox never holds more live messages than its bounds (plus the one a draining
    /// socket lets through before the pusher waits for the writer), never loses control
    /// frames, keeps each drop_oldest channel's messages in order and each latest_per_key
    /// key's messages in order (so a key's last frame is its newest record).
    #[test]
    fn the_outbox_keeps_its_bounds_and_order(ops in prop::collection::vec((0u8..5, 0u32..3, 0u64..4), 1..400)) {
        let capacity = 8;
        let outbox: Outbox<Frame> = Outbox::new(Bounds { messages: capacity, bytes: usize::MAX, grace: std::time::Duration::from_secs(1) });
        outbox.set_socket_blocked(true);
        let mut blocked = true;
        let mut next = BTreeMap::<u32, u64>::new();
        let mut controls_pushed = 0;
        let mut controls_taken = 0;
        let mut last_taken = BTreeMap::<(u32, u64), u64>::new();
        let policies = [SlowClientPolicy::DropOldest, SlowClientPolicy::LatestPerKey, SlowClientPolicy::DropOldest];
        for (op, channel, key) in ops {
            match op {
                0 | 1 => {
                    let n = next.entry(channel).or_insert(0);
                    *n += 1;
                    let frame = Frame::from(format!("{channel}:{n}/{key}"));
                    let pushed = outbox.push_message(&frame, channel, key, 1, policies[channel as usize]);
                    prop_assert!(outbox.queued_messages() <= capacity + 1);
                    if pushed == Pushed::Behind {
                        prop_assert!(!blocked, "behind only while the socket drains");
                        // The pusher waits for the writer: here, the writer takes until the
                        // queue is within its bounds again.
                        while outbox.queued_messages() >= capacity {
                            controls_taken += take_checked(&outbox, &mut last_taken)?;
                        }
                    }
                }
                2 => {
                    if outbox.push_control(Frame::from("c:0".to_owned())) { controls_pushed += 1; }
                }
                3 => controls_taken += take_checked(&outbox, &mut last_taken)?,
                _ => {
                    blocked = !blocked;
                    outbox.set_socket_blocked(blocked);
                }
            }
        }
        let mut rest = Vec::new();
        outbox.take(&mut rest, usize::MAX);
        controls_taken += rest.iter().filter(|o| o.item.as_str().starts_with("c:")).count();
        prop_assert_eq!(controls_pushed, controls_taken);
    }

    /// Channel memory stays within max_keys and (within one record) max_bytes, and replays in
    /// offset order per partition.
    #[test]
    fn channel_memory_keeps_its_bounds(records in prop::collection::vec((0usize..50, 0i32..3, 1usize..300), 1..300)) {
        let limits = MemoryLimits { snapshot: true, history: 3, keyed_history: true, max_keys: 10, max_bytes: 4000 };
        let mut memory = ChannelMemory::new(limits);
        let mut offsets = BTreeMap::<i32, i64>::new();
        for (key, partition, size) in records {
            let offset = offsets.entry(partition).or_insert(-1);
            *offset += 1;
            // A record that costs `size` bytes held (its data makes up what its fields do not).
            let text = "x".repeat(size.saturating_sub(delivery("", partition, *offset).size()));
            let held = Held { record: std::sync::Arc::new(delivery(&text, partition, *offset)), partition, offset: *offset, timestamp: *offset, scope: None };
            memory.advance(partition, *offset);
            memory.remember(Some(&format!("k{key}")), &held, false);
            let stats = memory.stats();
            prop_assert!(stats.keys <= 10);
            prop_assert!(stats.bytes <= 4000 + 2 * (300 + 64), "bytes {}", stats.bytes);
        }
        for key in 0..50 {
            if let Ok(replay) = memory.replay_after(Target::Key(&format!("k{key}")), &BTreeMap::new()) {
                for pair in replay.windows(2) {
                    if pair[0].partition == pair[1].partition {
                        prop_assert!(pair[0].offset < pair[1].offset);
                    }
                }
            }
        }
    }
}

fn delivery(data: &str, partition: i32, offset: i64) -> protocol::Delivery {
    protocol::Delivery::new(protocol::Parts {
        channel: 0,
        prefix: &protocol::MessagePrefix::new("c"),
        key: None,
        data,
        partition,
        offset,
        timestamp: None,
        headers: &[],
        schema_id: None,
        value: None,
    })
}

/// Takes up to 5 frames as the writer would, checks the order of the messages (drop_oldest
/// channels in order; latest_per_key keys in order) and returns how many control frames it took.
fn take_checked(
    outbox: &Outbox<Frame>,
    last_taken: &mut BTreeMap<(u32, u64), u64>,
) -> Result<usize, TestCaseError> {
    let mut out = Vec::new();
    outbox.take(&mut out, 5);
    let mut controls = 0;
    for taken in out {
        let (channel, rest) = taken.item.as_str().split_once(':').unwrap();
        if channel == "c" {
            controls += 1;
            continue;
        }
        let channel = channel.parse::<u32>().unwrap();
        let (n, key) = rest.split_once('/').unwrap();
        let (n, key): (u64, u64) = (n.parse().unwrap(), key.parse().unwrap());
        let scope = if channel == 1 {
            (channel, key)
        } else {
            (channel, 0)
        };
        let previous = last_taken.insert(scope, n).unwrap_or(0);
        prop_assert!(n > previous, "{:?} went from {} to {}", scope, previous, n);
    }
    Ok(controls)
}
