use super::*;
use crate::config::ChannelConfig;
use crate::hub::SessionHandle;
use crate::outbox::Outbox;

pub(super) fn setup(channels: &str) -> (Arc<Hub>, Outbound, Metrics) {
    let channels: Vec<ChannelConfig> = serde_yaml::from_str(channels).unwrap();
    let metrics = Metrics::new(&[], &[], &[]);
    let catalogue = Arc::new(Catalogue::new(&channels, &[], &metrics));
    let hub = Arc::new(Hub::new(catalogue.clone()));
    let outbound = Outbound::new(catalogue, hub.clone(), &metrics, None);
    (hub, outbound, metrics)
}

fn session(id: u64) -> Arc<SessionHandle> {
    session_with(id, 64)
}

/// A session whose queue holds `messages` messages.
pub(super) fn session_with(id: u64, messages: usize) -> Arc<SessionHandle> {
    Arc::new(SessionHandle {
        id,
        public_id: format!("s{id}"),
        user: None,
        claims: Default::default(),
        outbox: Outbox::new(crate::outbox::Bounds {
            messages,
            bytes: usize::MAX,
            grace: std::time::Duration::from_secs(1),
        }),
    })
}

pub(super) fn ok() -> crate::protocol::Frame {
    crate::protocol::Frame::from("{\"type\":\"subscribed\"}".to_owned())
}

/// The message frames queued on a session.
fn frames(session: &SessionHandle) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    session.outbox.take(&mut out, 100);
    out.iter()
        .map(|o| serde_json::from_str::<serde_json::Value>(o.item.json().as_str()).unwrap())
        .filter(|f| f["type"] == "message")
        .collect()
}

fn record<'a>(
    topic: &'a str,
    key: Option<&'a [u8]>,
    value: &'a [u8],
    headers: &'a [(&'a str, Option<&'a [u8]>)],
) -> Record<'a> {
    // Each record a new offset, as the consumer reads them (one read again is skipped).
    static OFFSET: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    Record {
        topic,
        partition: 1,
        offset: OFFSET.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        timestamp: Some(5),
        key,
        value: Some(value),
        headers,
    }
}

#[test]
fn one_record_feeds_every_channel_of_its_topic() {
    let (hub, outbound, _) =
        setup("[{name: a, topic: t}, {name: b, topic: t, format: text}, {name: c, topic: u}]");
    let (sa, sb, sc) = (session(1), session(2), session(3));
    hub.subscribe(0, None, &sa, ok());
    hub.subscribe(1, None, &sb, ok());
    hub.subscribe(2, None, &sc, ok());
    assert_eq!(
        outbound.record(&record("t", None, b"{\"x\":1}", &[])),
        Routed::Done
    );
    assert_eq!(frames(&sa)[0]["data"], serde_json::json!({"x": 1}));
    assert_eq!(frames(&sb)[0]["data"], "{\"x\":1}");
    assert!(frames(&sc).is_empty());
    assert_eq!(outbound.catalogue.topics(), ["t", "u"]);
}

#[test]
fn keys_from_record_header_and_value() {
    let (hub, outbound, _) = setup(
        "[{name: k, topic: t1, deliver: by_key, key: {from: record_key}},
          {name: h, topic: t2, deliver: by_key, key: {from: header, name: cid}},
          {name: v, topic: t3, deliver: by_key, key: {from: value, pointer: /c}}]",
    );
    let s = session(1);
    for channel in 0..3 {
        hub.subscribe(channel, Some("C-1"), &s, ok());
    }
    assert_eq!(
        outbound.record(&record("t1", Some(b"C-1"), b"1", &[])),
        Routed::Done
    );
    assert_eq!(
        outbound.record(&record("t1", Some(b"C-2"), b"2", &[])),
        Routed::Done
    );
    assert_eq!(
        outbound.record(&record("t2", None, b"3", &[("cid", Some(b"C-1"))])),
        Routed::Done
    );
    assert_eq!(
        outbound.record(&record("t3", None, b"{\"c\":\"C-1\"}", &[])),
        Routed::Done
    );
    assert_eq!(
        outbound.record(&record("t3", None, b"{\"c\":\"C-2\"}", &[])),
        Routed::Done
    );
    let got: Vec<String> = frames(&s)
        .iter()
        .map(|f| format!("{}:{}", f["channel"], f["key"]))
        .collect();
    assert_eq!(got, ["\"k\":\"C-1\"", "\"h\":\"C-1\"", "\"v\":\"C-1\""]);
}

#[test]
fn bad_records_are_counted_not_fatal() {
    let (hub, outbound, metrics) =
        setup("[{name: j, topic: t, deliver: by_key, key: {from: record_key}}]");
    let s = session(1);
    hub.subscribe(0, Some("k"), &s, ok());
    assert_eq!(
        outbound.record(&record("t", Some(b"k"), b"{not json", &[])),
        Routed::Done
    );
    assert_eq!(
        outbound.record(&record("t", None, b"{}", &[])),
        Routed::Done
    );
    assert_eq!(
        outbound.record(&record("t", Some(b"k"), b"{}", &[])),
        Routed::Done
    );
    assert_eq!(frames(&s).len(), 1);
    let text = metrics.render();
    assert!(
        text.contains(
            "kafka_ws_bridge_messages_dropped_total{channel=\"j\",reason=\"undecodable\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("kafka_ws_bridge_messages_dropped_total{channel=\"j\",reason=\"no_key\"} 1")
    );
}
