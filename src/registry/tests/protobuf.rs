//! Protobuf: the proto3 JSON mapping, message indexes, schema texts in both forms the
//! registry hands out, imports, and publishes' errors.

use base64::Engine as _;
use prost::Message as _;

use super::fixtures::*;
use crate::registry::{DecodeError, Reference, SchemaKind};

fn schema() -> crate::registry::Schema {
    compile(SchemaKind::Protobuf, PROTO_ORDER)
}

#[test]
fn the_test_message_round_trips_in_the_proto3_mapping() {
    let value = json(PROTO_ORDER_JSON);
    assert_eq!(round_trip(&schema(), &value), value);
}

#[test]
fn int64_are_strings_enums_names_bytes_base64_timestamps_text() {
    let value = json(
        r#"{"amountCents":"-5","currency":"GBP","raw":"/w==","createdAt":"2026-01-02T03:04:05.500Z"}"#,
    );
    let back = round_trip(&schema(), &value);
    assert_eq!(back["amountCents"], json("\"-5\""));
    assert_eq!(back["currency"], json("\"GBP\""));
    assert_eq!(back["raw"], json("\"/w==\""));
    assert_eq!(back["createdAt"], json("\"2026-01-02T03:04:05.500Z\""));
}

#[test]
fn fields_at_their_default_are_written_and_an_unset_oneof_is_not() {
    let back = round_trip(&schema(), &json("{}"));
    assert_eq!(back["orderId"], json("\"\""));
    assert_eq!(back["amountCents"], json("\"0\""));
    assert_eq!(back["currency"], json("\"EUR\""));
    assert_eq!(back["items"], json("[]"));
    assert_eq!(back["paid"], json("false"));
    assert!(
        back.get("card").is_none() && back.get("voucher").is_none(),
        "{back}"
    );
    assert!(
        back.get("note").is_none(),
        "an unset optional field stays out: {back}"
    );
}

