//! Channel `transforms`, compiled once from the config and applied once per record before
//! fan-out (so snapshots, history and every session see the same transformed record, and its
//! frame is still encoded once). Pointers are split into tokens at compile time; `*` as a token
//! stands for every element of an array (or every value of an object), so
//! `mask: [/lines/*/card]` reaches into lists.

use serde_json::{Map, Value};

use crate::config::Transform;
use crate::predicate::{Parts, Predicate, PredicateError};

/// What `mask` writes in place of a value.
pub(crate) const MASK: &str = "***";

/// A channel's compiled transform steps, in order.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Step {
    Filter(Predicate),
    Drop(Vec<Tokens>),
    Mask(Vec<Tokens>),
    Extract(Tokens),
    Rename(Vec<(Tokens, Tokens)>),
    HeadersInto { at: Tokens, names: Vec<String> },
}

/// A JSON pointer, split and unescaped.
type Tokens = Vec<String>;

/// The record a chain works on: its value (taken, transformed in place) and what a `filter`
/// or `headers_into` may read besides.
pub struct Input<'a> {
    pub key: Option<&'a str>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

impl Chain {
    /// Compiles the steps; an error names the step (`transforms[2].filter: …`) — `check`
    /// reports the same problems with their lines first, so this only fails on an unchecked
    /// config.
    pub fn compile(steps: &[Transform]) -> Result<Chain, CompileError> {
        let mut compiled = Vec::with_capacity(steps.len());
        for (step_index, step) in steps.iter().enumerate() {
            let pointer = |key: &'static str, p: &str| {
                tokens(p).map_err(|source| CompileError::Pointer {
                    step: step_index,
                    key,
                    source,
                })
            };
            compiled.push(match step {
                Transform::Filter(spec) => {
                    Step::Filter(Predicate::parse(&spec.0).map_err(|source| {
                        CompileError::Filter {
                            step: step_index,
                            source,
                        }
                    })?)
                }
                Transform::Drop(list) => Step::Drop(
                    list.iter()
                        .map(|p| pointer("drop", p))
                        .collect::<Result<_, _>>()?,
                ),
                Transform::Mask(list) => Step::Mask(
                    list.iter()
                        .map(|p| pointer("mask", p))
                        .collect::<Result<_, _>>()?,
                ),
                Transform::Extract(p) => Step::Extract(pointer("extract", p)?),
                Transform::Rename(map) => Step::Rename(
                    map.iter()
                        .map(|(from, to)| Ok((pointer("rename", from)?, pointer("rename", to)?)))
                        .collect::<Result<_, CompileError>>()?,
                ),
                Transform::HeadersInto(spec) => Step::HeadersInto {
                    at: pointer("headers_into.pointer", &spec.pointer)?,
                    names: spec.names.clone(),
                },
            });
        }
        Ok(Chain { steps: compiled })
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs every step on `value`; `None` when a `filter` (or an `extract` of a missing
    /// subtree) drops the record.
    pub fn apply(&self, mut value: Value, input: &Input<'_>) -> Option<Value> {
        for step in &self.steps {
            match step {
                Step::Filter(predicate) => {
                    let parts = Parts {
                        value: Some(&value),
                        key: input.key,
                        headers: input.headers,
                    };
                    if !predicate.matches(&parts) {
                        return None;
                    }
                }
                Step::Drop(pointers) => {
                    for pointer in pointers {
                        remove_at(&mut value, pointer);
                    }
                }
                Step::Mask(pointers) => {
                    for pointer in pointers {
                        each_at(&mut value, pointer, &mut |v| *v = Value::from(MASK));
                    }
                }
                Step::Extract(pointer) => {
                    value = take_at(&mut value, pointer)?;
                }
                Step::Rename(moves) => {
                    for (from, to) in moves {
                        if let Some(moved) = take_at(&mut value, from) {
                            if let Some(slot) = create_at(&mut value, to) {
                                *slot = moved;
                            }
                        }
                    }
                }
                Step::HeadersInto { at, names } => {
                    let Some(slot) = create_at(&mut value, at) else {
                        continue;
                    };
                    if !slot.is_object() {
                        *slot = Value::Object(Map::new());
                    }
                    let Value::Object(target) = slot else {
                        continue;
                    };
                    for (name, header) in input.headers {
                        if !names.is_empty() && !names.iter().any(|n| n == name) {
                            continue;
                        }
                        if let Some(text) = header.and_then(|h| std::str::from_utf8(h).ok()) {
                            target.insert((*name).to_owned(), Value::from(text));
                        }
                    }
                }
            }
        }
        Some(value)
    }
}

/// Why a chain of steps does not compile: the step (`transforms[2].filter: …`) and its problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("transforms[{step}].filter: {source}")]
    Filter { step: usize, source: PredicateError },
    /// `key`: the step's key holding the pointer (`drop`, `headers_into.pointer`).
    #[error("transforms[{step}].{key}: {source}")]
    Pointer {
        step: usize,
        key: &'static str,
        source: NotAPointer,
    },
}

