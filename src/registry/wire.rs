//! Confluent's wire format: byte 0 is the magic byte 0, bytes 1-4 the schema id (big-endian),
//! the rest the payload; for Protobuf the payload opens with the message-index list, zigzag
//! varints like Avro's `int`/`long`.

use thiserror::Error;

/// The length of the header before the payload.
pub(crate) const HEADER_LEN: usize = 5;

/// Why bytes are not in the wire format.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum WireError {
    #[error(
        "expected a schema registry record (magic byte 0, 4-byte schema id), found an empty value"
    )]
    Empty,
    #[error("expected magic byte 0 of a schema registry record, found {0:#04x}")]
    UnknownMagic(u8),
    #[error("expected a 5-byte schema registry header, found {0} byte(s)")]
    Truncated(usize),
}

/// Splits a record value into its schema id and the payload after the header.
pub(crate) fn split_wire(bytes: &[u8]) -> Result<(u32, &[u8]), WireError> {
    match bytes {
        [] => Err(WireError::Empty),
        [magic, ..] if *magic != 0 => Err(WireError::UnknownMagic(*magic)),
        [_, a, b, c, d, payload @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), payload)),
        _ => Err(WireError::Truncated(bytes.len())),
    }
}

/// A buffer that starts with the header for `id`, ready for the payload.
pub(crate) fn with_header(id: u32, payload_hint: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload_hint);
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

/// Reads an unsigned LEB128 varint of at most 10 bytes: `(value, bytes read)`, `None` when the
/// input ends inside it or it runs past 10 bytes.
#[inline]
pub(crate) fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    // Most varints in records (tags, small numbers, lengths) are one byte.
    if let Some(&b) = bytes.first() {
        if b < 0x80 {
            return Some((u64::from(b), 1));
        }
    }
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Reads a zigzag varint (Avro `long`, Confluent's message indexes).
#[inline]
pub(crate) fn read_zigzag(bytes: &[u8]) -> Option<(i64, usize)> {
    read_varint(bytes).map(|(v, n)| (((v >> 1) as i64) ^ -((v & 1) as i64), n))
}

/// Appends `value` as a zigzag varint.
pub(crate) fn write_zigzag(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_refuses() {
        assert_eq!(split_wire(&[0, 0, 0, 1, 2, 9, 9]), Ok((258, &[9u8, 9][..])));
        assert_eq!(split_wire(&[0, 0, 0, 0, 7]), Ok((7, &[][..])));
        assert_eq!(split_wire(&[]), Err(WireError::Empty));
        assert_eq!(split_wire(b"{\"a\":1}"), Err(WireError::UnknownMagic(b'{')));
        assert_eq!(split_wire(&[0, 0, 1]), Err(WireError::Truncated(3)));
        assert_eq!(
            WireError::UnknownMagic(0x7b).to_string(),
            "expected magic byte 0 of a schema registry record, found 0x7b"
        );
        assert_eq!(&with_header(258, 0), &[0, 0, 0, 1, 2]);
    }

    #[test]
    fn zigzag_round_trips_and_bounds() {
        for value in [
            0,
            -1,
            1,
            63,
            -64,
            64,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            write_zigzag(&mut out, value);
            assert_eq!(read_zigzag(&out), Some((value, out.len())), "{value}");
        }
        assert_eq!(read_zigzag(&[0x80]), None, "ends inside");
        assert_eq!(read_zigzag(&[0xff; 11]), None, "longer than 10 bytes");
        assert_eq!(read_zigzag(&[3]), Some((-2, 1)));
    }
}
