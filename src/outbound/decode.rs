//! Registry formats on the way out: a record's value (and key) decoded with its writer schema
//! into JSON text, once per record however many channels read its topic, before transforms,
//! `where`, filters, snapshots and history see it.

use std::sync::Arc;

use crate::config::{Format, KeyFormat};
use crate::registry::{split_wire, Lookup, Registry, Schema, SchemaKind};

/// What the channels of one topic need decoded through the registry.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Needs {
    /// Some channel reads the value in a registry format.
    pub(super) value: bool,
    /// Some channel routes by a record key in a registry format.
    pub(super) key: bool,
}

impl Needs {
    pub(super) fn any(self) -> bool {
        self.value || self.key
    }

    pub(super) fn union(self, other: Needs) -> Needs {
        Needs {
            value: self.value || other.value,
            key: self.key || other.key,
        }
    }
}

/// A value decoded with its schema.
pub(super) struct Value {
    /// The value as JSON text.
    pub(super) json: String,
    pub(super) schema_id: u32,
    pub(super) kind: SchemaKind,
}

/// A record's registry-format parts, decoded; `Err` holds why one is undecodable.
#[derive(Default)]
pub(super) struct Decoded {
    /// `None` when no channel needs it, and for a tombstone.
    pub(super) value: Option<Result<Value, String>>,
    /// `None` when no channel needs it, and for a record without a key.
    pub(super) key: Option<Result<String, String>>,
}

/// A schema is still being fetched: the record must wait.
pub(super) struct Later;

/// Decodes what `needs` asks of a record. Never blocks: an id not cached yet starts its fetch
/// and answers [`Later`].
pub(super) fn decode(
    registry: &Registry,
    needs: Needs,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<Decoded, Later> {
    let mut decoded = Decoded::default();
    if needs.value {
        if let Some(bytes) = value {
            decoded.value = Some(match schema_of(registry, bytes)? {
                Ok((id, schema, payload)) => schema
                    .decode(payload)
                    .map(|json| Value {
                        json,
                        schema_id: id,
                        kind: schema.kind(),
                    })
                    .map_err(|e| format!("schema {id}: {e}")),
                Err(reason) => Err(reason),
            });
        }
    }
    if needs.key {
        if let Some(bytes) = key {
            decoded.key = Some(match schema_of(registry, bytes)? {
                Ok((id, schema, payload)) => schema
                    .decode(payload)
                    .map(|json| routing_key(&json))
                    .map_err(|e| format!("key schema {id}: {e}")),
                Err(reason) => Err(format!("key: {reason}")),
            });
        }
    }
    Ok(decoded)
}

type Found<'b> = Result<(u32, Arc<Schema>, &'b [u8]), String>;

/// The schema a wire-format value names, with its payload; `Ok(Err)` for a bad record.
fn schema_of<'b>(registry: &Registry, bytes: &'b [u8]) -> Result<Found<'b>, Later> {
    let (id, payload) = match split_wire(bytes) {
        Ok(split) => split,
        Err(e) => return Ok(Err(e.to_string())),
    };
    match registry.lookup(id) {
        Lookup::Ready(schema) => Ok(Ok((id, schema, payload))),
        Lookup::Pending => Err(Later),
        Lookup::Bad(reason) => Ok(Err(format!("schema {id}: {reason}"))),
    }
}

/// The schema ids a record names (value, then key), for fetching them ahead of a replay.
pub(super) fn ids(needs: Needs, key: Option<&[u8]>, value: Option<&[u8]>) -> Vec<u32> {
    let value = value.filter(|_| needs.value);
    let key = key.filter(|_| needs.key);
    [value, key]
        .into_iter()
        .flatten()
        .filter_map(|bytes| split_wire(bytes).ok().map(|(id, _)| id))
        .collect()
}

/// A decoded key as a routing key: a string as it is, anything else as its JSON text
/// (a number `42` routes as `42`).
fn routing_key(json: &str) -> String {
    match serde_json::from_str::<String>(json) {
        Ok(text) => text,
        Err(_) => json.to_owned(),
    }
}

/// The schema kind a channel format reads.
pub(super) fn kind_of(format: Format) -> Option<SchemaKind> {
    match format {
        Format::Avro => Some(SchemaKind::Avro),
        Format::Protobuf => Some(SchemaKind::Protobuf),
        Format::JsonSchema => Some(SchemaKind::JsonSchema),
        Format::Json | Format::Text | Format::Base64 => None,
    }
}

/// Whether a key format decodes through the registry.
pub(super) fn key_uses_registry(format: KeyFormat) -> bool {
    format != KeyFormat::Text
}

#[cfg(test)]
mod tests {
    use super::routing_key;

    #[test]
    fn decoded_keys_route_as_text() {
        assert_eq!(routing_key("\"C-1\""), "C-1");
        assert_eq!(routing_key("42"), "42");
        assert_eq!(routing_key("{\"id\":1}"), "{\"id\":1}");
    }
}
