//! Reading Protobuf's wire format field by field, for the walker.

use super::table::{Message, Scalar};
use super::walk::Stop;
use crate::registry::wire::read_varint;

/// One field occurrence of the message being written.
#[derive(Clone, Copy)]
pub(crate) struct Occurrence {
    pub field: u32,
    /// Where its tag was, so the last occurrence wins and repeated values keep their order.
    pub at: u32,
    pub wire: u8,
    /// The varint or fixed value; for length-delimited data, its start (`end` its end).
    pub value: u64,
    pub end: u32,
}

/// Records the occurrences of `message`'s known fields in `bytes` (unknown ones are skipped).
pub(crate) fn scan(
    message: &Message,
    bytes: &[u8],
    seen: &mut Vec<Occurrence>,
) -> Result<(), Stop> {
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
pub fn next(bytes: &[u8], pos: &mut usize) -> Result<Occurrence, Stop> {
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
pub(crate) fn check_oneofs(message: &Message, seen: &[Occurrence]) -> Result<(), Stop> {
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

pub(crate) fn slice(bytes: &[u8], o: Occurrence) -> &[u8] {
    &bytes[o.value as usize..o.end as usize]
}

pub fn fixed(bytes: &[u8], n: usize) -> Option<u64> {
    let b = bytes.get(..n)?;
    let mut le = [0u8; 8];
    le[..n].copy_from_slice(b);
    Some(u64::from_le_bytes(le))
}

#[inline]
pub(crate) fn wire_type(kind: Scalar) -> u8 {
    match kind {
        Scalar::Double | Scalar::Fixed64 | Scalar::Sfixed64 => 1,
        Scalar::Float | Scalar::Fixed32 | Scalar::Sfixed32 => 5,
        Scalar::String | Scalar::Bytes | Scalar::Message(_) => 2,
        _ => 0,
    }
}

pub(crate) fn packable(kind: Scalar) -> bool {
    wire_type(kind) != 2
}
