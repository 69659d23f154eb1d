//! JSON text written straight from decoded data, with the bounds every decoder shares: the
//! text may not grow past `max_bytes`, and nesting past [`MAX_DEPTH`] is refused rather than
//! followed down the stack.

use base64::Engine as _;

use super::DecodeError;

/// How deep records, arrays, maps and unions may nest in a decoded value.
pub(crate) const MAX_DEPTH: usize = 64;

/// A JSON text under construction.
pub(crate) struct Out {
    pub text: String,
    max_bytes: usize,
}

impl Out {
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Out {
            text: String::with_capacity(capacity.min(max_bytes)),
            max_bytes,
        }
    }

    /// Fails once the text is longer than allowed; callers check after each value, so the
    /// text overshoots by at most one scalar.
    #[inline]
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.text.len() > self.max_bytes {
            return Err(DecodeError::TooLarge(self.max_bytes));
        }
        Ok(())
    }

    #[inline]
    pub fn raw(&mut self, s: &str) {
        self.text.push_str(s);
    }

    #[inline]
    pub fn byte(&mut self, c: char) {
        self.text.push(c);
    }

    #[inline]
    pub fn int(&mut self, v: i64) {
        self.text.push_str(itoa::Buffer::new().format(v));
    }

    /// A finite float as a number; NaN and the infinities as the strings `"NaN"`,
    /// `"Infinity"` and `"-Infinity"` (what the proto3 JSON mapping writes, so both formats
    /// agree; the encoders read them back).
    pub fn f64(&mut self, v: f64) {
        if v.is_finite() {
            self.text.push_str(ryu::Buffer::new().format_finite(v));
        } else {
            self.text.push_str(non_finite(v.is_nan(), v > 0.0));
        }
    }

    pub fn f32(&mut self, v: f32) {
        if v.is_finite() {
            self.text.push_str(ryu::Buffer::new().format_finite(v));
        } else {
            self.text.push_str(non_finite(v.is_nan(), v > 0.0));
        }
    }

    /// Text that needs no escaping (digits), quoted.
    #[inline]
    pub fn quoted(&mut self, s: &str) {
        self.text.push('"');
        self.text.push_str(s);
        self.text.push('"');
    }

    pub fn base64(&mut self, bytes: &[u8]) {
        self.text.push('"');
        base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut self.text);
        self.text.push('"');
    }

    /// A JSON string with the escapes JSON requires (quote, backslash, control characters).
    pub fn string(&mut self, s: &str) {
        push_escaped(&mut self.text, s);
    }
}

fn non_finite(nan: bool, positive: bool) -> &'static str {
    match (nan, positive) {
        (true, _) => "\"NaN\"",
        (false, true) => "\"Infinity\"",
        (false, false) => "\"-Infinity\"",
    }
}

/// Which bytes a JSON string cannot hold as they are: control characters, `"` and `\`.
static ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = true;
        i += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Appends `s` as a quoted JSON string.
pub(crate) fn push_escaped(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !ESCAPE[usize::from(b)] {
            continue;
        }
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// A quoted, escaped JSON string, for names rendered once when a schema is compiled.
pub(crate) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_escaped(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "plain",
            "quote \" back \\ slash",
            "\u{1}\u{1f}\n\r\t\u{8}\u{c}",
            "é€😀",
            "",
        ] {
            assert_eq!(quoted(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn numbers_like_serde_json_and_non_finite_as_strings() {
        let mut out = Out::new(0, 100);
        out.f64(0.1);
        out.byte(',');
        out.f32(0.1);
        out.byte(',');
        out.f64(f64::NAN);
        out.byte(',');
        out.f32(f32::NEG_INFINITY);
        out.byte(',');
        out.int(i64::MIN);
        assert_eq!(
            out.text,
            "0.1,0.1,\"NaN\",\"-Infinity\",-9223372036854775808"
        );
        assert_eq!(serde_json::to_string(&0.1f32).unwrap(), "0.1");
    }

    #[test]
    fn refuses_past_the_bound() {
        let mut out = Out::new(0, 4);
        out.raw("1234");
        assert!(out.check().is_ok());
        out.raw("5");
        assert_eq!(out.check(), Err(DecodeError::TooLarge(4)));
    }
}
