//! Avro binary → JSON text, walking the datum with the compiled writer schema. Every length
//! and count is checked against the bytes left or bounded by the output size before it is
//! acted on, so hostile data costs at most `max_bytes` of output.

use super::{decimal, Avro, Node, NodeId};
use crate::registry::json_out::{Out, MAX_DEPTH};
use crate::registry::wire::read_zigzag;
use crate::registry::DecodeError;

pub fn decode(avro: &Avro, payload: &[u8], max_bytes: usize) -> Result<String, DecodeError> {
    let mut walk = Walk {
        nodes: &avro.nodes,
        bytes: payload,
        pos: 0,
        out: Out::new(payload.len() * 3 + 64, max_bytes),
    };
    walk.value(avro.root, 0)?;
    if walk.pos != payload.len() {
        return Err(DecodeError::Trailing {
            left: payload.len() - walk.pos,
        });
    }
    walk.out.check()?;
    Ok(walk.out.text)
}

struct Walk<'a> {
    nodes: &'a [Node],
    bytes: &'a [u8],
    pos: usize,
    out: Out,
}

impl<'a> Walk<'a> {
    fn truncated(&self, expected: &'static str) -> DecodeError {
        DecodeError::Truncated {
            expected,
            at: self.pos,
        }
    }

    fn invalid(&self, expected: &'static str, found: String) -> DecodeError {
        DecodeError::Invalid {
            at: self.pos,
            expected,
            found,
        }
    }

    #[inline]
    fn long(&mut self) -> Result<i64, DecodeError> {
        match read_zigzag(&self.bytes[self.pos..]) {
            Some((value, n)) => {
                self.pos += n;
                Ok(value)
            }
            None => Err(self.truncated("a varint")),
        }
    }

    #[inline]
    fn take(&mut self, n: usize, expected: &'static str) -> Result<&'a [u8], DecodeError> {
        let bytes = self.bytes;
        match bytes.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(taken) => {
                self.pos += n;
                Ok(taken)
            }
            None => Err(self.truncated(expected)),
        }
    }

    /// A length-prefixed byte string (`bytes`, `string`, map keys).
    #[inline]
    fn sized(&mut self, expected: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.long()?;
        if len < 0 {
            return Err(self.invalid("a length", len.to_string()));
        }
        // A length past the end is truncation, however large: nothing is allocated for it.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.take(len, expected)
    }

