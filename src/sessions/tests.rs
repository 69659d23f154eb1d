//! The session registry in process: the limit per user and group, the shared registry's
//! records and directory, and how records from other instances close this one's sessions.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::shared::*;
use super::*;
use crate::hub::SessionHandle;

fn handle(id: u64, user: Option<&str>) -> Arc<SessionHandle> {
    Arc::new(SessionHandle {
        id,
        public_id: format!("s{id}"),
        user: user.map(str::to_owned),
        claims: serde_json::Map::new(),
        outbox: crate::outbox::Outbox::new(crate::outbox::Bounds {
            messages: 8,
            bytes: 1024,
            grace: std::time::Duration::from_secs(1),
        }),
    })
}

fn ids(replaced: Vec<Entry>) -> Vec<u64> {
    replaced.iter().map(|e| e.handle.id).collect()
}

#[test]
fn the_limit_counts_per_user_and_group() {
    let sessions = Sessions::default();
    let app = |name: &str| Some(name.to_owned());
    let insert = |id, user, group| {
        ids(sessions.insert(&handle(id, user), group, CancellationToken::new(), 1))
    };
    assert_eq!(insert(1, Some("alice"), app("teller")), Vec::<u64>::new());
    assert_eq!(insert(2, Some("alice"), app("advisor")), Vec::<u64>::new());
    assert_eq!(insert(3, Some("alice"), None), Vec::<u64>::new());
    assert_eq!(insert(4, Some("bob"), app("teller")), Vec::<u64>::new());
    assert_eq!(insert(5, None, app("teller")), Vec::<u64>::new());
    assert_eq!(
        insert(6, None, app("teller")),
        Vec::<u64>::new(),
        "anonymous: uncounted"
    );
    assert_eq!(insert(7, Some("alice"), app("teller")), [1]);
    assert_eq!(insert(8, Some("alice"), None), [3]);
    // Removing a replaced session (its task ends) leaves the newer ones counted.
    sessions.remove(&handle(1, Some("alice")));
    assert_eq!(insert(9, Some("alice"), app("teller")), [7]);
    assert_eq!(sessions.len(), 8);
}

/// A record's key or value as the reader gets it.
type Bytes<'a> = Option<&'a [u8]>;

fn key(user: &str, group: Option<&str>) -> GroupKey {
    GroupKey {
        user: user.to_owned(),
        group: group.map(str::to_owned),
    }
}

fn opened(session: &str, at: u64, instance: &str, seq: u64) -> Opened {
    Opened {
        session: session.to_owned(),
        order: Order {
            opened_at_ms: at,
            instance: instance.to_owned(),
            seq,
        },
        boot: "b".to_owned(),
    }
}

fn sessions(pushed: Vec<Opened>) -> Vec<String> {
    pushed.into_iter().map(|o| o.session).collect()
}

