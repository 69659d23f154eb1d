//! Avro decimals: a big-endian two's-complement unscaled integer and the schema's scale,
//! written as exact decimal text (`"12.34"`) and read back from it, without floating point.

/// The largest unscaled integer read or written, in bytes (about 2,400 digits).
const MAX_BYTES: usize = 1024;
/// The largest scale (digits after the point) written or read.
pub(crate) const MAX_SCALE: usize = 4096;

/// Appends the decimal text of `unscaled` × 10^-`scale` (a negative scale appends zeros).
pub fn to_text(unscaled: &[u8], scale: i64, out: &mut String) -> Result<(), String> {
    if unscaled.len() > MAX_BYTES {
        return Err(format!(
            "expected a decimal of at most {MAX_BYTES} bytes, found {}",
            unscaled.len()
        ));
    }
    if scale.unsigned_abs() > MAX_SCALE as u64 {
        return Err(format!(
            "expected a decimal scale of at most {MAX_SCALE}, found {scale}"
        ));
    }
    let negative = unscaled.first().is_some_and(|b| b & 0x80 != 0);
    let digits = magnitude_digits(unscaled, negative);
    if negative && digits != "0" {
        out.push('-');
    }
    if scale <= 0 {
        out.push_str(&digits);
        if digits != "0" {
            out.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
        }
        return Ok(());
    }
    let scale = scale as usize;
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(&digits);
    }
    Ok(())
}

/// The decimal digits of the absolute value of a two's-complement integer.
fn magnitude_digits(bytes: &[u8], negative: bool) -> String {
    if bytes.len() <= 16 {
        let fill = if negative { 0xff } else { 0 };
        let mut wide = [fill; 16];
        wide[16 - bytes.len()..].copy_from_slice(bytes);
        let value = i128::from_be_bytes(wide);
        return itoa::Buffer::new().format(value.unsigned_abs()).to_owned();
    }
    // Negate to the magnitude, then convert base 256 → base 10^9, most significant first.
    let mut magnitude = bytes.to_vec();
    if negative {
        negate(&mut magnitude);
    }
    let mut limbs: Vec<u32> = Vec::new(); // little-endian, base 10^9
    for &byte in &magnitude {
        let mut carry = u64::from(byte);
        for limb in &mut limbs {
            let v = u64::from(*limb) * 256 + carry;
            *limb = (v % 1_000_000_000) as u32;
            carry = v / 1_000_000_000;
        }
        while carry > 0 {
            limbs.push((carry % 1_000_000_000) as u32);
            carry /= 1_000_000_000;
        }
    }
    let Some((top, rest)) = limbs.split_last() else {
        return "0".to_owned();
    };
    let mut text = top.to_string();
    for limb in rest.iter().rev() {
        text.push_str(&format!("{limb:09}"));
    }
    text
}

/// Two's-complement negation in place (the magnitude of a negative number, or its inverse).
fn negate(bytes: &mut [u8]) {
    let mut carry = true;
    for b in bytes.iter_mut().rev() {
        *b = !*b;
        if carry {
            let (v, overflow) = b.overflowing_add(1);
            *b = v;
            carry = overflow;
        }
    }
}

/// A decimal number in text, split into sign, digits and a power of ten:
/// `value = ±digits × 10^exponent`.
struct Parsed {
    negative: bool,
    digits: String,
    exponent: i64,
}

fn parse(text: &str) -> Result<Parsed, String> {
    let bad = || format!("expected a decimal number such as \"12.34\", found {text:?}");
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (
            &rest[..at],
            rest[at + 1..].parse::<i64>().map_err(|_| bad())?,
        ),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.len() + frac.len() == 0 || !all_digits(int) || !all_digits(frac) {
        return Err(bad());
    }
    if exponent.unsigned_abs() > MAX_SCALE as u64 * 2 {
        return Err(bad());
    }
    let digits = format!("{int}{frac}");
    Ok(Parsed {
        negative,
        digits,
        exponent: exponent - frac.len() as i64,
    })
}

