//! Timestamps as the proto3 JSON mapping writes them, without `fmt`.

/// RFC 3339 in UTC with 0, 3, 6 or 9 digits of fraction, as prost-types writes a timestamp
/// (without going through `fmt`, which costs more than the rest of a record).
pub fn timestamp(out: &mut String, seconds: i64, nanos: u32) {
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