#[test]
fn records_round_trip() {
    let k = key("alice", Some("teller"));
    let o = opened("s1", 1_000, "bridge-a", 7);
    let (key_bytes, value) = (encode_key(&k, "s1"), encode_open(&o));
    assert_eq!(
        String::from_utf8_lossy(&key_bytes),
        r#"["alice","teller","s1"]"#
    );
    assert_eq!(
        String::from_utf8_lossy(&value),
        r#"{"instance":"bridge-a","boot":"b","opened_at_ms":1000,"seq":7}"#
    );
    assert_eq!(
        decode(Some(&key_bytes), Some(&value), 1_000),
        Ok(Record::Open {
            key: k.clone(),
            opened: o
        })
    );
    assert_eq!(
        decode(Some(br#"["alice",null,"s1"]"#), None, 0),
        Ok(Record::Close {
            key: key("alice", None),
            session: "s1".to_owned()
        })
    );
    // Fields a later version may add are not junk.
    assert!(decode(
        Some(&key_bytes),
        Some(br#"{"instance":"a","boot":"b","opened_at_ms":1,"seq":1,"more":true}"#),
        0
    )
    .is_ok());
}

#[test]
fn junk_is_ignored_with_its_reason() {
    let good_key: &[u8] = br#"["alice","teller","s1"]"#;
    let good_value: &[u8] = br#"{"instance":"a","boot":"b","opened_at_ms":1,"seq":1}"#;
    let big = vec![b'x'; 5000];
    let long_user = format!(r#"["{}",null,"s"]"#, "u".repeat(2000));
    let cases: Vec<(Bytes, Bytes, &str)> = vec![
        (None, Some(good_value), "a record without a key"),
        (
            Some(b"alice"),
            Some(good_value),
            "key: expected [\"user\", \"group\" or null, \"session\"]",
        ),
        (Some(br#"["alice","teller"]"#), None, "key: expected"),
        (Some(br#"{"user":"alice"}"#), None, "key: expected"),
        (Some(br#"[1,2,3]"#), None, "key: expected"),
        (
            Some(br#"["","g","s"]"#),
            None,
            "key: an empty user, group or session",
        ),
        (
            Some(br#"["a","","s"]"#),
            None,
            "key: an empty user, group or session",
        ),
        (
            Some(long_user.as_bytes()),
            None,
            "key: user of 2000 bytes (at most 1024)",
        ),
        (
            Some(&big),
            None,
            "a record over 4096 bytes (key 5000 bytes, value 0 bytes)",
        ),
        (
            Some(good_key),
            Some(b"not json"),
            "value: expected {\"instance\", \"boot\", \"opened_at_ms\", \"seq\"} or a tombstone",
        ),
        (Some(good_key), Some(b"{}"), "value: expected"),
        (
            Some(good_key),
            Some(br#"{"instance":"a","boot":"b","opened_at_ms":-1,"seq":1}"#),
            "value: expected",
        ),
        (
            Some(good_key),
            Some(br#"{"instance":"a","boot":"b","opened_at_ms":"1","seq":1}"#),
            "value: expected",
        ),
        (
            Some(good_key),
            Some(br#"{"instance":"","boot":"b","opened_at_ms":1,"seq":1}"#),
            "value: instance and boot must be 1 to 256 bytes",
        ),
    ];
    for (k, v, says) in cases {
        match decode(k, v, 1_000) {
            Err(Ignored::Malformed(why)) => assert!(why.starts_with(says), "{why} / {says}"),
            other => panic!("{k:?} {v:?}: {other:?}"),
        }
    }
    assert_eq!(
        decode(
            Some(good_key),
            Some(br#"{"instance":"a","boot":"b","opened_at_ms":100000,"seq":1}"#),
            1_000
        ),
        Err(Ignored::Future { ahead_ms: 99_000 })
    );
    assert!(decode(
        Some(good_key),
        Some(br#"{"instance":"a","boot":"b","opened_at_ms":61000,"seq":1}"#),
        1_000
    )
    .is_ok());
}

#[test]
fn the_newest_n_of_each_group_stay_wherever_they_opened() {
    let mut directory = Directory::new(2);
    let teller = key("alice", Some("teller"));
    assert!(directory
        .open(teller.clone(), opened("a1", 10, "a", 1))
        .is_empty());
    assert!(directory
        .open(teller.clone(), opened("b1", 20, "b", 1))
        .is_empty());
    assert!(directory
        .open(key("alice", Some("advisor")), opened("b2", 30, "b", 2))
        .is_empty());
    assert_eq!(
        sessions(directory.open(teller.clone(), opened("a2", 25, "a", 2))),
        ["a1"]
    );
    // An open that arrives late but is older than the newest two is pushed out at once.
    assert_eq!(
        sessions(directory.open(teller.clone(), opened("c1", 15, "c", 1))),
        ["c1"]
    );
    // Same millisecond: the instance id, then the sequence decide, on every reader alike.
    assert_eq!(
        sessions(directory.open(teller.clone(), opened("c2", 25, "c", 2))),
        ["b1"]
    );
    assert!(directory
        .open(teller.clone(), opened("c2", 25, "c", 2))
        .is_empty());
    // A close frees a slot; what was pushed out stays out.
    directory.close(&teller, "c2");
    assert_eq!(directory.open_sessions(), 2);
    assert!(directory
        .open(teller.clone(), opened("d1", 40, "d", 1))
        .is_empty());
    assert_eq!(
        sessions(directory.open(teller, opened("d2", 50, "d", 2))),
        ["a2"]
    );
    directory.close(&key("alice", Some("advisor")), "b2");
    directory.close(&key("nobody", None), "x");
    assert_eq!(directory.open_sessions(), 2);
}

/// A log that keeps what it is given, as (key, value) texts.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<Text>>>);

/// A record as text: key, value (`None`: a tombstone).
type Text = (String, Option<String>);

impl RegistryLog for Kept {
    fn append(&self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
        self.0.lock().push((text(key), value.map(text)));
    }
}

fn counter() -> prometheus::IntCounter {
    prometheus::IntCounter::new("c", "c").unwrap()
}

#[test]
fn records_of_other_instances_close_this_ones_older_sessions() {
    let kept = Kept::default();
    let metrics = SharedMetrics {
        opened: counter(),
        closed: counter(),
        ignored: counter(),
    };
    let sessions = Sessions::with_registry(Shared::new(
        "a".into(),
        1,
        Box::new(kept.clone()),
        metrics.clone(),
    ));
    let boot = sessions.shared.as_ref().unwrap().boot.clone();
    // A previous start of this instance left a session open; another instance has one too.
    let open = |instance: &str, boot: &str, at: u64| {
        format!(r#"{{"instance":"{instance}","boot":"{boot}","opened_at_ms":{at},"seq":1}}"#)
    };
    let apply = |key: &str, value: Option<&str>| {
        sessions.apply_registry_record(Some(key.as_bytes()), value.map(str::as_bytes))
    };
    apply(r#"["ghost",null,"g1"]"#, Some(&open("a", "earlier", 5)));
    apply(r#"["carol","teller","c1"]"#, Some(&open("b", "x", 5)));
    assert_eq!(sessions.registry_loading(), Some(Loading::Reading(None)));
    sessions.registry_loaded();
    assert_eq!(sessions.registry_loading(), Some(Loading::Loaded));
    assert_eq!(
        kept.0.lock().drain(..).collect::<Vec<_>>(),
        [(r#"["ghost",null,"g1"]"#.to_owned(), None)],
        "only the previous start's session is closed"
    );

    // This instance's session is written, read back, and replaced by a newer one elsewhere.
    let alice = handle(1, Some("alice"));
    let bob = handle(2, Some("bob"));
    sessions.insert(&alice, Some("teller".into()), CancellationToken::new(), 1);
    sessions.insert(&bob, Some("teller".into()), CancellationToken::new(), 1);
    let written = kept.0.lock().clone();
    assert_eq!(written.len(), 2);
    assert_eq!(written[0].0, r#"["alice","teller","s1"]"#);
    let value: serde_json::Value = serde_json::from_str(written[0].1.as_ref().unwrap()).unwrap();
    assert_eq!(
        (value["instance"].as_str(), value["boot"].as_str()),
        (Some("a"), Some(boot.as_str()))
    );
    let opened_at = value["opened_at_ms"].as_u64().unwrap();
    assert!(opened_at.abs_diff(now_ms()) < 10_000);
    for (key, value) in &written {
        apply(key, value.as_deref());
    }
    // Junk and an older open elsewhere change nothing.
    apply("junk", Some("{}"));
    apply(r#"["alice","teller","old"]"#, Some(&open("b", "x", 1)));
    apply(
        r#"["alice","teller","later"]"#,
        Some(&open("b", "x", now_ms() + 3_600_000)),
    );
    assert_eq!(alice.outbox.closing(), None);
    assert_eq!(metrics.ignored.get(), 2);
    // A newer open of another group changes nothing; of the same group, replaces.
    apply(
        r#"["alice","advisor","b1"]"#,
        Some(&open("b", "x", opened_at + 1)),
    );
    assert_eq!(alice.outbox.closing(), None);
    apply(
        r#"["alice","teller","b2"]"#,
        Some(&open("b", "x", opened_at + 1)),
    );
    assert_eq!(alice.outbox.closing(), Some(Close::Replaced));
    assert_eq!(bob.outbox.closing(), None);

    // Its task ends: a tombstone.
    sessions.remove(&alice);
    assert_eq!(
        kept.0.lock().last().cloned(),
        Some((r#"["alice","teller","s1"]"#.to_owned(), None))
    );
    assert_eq!(metrics.opened.get(), 7);
}
