//! The messages of a Protobuf schema as flat tables for the walker in `walk`: fields sorted by
//! number with their JSON keys rendered, defaults as JSON text, enum names by number, nested
//! messages by index. A message the walker does not cover (proto2 or editions syntax,
//! extensions, groups, or `Any`, `Struct`, `Value`, `ListValue`, `FieldMask` anywhere under
//! it) is marked `slow` and decoded by prost-reflect instead.

use std::collections::HashMap;

use prost_reflect::{
    EnumDescriptor, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor, Syntax,
};

use crate::registry::json_out::quoted;

pub(crate) struct Table {
    pub messages: Vec<Message>,
    pub enums: Vec<Enum>,
    /// The file's top-level messages, as message indexes count them.
    pub top: Vec<usize>,
}

pub struct Message {
    pub descriptor: MessageDescriptor,
    /// Sorted by field number, as prost-reflect writes them.
    pub fields: Vec<Field>,
    /// Field index by number, for numbers up to [`DENSE`].
    dense: Vec<u16>,
    /// Declared nested messages (not map entries), as message indexes count them.
    pub nested: Vec<usize>,
    pub wkt: Option<Wkt>,
    pub slow: bool,
}

/// Field numbers below this are found by direct index.
const DENSE: u32 = 256;
const NONE: u16 = u16::MAX;

pub(crate) struct Field {
    pub number: u32,
    /// `"jsonName":`
    pub key: String,
    pub kind: Scalar,
    pub shape: Shape,
    /// Written only when on the wire (message fields, oneof members, proto3 `optional`).
    pub presence: bool,
    pub oneof: Option<u8>,
    /// The JSON text of the default, for a singular field without presence.
    pub default: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Single,
    List,
    /// A map field: the key's kind (the field's own `kind` is the value's).
    Map(Scalar),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Scalar {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
    Enum(usize),
    Message(usize),
}

/// Well-known types with a JSON form of their own that the walker writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wkt {
    Timestamp,
    Duration,
    Empty,
    /// `google.protobuf.*Value` wrappers: the wrapped value.
    Wrapper(Scalar),
}

pub(crate) struct Enum {
    /// Each number's name as a JSON string (`null` for `google.protobuf.NullValue`), by number.
    pub names: Vec<(i32, String)>,
}

impl Message {
    #[inline]
    pub fn field(&self, number: u32) -> Option<usize> {
        if number < DENSE {
            return match self.dense.get(number as usize) {
                Some(&i) if i != NONE => Some(usize::from(i)),
                _ => None,
            };
        }
        self.fields.iter().position(|f| f.number == number)
    }
}

impl Enum {
    pub fn name(&self, number: i32) -> Option<&str> {
        let i = self.names.binary_search_by_key(&number, |(n, _)| *n).ok()?;
        Some(&self.names[i].1)
    }
}

impl Table {
    pub fn new(file: &FileDescriptor) -> Table {
        let mut build = Build {
            table: Table {
                messages: Vec::new(),
                enums: Vec::new(),
                top: Vec::new(),
            },
            messages: HashMap::new(),
            enums: HashMap::new(),
        };
        build.table.top = file.messages().map(|m| build.message(&m)).collect();
        build.spread_slowness();
        build.table
    }
}

struct Build {
    table: Table,
    messages: HashMap<String, usize>,
    enums: HashMap<String, usize>,
}

impl Build {
    fn message(&mut self, descriptor: &MessageDescriptor) -> usize {
        if let Some(&i) = self.messages.get(descriptor.full_name()) {
            return i;
        }
        let index = self.table.messages.len();
        self.messages
            .insert(descriptor.full_name().to_owned(), index);
        let wkt = wkt(descriptor.full_name());
        let slow = descriptor.parent_file().syntax() != Syntax::Proto3
            || descriptor.extension_ranges().len() > 0
            || descriptor.oneofs().len() > 64
            || matches!(
                descriptor.full_name(),
                "google.protobuf.Any"
                    | "google.protobuf.Struct"
                    | "google.protobuf.Value"
                    | "google.protobuf.ListValue"
                    | "google.protobuf.FieldMask"
            );
        self.table.messages.push(Message {
            descriptor: descriptor.clone(),
            fields: Vec::new(),
            dense: Vec::new(),
            nested: Vec::new(),
            wkt,
            slow,
        });
        let mut fields: Vec<FieldDescriptor> = descriptor.fields().collect();
        fields.sort_by_key(|f| f.number());
        let mut slow = false;
        let mut compiled = Vec::with_capacity(fields.len());
        for field in &fields {
            slow |= field.is_group();
            let (kind, shape) = match field.kind() {
                Kind::Message(entry) if field.is_map() => {
                    let key = self.scalar(&entry.map_entry_key_field().kind());
                    (
                        self.scalar(&entry.map_entry_value_field().kind()),
                        Shape::Map(key),
                    )
                }
                kind if field.is_list() => (self.scalar(&kind), Shape::List),
                kind => (self.scalar(&kind), Shape::Single),
            };
            compiled.push(Field {
                number: field.number(),
                key: format!("{}:", quoted(field.json_name())),
                default: default(kind, &self.table.enums),
                kind,
                shape,
                presence: field.supports_presence(),
                oneof: field.containing_oneof().and_then(|o| {
                    let i = descriptor
                        .oneofs()
                        .position(|other| other.name() == o.name())?;
                    u8::try_from(i).ok()
                }),
            });
        }
        let mut dense = Vec::new();
        for (i, field) in compiled.iter().enumerate() {
            if field.number < DENSE {
                if dense.len() <= field.number as usize {
                    dense.resize(field.number as usize + 1, NONE);
                }
                dense[field.number as usize] = i as u16;
            }
        }
        let nested = descriptor
            .child_messages()
            .filter(|m| !m.is_map_entry())
            .map(|m| self.message(&m))
            .collect();
        let message = &mut self.table.messages[index];
        message.fields = compiled;
        message.dense = dense;
        message.nested = nested;
        message.slow |= slow;
        index
    }

