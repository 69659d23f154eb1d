//! JSON → Avro binary, walking the value with the compiled schema. Errors name the field
//! (`items[2].price`) and say what was expected and what was found. Field defaults from the
//! schema are written in their own JSON convention (bytes as ISO-8859-1 text, a union's
//! default in its first branch).

use base64::Engine as _;
use serde_json::Value;

use super::{decimal, Avro, Node, NodeId, Union};
use crate::registry::json_out::MAX_DEPTH;
use crate::registry::schema::describe;
use crate::registry::wire::write_zigzag;
use crate::registry::InvalidData;

pub fn encode(avro: &Avro, value: &Value, out: &mut Vec<u8>) -> Result<(), InvalidData> {
    let mut enc = Enc {
        nodes: &avro.nodes,
        path: Vec::new(),
    };
    enc.value(avro.root, value, Mode::Json, out)
}

/// Whose convention a JSON value follows: the bridge's mapping, or the schema's defaults.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Json,
    Default,
}

enum Seg<'a> {
    Name(&'a str),
    Index(usize),
}

/// The schema and the value share a lifetime so the path can name fields of either (a
/// record's default is the schema's).
struct Enc<'a> {
    nodes: &'a [Node],
    path: Vec<Seg<'a>>,
}

impl<'a> Enc<'a> {
    fn error(&self, problem: String) -> InvalidData {
        let mut path = String::new();
        for seg in &self.path {
            match seg {
                Seg::Name(name) if path.is_empty() => path.push_str(name),
                Seg::Name(name) => {
                    path.push('.');
                    path.push_str(name);
                }
                Seg::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        InvalidData { path, problem }
    }

    fn expected(&self, what: &str, found: &Value) -> InvalidData {
        self.error(format!("expected {what}, found {}", describe(found)))
    }

    fn value(
        &mut self,
        id: NodeId,
        value: &'a Value,
        mode: Mode,
        out: &mut Vec<u8>,
    ) -> Result<(), InvalidData> {
        if self.path.len() > MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let nodes = self.nodes;
        match (&nodes[id], value) {
            (Node::Null, Value::Null) => {}
            (Node::Null, v) => return Err(self.expected("null", v)),
            (Node::Boolean, Value::Bool(b)) => out.push(u8::from(*b)),
            (Node::Boolean, v) => return Err(self.expected("a boolean", v)),
            (Node::Int, v) => match integer(v).and_then(|i| i32::try_from(i).ok()) {
                Some(i) => write_zigzag(out, i64::from(i)),
                None => return Err(self.expected("an int (32-bit integer)", v)),
            },
            (Node::Long, v) => {
                let parsed = match v {
                    Value::String(s) => s.parse().ok(),
                    v => integer(v),
                };
                match parsed {
                    Some(i) => write_zigzag(out, i),
                    None => return Err(self.expected("a long (64-bit integer)", v)),
                }
            }
            (Node::Float, v) => match float(v) {
                Some(f) => out.extend_from_slice(&(f as f32).to_le_bytes()),
                None => return Err(self.expected("a float", v)),
            },
            (Node::Double, v) => match float(v) {
                Some(f) => out.extend_from_slice(&f.to_le_bytes()),
                None => return Err(self.expected("a double", v)),
            },
            (Node::Bytes, v) => {
                let bytes = self.bytes(v, mode, "bytes")?;
                write_sized(out, &bytes);
            }
            (Node::String, Value::String(s)) => write_sized(out, s.as_bytes()),
            (Node::String, v) => return Err(self.expected("a string", v)),
            (Node::UuidFixed, v) => {
                let parsed = v.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok());
                match parsed {
                    Some(uuid) => out.extend_from_slice(uuid.as_bytes()),
                    None => return Err(self.expected("a uuid", v)),
                }
            }
            (Node::Fixed { size, name }, v) => {
                let bytes = self.bytes(v, mode, "fixed")?;
                if bytes.len() != *size {
                    return Err(self.error(format!(
                        "expected {size} byte(s) for fixed `{name}`, found {}",
                        bytes.len()
                    )));
                }
                out.extend_from_slice(&bytes);
            }
            (Node::Enum { symbols, name, .. }, Value::String(s)) => {
                match symbols.iter().position(|symbol| symbol == s) {
                    Some(i) => write_zigzag(out, i as i64),
                    None => {
                        return Err(self.error(format!(
                            "unknown symbol {s:?} of enum `{name}`, expected one of {}",
                            symbols.join(", ")
                        )))
                    }
                }
            }
            (Node::Enum { name, .. }, v) => {
                return Err(self.expected(&format!("a symbol of enum `{name}`"), v))
            }
            (
                Node::Decimal {
                    precision,
                    scale,
                    fixed,
                },
                v,
            ) => {
                let text = self.decimal_text(v)?;
                let bytes = decimal::from_text(&text, *scale, *precision)
                    .and_then(|b| match fixed {
                        Some(size) => decimal::widen(b, *size),
                        None => Ok(b),
                    })
                    .map_err(|e| self.error(e))?;
                match fixed {
                    Some(_) => out.extend_from_slice(&bytes),
                    None => write_sized(out, &bytes),
                }
            }
            (Node::BigDecimal, v) => {
                let text = self.decimal_text(v)?;
                let (unscaled, scale) =
                    decimal::from_text_any_scale(&text).map_err(|e| self.error(e))?;
                let mut inner = Vec::with_capacity(unscaled.len() + 12);
                write_sized(&mut inner, &unscaled);
                write_zigzag(&mut inner, scale);
                write_sized(out, &inner);
            }
            (Node::Record(record), Value::Object(object)) => {
                for key in object.keys() {
                    if !record.fields.iter().any(|f| f.name == *key) {
                        let fields: Vec<&str> = record.fields.iter().map(|f| &*f.name).collect();
                        self.path.push(Seg::Name(key));
                        let e = self.error(format!(
                            "not a field of record `{}` (its fields: {})",
                            record.name,
                            fields.join(", ")
                        ));
                        return Err(e);
                    }
                }
                for field in &record.fields {
                    self.path.push(Seg::Name(&field.name));
                    match (object.get(&field.name), &field.default) {
                        (Some(v), _) => self.value(field.node, v, mode, out)?,
                        (None, Some(default)) => {
                            self.value(field.node, default, Mode::Default, out)?
                        }
                        (None, None) => return Err(self.error("missing required field".to_owned())),
                    }
                    self.path.pop();
                }
            }
            (Node::Record(record), v) => {
                return Err(self.expected(&format!("an object (record `{}`)", record.name), v))
            }
            (Node::Array(items), Value::Array(array)) => {
                if !array.is_empty() {
                    write_zigzag(out, array.len() as i64);
                    for (i, item) in array.iter().enumerate() {
                        self.path.push(Seg::Index(i));
                        self.value(*items, item, mode, out)?;
                        self.path.pop();
                    }
                }
                out.push(0);
            }
            (Node::Array(_), v) => return Err(self.expected("an array", v)),
            (Node::Map(values), Value::Object(object)) => {
                if !object.is_empty() {
                    write_zigzag(out, object.len() as i64);
                    for (key, item) in object {
                        write_sized(out, key.as_bytes());
                        self.path.push(Seg::Name(key));
                        self.value(*values, item, mode, out)?;
                        self.path.pop();
                    }
                }
                out.push(0);
            }
            (Node::Map(_), v) => return Err(self.expected("an object (map)", v)),
            (Node::Union(union), v) => self.union(union, v, mode, out)?,
            (Node::Pending, _) => return Err(self.error("a named type never defined".into())),
        }
        Ok(())
    }

    fn union(
        &mut self,
        union: &Union,
        value: &'a Value,
        mode: Mode,
        out: &mut Vec<u8>,
    ) -> Result<(), InvalidData> {
        let nodes = self.nodes;
        let null = union
            .branches
            .iter()
            .position(|&b| matches!(nodes[b], Node::Null));
        let (index, inner) = match value {
            _ if mode == Mode::Default => (0, value),
            Value::Null => match null {
                Some(i) => (i, value),
                None => {
                    return Err(self.expected(&format!("one of {}", union.names.join(", ")), value))
                }
            },
            // Avro's JSON encoding of a union value: `{"<type name>": value}`.
            // A nullable union is written bare, so an object there is a bare record or map.
            _ if union.nullable && takes_object(nodes, union) && value.is_object() => {
                (usize::from(null == Some(0)), value)
            }
            Value::Object(o) if o.len() == 1 && branch_named(union, o).is_some() => {
                branch_named(union, o).expect("checked")
            }
            // The one non-null branch: its own errors explain best what is wrong.
            _ if union.nullable => (usize::from(null == Some(0)), value),
            _ => match union
                .branches
                .iter()
                .position(|&b| accepts(&nodes[b], value))
            {
                Some(i) => (i, value),
                None => {
                    return Err(self.expected(
                        &format!("a value of one of the types {}", union.names.join(", ")),
                        value,
                    ))
                }
            },
        };
        write_zigzag(out, index as i64);
        self.value(union.branches[index], inner, mode, out)
    }

    fn bytes(&self, value: &Value, mode: Mode, what: &str) -> Result<Vec<u8>, InvalidData> {
        let Value::String(s) = value else {
            return Err(self.expected(&format!("{what} as a base64 string"), value));
        };
        if mode == Mode::Default {
            // Avro defaults write bytes as text whose code points are the byte values.
            return s
                .chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| self.error(format!("default {what} {s:?} is not ISO-8859-1 text")));
        }
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| {
                self.error(format!(
                    "expected {what} as a base64 string, found {} ({e})",
                    describe(value)
                ))
            })
    }

    fn decimal_text(&self, value: &Value) -> Result<String, InvalidData> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            v => Err(self.expected("a decimal as a string such as \"12.34\"", v)),
        }
    }
}

