//! Avro: the writer schema, parsed by apache-avro, compiled once into a flat table of nodes
//! (named types resolved to indexes, JSON field names rendered and escaped) that the decoder
//! walks over the datum bytes and the encoder walks over a JSON value. Walking the bytes
//! directly, rather than through apache-avro's `Value`, spares one allocation per field
//! (see `registry::bench`).

mod decimal;
mod decode;
mod encode;

use std::collections::HashMap;

use apache_avro::schema::{InnerDecimalSchema, Name, UuidSchema};
use apache_avro::Schema as AvroSchema;

use super::json_out::quoted;
use super::{DecodeError, InvalidData};

#[cfg(test)]
pub(crate) use decimal::to_text as decimal_text;

type NodeId = usize;

/// A compiled Avro writer schema.
pub struct Avro {
    nodes: Vec<Node>,
    /// The node of the schema itself (a union's or array's branches come before it).
    root: NodeId,
}

enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    /// `uuid` on `fixed(16)`: the canonical hyphenated text.
    UuidFixed,
    Record(Record),
    Enum {
        name: String,
        symbols: Vec<String>,
        /// Each symbol as a JSON string.
        quoted: Vec<String>,
    },
    Fixed {
        name: String,
        size: usize,
    },
    Array(NodeId),
    Map(NodeId),
    Union(Union),
    /// `decimal` on `bytes` (`fixed: None`) or on a fixed of that size.
    Decimal {
        precision: usize,
        scale: usize,
        fixed: Option<usize>,
    },
    /// apache-avro's `big-decimal`: bytes holding the unscaled bytes and a scale.
    BigDecimal,
    /// Filled in once the named type it stands for is compiled (never left after compiling).
    Pending,
}

struct Record {
    name: String,
    fields: Vec<Field>,
}

struct Field {
    name: String,
    /// `"name":` as JSON text, with the comma before it for every field but the first.
    key: String,
    node: NodeId,
    default: Option<serde_json::Value>,
}

struct Union {
    branches: Vec<NodeId>,
    /// `{"<branch type name>":` for each branch, the Avro JSON encoding of a union value.
    labels: Vec<String>,
    /// The branch names, for errors and for reading `{"name": value}` back.
    names: Vec<String>,
    /// `["null", T]` or `[T, "null"]`: written as the value or `null`, without the wrapper.
    nullable: bool,
}

impl Avro {
    /// Parses `text` with the `references` (other schemas' texts, whose named types it may use).
    pub fn compile(text: &str, references: &[&str]) -> Result<Avro, String> {
        let (schema, others) = if references.is_empty() {
            (
                AvroSchema::parse_str(text).map_err(|e| e.to_string())?,
                Vec::new(),
            )
        } else {
            AvroSchema::parse_str_with_list(text, references).map_err(|e| e.to_string())?
        };
        let mut named = HashMap::new();
        for s in others.iter().chain(std::iter::once(&schema)) {
            collect_named(s, &mut named);
        }
        let mut compiler = Compiler {
            nodes: Vec::new(),
            named,
            ids: HashMap::new(),
        };
        let root = compiler.compile(&schema)?;
        Ok(Avro {
            nodes: compiler.nodes,
            root,
        })
    }

    /// The datum as JSON text (see `decode`).
    pub fn decode(&self, payload: &[u8], max_bytes: usize) -> Result<String, DecodeError> {
        decode::decode(self, payload, max_bytes)
    }

    /// The datum's bytes appended to `out` (see `encode`).
    pub fn encode(&self, value: &serde_json::Value, out: &mut Vec<u8>) -> Result<(), InvalidData> {
        encode::encode(self, value, out)
    }
}

/// Every named type's definition by full name, so a `Ref` can be compiled wherever it is met.
fn collect_named<'a>(schema: &'a AvroSchema, named: &mut HashMap<String, &'a AvroSchema>) {
    let mut add = |name: &Name| {
        named.entry(name.fullname(None)).or_insert(schema);
    };
    match schema {
        AvroSchema::Record(r) => {
            add(&r.name);
            for field in &r.fields {
                collect_named(&field.schema, named);
            }
        }
        AvroSchema::Enum(e) => add(&e.name),
        AvroSchema::Fixed(f) | AvroSchema::Duration(f) => add(&f.name),
        AvroSchema::Uuid(UuidSchema::Fixed(f)) => add(&f.name),
        AvroSchema::Decimal(d) => {
            if let InnerDecimalSchema::Fixed(f) = &d.inner {
                add(&f.name);
            }
        }
        AvroSchema::Array(a) => collect_named(&a.items, named),
        AvroSchema::Map(m) => collect_named(&m.types, named),
        AvroSchema::Union(u) => {
            for v in u.variants() {
                collect_named(v, named);
            }
        }
        _ => {}
    }
}

struct Compiler<'a> {
    nodes: Vec<Node>,
    named: HashMap<String, &'a AvroSchema>,
    /// Named types already given a node (possibly still `Pending`, for recursive types).
    ids: HashMap<String, NodeId>,
}