    #[inline]
    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let bytes = self.sized("string bytes")?;
        std::str::from_utf8(bytes).map_err(|e| DecodeError::Invalid {
            at,
            expected: "a UTF-8 string",
            found: e.to_string(),
        })
    }

    /// The item count of the next block of an array or map (0 ends it).
    fn block(&mut self) -> Result<u64, DecodeError> {
        let count = self.long()?;
        if count < 0 {
            // A negative count is followed by the block's size in bytes, which we skip over.
            self.long()?;
        }
        Ok(count.unsigned_abs())
    }

    fn value(&mut self, id: NodeId, depth: usize) -> Result<(), DecodeError> {
        let nodes = self.nodes;
        match &nodes[id] {
            Node::Null => self.out.raw("null"),
            Node::Boolean => match self.take(1, "a boolean")?[0] {
                0 => self.out.raw("false"),
                1 => self.out.raw("true"),
                b => return Err(self.invalid("a boolean (0 or 1)", b.to_string())),
            },
            Node::Int => {
                let v = self.long()?;
                if i32::try_from(v).is_err() {
                    return Err(self.invalid("an int", v.to_string()));
                }
                self.out.int(v);
            }
            Node::Long => {
                let v = self.long()?;
                self.out.int(v);
            }
            Node::Float => {
                let b = self.take(4, "a float")?;
                self.out.f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            }
            Node::Double => {
                let b = self.take(8, "a double")?;
                let mut le = [0; 8];
                le.copy_from_slice(b);
                self.out.f64(f64::from_le_bytes(le));
            }
            Node::Bytes => {
                let b = self.sized("bytes")?;
                self.out.base64(b);
            }
            Node::String => {
                let s = self.str()?;
                self.out.string(s);
            }
            Node::UuidFixed => {
                let b = self.take(16, "a 16-byte uuid")?;
                let mut uuid = [0; 16];
                uuid.copy_from_slice(b);
                self.out.byte('"');
                let text = uuid::Uuid::from_bytes(uuid);
                self.out.raw(
                    text.hyphenated()
                        .encode_lower(&mut uuid::Uuid::encode_buffer()),
                );
                self.out.byte('"');
            }
            Node::Fixed { size, .. } => {
                let b = self.take(*size, "fixed bytes")?;
                self.out.base64(b);
            }
            Node::Enum { quoted, .. } => {
                let i = self.long()?;
                match usize::try_from(i).ok().and_then(|i| quoted.get(i)) {
                    Some(symbol) => self.out.raw(symbol),
                    None => {
                        let expected = "an enum symbol index";
                        return Err(self.invalid(expected, format!("{i} of {}", quoted.len())));
                    }
                }
            }
            Node::Decimal { scale, fixed, .. } => {
                let b = match fixed {
                    Some(size) => self.take(*size, "decimal bytes")?,
                    None => self.sized("decimal bytes")?,
                };
                self.decimal(b, *scale as i64)?;
            }
            Node::BigDecimal => {
                let outer = self.sized("big-decimal bytes")?;
                let mut inner = Walk {
                    nodes: self.nodes,
                    bytes: outer,
                    pos: 0,
                    out: Out::new(0, 0),
                };
                let unscaled = inner.sized("big-decimal digits")?;
                let scale = inner.long()?;
                self.decimal(unscaled, scale)?;
            }
            Node::Record(record) => {
                let depth = self.deeper(depth)?;
                self.out.byte('{');
                for field in &record.fields {
                    self.out.raw(&field.key);
                    self.value(field.node, depth)?;
                }
                self.out.byte('}');
            }
            Node::Array(items) => {
                let depth = self.deeper(depth)?;
                self.out.byte('[');
                let mut first = true;
                loop {
                    let count = self.block()?;
                    if count == 0 {
                        break;
                    }
                    for _ in 0..count {
                        if !std::mem::take(&mut first) {
                            self.out.byte(',');
                        }
                        self.value(*items, depth)?;
                        self.out.check()?;
                    }
                }
                self.out.byte(']');
            }
            Node::Map(values) => {
                let depth = self.deeper(depth)?;
                self.out.byte('{');
                let mut first = true;
                loop {
                    let count = self.block()?;
                    if count == 0 {
                        break;
                    }
                    for _ in 0..count {
                        if !std::mem::take(&mut first) {
                            self.out.byte(',');
                        }
                        let key = self.str()?;
                        self.out.string(key);
                        self.out.byte(':');
                        self.value(*values, depth)?;
                        self.out.check()?;
                    }
                }
                self.out.byte('}');
            }
            Node::Union(union) => {
                let i = self.long()?;
                let Some(&branch) = usize::try_from(i).ok().and_then(|i| union.branches.get(i))
                else {
                    let found = format!("{i} of {}", union.branches.len());
                    return Err(self.invalid("a union branch index", found));
                };
                if union.nullable || matches!(nodes[branch], Node::Null) {
                    self.value(branch, depth)?;
                } else {
                    let depth = self.deeper(depth)?;
                    self.out.raw(&union.labels[i as usize]);
                    self.value(branch, depth)?;
                    self.out.byte('}');
                }
            }
            Node::Pending => {
                return Err(self.invalid("a compiled schema", "a named type never defined".into()))
            }
        }
        Ok(())
    }

    fn deeper(&self, depth: usize) -> Result<usize, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep(MAX_DEPTH));
        }
        Ok(depth + 1)
    }

    fn decimal(&mut self, unscaled: &[u8], scale: i64) -> Result<(), DecodeError> {
        self.out.byte('"');
        decimal::to_text(unscaled, scale, &mut self.out.text)
            .map_err(|e| self.invalid("a decimal", e))?;
        self.out.byte('"');
        Ok(())
    }
}
