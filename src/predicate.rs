//! The predicate language of channel `filter` transforms and client `filter`s: a test on one
//! operand (`pointer` into the value, the record `key`, a `header`) with one operator, combined
//! with `all`, `any` and `not`. Parsed from JSON once (config load, subscribe), with the path of
//! the first problem and bounds on size and depth, then evaluated per record without allocating.
//!
//! A leaf of the same layer as `config`: it knows nothing but JSON, so config checks, outbound
//! transforms and client filters share one parser and one evaluator.

use serde_json::{Map, Value};

/// Most nodes (tests and combinators) one predicate may have.
pub(crate) const MAX_NODES: usize = 64;
/// Deepest nesting of `all`/`any`/`not`.
pub(crate) const MAX_DEPTH: usize = 8;
/// Most values an `in` list may hold.
pub(crate) const MAX_IN_VALUES: usize = 256;
/// Longest string (pointer, header name, compared value) accepted, in bytes.
pub(crate) const MAX_STRING_BYTES: usize = 1024;

/// A parsed predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    All(Vec<Predicate>),
    Any(Vec<Predicate>),
    Not(Box<Predicate>),
    Test(Operand, Op),
}

/// What a test looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A JSON pointer into the record value (`""` is the whole value).
    Pointer(String),
    /// The record's routing key.
    Key,
    /// A record header, as UTF-8 text.
    Header(String),
}

/// How a test compares.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    Prefix(String),
    Exists(bool),
}

const OPERATORS: &[&str] = &[
    "eq", "ne", "in", "gt", "gte", "lt", "lte", "prefix", "exists",
];
const OPERANDS: &[&str] = &["pointer", "key", "header"];

/// A predicate that does not parse: where (a path such as `all[1].pointer`, empty for the
/// predicate itself) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct PredicateError {
    pub path: String,
    pub message: String,
}

/// What a predicate is evaluated on.
pub trait Subject {
    /// The record value, when it is (or was decoded as) JSON.
    fn value(&self) -> Option<&Value>;
    fn key(&self) -> Option<&str>;
    fn header(&self, name: &str) -> Option<&str>;
}

impl Predicate {
    /// Parses a predicate, checking every operator, operand and bound.
    pub fn parse(value: &Value) -> Result<Predicate, PredicateError> {
        let mut nodes = 0;
        parse_node(value, "", 0, &mut nodes)
    }

    /// Whether `subject` satisfies the predicate. A test on a missing operand is false
    /// (whatever its operator, except `exists: false`), so `not` of it is true.
    pub fn matches(&self, subject: &dyn Subject) -> bool {
        match self {
            Predicate::All(list) => list.iter().all(|p| p.matches(subject)),
            Predicate::Any(list) => list.iter().any(|p| p.matches(subject)),
            Predicate::Not(inner) => !inner.matches(subject),
            Predicate::Test(operand, op) => test(operand, op, subject),
        }
    }
}

