//! Protobuf bytes → JSON text in the proto3 mapping, straight from the wire with the tables
//! of `table`, writing what prost-reflect's serializer writes for the same bytes (the tests
//! hold it to that). Anything unusual — a wire type that does not fit its field, invalid
//! UTF-8, a singular message or two members of one oneof sent twice (which merge), groups,
//! nesting past 64 — is handed back as [`Stop::Fallback`], and prost-reflect decodes the
//! record instead (or says why it cannot). Map entries are written in wire order; a key sent
//! twice appears twice, the last one being what a JSON reader keeps, as protobuf does.

use std::fmt::Write as _;

use super::table::{Message, Scalar, Shape, Table, Wkt};
use crate::registry::json_out::{Out, MAX_DEPTH};
use crate::registry::wire::read_varint;
use crate::registry::DecodeError;

pub enum Stop {
    Fallback,
    Failed(DecodeError),
}

impl From<DecodeError> for Stop {
    fn from(e: DecodeError) -> Stop {
        Stop::Failed(e)
    }
}

/// One field occurrence of the message being written.
#[derive(Clone, Copy)]
struct Occurrence {
    field: u32,
    /// Where its tag was, so the last occurrence wins and repeated values keep their order.
    at: u32,
    wire: u8,
    /// The varint or fixed value; for length-delimited data, its start (`end` its end).
    value: u64,
    end: u32,
}

pub fn decode(
    table: &Table,
    message: usize,
    body: &[u8],
    max_bytes: usize,
) -> Result<String, Stop> {
    let mut walk = Walk {
        table,
        out: Out::new(body.len() * 3 + 64, max_bytes),
        seen: Vec::with_capacity(32),
    };
    walk.message(message, body, 0)?;
    walk.out.check()?;
    Ok(walk.out.text)
}

struct Walk<'a> {
    table: &'a Table,
    out: Out,
    /// Occurrences of every message being written, innermost last.
    seen: Vec<Occurrence>,
}