#[test]
fn message_indexes_pick_the_message() {
    let schema = schema();
    // [1]: the second top-level message (count 1, index 1, as zigzag varints).
    let customer = [vec![2, 2], vec![0x08, 0x07]].concat(); // id = 7
    assert_eq!(
        json(&schema.decode(&customer).unwrap()),
        json(r#"{"id":"7","name":"","email":""}"#)
    );
    // [0, 0]: Order.Item (the entry type of the map field `tags` is not counted).
    let item = [vec![4, 0, 0], vec![0x10, 0x03]].concat(); // qty = 3
    assert_eq!(json(&schema.decode(&item).unwrap())["qty"], json("3"));
    // Encoding as a named message writes its indexes.
    let bytes = schema
        .encode_as(9, Some("shop.Customer"), &json(r#"{"id":"7"}"#))
        .unwrap();
    assert_eq!(&bytes[..7], &[0, 0, 0, 0, 9, 2, 2]);
    let bytes = schema
        .encode_as(9, Some("Item"), &json(r#"{"qty":3}"#))
        .unwrap();
    assert_eq!(bytes, [0, 0, 0, 0, 9, 4, 0, 0, 0x10, 0x03]);
    assert_eq!(schema.encode(9, &json("{}")).unwrap(), [0, 0, 0, 0, 9, 0]);
    let err = schema.encode_as(9, Some("Nope"), &json("{}")).unwrap_err();
    assert!(err.to_string().contains("found \"Nope\""), "{err}");
}

#[test]
fn bad_message_indexes_are_errors() {
    let schema = schema();
    let index = |bytes: &[u8]| match schema.decode(bytes) {
        Err(DecodeError::MessageIndex(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(index(&[2, 6]).contains("index 3 is not one of the 2 message(s) of the file"));
    assert!(index(&[4, 0, 8]).contains("index 4 is not one of the 1 nested in shop.Order"));
    assert!(index(&[1]).contains("found -1"), "negative count");
    assert!(
        index(&[0xfe, 0xff, 0xff, 0xff, 0x0f]).contains("expected a count"),
        "huge count"
    );
    assert!(
        index(&[8, 0]).contains("found 4"),
        "more indexes than bytes"
    );
    assert!(index(&[]).contains("found the end"));
    assert!(index(&[2, 0x80]).contains("found the end"));
}

#[test]
fn bodies_that_are_not_the_message_are_errors() {
    let schema = schema();
    assert!(matches!(
        schema.decode(&[0, 0x0a, 0x05, b'a']),
        Err(DecodeError::Protobuf(_))
    ));
    assert!(matches!(
        schema.decode(&[0, 0xff]),
        Err(DecodeError::Protobuf(_))
    ));
    // A message nested 150 deep: prost refuses past its limit of 100.
    let deep = "syntax = \"proto3\"; message N { N next = 1; }";
    let deep_schema = compile(SchemaKind::Protobuf, deep);
    let mut body: Vec<u8> = Vec::new();
    for _ in 0..150 {
        let mut outer = vec![0x0a];
        prost::encoding::encode_varint(body.len() as u64, &mut outer);
        outer.extend(body);
        body = outer;
    }
    let payload = [vec![0], body].concat();
    assert!(matches!(
        deep_schema.decode(&payload),
        Err(DecodeError::Protobuf(_))
    ));
}

#[test]
fn a_base64_file_descriptor_is_read_like_proto_text() {
    let set = {
        let files = [("order.proto", PROTO_ORDER)];
        let mut resolver = protox::file::ChainFileResolver::new();
        resolver.add(Texts(
            files
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        ));
        resolver.add(protox::file::GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.open_file("order.proto").unwrap();
        compiler.file_descriptor_set()
    };
    let descriptor = set.file.iter().find(|f| f.name() == "order.proto").unwrap();
    let text = base64::engine::general_purpose::STANDARD.encode(descriptor.encode_to_vec());
    let schema = compile(SchemaKind::Protobuf, &text);
    let value = json(PROTO_ORDER_JSON);
    assert_eq!(round_trip(&schema, &value), value);
}

#[test]
fn imports_come_from_references_and_the_well_known_types() {
    let money = "syntax = \"proto3\";\npackage common;\nmessage Money { string currency = 1; int64 units = 2; }\n";
    let main = r#"syntax = "proto3";
package pay;
import "common/money.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/struct.proto";
message Payment {
  common.Money amount = 1;
  google.protobuf.Duration hold = 2;
  google.protobuf.StringValue memo = 3;
  google.protobuf.Struct extra = 4;
}"#;
    let references = [Reference {
        name: "common/money.proto".into(),
        text: money.into(),
    }];
    let schema = compile_with(SchemaKind::Protobuf, main, &references);
    let value = json(
        r#"{"amount":{"currency":"EUR","units":"12"},"hold":"1.500s","memo":"hi","extra":{"a":[1.5,"b",null]}}"#,
    );
    assert_eq!(round_trip(&schema, &value), value);
    let missing = crate::registry::Schema::compile(SchemaKind::Protobuf, main, &[], MAX_JSON);
    assert!(missing.unwrap_err().contains("common/money.proto"));
}

#[test]
fn confluents_own_imports_are_built_in() {
    let main = r#"syntax = "proto3";
import "confluent/meta.proto";
import "confluent/type/decimal.proto";
message Price {
  confluent.type.Decimal amount = 1 [(confluent.field_meta) = { doc: "the price" }];
}"#;
    let schema = compile(SchemaKind::Protobuf, main);
    let value = json(r#"{"amount":{"value":"BNI=","precision":4,"scale":2}}"#);
    assert_eq!(round_trip(&schema, &value), value);
}

#[test]
fn publishes_name_the_field_that_is_wrong() {
    let schema = schema();
    let err = |value: &str| schema.encode(1, &json(value)).unwrap_err().to_string();
    assert_eq!(
        err(r#"{"amountCents":"abc"}"#),
        "`amountCents`: expected an int64 (a 64-bit integer, as a number or a string), \
         found \"abc\": invalid digit found in string"
    );
    assert_eq!(
        err(r#"{"items":[{"sku":"a"},{"qty":"many"}]}"#),
        "`items[1].qty`: expected an int32 (a 32-bit integer), found \"many\": \
         invalid digit found in string"
    );
    assert_eq!(
        err(r#"{"currency":"YEN"}"#),
        "`currency`: expected a symbol of enum `shop.Currency` (EUR, USD, GBP) or its number, \
         found \"YEN\": unrecognized enum value 'YEN'"
    );
    assert!(err(r#"{"nope":1}"#).starts_with(
        "`nope`: not a field of message `shop.Order` (its fields: orderId, customer,"
    ));
    assert!(err(r#"{"items":[{"skuu":"a"}]}"#)
        .starts_with("`items[0].skuu`: not a field of message `shop.Order.Item`"));
    assert!(err(r#"{"tags":{"a":5}}"#).starts_with("`tags.a`: expected a string, found 5"));
    assert!(err(r#"{"createdAt":"yesterday"}"#)
        .starts_with("`createdAt`: expected an RFC 3339 timestamp"));
    assert!(err(r#"{"items":{}}"#).starts_with("`items`: expected an array, found an object"));
    assert!(err("[1]").starts_with("expected an object (message `shop.Order`), found an array"));
}

/// `.proto` texts by name, for compiling the test's own descriptor.
struct Texts(std::collections::HashMap<String, String>);

impl protox::file::FileResolver for Texts {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match self.0.get(name) {
            Some(text) => protox::file::File::from_source(name, text),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}
