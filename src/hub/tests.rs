use std::collections::BTreeMap;

use super::*;
use crate::config::ChannelConfig;
use crate::metrics::Metrics;
use crate::protocol::{Delivery, Frame, MessagePrefix, Parts};
use crate::state::Missing;

fn channel(yaml: &str) -> ChannelConfig {
    serde_yaml::from_str(yaml).unwrap()
}

fn session(id: u64, user: Option<&str>) -> Arc<SessionHandle> {
    Arc::new(SessionHandle {
        id,
        public_id: format!("s{id}"),
        user: user.map(str::to_owned),
        claims: Default::default(),
        outbox: Outbox::new(crate::outbox::Bounds {
            messages: 64,
            bytes: usize::MAX,
            grace: std::time::Duration::from_secs(1),
        }),
    })
}

fn ok() -> Item {
    Item::Native(Frame::from("{\"type\":\"subscribed\"}".to_owned()))
}

fn held(partition: i32, offset: i64) -> Held {
    let text = format!("{{\"p\":{partition},\"o\":{offset}}}");
    Held {
        record: Arc::new(Delivery::new(Parts {
            channel: 0,
            prefix: &MessagePrefix::new("c"),
            key: None,
            data: &text,
            partition,
            offset,
            timestamp: Some(offset),
            headers: &[],
            schema_id: None,
            value: None,
        })),
        partition,
        offset,
        timestamp: offset,
        scope: None,
    }
}