fn fail<T>(path: &str, message: impl Into<String>) -> Result<T, PredicateError> {
    Err(PredicateError {
        path: path.to_owned(),
        message: message.into(),
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn parse_node(
    value: &Value,
    path: &str,
    depth: usize,
    nodes: &mut usize,
) -> Result<Predicate, PredicateError> {
    *nodes += 1;
    if *nodes > MAX_NODES {
        return fail(
            path,
            format!("a predicate may have at most {MAX_NODES} tests"),
        );
    }
    if depth > MAX_DEPTH {
        return fail(
            path,
            format!("a predicate may nest at most {MAX_DEPTH} levels"),
        );
    }
    let Value::Object(map) = value else {
        return fail(
            path,
            "expected an object such as {pointer: /status, eq: NEW}",
        );
    };
    for combinator in ["all", "any", "not"] {
        if let Some(inner) = map.get(combinator) {
            if map.len() > 1 {
                return fail(
                    path,
                    format!("`{combinator}` must be alone in its object; nest tests inside it"),
                );
            }
            let at = join(path, combinator);
            if combinator == "not" {
                return Ok(Predicate::Not(Box::new(parse_node(
                    inner,
                    &at,
                    depth + 1,
                    nodes,
                )?)));
            }
            let Value::Array(items) = inner else {
                return fail(&at, "expected a list of predicates");
            };
            if items.is_empty() {
                return fail(&at, "must list at least one predicate");
            }
            let list = items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_node(item, &format!("{at}[{i}]"), depth + 1, nodes))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if combinator == "all" {
                Predicate::All(list)
            } else {
                Predicate::Any(list)
            });
        }
    }
    parse_test(map, path)
}

fn parse_test(map: &Map<String, Value>, path: &str) -> Result<Predicate, PredicateError> {
    for name in map.keys() {
        if !OPERATORS.contains(&name.as_str()) && !OPERANDS.contains(&name.as_str()) {
            return fail(
                &join(path, name),
                format!(
                    "unknown field `{}`; expected one of pointer, key, header, {}, or all, any, not",
                    truncate(name),
                    OPERATORS.join(", ")
                ),
            );
        }
    }
    let operands: Vec<&str> = OPERANDS
        .iter()
        .copied()
        .filter(|o| map.contains_key(*o))
        .collect();
    let operand = match operands.as_slice() {
        [] => return fail(path, "missing the operand: pointer, key or header"),
        [_, second, ..] => {
            return fail(
                &join(path, second),
                "a test has exactly one operand (pointer, key or header)",
            )
        }
        ["pointer"] => {
            let at = join(path, "pointer");
            let pointer = string(&map["pointer"], &at)?;
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return fail(
                    &at,
                    format!(
                        "\"{}\" is not a JSON pointer; it must start with `/`",
                        truncate(pointer)
                    ),
                );
            }
            Operand::Pointer(pointer.to_owned())
        }
        ["header"] => {
            let at = join(path, "header");
            let name = string(&map["header"], &at)?;
            if name.is_empty() {
                return fail(&at, "must not be empty");
            }
            Operand::Header(name.to_owned())
        }
        _ => {
            if map["key"] != Value::Bool(true) {
                return fail(&join(path, "key"), "expected `true` (the record key)");
            }
            Operand::Key
        }
    };
    let ops: Vec<&str> = OPERATORS
        .iter()
        .copied()
        .filter(|o| map.contains_key(*o))
        .collect();
    let name = match ops.as_slice() {
        [] => {
            return fail(
                path,
                format!("missing the operator: one of {}", OPERATORS.join(", ")),
            )
        }
        [name] => *name,
        [_, second, ..] => return fail(&join(path, second), "a test has exactly one operator"),
    };
    let at = join(path, name);
    let literal = &map[name];
    let op = match name {
        "in" => {
            let Value::Array(values) = literal else {
                return fail(&at, "expected a list of values");
            };
            if values.len() > MAX_IN_VALUES {
                return fail(&at, format!("may list at most {MAX_IN_VALUES} values"));
            }
            for (i, v) in values.iter().enumerate() {
                scalar(v, &format!("{at}[{i}]"))?;
            }
            Op::In(values.clone())
        }
        "prefix" => Op::Prefix(string(literal, &at)?.to_owned()),
        "exists" => match literal {
            Value::Bool(b) => Op::Exists(*b),
            _ => return fail(&at, "expected true or false"),
        },
        "gt" | "gte" | "lt" | "lte" => {
            if !(literal.is_number() || literal.is_string()) {
                return fail(&at, "expected a number or a string");
            }
            let v = literal.clone();
            match name {
                "gt" => Op::Gt(v),
                "gte" => Op::Gte(v),
                "lt" => Op::Lt(v),
                _ => Op::Lte(v),
            }
        }
        _ => {
            scalar(literal, &at)?;
            if name == "eq" {
                Op::Eq(literal.clone())
            } else {
                Op::Ne(literal.clone())
            }
        }
    };
    Ok(Predicate::Test(operand, op))
}

