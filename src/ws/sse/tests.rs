use super::*;

#[test]
fn an_event_id_round_trips() {
    let seen = BTreeMap::from([(0, 41), (3, 7)]);
    assert_eq!(event_id(&seen), "0:41,3:7");
    assert_eq!(parse_event_id("0:41,3:7").unwrap(), seen);
}

#[test]
fn a_bad_event_id_is_refused_with_what_was_expected() {
    for bad in ["x", "0:", "0:1,0:2", "-1:4", "1:2,", "a:b"] {
        let error = parse_event_id(bad).unwrap_err();
        assert!(error.contains("partition:offset"), "{bad}: {error}");
    }
}

#[test]
fn the_query_and_last_event_id_make_the_request() {
    let request = parse_request("channel=feed&key=C%2D1&history=5", None).unwrap();
    assert_eq!(request.channel, "feed");
    assert_eq!(request.key.as_deref(), Some("C-1"));
    assert_eq!(request.want, Want::Newest(5));
    // On reconnect, the id wins over `history`.
    let request = parse_request("channel=feed&history=5", Some("2:9")).unwrap();
    assert_eq!(request.want, Want::Resume(BTreeMap::from([(2, 9)])));
    assert!(parse_request("key=a", None)
        .unwrap_err()
        .contains("`channel`"));
    assert!(parse_request("channel=a&history=x", None)
        .unwrap_err()
        .contains("`history`"));
}

fn writer() -> Ids {
    Ids {
        seen: BTreeMap::new(),
        replay: None,
    }
}

/// What the tests fed as JSON frames, as the typed items the outbox holds.
fn item(json: &str) -> Item {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let positions = |v: &serde_json::Value| -> BTreeMap<i32, i64> {
        v.as_object()
            .map(|o| {
                o.iter()
                    .map(|(p, o)| (p.parse().unwrap(), o.as_i64().unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    };
    match v["type"].as_str().unwrap() {
        "subscribed" => Answer::Subscribed(crate::protocol::Subscribed {
            id: None,
            channel: 0,
            name: v["channel"].as_str().unwrap().to_owned(),
            key: None,
            snapshot: None,
            replayed: v["replayed"].as_u64().unwrap() as usize,
            gap: false,
            positions: positions(&v["positions"]),
        })
        .into(),
        _ => Item::Record(std::sync::Arc::new(crate::protocol::Delivery::new(
            crate::protocol::Parts {
                channel: 0,
                prefix: &crate::protocol::MessagePrefix::new(v["channel"].as_str().unwrap()),
                key: None,
                data: &v["data"].to_string(),
                partition: v["partition"].as_i64().unwrap() as i32,
                offset: v["offset"].as_i64().unwrap(),
                timestamp: None,
                headers: &[],
                schema_id: None,
                value: None,
            },
        ))),
    }
}

impl Ids {
    fn event_of(&mut self, json: &str) -> String {
        String::from_utf8(self.event(&item(json)).to_vec()).unwrap()
    }
}

fn id_of(event: &str) -> Option<String> {
    event
        .lines()
        .find_map(|l| l.strip_prefix("id:").map(str::to_owned))
}

#[test]
fn ids_count_the_replay_then_the_live_positions() {
    let mut w = writer();
    let subscribed = w.event_of(r#"{"type":"subscribed","channel":"c","snapshot":null,"replayed":2,"gap":false,"positions":{"0":5,"1":3}}"#);
    assert_eq!(id_of(&subscribed), None);
    let first = w.event_of(r#"{"type":"message","channel":"c","data":{"a":"\n"},"partition":0,"offset":4,"timestamp":null,"headers":{}}"#);
    assert_eq!(id_of(&first).as_deref(), Some("0:4"));
    // The replay is out: live continues after the positions of `subscribed`.
    let second = w.event_of(r#"{"type":"message","channel":"c","data":1,"partition":0,"offset":5,"timestamp":null,"headers":{}}"#);
    assert_eq!(id_of(&second).as_deref(), Some("0:5,1:3"));
    let live = w.event_of(r#"{"type":"message","channel":"c","data":1,"partition":1,"offset":4,"timestamp":null,"headers":{}}"#);
    assert_eq!(id_of(&live).as_deref(), Some("0:5,1:4"));
    assert!(live.to_string().starts_with("event:message\ndata:{"));
}

#[test]
fn a_subscribed_without_replay_carries_the_live_positions() {
    let mut w = writer();
    let subscribed = w.event_of(r#"{"type":"subscribed","channel":"c","snapshot":null,"replayed":0,"gap":false,"positions":{"2":40}}"#);
    assert_eq!(id_of(&subscribed).as_deref(), Some("2:40"));
    assert!(subscribed.to_string().starts_with("event:subscribed\n"));
}
