use super::*;
use serde_json::Value;

#[test]
fn server_frames_are_valid_json() {
    let id: RequestId = Some(RawValue::from_string("\"p1\"".into()).unwrap());
    let frames = [
        welcome("s\"1", Some("C-1")),
        welcome("s", None),
        error(&id, &Refusal::new(ErrorCode::Forbidden, "no \n way")),
        pong(&None),
        ack(&id, "t", 1, Some(7)),
        ack(&id, "t", 1, None),
        subscribed(
            &id,
            "c",
            Some("k"),
            Some(SnapshotValue {
                data: "{\"a\":1}",
                partition: 0,
                offset: 4,
            }),
            2,
            true,
            &BTreeMap::from([(0, 4), (3, 9)]),
        ),
        subscribed(&None, "c", None, None, 0, false, &BTreeMap::new()),
        unsubscribed(&id, "c", None),
        session_replaced(),
    ];
    for frame in frames {
        let value: Value = serde_json::from_str(frame.as_str())
            .unwrap_or_else(|e| panic!("{e}: {}", frame.as_str()));
        assert!(value["type"].is_string());
    }
}

#[test]
fn message_frame_carries_everything() {
    let prefix = MessagePrefix::new("bal\"ances");
    let headers: [(&str, Option<&str>); 2] = [("h", Some("v\x01")), ("n", None)];
    let frame = message(
        &prefix,
        &MessageParts {
            key: Some("C-1"),
            data: "{\"x\":1}",
            partition: 2,
            offset: 41,
            timestamp: Some(1700),
            headers: &headers,
            schema_id: None,
            conflated: None,
        },
    );
    let value: Value = serde_json::from_str(frame.as_str()).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"type":"message","channel":"bal\"ances","key":"C-1","data":{"x":1},"partition":2,"offset":41,"timestamp":1700,"headers":{"h":"v\u{1}","n":null}})
    );
    let frame = message(
        &prefix,
        &MessageParts {
            key: None,
            data: "{}",
            partition: 0,
            offset: 1,
            timestamp: None,
            headers: &[],
            schema_id: Some(42),
            conflated: None,
        },
    );
    assert_eq!(
        frame.as_str(),
        r#"{"type":"message","channel":"bal\"ances","data":{},"partition":0,"offset":1,"timestamp":null,"schema_id":42,"headers":{}}"#
    );
}
