//! The channel keys that shape what a subscriber receives: `transforms` (Kafka Connect SMT-like steps applied once
//! per record before fan-out), `subscribe.where` (per-record entitlement by a token claim) and
//! the predicates both `filter` steps and client filters are written in.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// One step of a channel's `transforms`, written as a one-key map (`- drop: [/internal]`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Transform {
    /// Keep only records matching a predicate; the others are counted
    /// (`messages_dropped_total{reason="filtered"}`) and reach nobody, not even snapshots and
    /// history. E.g. `filter: {pointer: /status, in: [NEW, FILLED]}`.
    Filter(PredicateSpec),
    /// Remove these JSON pointers from the value; a missing one is no problem.
    /// E.g. `drop: [/internal, /customer/ssn]`.
    Drop(Vec<String>),
    /// Replace the values at these JSON pointers with `"***"` (present ones only).
    /// E.g. `mask: [/card/number]`.
    Mask(Vec<String>),
    /// Deliver only the subtree at this pointer; a record without it is filtered out.
    /// E.g. `extract: /payload`.
    Extract(String),
    /// Move values from one pointer to another (`{/from: /to}`), creating the objects on the way
    /// to the target; a missing source is no problem. E.g. `rename: {/cust: /customer}`.
    Rename(BTreeMap<String, String>),
    /// Copy record headers into the value, as strings, in the object at `pointer` (created when
    /// absent). E.g. `headers_into: {pointer: /meta, names: [traceparent]}`.
    HeadersInto(HeadersInto),
}

/// Read by hand as a one-key map: serde_yaml reads derived enums only from YAML tags
/// (`!drop [...]`), which nobody types.
impl<'de> Deserialize<'de> for Transform {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StepVisitor)
    }
}

struct StepVisitor;

const STEPS: &[&str] = &[
    "filter",
    "drop",
    "mask",
    "extract",
    "rename",
    "headers_into",
];

impl<'de> serde::de::Visitor<'de> for StepVisitor {
    type Value = Transform;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a one-key map such as {drop: [/internal]}")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Transform, A::Error> {
        use serde::de::Error;
        let Some(step) = map.next_key::<String>()? else {
            return Err(A::Error::invalid_length(0, &self));
        };
        let transform = match step.as_str() {
            "filter" => Transform::Filter(map.next_value()?),
            "drop" => Transform::Drop(map.next_value()?),
            "mask" => Transform::Mask(map.next_value()?),
            "extract" => Transform::Extract(map.next_value()?),
            "rename" => Transform::Rename(map.next_value()?),
            "headers_into" => Transform::HeadersInto(map.next_value()?),
            other => return Err(A::Error::unknown_variant(other, STEPS)),
        };
        if map.next_key::<String>()?.is_some() {
            return Err(A::Error::custom("a transform step is a map with one key"));
        }
        Ok(transform)
    }
}

/// Where `headers_into` writes, and which headers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadersInto {
    /// JSON pointer of the object receiving the headers, e.g. `/meta`.
    pub pointer: String,
    /// Header names to copy; empty (the default) copies every header with a UTF-8 value.
    #[serde(default)]
    pub names: Vec<String>,
}

/// Per-record entitlement: a record reaches a session only when the value at `pointer` (in the
/// record as consumed, before `transforms`) equals the session token's claim.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhereRule {
    /// JSON pointer into the record value, e.g. `/tenantId`; strings and numbers qualify.
    pub pointer: String,
    /// Claim of the session's token the value must equal, e.g. `tenant` (dots reach nested
    /// claims). A session whose token lacks it cannot subscribe.
    pub equals_claim: String,
}

/// A predicate: `{pointer: /p | key: true | header: name, <op>: value}` with `<op>` one of `eq`,
/// `ne`, `in` (a list), `gt`, `gte`, `lt`, `lte` (numbers by value, strings by bytes),
/// `prefix`, `exists` (true/false); combined with `all: [...]`, `any: [...]`, `not: {...}`.
/// At most 64 tests, 8 levels deep. A test on a missing field is false (except
/// `exists: false`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct PredicateSpec(pub serde_json::Value);

impl JsonSchema for PredicateSpec {
    fn schema_name() -> Cow<'static, str> {
        "Predicate".into()
    }

    // Any mapping here: the predicate language is checked by `crate::predicate`, which names
    // the path of a problem inside the predicate.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "additionalProperties": {},
            "description": "A predicate such as {pointer: /status, in: [NEW, FILLED]}."
        })
    }
}