    fn scalar(&mut self, kind: &Kind) -> Scalar {
        match kind {
            Kind::Double => Scalar::Double,
            Kind::Float => Scalar::Float,
            Kind::Int32 => Scalar::Int32,
            Kind::Int64 => Scalar::Int64,
            Kind::Uint32 => Scalar::Uint32,
            Kind::Uint64 => Scalar::Uint64,
            Kind::Sint32 => Scalar::Sint32,
            Kind::Sint64 => Scalar::Sint64,
            Kind::Fixed32 => Scalar::Fixed32,
            Kind::Fixed64 => Scalar::Fixed64,
            Kind::Sfixed32 => Scalar::Sfixed32,
            Kind::Sfixed64 => Scalar::Sfixed64,
            Kind::Bool => Scalar::Bool,
            Kind::String => Scalar::String,
            Kind::Bytes => Scalar::Bytes,
            Kind::Message(m) => Scalar::Message(self.message(m)),
            Kind::Enum(e) => Scalar::Enum(self.enumeration(e)),
        }
    }

    fn enumeration(&mut self, descriptor: &EnumDescriptor) -> usize {
        if let Some(&i) = self.enums.get(descriptor.full_name()) {
            return i;
        }
        let null = descriptor.full_name() == "google.protobuf.NullValue";
        let mut numbers: Vec<i32> = descriptor.values().map(|v| v.number()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        let names = numbers
            .into_iter()
            .map(|n| {
                // The name prost-reflect picks when aliases share a number.
                let name = descriptor
                    .get_value(n)
                    .map(|v| v.name().to_owned())
                    .unwrap_or_default();
                (
                    n,
                    if null {
                        "null".to_owned()
                    } else {
                        quoted(&name)
                    },
                )
            })
            .collect();
        self.table.enums.push(Enum { names });
        self.enums.insert(
            descriptor.full_name().to_owned(),
            self.table.enums.len() - 1,
        );
        self.table.enums.len() - 1
    }

    /// A message is slow when any message it may contain is.
    fn spread_slowness(&mut self) {
        loop {
            let mut changed = false;
            for i in 0..self.table.messages.len() {
                if self.table.messages[i].slow {
                    continue;
                }
                let slow = self.table.messages[i].fields.iter().any(|f| match f.kind {
                    Scalar::Message(m) => self.table.messages[m].slow,
                    _ => false,
                });
                if slow {
                    self.table.messages[i].slow = true;
                    changed = true;
                }
            }
            if !changed {
                return;
            }
        }
    }
}

fn wkt(full_name: &str) -> Option<Wkt> {
    Some(match full_name {
        "google.protobuf.Timestamp" => Wkt::Timestamp,
        "google.protobuf.Duration" => Wkt::Duration,
        "google.protobuf.Empty" => Wkt::Empty,
        "google.protobuf.DoubleValue" => Wkt::Wrapper(Scalar::Double),
        "google.protobuf.FloatValue" => Wkt::Wrapper(Scalar::Float),
        "google.protobuf.Int64Value" => Wkt::Wrapper(Scalar::Int64),
        "google.protobuf.UInt64Value" => Wkt::Wrapper(Scalar::Uint64),
        "google.protobuf.Int32Value" => Wkt::Wrapper(Scalar::Int32),
        "google.protobuf.UInt32Value" => Wkt::Wrapper(Scalar::Uint32),
        "google.protobuf.BoolValue" => Wkt::Wrapper(Scalar::Bool),
        "google.protobuf.StringValue" => Wkt::Wrapper(Scalar::String),
        "google.protobuf.BytesValue" => Wkt::Wrapper(Scalar::Bytes),
        _ => return None,
    })
}

/// The JSON text prost-reflect writes for a field at its default.
pub fn default(kind: Scalar, enums: &[Enum]) -> String {
    match kind {
        Scalar::Double | Scalar::Float => "0.0".into(),
        Scalar::Int64 | Scalar::Uint64 | Scalar::Sint64 | Scalar::Fixed64 | Scalar::Sfixed64 => {
            "\"0\"".into()
        }
        Scalar::Bool => "false".into(),
        Scalar::String | Scalar::Bytes => "\"\"".into(),
        // A proto3 enum's default is its value 0 (which proto3 requires it to have).
        Scalar::Enum(e) => enums[e].name(0).unwrap_or("0").to_owned(),
        Scalar::Message(_) => "{}".into(),
        _ => "0".into(),
    }
}
