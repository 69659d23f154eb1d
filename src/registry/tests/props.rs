//! Property tests: any bytes through the wire split and each decoder give a value or an
//! error, never a panic; generated values of each test schema round-trip; and the Avro walker
//! reads every generated datum exactly as apache-avro's own reader does.

use apache_avro::schema::{InnerDecimalSchema, Schema as AvroSchema};
use apache_avro::types::Value as A;
use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::fixtures::*;
use crate::registry::json_out::push_escaped;
use crate::registry::{split_wire, SchemaKind};

/// apache-avro's reading of a datum, put in the bridge's JSON mapping: the reference the
/// walker is held to.
pub(crate) fn oracle(value: &A, schema: &AvroSchema) -> Value {
    let b64 = |b: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(b));
    let float = |f: f64, text: String| match f {
        f if f.is_nan() => json!("NaN"),
        f if f == f64::INFINITY => json!("Infinity"),
        f if f == f64::NEG_INFINITY => json!("-Infinity"),
        _ => serde_json::from_str(&text).unwrap(),
    };
    match (value, schema) {
        (A::Null, _) => Value::Null,
        (A::Boolean(b), _) => json!(b),
        (A::Int(i) | A::Date(i) | A::TimeMillis(i), _) => json!(i),
        (A::Long(i) | A::TimestampMillis(i) | A::TimestampMicros(i) | A::TimeMicros(i), _) => {
            json!(i)
        }
        (A::Float(f), _) => float(f64::from(*f), ryu::Buffer::new().format(*f).to_owned()),
        (A::Double(f), _) => float(*f, ryu::Buffer::new().format(*f).to_owned()),
        (A::Bytes(b) | A::Fixed(_, b), _) => b64(b),
        (A::String(s), _) => json!(s),
        (A::Uuid(u), _) => json!(u.to_string()),
        (A::Enum(_, symbol), _) => json!(symbol),
        (A::Decimal(d), AvroSchema::Decimal(schema)) => {
            let bytes: Vec<u8> = Vec::try_from(d).unwrap();
            let mut text = String::new();
            crate::registry::avro::decimal_text(&bytes, schema.scale as i64, &mut text).unwrap();
            let _ = matches!(schema.inner, InnerDecimalSchema::Bytes);
            json!(text)
        }
        (A::Array(items), AvroSchema::Array(a)) => {
            items.iter().map(|v| oracle(v, &a.items)).collect()
        }
        (A::Map(entries), AvroSchema::Map(m)) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), oracle(v, &m.types)))
                .collect(),
        ),
        (A::Record(fields), AvroSchema::Record(r)) => Value::Object(
            fields
                .iter()
                .zip(&r.fields)
                .map(|((name, v), field)| (name.clone(), oracle(v, &field.schema)))
                .collect(),
        ),
        (A::Union(i, v), AvroSchema::Union(u)) => {
            let branch = &u.variants()[*i as usize];
            let inner = oracle(v, branch);
            let nullable = u.variants().len() == 2 && u.is_nullable();
            if nullable || matches!(branch, AvroSchema::Null) {
                inner
            } else {
                let name = match branch {
                    AvroSchema::Record(r) => r.name.fullname(None),
                    AvroSchema::String => "string".into(),
                    AvroSchema::Long => "long".into(),
                    other => panic!("no branch name for {other:?} in this test"),
                };
                json!({ name: inner })
            }
        }
        (value, schema) => panic!("the oracle has no rule for {value:?} as {schema:?}"),
    }
}

const CURRENCIES: [&str; 3] = ["EUR", "USD", "GBP"];

/// Strings with the characters JSON must escape.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
        Just("quote \" slash \\ tab \t nul \u{0}".to_owned()),
    ]
}

fn b64(len: std::ops::Range<usize>) -> impl Strategy<Value = Value> {
    proptest::collection::vec(any::<u8>(), len)
        .prop_map(|b| json!(base64::engine::general_purpose::STANDARD.encode(b)))
}

