use super::*;
use crate::config::InboundConfig;
use crate::metrics::Metrics;

fn inbound(yaml: &str) -> Inbound {
    let configs: Vec<InboundConfig> = serde_yaml::from_str(yaml).unwrap();
    let catalogue = Catalogue::new(&[], &configs, &Metrics::new(&[], &[], &[]));
    Inbound::new(Arc::new(catalogue), None, None)
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

fn user(id: &str) -> Identity {
    Identity {
        user: Some(id.into()),
        ..Identity::default()
    }
}

#[test]
fn builds_key_and_bridge_headers() {
    let inbound = inbound("[{channel: c, topic: t, key: user}, {channel: p, topic: t2, key: {pointer: /acc}, allow: anonymous}]");
    let alice = user("alice");
    let publisher = Publisher {
        identity: &alice,
        session: Some("s-1"),
    };
    let id = raw("\"p1\"");
    let client_headers = BTreeMap::from([("h".to_owned(), "v".to_owned())]);
    let prepared = inbound
        .prepare(
            "c",
            &raw("{\"a\":1}"),
            &client_headers,
            Some(&id),
            &publisher,
        )
        .unwrap();
    assert_eq!(prepared.key.as_deref(), Some("alice"));
    assert_eq!(prepared.payload, b"{\"a\":1}");
    assert_eq!(
        prepared.headers,
        [
            ("h", "v"),
            ("bridge-user", "alice"),
            ("bridge-session", "s-1"),
            ("correlation-id", "p1")
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    let anonymous = Identity::anonymous();
    let publisher = Publisher {
        identity: &anonymous,
        session: None,
    };
    let prepared = inbound
        .prepare("p", &raw("{\"acc\":7}"), &BTreeMap::new(), None, &publisher)
        .unwrap();
    assert_eq!(
        (prepared.key.as_deref(), prepared.topic()),
        (Some("7"), "t2")
    );
    let refusal = inbound
        .prepare("p", &raw("{}"), &BTreeMap::new(), None, &publisher)
        .err()
        .unwrap();
    assert_eq!(refusal.code, ErrorCode::BadRequest);
}

#[test]
fn refuses_reserved_headers_unknown_channels_and_strangers() {
    let inbound = inbound("[{channel: c, topic: t}]");
    let alice = user("alice");
    let publisher = Publisher {
        identity: &alice,
        session: None,
    };
    let spoof = BTreeMap::from([("Bridge-User".to_owned(), "mallory".to_owned())]);
    assert_eq!(
        inbound
            .prepare("c", &raw("1"), &spoof, None, &publisher)
            .err()
            .unwrap()
            .code,
        ErrorCode::BadRequest
    );
    assert_eq!(
        inbound
            .prepare("x", &raw("1"), &BTreeMap::new(), None, &publisher)
            .err()
            .unwrap()
            .code,
        ErrorCode::UnknownChannel
    );
    let anonymous = Identity::anonymous();
    let stranger = Publisher {
        identity: &anonymous,
        session: None,
    };
    assert_eq!(
        inbound
            .prepare("c", &raw("1"), &BTreeMap::new(), None, &stranger)
            .err()
            .unwrap()
            .code,
        ErrorCode::Forbidden
    );
}