fn string<'v>(value: &'v Value, path: &str) -> Result<&'v str, PredicateError> {
    match value {
        Value::String(s) if s.len() <= MAX_STRING_BYTES => Ok(s),
        Value::String(_) => fail(path, format!("longer than {MAX_STRING_BYTES} bytes")),
        _ => fail(path, "expected a string"),
    }
}

/// Compared values are scalars: strings, numbers, booleans, null.
fn scalar(value: &Value, path: &str) -> Result<(), PredicateError> {
    match value {
        Value::Array(_) | Value::Object(_) => {
            fail(path, "expected a string, number, boolean or null")
        }
        Value::String(s) if s.len() > MAX_STRING_BYTES => {
            fail(path, format!("longer than {MAX_STRING_BYTES} bytes"))
        }
        _ => Ok(()),
    }
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(60) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// The operand's value: JSON for pointers, text for the key and headers.
enum Found<'a> {
    Json(&'a Value),
    Text(&'a str),
}

fn test(operand: &Operand, op: &Op, subject: &dyn Subject) -> bool {
    let found = match operand {
        Operand::Pointer(pointer) => subject
            .value()
            .and_then(|v| v.pointer(pointer))
            .map(Found::Json),
        Operand::Key => subject.key().map(Found::Text),
        Operand::Header(name) => subject.header(name).map(Found::Text),
    };
    let Some(found) = found else {
        return *op == Op::Exists(false);
    };
    match op {
        Op::Exists(wanted) => *wanted,
        Op::Eq(literal) => equal(&found, literal),
        Op::Ne(literal) => !equal(&found, literal),
        Op::In(values) => values.iter().any(|v| equal(&found, v)),
        Op::Prefix(prefix) => match found {
            Found::Json(Value::String(s)) => s.starts_with(prefix.as_str()),
            Found::Text(s) => s.starts_with(prefix.as_str()),
            _ => false,
        },
        Op::Gt(literal) => compare(&found, literal).is_some_and(|o| o.is_gt()),
        Op::Gte(literal) => compare(&found, literal).is_some_and(|o| o.is_ge()),
        Op::Lt(literal) => compare(&found, literal).is_some_and(|o| o.is_lt()),
        Op::Lte(literal) => compare(&found, literal).is_some_and(|o| o.is_le()),
    }
}

/// Equality of JSON values, numbers compared by value (`1 == 1.0`). Text operands (key,
/// headers) equal a string literal of the same text or a number written the same way.
fn equal(found: &Found<'_>, literal: &Value) -> bool {
    match (found, literal) {
        (Found::Json(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Found::Json(a), b) => *a == b,
        (Found::Text(a), Value::String(b)) => a == b,
        (Found::Text(a), Value::Number(b)) => a.parse::<f64>().ok() == b.as_f64(),
        (Found::Text(_), _) => false,
    }
}

/// Order of numbers (by value) and of strings (by bytes); anything else is unordered.
fn compare(found: &Found<'_>, literal: &Value) -> Option<std::cmp::Ordering> {
    match (found, literal) {
        (Found::Json(Value::Number(a)), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Found::Json(Value::String(a)), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        (Found::Text(a), Value::String(b)) => Some((*a).cmp(b.as_str())),
        (Found::Text(a), Value::Number(b)) => a.parse::<f64>().ok()?.partial_cmp(&b.as_f64()?),
        _ => None,
    }
}

/// A subject made of a JSON value, a key and headers: what outbound and tests evaluate on.
pub(crate) struct Parts<'a> {
    pub value: Option<&'a Value>,
    pub key: Option<&'a str>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

impl Subject for Parts<'_> {
    fn value(&self) -> Option<&Value> {
        self.value
    }
    fn key(&self) -> Option<&str> {
        self.key
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| *v)
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

#[cfg(test)]
mod tests;