/// `{"<branch name>": value}`: the branch and the value inside.
fn branch_named<'v>(
    union: &Union,
    object: &'v serde_json::Map<String, Value>,
) -> Option<(usize, &'v Value)> {
    let (key, inner) = object.iter().next()?;
    let i = union.names.iter().position(|name| name == key)?;
    Some((i, inner))
}

fn takes_object(nodes: &[Node], union: &Union) -> bool {
    union
        .branches
        .iter()
        .any(|&b| matches!(nodes[b], Node::Record(_) | Node::Map(_)))
}

/// Whether a union branch would take a bare JSON value, judged on its top level only (so a
/// choice among nested unions stays linear); the chosen branch's encoder reports the rest.
fn accepts(node: &Node, value: &Value) -> bool {
    match (node, value) {
        (Node::Null, Value::Null) | (Node::Boolean, Value::Bool(_)) => true,
        (Node::Int, v) => integer(v).is_some_and(|i| i32::try_from(i).is_ok()),
        (Node::Long, v) => integer(v).is_some(),
        (Node::Float | Node::Double, Value::Number(_)) => true,
        (Node::Decimal { .. } | Node::BigDecimal, Value::Number(_)) => true,
        (Node::String, Value::String(_)) => true,
        (Node::Enum { symbols, .. }, Value::String(s)) => symbols.contains(s),
        (Node::Record(_) | Node::Map(_), Value::Object(_)) => true,
        (Node::Array(_), Value::Array(_)) => true,
        _ => false,
    }
}

/// An integral JSON number (a float with no fraction counts).
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f))
                .then_some(f as i64)
        }),
        _ => None,
    }
}

/// A JSON number, or the strings that stand for NaN and the infinities.
fn float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn write_sized(out: &mut Vec<u8>, bytes: &[u8]) {
    write_zigzag(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}