/// Compares with the message, as tests do.
#[cfg(test)]
impl PartialEq<&str> for CompileError {
    fn eq(&self, other: &&str) -> bool {
        self.to_string().as_str() == *other
    }
}

/// A pointer that does not start with `/` (nor is empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a JSON pointer; it must start with `/`")]
pub struct NotAPointer(pub String);

/// Splits a JSON pointer (`""` or `/a/b~1c`) into unescaped tokens.
pub fn tokens(pointer: &str) -> Result<Tokens, NotAPointer> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(NotAPointer(pointer.to_owned()));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn child<'v>(value: &'v mut Value, token: &str) -> Option<&'v mut Value> {
    match value {
        Value::Object(map) => map.get_mut(token),
        Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    }
}

/// Calls `f` on every value the tokens reach (`*` fans out).
fn each_at(value: &mut Value, tokens: &[String], f: &mut dyn FnMut(&mut Value)) {
    let Some((first, rest)) = tokens.split_first() else {
        return f(value);
    };
    if first == "*" {
        match value {
            Value::Array(items) => items.iter_mut().for_each(|v| each_at(v, rest, f)),
            Value::Object(map) => map.values_mut().for_each(|v| each_at(v, rest, f)),
            _ => {}
        }
    } else if let Some(next) = child(value, first) {
        each_at(next, rest, f);
    }
}

/// Removes what the tokens reach; the whole value becomes `null` for the empty pointer.
fn remove_at(value: &mut Value, tokens: &[String]) {
    let Some((last, parent)) = tokens.split_last() else {
        *value = Value::Null;
        return;
    };
    each_at(value, parent, &mut |parent| match parent {
        Value::Object(map) if last == "*" => map.clear(),
        Value::Object(map) => {
            map.remove(last);
        }
        Value::Array(items) if last == "*" => items.clear(),
        Value::Array(items) => {
            if let Some(i) = last.parse::<usize>().ok().filter(|i| *i < items.len()) {
                items.remove(i);
            }
        }
        _ => {}
    });
}

/// Takes the value at a plain pointer out of `value` (`*` is not followed here).
fn take_at(value: &mut Value, tokens: &[String]) -> Option<Value> {
    let Some((last, parent)) = tokens.split_last() else {
        return Some(value.take());
    };
    let mut at = value;
    for token in parent {
        at = child(at, token)?;
    }
    match at {
        Value::Object(map) => map.remove(last),
        Value::Array(items) => {
            let i = last.parse::<usize>().ok().filter(|i| *i < items.len())?;
            Some(items.remove(i))
        }
        _ => None,
    }
}

/// The slot at a plain pointer, creating objects on the way; `None` when something in the way
/// is not an object (or an array with that index).
fn create_at<'v>(value: &'v mut Value, tokens: &[String]) -> Option<&'v mut Value> {
    let mut at = value;
    for token in tokens {
        if at.is_null() {
            *at = Value::Object(Map::new());
        }
        at = match at {
            Value::Object(map) => map.entry(token.clone()).or_insert(Value::Null),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i))?,
            _ => return None,
        };
    }
    Some(at)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bench;
