//! The Protobuf walker against prost-reflect: for any bytes the walker writes, prost-reflect
//! reads the same JSON; what the walker leaves to prost-reflect is only what it must.

use proptest::prelude::*;
use serde_json::Value;

use super::fixtures::*;
use crate::registry::protobuf::Protobuf;

/// Every scalar kind, each shape, presence, oneofs, maps and the well-known types the walker
/// writes itself.
const ALL: &str = r#"syntax = "proto3";
package k;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/struct.proto";
message All {
  double d = 1; float f = 2; int32 i32 = 3; int64 i64 = 4; uint32 u32 = 5; uint64 u64 = 6;
  sint32 s32 = 7; sint64 s64 = 8; fixed32 x32 = 9; fixed64 x64 = 10; sfixed32 sx32 = 11;
  sfixed64 sx64 = 12; bool b = 13; string s = 14; bytes by = 15; E e = 16; All child = 17;
  repeated int32 ri = 18; repeated string rs = 19; repeated All rc = 20;
  repeated double rd = 21 [packed = false];
  map<int64, string> mi = 22; map<string, All> ms = 23; map<bool, E> mb = 24;
  oneof o { string os = 25; int64 oi = 26; }
  optional int32 opt = 27;
  google.protobuf.Timestamp ts = 28; google.protobuf.Duration du = 29;
  google.protobuf.Int64Value w64 = 30; google.protobuf.StringValue ws = 31;
  google.protobuf.Empty em = 32; google.protobuf.BytesValue wb = 33; repeated E re = 34;
  repeated sint64 rs64 = 35; repeated fixed32 rx32 = 36; map<uint32, double> mu = 37;
}
message Loose { google.protobuf.Struct extra = 1; string name = 2; }
enum E { Z = 0; ONE = 1; NEG = -1; }
"#;