/// Doubles whose shortest text serde_json reads back exactly: the bridge writes exact text
/// (ryu), but serde_json without `float_roundtrip` may read it one ulp off, as the test does.
fn double() -> impl Strategy<Value = Value> {
    let exact = |f: &f64| {
        let text = ryu::Buffer::new().format(*f).to_owned();
        f.is_finite() && serde_json::from_str::<f64>(&text).ok() == Some(*f)
    };
    prop_oneof![
        any::<f64>()
            .prop_filter("finite and read back exactly", exact)
            .prop_map(|f| json!(f)),
        Just(json!("NaN")),
        Just(json!("-Infinity")),
    ]
}

/// A record of [`AVRO_ORDER`] in the bridge's JSON mapping.
fn avro_order() -> impl Strategy<Value = Value> {
    let item = (text(), any::<i32>(), double())
        .prop_map(|(sku, qty, price)| json!({"sku": sku, "qty": qty, "unit_price": price}));
    let payment = prop_oneof![
        Just(Value::Null),
        text().prop_map(|s| json!({ "string": s })),
        any::<i64>().prop_map(|n| json!({ "long": n })),
        text().prop_map(|s| json!({"shop.Card": {"last4": s}})),
    ];
    (
        (text(), any::<i64>(), text(), proptest::option::of(text())),
        (
            any::<i64>(),
            -9_999_999_999i64..9_999_999_999,
            0usize..3,
            any::<i64>(),
            any::<i32>(),
        ),
        (
            proptest::collection::vec(item, 0..4),
            proptest::collection::btree_map(text(), text(), 0..3),
        ),
        (
            proptest::option::of(-64i32..64),
            payment,
            b64(4..5),
            b64(0..20),
            any::<bool>(),
            any::<u128>(),
            text(),
        ),
    )
        .prop_map(|(a, b, c, d)| {
            let (order_id, customer_id, name, email) = a;
            let (amount, price, currency, created, day) = b;
            let (items, tags) = c;
            let (discount, payment, checksum, raw, paid, trace, note) = d;
            let sign = if price < 0 { "-" } else { "" };
            let price = format!(
                "{sign}{}.{:02}",
                price.unsigned_abs() / 100,
                price.unsigned_abs() % 100
            );
            json!({
                "order_id": order_id,
                "customer": {"id": customer_id, "name": name, "email": email},
                "amount_cents": amount, "price": price,
                "currency": CURRENCIES[currency],
                "created_at": created, "day": day, "items": items, "tags": tags,
                "discount": discount.map(|d| f64::from(d) / 8.0),
                "payment": payment, "checksum": checksum, "raw": raw, "paid": paid,
                "trace": uuid::Uuid::from_u128(trace).to_string(), "note": note,
            })
        })
}

/// A message of [`PROTO_ORDER`] in the proto3 JSON mapping with every field present (as the
/// bridge writes it), so what comes back must be equal.
pub(crate) fn proto_order() -> impl Strategy<Value = Value> {
    let item = (text(), any::<i32>(), -1000i32..1000)
        .prop_map(|(sku, qty, p)| json!({"sku": sku, "qty": qty, "unitPrice": f64::from(p) / 4.0}));
    let payment = prop_oneof![
        text().prop_map(|s| json!({ "card": s })),
        any::<i64>().prop_map(|n| json!({ "voucher": n.to_string() })),
    ];
    (
        (
            text(),
            any::<i64>(),
            text(),
            text(),
            any::<i64>(),
            0usize..3,
        ),
        (0i64..4_000_000_000, proptest::collection::vec(item, 0..3)),
        (
            proptest::collection::btree_map(text(), text(), 0..3),
            double(),
            payment,
        ),
        (
            b64(0..16),
            any::<bool>(),
            any::<u64>(),
            -100i32..100,
            text(),
        ),
    )
        .prop_map(|(a, b, c, d)| {
            let (order_id, id, name, email, amount, currency) = a;
            let (seconds, items) = b;
            let (tags, discount, payment) = c;
            let (raw, paid, big, ratio, note) = d;
            let created = time_text(seconds);
            let mut value = json!({
                "orderId": order_id,
                "customer": {"id": id.to_string(), "name": name, "email": email},
                "amountCents": amount.to_string(), "currency": CURRENCIES[currency],
                "createdAt": created, "items": items, "tags": tags, "discount": discount,
                "raw": raw, "paid": paid, "big": big.to_string(),
                "ratio": f64::from(ratio) / 2.0, "note": note,
            });
            value
                .as_object_mut()
                .unwrap()
                .extend(payment.as_object().unwrap().clone());
            value
        })
}