impl Walk<'_> {
    fn message(&mut self, index: usize, bytes: &[u8], depth: usize) -> Result<(), Stop> {
        if depth >= MAX_DEPTH {
            return Err(Stop::Fallback);
        }
        let message = &self.table.messages[index];
        if let Some(wkt) = message.wkt {
            return self.wkt(wkt, bytes);
        }
        let base = self.seen.len();
        scan(message, bytes, &mut self.seen)?;
        let end = self.seen.len();
        // Serializers write fields in number order, so this is usually sorted already.
        if !self.seen[base..].is_sorted_by_key(|o| o.field) {
            self.seen[base..].sort_unstable_by_key(|o| (o.field, o.at));
        }
        check_oneofs(message, &self.seen[base..])?;
        self.out.byte('{');
        let mut first = true;
        let mut i = base;
        for (f, field) in message.fields.iter().enumerate() {
            let from = i;
            while i < end && self.seen[i].field == f as u32 {
                i += 1;
            }
            if field.presence && from == i {
                continue;
            }
            if !std::mem::take(&mut first) {
                self.out.byte(',');
            }
            self.out.raw(&field.key);
            match field.shape {
                Shape::Single if from == i => self.out.raw(&field.default),
                Shape::Single => {
                    if matches!(field.kind, Scalar::Message(_)) && i - from > 1 {
                        return Err(Stop::Fallback); // occurrences of a message merge
                    }
                    // Every occurrence must fit, not only the one that wins.
                    let wire = wire_type(field.kind);
                    for o in &self.seen[from..i] {
                        if o.wire != wire {
                            return Err(Stop::Fallback);
                        }
                    }
                    let last = self.seen[i - 1];
                    self.value(field.kind, last, bytes, depth)?;
                }
                Shape::List => {
                    self.out.byte('[');
                    let mut first = true;
                    for k in from..i {
                        let o = self.seen[k];
                        if o.wire == 2 && packable(field.kind) {
                            self.packed(field.kind, slice(bytes, o), &mut first)?;
                        } else {
                            if !std::mem::take(&mut first) {
                                self.out.byte(',');
                            }
                            self.value(field.kind, o, bytes, depth)?;
                        }
                        self.out.check()?;
                    }
                    self.out.byte(']');
                }
                Shape::Map(key) => {
                    self.out.byte('{');
                    for k in from..i {
                        if k > from {
                            self.out.byte(',');
                        }
                        let o = self.seen[k];
                        if o.wire != 2 {
                            return Err(Stop::Fallback);
                        }
                        self.entry(key, field.kind, &field.default, slice(bytes, o), depth)?;
                        self.out.check()?;
                    }
                    self.out.byte('}');
                }
            }
        }
        self.out.byte('}');
        self.seen.truncate(base);
        self.out.check()?;
        Ok(())
    }

    /// One value of a field; `bytes` is the message the occurrence is in.
    fn value(
        &mut self,
        kind: Scalar,
        o: Occurrence,
        bytes: &[u8],
        depth: usize,
    ) -> Result<(), Stop> {
        if o.wire != wire_type(kind) {
            return Err(Stop::Fallback);
        }
        match kind {
            Scalar::String => match std::str::from_utf8(slice(bytes, o)) {
                Ok(s) => self.out.string(s),
                Err(_) => return Err(Stop::Fallback),
            },
            Scalar::Bytes => self.out.base64(slice(bytes, o)),
            Scalar::Message(m) => self.message(m, slice(bytes, o), depth + 1)?,
            _ => self.number(kind, o.value),
        }
        Ok(())
    }

    /// A scalar from its varint or fixed bits, as prost reads it.
    fn number(&mut self, kind: Scalar, v: u64) {
        let out = &mut self.out;
        match kind {
            Scalar::Int32 | Scalar::Sfixed32 => out.int(i64::from(v as i32)),
            Scalar::Uint32 | Scalar::Fixed32 => out.int(i64::from(v as u32)),
            Scalar::Sint32 => {
                let v = v as u32;
                out.int(i64::from((v >> 1) as i32 ^ -((v & 1) as i32)));
            }
            // 64-bit integers are strings in the proto3 mapping.
            Scalar::Int64 | Scalar::Sfixed64 => out.quoted(itoa::Buffer::new().format(v as i64)),
            Scalar::Uint64 | Scalar::Fixed64 => out.quoted(itoa::Buffer::new().format(v)),
            Scalar::Sint64 => {
                let v = (v >> 1) as i64 ^ -((v & 1) as i64);
                out.quoted(itoa::Buffer::new().format(v));
            }
            Scalar::Bool => out.raw(if v != 0 { "true" } else { "false" }),
            Scalar::Double => out.f64(f64::from_bits(v)),
            Scalar::Float => out.f32(f32::from_bits(v as u32)),
            Scalar::Enum(e) => match self.table.enums[e].name(v as i32) {
                Some(name) => out.raw(name),
                None => out.int(i64::from(v as i32)),
            },
            // Not numbers: `value` writes these; never reached.
            Scalar::String | Scalar::Bytes | Scalar::Message(_) => out.raw("null"),
        }
    }

    /// The values of a packed repeated field.
    fn packed(&mut self, kind: Scalar, mut bytes: &[u8], first: &mut bool) -> Result<(), Stop> {
        while !bytes.is_empty() {
            let (v, n) = match wire_type(kind) {
                0 => read_varint(bytes).ok_or(Stop::Fallback)?,
                1 => (fixed(bytes, 8).ok_or(Stop::Fallback)?, 8),
                _ => (fixed(bytes, 4).ok_or(Stop::Fallback)?, 4),
            };
            bytes = &bytes[n..];
            if !std::mem::take(first) {
                self.out.byte(',');
            }
            self.number(kind, v);
            self.out.check()?;
        }
        Ok(())
    }

    /// One map entry (`key` = field 1, `value` = field 2, each the last sent or the default).
    fn entry(
        &mut self,
        key: Scalar,
        value: Scalar,
        default: &str,
        bytes: &[u8],
        depth: usize,
    ) -> Result<(), Stop> {
        let (mut k, mut v): (Option<Occurrence>, Option<Occurrence>) = (None, None);
        let mut pos = 0;
        while pos < bytes.len() {
            let o = next(bytes, &mut pos)?;
            match o.field {
                1 if o.wire != wire_type(key) => return Err(Stop::Fallback),
                2 if o.wire != wire_type(value) => return Err(Stop::Fallback),
                1 => k = Some(o),
                2 if v.is_some() && matches!(value, Scalar::Message(_)) => {
                    return Err(Stop::Fallback)
                }
                2 => v = Some(o),
                _ => {}
            }
        }
        // Keys are JSON strings whatever their type.
        match (key, k) {
            (Scalar::String, Some(o)) => self.value(key, o, bytes, depth)?,
            (Scalar::String, None) => self.out.raw("\"\""),
            (_, o) => {
                let o = o.unwrap_or(Occurrence {
                    field: 1,
                    at: 0,
                    wire: wire_type(key),
                    value: 0,
                    end: 0,
                });
                if o.wire != wire_type(key) {
                    return Err(Stop::Fallback);
                }
                self.out.byte('"');
                let start = self.out.text.len();
                self.number(key, o.value);
                // 64-bit keys come out quoted already; unquote them to quote once.
                if self.out.text[start..].starts_with('"') {
                    self.out.text.remove(start);
                    self.out.text.pop();
                }
                self.out.byte('"');
            }
        }
        self.out.byte(':');
        match (value, v) {
            (_, Some(o)) => self.value(value, o, bytes, depth),
            (Scalar::Message(m), None) => self.message(m, &[], depth + 1),
            (_, None) => {
                self.out.raw(default);
                Ok(())
            }
        }
    }

    fn wkt(&mut self, wkt: Wkt, bytes: &[u8]) -> Result<(), Stop> {
        // The wire type each field of the type has (0 for Timestamp and Duration's).
        let (wire_one, wire_two) = match wkt {
            Wkt::Wrapper(kind) => (wire_type(kind), 0),
            _ => (0, 0),
        };
        let (mut one, mut two): (Option<Occurrence>, Option<Occurrence>) = (None, None);
        let mut pos = 0;
        while pos < bytes.len() {
            let o = next(bytes, &mut pos)?;
            match (wkt, o.field) {
                (Wkt::Empty, _) => {}
                (_, 1) if o.wire != wire_one => return Err(Stop::Fallback),
                (Wkt::Timestamp | Wkt::Duration, 2) if o.wire != wire_two => {
                    return Err(Stop::Fallback)
                }
                (_, 1) => one = Some(o),
                (Wkt::Timestamp | Wkt::Duration, 2) => two = Some(o),
                _ => {}
            }
        }
        let varint = |o: Option<Occurrence>| match o {
            None => Ok(0),
            Some(o) if o.wire == 0 => Ok(o.value),
            Some(_) => Err(Stop::Fallback),
        };
        match wkt {
            Wkt::Empty => self.out.raw("{}"),
            Wkt::Wrapper(kind) => match one {
                Some(o) => self.value(kind, o, bytes, 0)?,
                None => self
                    .out
                    .raw(&super::table::default(kind, &self.table.enums)),
            },
            Wkt::Timestamp => {
                let seconds = varint(one)? as i64;
                let nanos = varint(two)? as i32;
                // prost-reflect's range; outside it, its error is the answer.
                if !(-62_135_596_800..=253_402_300_799).contains(&seconds) {
                    return Err(Stop::Fallback);
                }
                self.out.byte('"');
                if (0..1_000_000_000).contains(&nanos) {
                    timestamp(&mut self.out.text, seconds, nanos as u32);
                } else {
                    // Nanos to normalize first: as prost-types writes it (seldom seen).
                    let ts = prost_types::Timestamp { seconds, nanos };
                    let _ = write!(self.out.text, "{ts}");
                }
                self.out.byte('"');
            }
            Wkt::Duration => {
                let seconds = varint(one)? as i64;
                let nanos = varint(two)? as i32;
                if seconds.unsigned_abs() > 315_576_000_000 || nanos.unsigned_abs() > 999_999_999 {
                    return Err(Stop::Fallback);
                }
                let d = prost_types::Duration { seconds, nanos };
                self.out.byte('"');
                let _ = write!(self.out.text, "{d}");
                self.out.byte('"');
            }
        }
        Ok(())
    }
}