impl<'a> Compiler<'a> {
    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn compile(&mut self, schema: &'a AvroSchema) -> Result<NodeId, String> {
        let node = match schema {
            AvroSchema::Null => Node::Null,
            AvroSchema::Boolean => Node::Boolean,
            AvroSchema::Int | AvroSchema::Date | AvroSchema::TimeMillis => Node::Int,
            AvroSchema::Long
            | AvroSchema::TimeMicros
            | AvroSchema::TimestampMillis
            | AvroSchema::TimestampMicros
            | AvroSchema::TimestampNanos
            | AvroSchema::LocalTimestampMillis
            | AvroSchema::LocalTimestampMicros
            | AvroSchema::LocalTimestampNanos => Node::Long,
            AvroSchema::Float => Node::Float,
            AvroSchema::Double => Node::Double,
            AvroSchema::Bytes | AvroSchema::Uuid(UuidSchema::Bytes) => Node::Bytes,
            AvroSchema::String | AvroSchema::Uuid(UuidSchema::String) => Node::String,
            AvroSchema::BigDecimal => Node::BigDecimal,
            AvroSchema::Decimal(d) => Node::Decimal {
                precision: d.precision,
                scale: d.scale,
                fixed: match &d.inner {
                    InnerDecimalSchema::Bytes => None,
                    InnerDecimalSchema::Fixed(f) => Some(f.size),
                },
            },
            AvroSchema::Array(a) => {
                let items = self.compile(&a.items)?;
                Node::Array(items)
            }
            AvroSchema::Map(m) => {
                let values = self.compile(&m.types)?;
                Node::Map(values)
            }
            AvroSchema::Union(u) => self.union(u.variants())?,
            AvroSchema::Ref { name } => {
                let full = name.fullname(None);
                if let Some(&id) = self.ids.get(&full) {
                    return Ok(id);
                }
                let definition = *self
                    .named
                    .get(&full)
                    .ok_or_else(|| format!("unknown named type `{full}`"))?;
                return self.compile(definition);
            }
            AvroSchema::Record(_)
            | AvroSchema::Enum(_)
            | AvroSchema::Fixed(_)
            | AvroSchema::Duration(_)
            | AvroSchema::Uuid(UuidSchema::Fixed(_)) => return self.named(schema),
        };
        Ok(self.push(node))
    }

    /// A named type: its node exists before its fields are compiled, so a field may refer
    /// back to the record it is in.
    fn named(&mut self, schema: &'a AvroSchema) -> Result<NodeId, String> {
        let name = match schema {
            AvroSchema::Record(r) => &r.name,
            AvroSchema::Enum(e) => &e.name,
            AvroSchema::Fixed(f)
            | AvroSchema::Duration(f)
            | AvroSchema::Uuid(UuidSchema::Fixed(f)) => &f.name,
            _ => unreachable!("only named types get here"),
        };
        let full = name.fullname(None);
        if let Some(&id) = self.ids.get(&full) {
            return Ok(id);
        }
        let id = self.push(Node::Pending);
        self.ids.insert(full.clone(), id);
        let node = match schema {
            AvroSchema::Record(r) => {
                let mut fields = Vec::with_capacity(r.fields.len());
                for (i, field) in r.fields.iter().enumerate() {
                    let node = self.compile(&field.schema)?;
                    let comma = if i == 0 { "" } else { "," };
                    fields.push(Field {
                        name: field.name.clone(),
                        key: format!("{comma}{}:", quoted(&field.name)),
                        node,
                        default: field.default.clone(),
                    });
                }
                Node::Record(Record { name: full, fields })
            }
            AvroSchema::Enum(e) => Node::Enum {
                name: full,
                quoted: e.symbols.iter().map(|s| quoted(s)).collect(),
                symbols: e.symbols.clone(),
            },
            AvroSchema::Uuid(_) => Node::UuidFixed,
            AvroSchema::Fixed(f) | AvroSchema::Duration(f) => Node::Fixed {
                name: full,
                size: f.size,
            },
            _ => unreachable!("only named types get here"),
        };
        self.nodes[id] = node;
        Ok(id)
    }

    fn union(&mut self, variants: &'a [AvroSchema]) -> Result<Node, String> {
        let mut branches = Vec::with_capacity(variants.len());
        let mut names = Vec::with_capacity(variants.len());
        for variant in variants {
            branches.push(self.compile(variant)?);
            names.push(type_name(variant));
        }
        let nulls = variants
            .iter()
            .filter(|v| matches!(v, AvroSchema::Null))
            .count();
        Ok(Node::Union(Union {
            labels: names.iter().map(|n| format!("{{{}:", quoted(n))).collect(),
            nullable: variants.len() == 2 && nulls == 1,
            branches,
            names,
        }))
    }
}

/// The name a union branch goes by in Avro's JSON encoding: the full name of a named type,
/// else the type's own name (a logical type goes by its underlying type).
fn type_name(schema: &AvroSchema) -> String {
    let name = match schema {
        AvroSchema::Null => "null",
        AvroSchema::Boolean => "boolean",
        AvroSchema::Int | AvroSchema::Date | AvroSchema::TimeMillis => "int",
        AvroSchema::Long
        | AvroSchema::TimeMicros
        | AvroSchema::TimestampMillis
        | AvroSchema::TimestampMicros
        | AvroSchema::TimestampNanos
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::LocalTimestampNanos => "long",
        AvroSchema::Float => "float",
        AvroSchema::Double => "double",
        AvroSchema::Bytes | AvroSchema::BigDecimal | AvroSchema::Uuid(UuidSchema::Bytes) => "bytes",
        AvroSchema::String | AvroSchema::Uuid(UuidSchema::String) => "string",
        AvroSchema::Array(_) => "array",
        AvroSchema::Map(_) => "map",
        AvroSchema::Union(_) => "union",
        AvroSchema::Decimal(d) => match &d.inner {
            InnerDecimalSchema::Bytes => "bytes",
            InnerDecimalSchema::Fixed(f) => return f.name.fullname(None),
        },
        AvroSchema::Record(r) => return r.name.fullname(None),
        AvroSchema::Enum(e) => return e.name.fullname(None),
        AvroSchema::Fixed(f) | AvroSchema::Duration(f) | AvroSchema::Uuid(UuidSchema::Fixed(f)) => {
            return f.name.fullname(None)
        }
        AvroSchema::Ref { name } => return name.fullname(None),
    };
    name.to_owned()
}
