//! Avro: each rule of the JSON mapping on bytes apache-avro wrote, publishes' errors, and
//! hostile bytes.

use apache_avro::types::Value as A;

use super::fixtures::*;
use crate::registry::{DecodeError, Reference, SchemaKind};

/// apache-avro writes `value`; the bridge decodes it.
fn decoded(schema: &str, value: A) -> String {
    let parsed = apache_avro::Schema::parse_str(schema).unwrap();
    let bytes = apache_write(&parsed, value);
    compile(SchemaKind::Avro, schema).decode(&bytes).unwrap()
}

fn decode_err(schema: &str, bytes: &[u8]) -> DecodeError {
    compile(SchemaKind::Avro, schema).decode(bytes).unwrap_err()
}

fn encode_err(schema: &str, value: &str) -> String {
    compile(SchemaKind::Avro, schema)
        .encode(1, &json(value))
        .unwrap_err()
        .to_string()
}

#[test]
fn records_are_objects_in_field_order() {
    let schema = r#"{"type":"record","name":"R","fields":[{"name":"b","type":"int"},{"name":"a","type":"string"}]}"#;
    let value = A::Record(vec![
        ("b".into(), A::Int(-3)),
        ("a".into(), A::String("x\"y\n".into())),
    ]);
    assert_eq!(decoded(schema, value), r#"{"b":-3,"a":"x\"y\n"}"#);
}

#[test]
fn a_union_with_null_is_the_value_or_null() {
    let schema = r#"["null","string"]"#;
    assert_eq!(
        decoded(schema, A::Union(1, Box::new(A::String("x".into())))),
        "\"x\""
    );
    assert_eq!(decoded(schema, A::Union(0, Box::new(A::Null))), "null");
    let reversed = r#"["long","null"]"#;
    assert_eq!(decoded(reversed, A::Union(0, Box::new(A::Long(5)))), "5");
}

#[test]
fn other_unions_use_avros_json_encoding() {
    let schema = r#"["null","string","long",{"type":"record","name":"Card","namespace":"shop","fields":[{"name":"last4","type":"string"}]}]"#;
    assert_eq!(
        decoded(schema, A::Union(2, Box::new(A::Long(5)))),
        r#"{"long":5}"#
    );
    assert_eq!(decoded(schema, A::Union(0, Box::new(A::Null))), "null");
    let card = A::Record(vec![("last4".into(), A::String("4242".into()))]);
    assert_eq!(
        decoded(schema, A::Union(3, Box::new(card))),
        r#"{"shop.Card":{"last4":"4242"}}"#
    );
}

#[test]
fn bytes_and_fixed_are_base64() {
    assert_eq!(
        decoded(r#""bytes""#, A::Bytes(vec![0, 1, 2, 255])),
        "\"AAEC/w==\""
    );
    let fixed = r#"{"type":"fixed","name":"F","size":3}"#;
    assert_eq!(decoded(fixed, A::Fixed(3, vec![1, 2, 3])), "\"AQID\"");
}

#[test]
fn enums_are_their_symbols() {
    let schema = r#"{"type":"enum","name":"C","symbols":["EUR","USD"]}"#;
    assert_eq!(decoded(schema, A::Enum(1, "USD".into())), "\"USD\"");
}

#[test]
fn decimals_are_exact_strings_with_the_scale() {
    let bytes = r#"{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}"#;
    let value = A::Decimal(apache_avro::Decimal::from(vec![0x04, 0xd2]));
    assert_eq!(decoded(bytes, value), "\"12.34\"");
    let fixed =
        r#"{"type":"fixed","name":"D","size":8,"logicalType":"decimal","precision":18,"scale":3}"#;
    let minus = (-5i64).to_be_bytes().to_vec();
    assert_eq!(
        decoded(fixed, A::Decimal(apache_avro::Decimal::from(minus))),
        "\"-0.005\""
    );
}

#[test]
fn times_and_dates_are_numbers_as_stored() {
    let ts = r#"{"type":"long","logicalType":"timestamp-millis"}"#;
    assert_eq!(
        decoded(ts, A::TimestampMillis(1_764_636_222_000)),
        "1764636222000"
    );
    let micros = r#"{"type":"long","logicalType":"timestamp-micros"}"#;
    assert_eq!(decoded(micros, A::TimestampMicros(-1)), "-1");
    let date = r#"{"type":"int","logicalType":"date"}"#;
    assert_eq!(decoded(date, A::Date(20424)), "20424");
    let time = r#"{"type":"int","logicalType":"time-millis"}"#;
    assert_eq!(decoded(time, A::TimeMillis(1000)), "1000");
    assert_eq!(
        decoded(r#""long""#, A::Long(i64::MAX)),
        "9223372036854775807"
    );
}

#[test]
fn maps_are_objects_and_arrays_arrays() {
    let map = r#"{"type":"map","values":"int"}"#;
    let value = A::Map([("k".to_owned(), A::Int(1))].into_iter().collect());
    assert_eq!(decoded(map, value), r#"{"k":1}"#);
    let array = r#"{"type":"array","items":"string"}"#;
    let value = A::Array(vec![A::String("a".into()), A::String("b".into())]);
    assert_eq!(decoded(array, value), r#"["a","b"]"#);
    assert_eq!(decoded(array, A::Array(vec![])), "[]");
}

#[test]
fn non_finite_floats_are_strings() {
    assert_eq!(decoded(r#""float""#, A::Float(f32::NAN)), "\"NaN\"");
    assert_eq!(
        decoded(r#""double""#, A::Double(f64::INFINITY)),
        "\"Infinity\""
    );
    assert_eq!(
        decoded(r#""double""#, A::Double(f64::NEG_INFINITY)),
        "\"-Infinity\""
    );
    assert_eq!(decoded(r#""float""#, A::Float(0.1)), "0.1");
    let schema = compile(SchemaKind::Avro, r#""double""#);
    assert_eq!(round_trip(&schema, &json("\"NaN\"")), json("\"NaN\""));
}

#[test]
fn uuids_are_text() {
    let text = r#"{"type":"string","logicalType":"uuid"}"#;
    let id = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
    assert_eq!(decoded(text, A::String(id.into())), format!("\"{id}\""));
    let fixed = r#"{"type":"fixed","name":"U","size":16,"logicalType":"uuid"}"#;
    let schema = compile(SchemaKind::Avro, fixed);
    assert_eq!(
        round_trip(&schema, &json(&format!("\"{id}\""))),
        json(&format!("\"{id}\""))
    );
}

#[test]
fn the_test_record_round_trips_and_matches_apache_avros_reading() {
    let schema = compile(SchemaKind::Avro, AVRO_ORDER);
    let value = json(AVRO_ORDER_JSON);
    assert_eq!(round_trip(&schema, &value), value);
    let bytes = schema.encode(1, &value).unwrap();
    let parsed = apache_avro::Schema::parse_str(AVRO_ORDER).unwrap();
    let read = apache_read(&parsed, &bytes[5..]);
    assert_eq!(super::props::oracle(&read, &parsed), value);
}

#[test]
fn publishes_name_the_field_that_is_wrong() {
    let mut value = json(AVRO_ORDER_JSON);
    let wrong = |pointer: &str, new: serde_json::Value| {
        let mut v = json(AVRO_ORDER_JSON);
        *v.pointer_mut(pointer).unwrap() = new;
        let schema = compile(SchemaKind::Avro, AVRO_ORDER);
        schema.encode(1, &v).unwrap_err().to_string()
    };
    assert_eq!(
        wrong("/amount_cents", json("\"abc\"")),
        "`amount_cents`: expected a long (64-bit integer), found \"abc\""
    );
    assert_eq!(
        wrong("/currency", json("\"YEN\"")),
        "`currency`: unknown symbol \"YEN\" of enum `shop.Currency`, expected one of EUR, USD, GBP"
    );
    assert_eq!(
        wrong("/items/1/qty", json("1.5")),
        "`items[1].qty`: expected an int (32-bit integer), found 1.5"
    );
    assert_eq!(
        wrong("/price", json("\"12.345\"")),
        "`price`: expected at most 2 decimal place(s), found \"12.345\""
    );
    assert_eq!(
        wrong("/checksum", json("\"AAAA\"")),
        "`checksum`: expected 4 byte(s) for fixed `shop.Crc`, found 3"
    );
    assert_eq!(
        wrong("/payment", json("true")),
        "`payment`: expected a value of one of the types null, string, long, shop.Card, found true"
    );
    value["customer"].as_object_mut().unwrap().remove("name");
    let schema = compile(SchemaKind::Avro, AVRO_ORDER);
    assert_eq!(
        schema.encode(1, &value).unwrap_err().to_string(),
        "`customer.name`: missing required field"
    );
    value["customer"]["nmae"] = json("\"typo\"");
    assert!(schema
        .encode(1, &value)
        .unwrap_err()
        .to_string()
        .starts_with(
            "`customer.nmae`: not a field of record `shop.Customer` (its fields: id, name, email)"
        ));
    assert_eq!(
        encode_err(r#""int""#, "3000000000"),
        "expected an int (32-bit integer), found 3000000000"
    );
}

#[test]
fn publishes_may_leave_out_fields_with_defaults() {
    let schema = compile(SchemaKind::Avro, AVRO_ORDER);
    let mut value = json(AVRO_ORDER_JSON);
    for field in ["note", "discount"] {
        value.as_object_mut().unwrap().remove(field);
    }
    value["customer"].as_object_mut().unwrap().remove("email");
    let back = round_trip(&schema, &value);
    assert_eq!(back["note"], json("\"none\""));
    assert_eq!(back["discount"], json("null"));
    assert_eq!(back["customer"]["email"], json("null"));
}

#[test]
fn publishes_accept_the_forms_browsers_send() {
    let schema = compile(SchemaKind::Avro, AVRO_ORDER);
    let mut value = json(AVRO_ORDER_JSON);
    value["amount_cents"] = json("\"9007199254740993\""); // past 2^53: a string keeps it exact
    value["price"] = json("12.5"); // a number for a decimal
    value["payment"] = json("\"cash\""); // a bare value that only one branch takes
    let back = round_trip(&schema, &value);
    assert_eq!(back["amount_cents"], json("9007199254740993"));
    assert_eq!(back["price"], json("\"12.50\""));
    assert_eq!(back["payment"], json(r#"{"string":"cash"}"#));
}

#[test]
fn named_types_may_come_from_references() {
    let card = r#"{"type":"record","name":"Card","namespace":"shop","fields":[{"name":"last4","type":"string"}]}"#;
    let main = r#"{"type":"record","name":"Pay","namespace":"shop","fields":[{"name":"card","type":"shop.Card"},{"name":"spare","type":["null","shop.Card"]}]}"#;
    let references = [Reference {
        name: "shop.Card".into(),
        text: card.into(),
    }];
    let schema = compile_with(SchemaKind::Avro, main, &references);
    let value = json(r#"{"card":{"last4":"4242"},"spare":{"last4":"0000"}}"#);
    assert_eq!(round_trip(&schema, &value), value);
}

#[test]
fn recursive_types_decode_until_the_depth_limit() {
    let schema =
        r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#;
    let compiled = compile(SchemaKind::Avro, schema);
    // Eleven records decode; two hundred are refused without recursing that deep.
    let ten = [vec![2u8; 10], vec![0]].concat();
    let text = compiled.decode(&ten).unwrap();
    assert_eq!(
        text.matches("next").count(),
        11,
        "ten nested records in the first"
    );
    let deep = [vec![2u8; 200], vec![0]].concat();
    assert_eq!(compiled.decode(&deep), Err(DecodeError::TooDeep(64)));
}

#[test]
fn hostile_bytes_are_errors() {
    let string = r#""string""#;
    // A string declared 2^62 bytes long: truncated, nothing allocated.
    let mut huge = Vec::new();
    crate::registry::wire::write_zigzag(&mut huge, 1 << 62);
    assert!(matches!(
        decode_err(string, &huge),
        DecodeError::Truncated { .. }
    ));
    assert!(
        matches!(decode_err(string, &[0x03]), DecodeError::Invalid { .. }),
        "negative length"
    );
    assert!(
        matches!(
            decode_err(string, &[0x04, 0xff, 0xfe]),
            DecodeError::Invalid { .. }
        ),
        "not UTF-8"
    );
    assert!(matches!(
        decode_err(string, &[]),
        DecodeError::Truncated { .. }
    ));
    assert_eq!(
        decode_err(string, &[0x02, b'a', 9]),
        DecodeError::Trailing { left: 1 }
    );
    // An array of nulls declaring 2^62 items costs at most the output bound.
    let nulls = r#"{"type":"array","items":"null"}"#;
    let schema = crate::registry::Schema::compile(SchemaKind::Avro, nulls, &[], 1000).unwrap();
    assert_eq!(schema.decode(&huge), Err(DecodeError::TooLarge(1000)));
    let map = r#"{"type":"map","values":"null"}"#;
    let schema = crate::registry::Schema::compile(SchemaKind::Avro, map, &[], 1000).unwrap();
    assert!(matches!(
        schema.decode(&huge),
        Err(DecodeError::Truncated { .. })
    ));
    let union = r#"["null","string"]"#;
    assert_eq!(
        decode_err(union, &[0x06]).to_string(),
        "at byte 1 of the payload: expected a union branch index, found 3 of 2"
    );
    let e = r#"{"type":"enum","name":"E","symbols":["A"]}"#;
    assert!(matches!(
        decode_err(e, &[0x02]),
        DecodeError::Invalid { .. }
    ));
    assert!(matches!(
        decode_err(r#""boolean""#, &[7]),
        DecodeError::Invalid { .. }
    ));
    assert!(matches!(
        decode_err(r#""int""#, &[0xff, 0xff, 0xff, 0xff, 0x7f]),
        DecodeError::Invalid { .. }
    ));
    assert!(matches!(
        decode_err(r#""long""#, &[0xff; 11]),
        DecodeError::Truncated { .. }
    ));
    let decimal = r#"{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}"#;
    let mut long_decimal = Vec::new();
    crate::registry::wire::write_zigzag(&mut long_decimal, 2000);
    long_decimal.extend(vec![1u8; 2000]);
    assert!(matches!(
        decode_err(decimal, &long_decimal),
        DecodeError::Invalid { .. }
    ));
}

#[test]
fn schemas_that_do_not_parse_are_errors() {
    let err = crate::registry::Schema::compile(SchemaKind::Avro, "{\"type\":\"nope\"}", &[], 10)
        .unwrap_err();
    assert!(!err.is_empty());
    assert!(crate::registry::Schema::compile(SchemaKind::Avro, "not json", &[], 10).is_err());
}

#[test]
fn other_logical_types() {
    let big = r#"{"type":"bytes","logicalType":"big-decimal"}"#;
    let value = A::BigDecimal("-12.345".parse().unwrap());
    assert_eq!(decoded(big, value), "\"-12.345\"");
    let schema = compile(SchemaKind::Avro, big);
    assert_eq!(round_trip(&schema, &json("\"1.50\"")), json("\"1.50\""));
    let local = r#"{"type":"long","logicalType":"local-timestamp-millis"}"#;
    assert_eq!(decoded(local, A::LocalTimestampMillis(5)), "5");
    let micros = r#"{"type":"long","logicalType":"time-micros"}"#;
    assert_eq!(decoded(micros, A::TimeMicros(7)), "7");
    let duration = r#"{"type":"fixed","name":"D","size":12,"logicalType":"duration"}"#;
    let value = A::Duration(apache_avro::Duration::new(
        apache_avro::Months::new(1),
        apache_avro::Days::new(2),
        apache_avro::Millis::new(3),
    ));
    assert_eq!(decoded(duration, value), "\"AQAAAAIAAAADAAAA\"");
}

#[test]
fn arrays_of_unions_and_maps_of_records() {
    let schema = r#"{"type":"record","name":"R","fields":[
        {"name":"xs","type":{"type":"array","items":["null","int","string"]}},
        {"name":"m","type":{"type":"map","values":{"type":"record","name":"P","fields":[{"name":"p","type":"int"}]}}},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]},"default":"B"}]}"#;
    let value = json(r#"{"xs":[null,{"int":1},{"string":"s"}],"m":{"k":{"p":2}},"e":"A"}"#);
    let compiled = compile(SchemaKind::Avro, schema);
    assert_eq!(round_trip(&compiled, &value), value);
    let parsed = apache_avro::Schema::parse_str(schema).unwrap();
    let bytes = compiled.encode(1, &value).unwrap();
    let read = apache_read(&parsed, &bytes[5..]);
    assert_eq!(
        compiled.decode(&apache_write(&parsed, read)[..]).unwrap(),
        compiled.decode(&bytes[5..]).unwrap()
    );
    let without_enum = json(r#"{"xs":[],"m":{}}"#);
    assert_eq!(
        round_trip(&compiled, &without_enum)["e"],
        json("\"B\""),
        "the enum's default"
    );
}