/// RFC 3339 in UTC with 0, 3, 6 or 9 digits of fraction, as prost-types writes a timestamp
/// (without going through `fmt`, which costs more than the rest of a record).
fn timestamp(out: &mut String, seconds: i64, nanos: u32) {
    let days = seconds.div_euclid(86_400);
    let time = seconds.rem_euclid(86_400) as u32;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u32;
    digits(out, year, 4);
    out.push('-');
    digits(out, month, 2);
    out.push('-');
    digits(out, day, 2);
    out.push('T');
    digits(out, time / 3600, 2);
    out.push(':');
    digits(out, time / 60 % 60, 2);
    out.push(':');
    digits(out, time % 60, 2);
    if nanos != 0 {
        out.push('.');
        match (nanos % 1_000_000, nanos % 1_000) {
            (0, _) => digits(out, nanos / 1_000_000, 3),
            (_, 0) => digits(out, nanos / 1_000, 6),
            _ => digits(out, nanos, 9),
        }
    }
    out.push('Z');
}

/// `n` in decimal, zero-padded to `width` digits.
fn digits(out: &mut String, n: u32, width: u32) {
    for i in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10u32.pow(i) % 10) as u8));
    }
}

/// Records the occurrences of `message`'s known fields in `bytes` (unknown ones are skipped).
fn scan(message: &Message, bytes: &[u8], seen: &mut Vec<Occurrence>) -> Result<(), Stop> {
    let mut pos = 0;
    while pos < bytes.len() {
        let mut o = next(bytes, &mut pos)?;
        if let Some(f) = message.field(o.field) {
            o.field = f as u32;
            seen.push(o);
        }
    }
    Ok(())
}

