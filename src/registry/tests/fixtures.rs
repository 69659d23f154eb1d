//! A test schema of each kind (an order of about 300 bytes) and a record of it, shared by the
//! tests and the bench.

use crate::registry::{Reference, Schema, SchemaKind};

pub(crate) const AVRO_ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
 {"name":"order_id","type":"string"},
 {"name":"customer","type":{"type":"record","name":"Customer","fields":[
   {"name":"id","type":"long"},
   {"name":"name","type":"string"},
   {"name":"email","type":["null","string"],"default":null}]}},
 {"name":"amount_cents","type":"long"},
 {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
 {"name":"currency","type":{"type":"enum","name":"Currency","symbols":["EUR","USD","GBP"]}},
 {"name":"created_at","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
   {"name":"sku","type":"string"},
   {"name":"qty","type":"int"},
   {"name":"unit_price","type":"double"}]}}},
 {"name":"tags","type":{"type":"map","values":"string"}},
 {"name":"discount","type":["null","float"],"default":null},
 {"name":"payment","type":["null","string","long",
   {"type":"record","name":"Card","fields":[{"name":"last4","type":"string"}]}]},
 {"name":"checksum","type":{"type":"fixed","name":"Crc","size":4}},
 {"name":"raw","type":"bytes"},
 {"name":"paid","type":"boolean"},
 {"name":"trace","type":{"type":"string","logicalType":"uuid"}},
 {"name":"note","type":"string","default":"none"}
]}"#;

/// A record of [`AVRO_ORDER`] in the bridge's JSON mapping.
pub(crate) const AVRO_ORDER_JSON: &str = r#"{"order_id":"O-2026-000042","customer":{"id":10442,"name":"Ada Lovelace","email":"ada@example.com"},"amount_cents":152375,"price":"1523.75","currency":"EUR","created_at":1764636222000,"day":20424,"items":[{"sku":"SKU-1","qty":2,"unit_price":499.5},{"sku":"SKU-22","qty":1,"unit_price":524.75},{"sku":"SKU-333","qty":3,"unit_price":0.25},{"sku":"SKU-4444","qty":12,"unit_price":19.99}],"tags":{"channel":"web","region":"eu-west","campaign":"winter-sale"},"discount":0.125,"payment":{"shop.Card":{"last4":"4242"}},"checksum":"3q2+7w==","raw":"AAECAw==","paid":true,"trace":"4bf92f35-77b3-4da6-a3ce-929d0e0e4736","note":"leave at the door"}"#;

pub(crate) const PROTO_ORDER: &str = r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";

message Order {
  string order_id = 1;
  Customer customer = 2;
  int64 amount_cents = 3;
  Currency currency = 4;
  google.protobuf.Timestamp created_at = 5;
  repeated Item items = 6;
  map<string, string> tags = 7;
  double discount = 8;
  oneof payment {
    string card = 9;
    int64 voucher = 10;
  }
  bytes raw = 11;
  bool paid = 12;
  uint64 big = 13;
  float ratio = 14;
  optional string note = 15;

  message Item {
    string sku = 1;
    int32 qty = 2;
    double unit_price = 3;
  }
}

message Customer {
  int64 id = 1;
  string name = 2;
  string email = 3;
}

enum Currency {
  EUR = 0;
  USD = 1;
  GBP = 2;
}
"#;

/// A record of [`PROTO_ORDER`] in the proto3 JSON mapping, every field set.
pub(crate) const PROTO_ORDER_JSON: &str = r#"{"orderId":"O-2026-000042","customer":{"id":"10442","name":"Ada Lovelace","email":"ada@example.com"},"amountCents":"152375","currency":"USD","createdAt":"2025-12-02T00:43:42Z","items":[{"sku":"SKU-1","qty":2,"unitPrice":499.5},{"sku":"SKU-22","qty":1,"unitPrice":524.75},{"sku":"SKU-333","qty":3,"unitPrice":0.25},{"sku":"SKU-4444","qty":12,"unitPrice":19.99}],"tags":{"channel":"web","region":"eu-west","campaign":"winter-sale"},"discount":0.125,"card":"4242","raw":"AAECAw==","paid":true,"big":"18446744073709551615","ratio":0.5,"note":"leave at the door"}"#;

pub(crate) const JSON_ORDER: &str = r#"{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "required": ["order_id", "amount_cents", "items"],
  "properties": {
    "order_id": {"type": "string"},
    "amount_cents": {"type": "integer"},
    "currency": {"enum": ["EUR", "USD", "GBP"]},
    "items": {"type": "array", "items": {
      "type": "object",
      "required": ["sku", "qty"],
      "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}
    }}
  }
}"#;

pub(crate) const MAX_JSON: usize = 1 << 20;

pub fn compile(kind: SchemaKind, text: &str) -> Schema {
    compile_with(kind, text, &[])
}

pub(crate) fn compile_with(kind: SchemaKind, text: &str, references: &[Reference]) -> Schema {
    Schema::compile(kind, text, references, MAX_JSON).unwrap_or_else(|e| panic!("{e}"))
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Encodes `value` and decodes it again, as JSON.
pub(crate) fn round_trip(schema: &Schema, value: &serde_json::Value) -> serde_json::Value {
    let bytes = schema.encode(7, value).unwrap_or_else(|e| panic!("{e}"));
    let (id, payload) = crate::registry::split_wire(&bytes).unwrap();
    assert_eq!(id, 7);
    json(&schema.decode(payload).unwrap_or_else(|e| panic!("{e}")))
}

/// apache-avro writes `value` as a datum (the reference writer).
pub(crate) fn apache_write(
    schema: &apache_avro::Schema,
    value: apache_avro::types::Value,
) -> Vec<u8> {
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap()
}

/// apache-avro reads a datum (the reference reader).
pub(crate) fn apache_read(schema: &apache_avro::Schema, bytes: &[u8]) -> apache_avro::types::Value {
    apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()
        .unwrap()
        .read_value(&mut &bytes[..])
        .unwrap()
}