/// `seconds` after the epoch as RFC 3339 text in UTC (what the proto3 mapping writes).
fn time_text(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn json_order() -> impl Strategy<Value = Value> {
    let item = (text(), 1i64..1000).prop_map(|(sku, qty)| json!({"sku": sku, "qty": qty}));
    (
        text(),
        any::<i64>(),
        proptest::collection::vec(item, 0..4),
        0usize..3,
    )
        .prop_map(|(order_id, amount, items, currency)| {
            json!({"order_id": order_id, "amount_cents": amount, "items": items,
                   "currency": CURRENCIES[currency]})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_split_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
        match split_wire(&bytes) {
            Ok((id, payload)) => {
                prop_assert_eq!(bytes[0], 0);
                prop_assert_eq!(id.to_be_bytes(), [bytes[1], bytes[2], bytes[3], bytes[4]]);
                prop_assert_eq!(payload, &bytes[5..]);
            }
            Err(_) => prop_assert!(bytes.len() < 5 || bytes[0] != 0),
        }
    }

    #[test]
    fn any_bytes_decode_to_a_value_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let schemas = [
            compile(SchemaKind::Avro, AVRO_ORDER),
            compile(SchemaKind::Protobuf, PROTO_ORDER),
            compile(SchemaKind::JsonSchema, JSON_ORDER),
        ];
        for schema in &schemas {
            if let Ok(text) = schema.decode(&bytes) {
                prop_assert!(text.len() <= MAX_JSON);
                serde_json::from_str::<Value>(&text).expect("decoded text is JSON");
            }
        }
    }

    #[test]
    fn avro_values_round_trip_and_read_as_apache_avro_reads_them(value in avro_order()) {
        let schema = compile(SchemaKind::Avro, AVRO_ORDER);
        prop_assert_eq!(&round_trip(&schema, &value), &value);
        let bytes = schema.encode(1, &value).unwrap();
        let parsed = AvroSchema::parse_str(AVRO_ORDER).unwrap();
        let read = apache_read(&parsed, &bytes[5..]);
        prop_assert_eq!(oracle(&read, &parsed), value.clone());
        // And the walker reads what apache-avro's own writer wrote (maps in its own order).
        let written = apache_write(&parsed, read);
        prop_assert_eq!(json(&schema.decode(&written).unwrap()), value);
    }

    #[test]
    fn protobuf_values_round_trip(value in proto_order()) {
        let schema = compile(SchemaKind::Protobuf, PROTO_ORDER);
        prop_assert_eq!(round_trip(&schema, &value), value);
    }

    #[test]
    fn json_schema_values_round_trip(value in json_order()) {
        let schema = compile(SchemaKind::JsonSchema, JSON_ORDER);
        prop_assert_eq!(round_trip(&schema, &value), value);
    }

    #[test]
    fn escaping_matches_serde_json(s in any::<String>()) {
        let mut out = String::new();
        push_escaped(&mut out, &s);
        prop_assert_eq!(out, serde_json::to_string(&s).unwrap());
    }
}

#[test]
fn time_text_is_rfc_3339() {
    assert_eq!(time_text(0), "1970-01-01T00:00:00Z");
    assert_eq!(time_text(1_764_636_222), "2025-12-02T00:43:42Z");
}