/// Every frame queued on a session, drained.
fn frames(session: &SessionHandle) -> Vec<String> {
    let mut out = Vec::new();
    session.outbox.take(&mut out, usize::MAX);
    // Records as their data (these tests' records are their own frames), the rest as sent.
    out.iter()
        .map(|o| match &o.item {
            Item::Record(d) => d.data().to_string(),
            Item::Native(frame) => frame.as_str().to_owned(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn queued(session: &SessionHandle) -> usize {
    session.outbox.queued_messages()
}

fn hub(channels: &[&str]) -> Hub {
    let metrics = Metrics::new(&[], &[], &[]);
    let configs: Vec<ChannelConfig> = channels.iter().map(|c| channel(c)).collect();
    Hub::new(Arc::new(Catalogue::new(&configs, &[], &metrics)))
}

fn routing_hub() -> Hub {
    hub(&[
        "{name: news, topic: t}",
        "{name: bal, topic: t, deliver: by_key, key: {from: record_key}}",
        "{name: replies, topic: t, deliver: reply}",
    ])
}

#[test]
fn broadcast_reaches_every_subscriber_once() {
    let hub = routing_hub();
    let (a, b, c) = (session(1, None), session(2, None), session(3, None));
    hub.subscribe(0, None, &a, ok());
    hub.subscribe(0, None, &b, ok());
    assert_eq!(hub.subscribe(0, None, &b, ok()), Change::Unchanged);
    assert_eq!(
        hub.deliver(0, Route::Key(Some("x")), &held(0, 0), false)
            .delivered,
        2
    );
    assert_eq!((queued(&a), queued(&b), queued(&c)), (1, 1, 0));
    hub.unsubscribe(0, None, &a);
    hub.deliver(0, Route::Key(None), &held(0, 1), false);
    assert_eq!((queued(&a), queued(&b)), (1, 2));
}

#[test]
fn by_key_reaches_only_that_key() {
    let hub = routing_hub();
    let (a, b) = (session(1, None), session(2, None));
    hub.subscribe(1, Some("C-1"), &a, ok());
    hub.subscribe(1, Some("C-2"), &b, ok());
    hub.deliver(1, Route::Key(Some("C-1")), &held(0, 0), false);
    assert_eq!(
        hub.deliver(1, Route::Key(None), &held(0, 1), false)
            .delivered,
        0
    );
    assert_eq!(
        hub.deliver(1, Route::Key(Some("C-3")), &held(0, 2), false)
            .delivered,
        0
    );
    assert_eq!((queued(&a), queued(&b)), (1, 0));
    assert_eq!(hub.unsubscribe(1, Some("C-1"), &a), Change::Changed);
    assert_eq!(hub.unsubscribe(1, Some("C-1"), &a), Change::Unchanged);
    assert_eq!(hub.subscriber_count(1), 1);
}

#[test]
fn replies_go_to_the_session_else_the_user() {
    let hub = routing_hub();
    let (a1, a2, b) = (
        session(1, Some("alice")),
        session(2, Some("alice")),
        session(3, Some("bob")),
    );
    for s in [&a1, &a2, &b] {
        hub.subscribe(2, None, s, ok());
    }
    let route = Route::Reply {
        session: Some("s1"),
        user: Some("alice"),
    };
    hub.deliver(2, route, &held(0, 0), false);
    assert_eq!((queued(&a1), queued(&a2), queued(&b)), (1, 0, 0));
    hub.unsubscribe(2, None, &a1);
    hub.deliver(2, route, &held(0, 1), false);
    assert_eq!((queued(&a1), queued(&a2), queued(&b)), (1, 1, 0));
    let nobody = Route::Reply {
        session: Some("gone"),
        user: Some("carol"),
    };
    assert_eq!(hub.deliver(2, nobody, &held(0, 2), false).delivered, 0);
}

fn confirm(c: Confirmed<'_>) -> Item {
    Item::Native(Frame::from(format!(
        "subscribed snapshot={:?} replayed={} gap={}",
        c.snapshot.map(|h| h.offset),
        c.replayed,
        c.gap
    )))
}

fn asked<'a>(key: Option<&'a str>, s: &'a Arc<SessionHandle>, want: &'a Want) -> Asked<'a> {
    Asked {
        channel: 0,
        key,
        session: s,
        want,
        limit: 100,
    }
}

fn begin(hub: &Hub, key: Option<&str>, s: &Arc<SessionHandle>, want: &Want) -> Begun {
    hub.begin(asked(key, s, want), Terms::default(), confirm)
}

fn messages(s: &SessionHandle) -> Vec<String> {
    frames(s)
        .into_iter()
        .filter(|f| !f.starts_with("subscribed"))
        .collect()
}

fn at(offsets: std::ops::Range<i64>) -> Vec<String> {
    offsets.map(|o| format!("{{\"p\":0,\"o\":{o}}}")).collect()
}

#[test]
fn records_read_again_after_a_rebalance_are_not_routed_twice() {
    let hub = hub(&["{name: c, topic: t}"]);
    let s = session(1, None);
    hub.subscribe(0, None, &s, ok());
    for offset in 0..5 {
        hub.deliver(0, Route::Key(None), &held(0, offset), false);
    }
    // The consumer went back to offset 2 (its last commit) on partition 0.
    for offset in 2..7 {
        hub.deliver(0, Route::Key(None), &held(0, offset), false);
    }
    // Another partition is not affected.
    hub.deliver(0, Route::Key(None), &held(1, 0), false);
    let offsets: Vec<String> = frames(&s).into_iter().skip(1).collect();
    assert_eq!(
        offsets,
        (0..7)
            .map(|o| format!("{{\"p\":0,\"o\":{o}}}"))
            .chain(["{\"p\":1,\"o\":0}".to_owned()])
            .collect::<Vec<_>>()
    );
    assert_eq!(
        hub.catalogue().channel(0).metrics.dropped_redelivered.get(),
        3
    );
}

#[test]
fn resume_from_memory_then_live_without_duplicates_or_gaps() {
    let hub = hub(&["{name: bal, topic: t, deliver: by_key, key: {from: record_key}, history: 3, snapshot: true}"]);
    for offset in 0..5 {
        hub.deliver(0, Route::Key(Some("K")), &held(0, offset), false);
    }
    let s = session(1, None);
    let begun = begin(&hub, Some("K"), &s, &Want::Resume(BTreeMap::from([(0, 2)])));
    assert!(
        matches!(
            begun,
            Begun::Attached(Attached {
                replayed: 2,
                gap: false
            })
        ),
        "{begun:?}"
    );
    hub.deliver(0, Route::Key(Some("K")), &held(0, 5), false);
    let got = frames(&s);
    assert_eq!(got[0], "subscribed snapshot=Some(4) replayed=2 gap=false");
    assert_eq!(&got[1..], at(3..6));
}

#[test]
fn resume_beyond_memory_reads_kafka_and_holds_live_records_back_meanwhile() {
    let hub = hub(&["{name: bal, topic: t, deliver: by_key, key: {from: record_key}, history: 2}"]);
    for offset in 0..6 {
        hub.deliver(0, Route::Key(Some("K")), &held(0, offset), false);
    }
    let s = session(1, None);
    let want = Want::Resume(BTreeMap::from([(0, 1)]));
    let Begun::Reading {
        need,
        held: from_memory,
    } = begin(&hub, Some("K"), &s, &want)
    else {
        panic!("memory holds only 4 and 5");
    };
    assert_eq!(
        need,
        Need::Ranges(vec![Missing {
            partition: 0,
            from: 2,
            until: Some(4)
        }])
    );
    // Live records while Kafka is read: held back, not lost, not sent early.
    hub.deliver(0, Route::Key(Some("K")), &held(0, 6), false);
    assert!(frames(&s).is_empty());
    let fetched = Fetched {
        records: vec![held(0, 2), held(0, 3)],
        covered: BTreeMap::from([(0, 2..4)]),
        gap: false,
    };
    let attached = hub.complete(
        asked(Some("K"), &s, &want),
        from_memory,
        Some(fetched),
        confirm,
    );
    assert_eq!(
        attached,
        Attached {
            replayed: 5,
            gap: false
        }
    );
    hub.deliver(0, Route::Key(Some("K")), &held(0, 7), false);
    assert_eq!(messages(&s), at(2..8));
}

#[test]
fn a_replay_filter_stops_live_duplicates_of_records_read_from_kafka() {
    // A partition not routed live yet: the consumer is behind the read.
    let hub = hub(&["{name: news, topic: t, history: 0}"]);
    let s = session(1, None);
    let want = Want::Resume(BTreeMap::from([(0, 9)]));
    let Begun::Reading {
        need,
        held: from_memory,
    } = begin(&hub, None, &s, &want)
    else {
        panic!()
    };
    assert_eq!(
        need,
        Need::Ranges(vec![Missing {
            partition: 0,
            from: 10,
            until: None
        }])
    );
    for offset in 8..12 {
        hub.deliver(0, Route::Key(None), &held(0, offset), false);
    }
    let fetched = Fetched {
        records: vec![held(0, 10), held(0, 11)],
        covered: BTreeMap::from([(0, 10..12)]),
        gap: false,
    };
    assert_eq!(
        hub.complete(asked(None, &s, &want), from_memory, Some(fetched), confirm)
            .replayed,
        2
    );
    for offset in 12..14 {
        hub.deliver(0, Route::Key(None), &held(0, offset), false);
    }
    assert_eq!(messages(&s), at(10..14));
}

#[test]
fn a_failed_read_still_attaches_with_a_gap() {
    let hub = hub(&["{name: news, topic: t, history: 0}"]);
    let s = session(1, None);
    let want = Want::Resume(BTreeMap::from([(0, 3)]));
    let Begun::Reading {
        held: from_memory, ..
    } = begin(&hub, None, &s, &want)
    else {
        panic!()
    };
    hub.deliver(0, Route::Key(None), &held(0, 9), false);
    let attached = hub.complete(asked(None, &s, &want), from_memory, None, confirm);
    assert_eq!(
        attached,
        Attached {
            replayed: 1,
            gap: true
        }
    );
}

#[test]
fn newest_records_come_from_memory_when_it_holds_enough() {
    let hub = hub(&["{name: bal, topic: t, deliver: by_key, key: {from: record_key}, history: 5}"]);
    for offset in 0..5 {
        hub.deliver(0, Route::Key(Some("K")), &held(0, offset), false);
    }
    let s = session(1, None);
    assert!(matches!(
        begin(&hub, Some("K"), &s, &Want::Newest(2)),
        Begun::Attached(Attached { replayed: 2, .. })
    ));
    assert_eq!(messages(&s), at(3..5));
    assert!(matches!(
        begin(&hub, Some("K"), &session(2, None), &Want::Newest(9)),
        Begun::Reading {
            need: Need::Tails(_),
            ..
        }
    ));
}

#[test]
fn time_order_keeps_each_partition_in_offset_order() {
    let mut records = vec![held(1, 5), held(0, 2), held(0, 1), held(1, 3)];
    records[2].timestamp = 100; // partition 0, offset 1, stamped later than offset 2
    crate::state::sort_by_time(&mut records);
    let order: Vec<(i32, i64)> = records.iter().map(|h| (h.partition, h.offset)).collect();
    assert_eq!(order, [(1, 3), (1, 5), (0, 1), (0, 2)]);
}

#[test]
fn snapshots_follow_tombstones_and_ignore_older_loads() {
    let hub =
        hub(&["{name: bal, topic: t, deliver: by_key, key: {from: record_key}, snapshot: true}"]);
    hub.deliver(0, Route::Key(Some("K")), &held(0, 7), false);
    hub.load_snapshot(0, "K", &held(0, 3), false);
    let s = session(1, None);
    begin(&hub, Some("K"), &s, &Want::Live);
    assert_eq!(
        frames(&s),
        ["subscribed snapshot=Some(7) replayed=0 gap=false"]
    );
    hub.deliver(0, Route::Key(Some("K")), &held(0, 8), true);
    hub.load_snapshot(0, "K", &held(0, 5), false);
    let t = session(2, None);
    begin(&hub, Some("K"), &t, &Want::Live);
    assert_eq!(
        frames(&t),
        ["subscribed snapshot=None replayed=0 gap=false"]
    );
}

#[test]
fn memory_is_bounded_by_keys_and_evictions_raise_the_floor() {
    let hub = hub(&["{name: bal, topic: t, deliver: by_key, key: {from: record_key}, snapshot: true, history: 2, max_keys: 3}"]);
    for (offset, key) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        hub.deliver(0, Route::Key(Some(key)), &held(0, offset as i64), false);
    }
    assert_eq!(hub.catalogue().channel(0).metrics.state_keys.get(), 3);
    assert_eq!(
        hub.catalogue().channel(0).metrics.state_evicted_keys.get(),
        2
    );
    // `a` was dropped: resuming it from before its record needs Kafka.
    let s = session(1, None);
    let begun = begin(
        &hub,
        Some("a"),
        &s,
        &Want::Resume(BTreeMap::from([(0, -1)])),
    );
    assert!(
        matches!(
            begun,
            Begun::Reading {
                need: Need::Ranges(_),
                ..
            }
        ),
        "{begun:?}"
    );
}

/// `subscribe.where` on a broadcast channel: a record costs the sessions of its scope only,
/// and unsubscribing finds the session under its scope.
#[test]
fn where_routes_by_scope_and_unsubscribes_by_it() {
    let hub =
        hub(&["{name: o, topic: t, subscribe: {where: {pointer: /t, equals_claim: tenant}}}"]);
    let with = |id: u64, tenant: &str| {
        let mut handle = Arc::into_inner(session(id, Some("u"))).unwrap();
        handle.claims.insert("tenant".into(), tenant.into());
        Arc::new(handle)
    };
    let (a, b) = (with(1, "A"), with(2, "B"));
    hub.subscribe(0, None, &a, ok());
    hub.subscribe(0, None, &b, ok());
    let mut record = held(0, 0);
    record.scope = Some("A".into());
    assert_eq!(
        hub.deliver(0, Route::Key(None), &record, false).delivered,
        1
    );
    assert_eq!((queued(&a), queued(&b)), (1, 0));
    assert_eq!(hub.subscriber_count(0), 2);
    assert_eq!(hub.unsubscribe(0, None, &a), Change::Changed);
    assert_eq!(hub.subscriber_count(0), 1);
}