fn all() -> Protobuf {
    Protobuf::compile(ALL, &[]).unwrap()
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn delimited(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `[0]` (the first message) then the body.
fn first(body: &[u8]) -> Vec<u8> {
    [&[0u8][..], body].concat()
}

/// Asserts the walker wrote the record (unless `fallback`) and prost-reflect agrees.
fn agree(schema: &Protobuf, payload: &[u8], fallback: bool) -> Value {
    let (walked, dynamic) = schema.both_readings(payload, MAX_JSON);
    let dynamic = json(&dynamic.unwrap_or_else(|e| panic!("prost-reflect: {e}")));
    match walked {
        Some(walked) => {
            assert!(
                !fallback,
                "expected the walker to leave this to prost-reflect"
            );
            assert_eq!(json(&walked.unwrap()), dynamic);
        }
        None => assert!(fallback, "the walker left this to prost-reflect"),
    }
    dynamic
}

#[test]
fn every_kind_at_its_default_and_set() {
    let schema = all();
    let defaults = agree(&schema, &first(&[]), false);
    assert_eq!(defaults["i64"], json("\"0\""));
    assert_eq!(defaults["e"], json("\"Z\""));
    assert!(defaults.get("child").is_none() && defaults.get("opt").is_none());
    let mut body = Vec::new();
    tag(&mut body, 1, 1);
    body.extend(f64::NAN.to_le_bytes());
    tag(&mut body, 2, 5);
    body.extend(0.1f32.to_le_bytes());
    tag(&mut body, 3, 0);
    varint(&mut body, -5i64 as u64); // a negative int32: ten bytes on the wire
    tag(&mut body, 7, 0);
    varint(&mut body, 3); // sint32 -2
    tag(&mut body, 8, 0);
    varint(&mut body, u64::MAX); // sint64 i64::MIN
    tag(&mut body, 16, 0);
    varint(&mut body, 7); // an enum number without a name
    tag(&mut body, 27, 0);
    varint(&mut body, 0); // optional, present at its default
    delimited(
        &mut body,
        28,
        &[0x08, 0x80, 0xa3, 0x05, 0x10, 0xc0, 0x84, 0x3d],
    );
    delimited(&mut body, 29, &[0x08, 0x01, 0x10, 0x80, 0xe1, 0xeb, 0x17]);
    delimited(&mut body, 30, &[0x08, 0x2a]);
    delimited(&mut body, 31, &[]);
    delimited(&mut body, 32, &[]);
    let value = agree(&schema, &first(&body), false);
    assert_eq!(value["d"], json("\"NaN\""));
    assert_eq!(value["i32"], json("-5"));
    assert_eq!(value["s32"], json("-2"));
    assert_eq!(value["s64"], json("\"-9223372036854775808\""));
    assert_eq!(value["e"], json("7"));
    assert_eq!(value["opt"], json("0"));
    assert_eq!(value["du"], json("\"1.050s\""));
    assert_eq!(value["w64"], json("\"42\""));
    assert_eq!((&value["ws"], &value["em"]), (&json("\"\""), &json("{}")));
}

#[test]
fn repeated_fields_packed_unpacked_and_apart() {
    let schema = all();
    let mut body = Vec::new();
    delimited(&mut body, 18, &[1, 2, 3]); // packed
    tag(&mut body, 19, 2);
    body.extend([1, b'a']);
    tag(&mut body, 18, 0);
    body.push(4); // unpacked, after another field
    delimited(&mut body, 18, &[]); // an empty packed run
    tag(&mut body, 19, 2);
    body.extend([1, b'b']);
    delimited(&mut body, 35, &[1, 2]); // sint64s -1, 1
    tag(&mut body, 21, 1);
    body.extend(1.5f64.to_le_bytes());
    let value = agree(&schema, &first(&body), false);
    assert_eq!(value["ri"], json("[1,2,3,4]"));
    assert_eq!(value["rs"], json(r#"["a","b"]"#));
    assert_eq!(value["rs64"], json(r#"["-1","1"]"#));
    assert_eq!(value["rd"], json("[1.5]"));
}

#[test]
fn the_last_scalar_wins_and_unknown_fields_are_skipped() {
    let schema = all();
    let mut body = Vec::new();
    tag(&mut body, 3, 0);
    body.push(1);
    tag(&mut body, 99, 2);
    body.extend([2, 0xff, 0xff]); // unknown, not UTF-8: skipped
    tag(&mut body, 98, 5);
    body.extend([0; 4]);
    tag(&mut body, 3, 0);
    body.push(2);
    assert_eq!(agree(&schema, &first(&body), false)["i32"], json("2"));
}

#[test]
fn maps_with_missing_keys_or_values() {
    let schema = all();
    let mut body = Vec::new();
    delimited(&mut body, 22, &[0x08, 0x07, 0x12, 0x01, b'x']); // 7 → "x"
    delimited(&mut body, 22, &[0x12, 0x01, b'y']); // no key: 0
    delimited(&mut body, 23, &[0x0a, 0x01, b'k']); // no value: the default message
    delimited(&mut body, 24, &[0x08, 0x01, 0x10, 0x01]); // true → ONE
    delimited(&mut body, 37, &[0x08, 0x05]); // 5 → 0.0
    let value = agree(&schema, &first(&body), false);
    assert_eq!(value["mi"], json(r#"{"7":"x","0":"y"}"#));
    assert_eq!(value["ms"]["k"]["i64"], json("\"0\""));
    assert_eq!(value["mb"], json(r#"{"true":"ONE"}"#));
    assert_eq!(value["mu"], json(r#"{"5":0.0}"#));
}

#[test]
fn what_merges_is_left_to_prost_reflect() {
    let schema = all();
    // A singular message sent twice merges.
    let mut body = Vec::new();
    delimited(&mut body, 17, &[0x18, 0x01]);
    delimited(&mut body, 17, &[0x20, 0x02]);
    let value = agree(&schema, &first(&body), true);
    assert_eq!(value["child"]["i32"], json("1"));
    assert_eq!(value["child"]["i64"], json("\"2\""));
    // Two members of one oneof: the last wins.
    let mut body = Vec::new();
    delimited(&mut body, 25, b"s");
    tag(&mut body, 26, 0);
    body.push(9);
    let value = agree(&schema, &first(&body), true);
    assert_eq!((value.get("os"), &value["oi"]), (None, &json("\"9\"")));
    // A wire type that does not fit: prost-reflect's error is the answer.
    let mut body = Vec::new();
    tag(&mut body, 14, 0);
    body.push(1);
    let (walked, dynamic) = schema.both_readings(&first(&body), MAX_JSON);
    assert!(walked.is_none() && dynamic.is_err());
    // Struct is written by prost-reflect.
    let loose = [vec![2, 2], vec![0x12, 0x01, b'n']].concat();
    assert_eq!(agree(&schema, &loose, true)["name"], json("\"n\""));
}

/// A message of `All` on the wire, field by field: mostly each field as its type is written
/// (nested messages a few levels deep, map entries, well-known types), sometimes with a wire
/// type that does not fit, sometimes an unknown field.
fn wire() -> impl Strategy<Value = Vec<u8>> {
    let field = || (1u32..40, 0u8..40, any::<u64>(), "[a-zé]{0,3}");
    let leaf = proptest::collection::vec(field(), 0..12).prop_map(|fields| encode(&fields, &[]));
    leaf.prop_recursive(3, 24, 4, move |inner| {
        (
            proptest::collection::vec(field(), 0..12),
            proptest::collection::vec((prop_oneof![Just(17u32), Just(20), Just(23)], inner), 0..3),
        )
            .prop_map(|(fields, nested)| encode(&fields, &nested))
    })
}

fn encode(fields: &[(u32, u8, u64, String)], nested: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, mode, value, text) in fields {
        let (field, value) = (*field, *value);
        let small = value % 300;
        let number = if value % 3 == 0 { value } else { small };
        if *mode >= 38 {
            misfit(&mut out, field, *mode, value, text);
            continue;
        }
        match field {
            1 | 10 | 12 | 21 => {
                tag(&mut out, field, 1);
                out.extend(value.to_le_bytes());
            }
            2 | 9 | 11 => {
                tag(&mut out, field, 5);
                out.extend((value as u32).to_le_bytes());
            }
            36 if mode % 2 == 0 => {
                tag(&mut out, field, 5);
                out.extend((value as u32).to_le_bytes());
            }
            18 | 34 | 35 | 36 if mode % 2 == 1 => {
                let mut packed = Vec::new();
                for v in [small, value, 1] {
                    match field {
                        36 => packed.extend((v as u32).to_le_bytes()),
                        _ => varint(&mut packed, v),
                    }
                }
                delimited(&mut out, field, &packed);
            }
            3..=8 | 13 | 16 | 18 | 26 | 27 | 34 | 35 => {
                tag(&mut out, field, 0);
                varint(&mut out, number);
            }
            14 | 15 | 19 | 25 => delimited(&mut out, field, text.as_bytes()),
            17 | 20 | 32 => delimited(&mut out, field, &[]),
            22 | 24 | 30 => {
                let mut entry = Vec::new();
                if mode % 3 != 0 {
                    tag(&mut entry, 1, 0);
                    varint(&mut entry, number);
                }
                if mode % 4 != 0 {
                    if field == 22 {
                        delimited(&mut entry, 2, text.as_bytes());
                    } else {
                        tag(&mut entry, 2, 0);
                        varint(&mut entry, small % 3);
                    }
                }
                delimited(&mut out, field, &entry);
            }
            23 | 31 | 33 => {
                let mut entry = Vec::new();
                delimited(&mut entry, 1, text.as_bytes());
                delimited(&mut out, field, &entry);
            }
            37 => {
                let mut entry = Vec::new();
                tag(&mut entry, 1, 0);
                varint(&mut entry, small);
                tag(&mut entry, 2, 1);
                entry.extend(value.to_le_bytes());
                delimited(&mut out, field, &entry);
            }
            28 | 29 => {
                // Seconds within range mostly, either sign; nanos below a second mostly.
                let seconds = (value % 20_000_000_000) as i64 - 10_000_000_000;
                let seconds = if mode % 5 == 0 { value as i64 } else { seconds };
                let mut entry = Vec::new();
                tag(&mut entry, 1, 0);
                varint(&mut entry, seconds as u64);
                tag(&mut entry, 2, 0);
                varint(
                    &mut entry,
                    [0, 5_000_000, 123_456_789, value][usize::from(*mode % 4)] % 2_000_000_000,
                );
                delimited(&mut out, field, &entry);
            }
            _ => misfit(&mut out, field, *mode, value, text),
        }
    }
    for (field, body) in nested {
        if *field == 23 {
            let mut entry = Vec::new();
            delimited(&mut entry, 1, b"k");
            delimited(&mut entry, 2, body);
            delimited(&mut out, *field, &entry);
        } else {
            delimited(&mut out, *field, body);
        }
    }
    out
}

/// A field with whatever wire type `mode` picks.
fn misfit(out: &mut Vec<u8>, field: u32, mode: u8, value: u64, text: &str) {
    match mode % 4 {
        0 => {
            tag(out, field, 0);
            varint(out, value);
        }
        1 => {
            tag(out, field, 1);
            out.extend(value.to_le_bytes());
        }
        2 => delimited(out, field, text.as_bytes()),
        _ => {
            tag(out, field, 5);
            out.extend((value as u32).to_le_bytes());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_walker_writes_what_prost_reflect_writes(body in wire()) {
        let schema = all();
        let (walked, dynamic) = schema.both_readings(&first(&body), MAX_JSON);
        if let Some(walked) = walked {
            let walked: Value = json(&walked.expect("the walker fails only past the size bound"));
            let dynamic = dynamic.expect("what the walker reads, prost-reflect reads");
            prop_assert_eq!(walked, json(&dynamic));
        }
    }

    #[test]
    fn any_bytes_the_walker_reads_prost_reflect_reads_alike(
        bytes in proptest::collection::vec(any::<u8>(), 0..200)
    ) {
        let schema = all();
        if let (Some(Ok(walked)), dynamic) = schema.both_readings(&first(&bytes), MAX_JSON) {
            prop_assert_eq!(json(&walked), json(&dynamic.expect("prost-reflect reads it too")));
        }
    }

    #[test]
    fn generated_orders_are_walked_not_left_over(value in super::props::proto_order()) {
        let schema = Protobuf::compile(PROTO_ORDER, &[]).unwrap();
        let mut bytes = Vec::new();
        schema.encode(None, &value, &mut bytes).unwrap();
        let (walked, dynamic) = schema.both_readings(&bytes, MAX_JSON);
        let walked = walked.expect("the walker writes every generated order").unwrap();
        prop_assert_eq!(json(&walked), json(&dynamic.unwrap()));
        prop_assert_eq!(json(&walked), value);
    }
}
