//! JSON Schema: records are their own JSON; publishes are validated with the path named.

use super::fixtures::*;
use crate::registry::{DecodeError, Reference, Schema, SchemaKind};

#[test]
fn records_are_the_json_itself() {
    let schema = compile(SchemaKind::JsonSchema, JSON_ORDER);
    let text = r#"{"anything": [1, 2.5, "x"]}"#;
    assert_eq!(
        schema.decode(text.as_bytes()).unwrap(),
        text,
        "decoding does not validate"
    );
    assert!(matches!(
        schema.decode(b"{\"a\":"),
        Err(DecodeError::NotJson(_))
    ));
    assert!(matches!(
        schema.decode(&[0xff]),
        Err(DecodeError::NotJson(_))
    ));
    let deep = "[".repeat(10_000);
    assert!(matches!(
        schema.decode(deep.as_bytes()),
        Err(DecodeError::NotJson(_))
    ));
    let small = Schema::compile(SchemaKind::JsonSchema, JSON_ORDER, &[], 4).unwrap();
    assert_eq!(small.decode(b"[1,2,3]"), Err(DecodeError::TooLarge(4)));
}

#[test]
fn publishes_are_validated_and_written_after_the_header() {
    let schema = compile(SchemaKind::JsonSchema, JSON_ORDER);
    let value = json(r#"{"order_id":"o1","amount_cents":5,"items":[]}"#);
    let bytes = schema.encode(258, &value).unwrap();
    assert_eq!(&bytes[..5], &[0, 0, 0, 1, 2]);
    assert_eq!(json(std::str::from_utf8(&bytes[5..]).unwrap()), value);
    let err = |v: &str| schema.encode(1, &json(v)).unwrap_err();
    let e = err(r#"{"order_id":"o1","amount_cents":"5","items":[]}"#);
    assert_eq!(e.path, "amount_cents");
    assert!(
        e.to_string()
            .starts_with("`amount_cents`: \"5\" is not of type \"integer\""),
        "{e}"
    );
    let e = err(
        r#"{"order_id":"o1","amount_cents":5,"items":[{"sku":"a","qty":1},{"sku":"b","qty":0}]}"#,
    );
    assert_eq!(e.path, "items[1].qty", "{e}");
    let e = err(r#"{"order_id":"o1","items":[]}"#);
    assert_eq!(e.to_string(), "`amount_cents`: missing required field");
    let e = err(r#"{"order_id":"o1","amount_cents":5,"items":[{"qty":1}]}"#);
    assert_eq!(e.to_string(), "`items[0].sku`: missing required field");
}

#[test]
fn references_serve_refs() {
    let main = r#"{"type":"object","properties":{"money":{"$ref":"money.json"}}}"#;
    let money =
        r#"{"type":"object","required":["units"],"properties":{"units":{"type":"integer"}}}"#;
    let references = [Reference {
        name: "money.json".into(),
        text: money.into(),
    }];
    let schema = compile_with(SchemaKind::JsonSchema, main, &references);
    assert!(schema.encode(1, &json(r#"{"money":{"units":3}}"#)).is_ok());
    let e = schema
        .encode(1, &json(r#"{"money":{"units":"3"}}"#))
        .unwrap_err();
    assert_eq!(e.path, "money.units");
}

#[test]
fn schemas_that_are_not_json_schemas_are_errors() {
    assert!(Schema::compile(SchemaKind::JsonSchema, "{", &[], 10).is_err());
    assert!(Schema::compile(SchemaKind::JsonSchema, r#"{"type": 5}"#, &[], 10).is_err());
}