/// The unscaled two's-complement bytes (shortest form) of `text` at `scale`, refusing text
/// with more decimal places than the scale or more digits than the precision.
pub(crate) fn from_text(text: &str, scale: usize, precision: usize) -> Result<Vec<u8>, String> {
    let parsed = parse(text)?;
    let shift = parsed.exponent + scale as i64;
    let mut digits = parsed.digits;
    if shift < 0 {
        let drop = shift.unsigned_abs() as usize;
        let keep = digits.len().saturating_sub(drop);
        if digits[keep..].bytes().any(|b| b != b'0') {
            return Err(format!(
                "expected at most {scale} decimal place(s), found {text:?}"
            ));
        }
        digits.truncate(keep);
    } else {
        digits.extend(std::iter::repeat_n('0', shift as usize));
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > precision {
        return Err(format!(
            "expected at most {precision} digit(s) (precision {precision}, scale {scale}), found {text:?}"
        ));
    }
    Ok(to_twos_complement(significant, parsed.negative))
}

/// `text` as apache-avro's `big-decimal`: the unscaled bytes and the scale it has.
pub(crate) fn from_text_any_scale(text: &str) -> Result<(Vec<u8>, i64), String> {
    let parsed = parse(text)?;
    let scale = -parsed.exponent;
    let significant = parsed.digits.trim_start_matches('0');
    if significant.len() > MAX_BYTES * 2 {
        return Err(format!(
            "expected a shorter decimal, found {} digits",
            significant.len()
        ));
    }
    Ok((to_twos_complement(significant, parsed.negative), scale))
}

/// Decimal digits (no sign, no leading zeros) → shortest big-endian two's complement.
fn to_twos_complement(digits: &str, negative: bool) -> Vec<u8> {
    let mut limbs: Vec<u32> = Vec::new(); // little-endian, base 2^32
    for d in digits.bytes() {
        let mut carry = u64::from(d - b'0');
        for limb in &mut limbs {
            let v = u64::from(*limb) * 10 + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let mut bytes: Vec<u8> = vec![0]; // a leading sign byte, trimmed below
    for limb in limbs.iter().rev() {
        bytes.extend_from_slice(&limb.to_be_bytes());
    }
    if negative {
        negate(&mut bytes);
    }
    let sign = if negative { 0xff } else { 0 };
    let redundant = bytes
        .windows(2)
        .take_while(|w| w[0] == sign && (w[1] & 0x80) == (sign & 0x80))
        .count();
    bytes.drain(..redundant);
    bytes
}

/// Sign-extends shortest two's-complement bytes to a `fixed` of `size` bytes.
pub(crate) fn widen(bytes: Vec<u8>, size: usize) -> Result<Vec<u8>, String> {
    if bytes.len() > size {
        return Err(format!(
            "expected a decimal that fits in {size} byte(s), found one that needs {}",
            bytes.len()
        ));
    }
    let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut out = vec![fill; size - bytes.len()];
    out.extend(bytes);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8], scale: i64) -> String {
        let mut out = String::new();
        to_text(bytes, scale, &mut out).unwrap();
        out
    }

    #[test]
    fn writes_exact_text_with_the_scale() {
        assert_eq!(text(&[0x04, 0xd2], 2), "12.34");
        assert_eq!(text(&[0xfb], 2), "-0.05");
        assert_eq!(text(&[0x00], 3), "0.000");
        assert_eq!(text(&[], 0), "0");
        assert_eq!(text(&[0x7f], 0), "127");
        assert_eq!(text(&[0x80], 0), "-128");
        assert_eq!(text(&[0x01], -3), "1000");
        // 20 bytes: beyond i128, through the base-10^9 path.
        let mut big = vec![0u8; 20];
        big[0] = 0x80;
        assert_eq!(
            text(&big, 0),
            "-730750818665451459101842416358141509827966271488"
        );
        big[0] = 0x7f;
        big[1..].fill(0xff);
        assert_eq!(
            text(&big, 10),
            "73075081866545145910184241635814150982.7966271487"
        );
    }

    #[test]
    fn reads_text_back_to_the_shortest_bytes() {
        assert_eq!(from_text("12.34", 2, 10), Ok(vec![0x04, 0xd2]));
        assert_eq!(from_text("12.3", 2, 10), Ok(vec![0x04, 0xce]));
        assert_eq!(from_text("-0.05", 2, 10), Ok(vec![0xfb]));
        assert_eq!(from_text("0", 2, 10), Ok(vec![0x00]));
        assert_eq!(from_text("128", 0, 10), Ok(vec![0x00, 0x80]));
        assert_eq!(from_text("-128", 0, 10), Ok(vec![0x80]));
        assert_eq!(from_text("-129", 0, 10), Ok(vec![0xff, 0x7f]));
        assert_eq!(from_text("1.5e2", 0, 10), from_text("150", 0, 10));
        assert_eq!(from_text("12.00", 0, 10), Ok(vec![12]));
        assert_eq!(
            from_text("12.345", 2, 10).unwrap_err(),
            "expected at most 2 decimal place(s), found \"12.345\""
        );
        assert!(from_text("123456", 2, 5)
            .unwrap_err()
            .contains("at most 5 digit(s)"));
        assert!(from_text("abc", 2, 5)
            .unwrap_err()
            .contains("found \"abc\""));
        assert!(from_text("", 2, 5).is_err());
        assert!(from_text("1e99999999", 2, 5).is_err());
        assert_eq!(widen(vec![0xfb], 4), Ok(vec![0xff, 0xff, 0xff, 0xfb]));
        assert!(widen(vec![1, 2, 3], 2).is_err());
        assert_eq!(from_text_any_scale("-1.50"), Ok((vec![0xff, 0x6a], 2)));
    }

    #[test]
    fn text_and_bytes_round_trip() {
        for s in [
            "0.01",
            "-99999999999999999999999999999999999999999.99",
            "7",
            "-0.10",
        ] {
            let bytes = from_text(s, 2, 60).unwrap();
            let back = text(&bytes, 2);
            assert_eq!(from_text(&back, 2, 60).unwrap(), bytes, "{s} → {back}");
        }
    }
}