/// Reads one field: its tag, then its value by wire type.
#[inline(always)]
fn next(bytes: &[u8], pos: &mut usize) -> Result<Occurrence, Stop> {
    let at = *pos;
    let (tag, n) = read_varint(&bytes[at..]).ok_or(Stop::Fallback)?;
    let mut p = at + n;
    let number = tag >> 3;
    let wire = (tag & 7) as u8;
    if number == 0 || number > u64::from(u32::MAX >> 3) {
        return Err(Stop::Fallback);
    }
    let (value, end) = match wire {
        0 => {
            let (v, n) = read_varint(&bytes[p..]).ok_or(Stop::Fallback)?;
            p += n;
            (v, 0)
        }
        1 => {
            let v = fixed(&bytes[p..], 8).ok_or(Stop::Fallback)?;
            p += 8;
            (v, 0)
        }
        5 => {
            let v = fixed(&bytes[p..], 4).ok_or(Stop::Fallback)?;
            p += 4;
            (v, 0)
        }
        2 => {
            let (len, n) = read_varint(&bytes[p..]).ok_or(Stop::Fallback)?;
            p += n;
            let len = usize::try_from(len).map_err(|_| Stop::Fallback)?;
            if len > bytes.len() - p {
                return Err(Stop::Fallback);
            }
            let start = p;
            p += len;
            (start as u64, p as u32)
        }
        _ => return Err(Stop::Fallback),
    };
    *pos = p;
    Ok(Occurrence {
        field: number as u32,
        at: at as u32,
        wire,
        value,
        end,
    })
}

/// Two members of one oneof on the wire: the last wins in prost-reflect; left to it.
fn check_oneofs(message: &Message, seen: &[Occurrence]) -> Result<(), Stop> {
    let mut members: u64 = 0;
    let mut previous = u32::MAX;
    for o in seen {
        if o.field == previous {
            continue;
        }
        previous = o.field;
        if let Some(oneof) = message.fields[o.field as usize].oneof {
            let bit = 1u64 << oneof;
            if members & bit != 0 {
                return Err(Stop::Fallback);
            }
            members |= bit;
        }
    }
    Ok(())
}

fn slice(bytes: &[u8], o: Occurrence) -> &[u8] {
    &bytes[o.value as usize..o.end as usize]
}

fn fixed(bytes: &[u8], n: usize) -> Option<u64> {
    let b = bytes.get(..n)?;
    let mut le = [0u8; 8];
    le[..n].copy_from_slice(b);
    Some(u64::from_le_bytes(le))
}

#[inline]
fn wire_type(kind: Scalar) -> u8 {
    match kind {
        Scalar::Double | Scalar::Fixed64 | Scalar::Sfixed64 => 1,
        Scalar::Float | Scalar::Fixed32 | Scalar::Sfixed32 => 5,
        Scalar::String | Scalar::Bytes | Scalar::Message(_) => 2,
        _ => 0,
    }
}

fn packable(kind: Scalar) -> bool {
    wire_type(kind) != 2
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn timestamps_are_written_as_prost_types_writes_them(
            seconds in -62_135_596_800i64..=253_402_300_799,
            nanos in prop_oneof![Just(0u32), (0u32..1000).prop_map(|n| n * 1_000_000),
                                 (0u32..1_000_000).prop_map(|n| n * 1000), 0u32..1_000_000_000],
        ) {
            let mut text = String::new();
            super::timestamp(&mut text, seconds, nanos);
            let expected = prost_types::Timestamp { seconds, nanos: nanos as i32 }.to_string();
            prop_assert_eq!(text, expected);
        }
    }
}
