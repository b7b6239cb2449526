//! Event-time parsing: RFC 3339 strings and Unix timestamps to milliseconds since the epoch.
//!
//! Hand-written because it runs once per message on the hot path; chrono's general
//! parser is several times slower for the one shape DCGM pipelines emit.

/// Milliseconds since the Unix epoch, UTC.
pub type EpochMs = i64;

/// 2000-01-01T00:00:00Z: samples stamped before this are clock errors, not telemetry.
pub const MIN_VALID_MS: EpochMs = 946_684_800_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff...](Z|±HH:MM)` into epoch milliseconds.
/// A space or lower-case `t` separator and `z` are accepted too (RFC 3339 §5.6 note).
pub fn parse_rfc3339_ms(s: &str) -> Option<EpochMs> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(b, 0, 4)? as i64;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // Second 60 is a leap second; it folds onto the next second like every Unix clock does.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_s: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(b, i + 1, 2)? as i64;
            let om = digits(b, i + 4, 2)? as i64;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour as i64 * 3600 + minute as i64 * 60 + second as i64 - offset_s;
    Some(secs * 1000 + millis)
}

/// Unix time as sent in JSON: float seconds, or integer milliseconds when above 1e11
/// (1e11 seconds is the year 5138, so the two ranges cannot be confused).
pub fn unix_number_to_ms(v: f64) -> Option<EpochMs> {
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    if v > 1e11 {
        Some(v.round() as i64)
    } else {
        Some((v * 1000.0).round() as i64)
    }
}

/// Start of the epoch-aligned window of `size_ms` holding `ts` (floor, also for negatives).
#[inline]
pub fn align_down(ts: EpochMs, size_ms: i64) -> EpochMs {
    ts.div_euclid(size_ms) * size_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_adapter_timestamps() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2026-11-28T12:00:01Z"),
            Some(1_795_867_201_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-28T12:00:01.5Z"),
            Some(1_795_867_201_500)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-28T13:00:01+01:00"),
            Some(1_795_867_201_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for s in [
            "",
            "2026-11-28",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T12:00:01",
            "2026-11-28T12:00:01.Z",
            "2026-11-28T12:00:01Zjunk",
            "2026-11-28X12:00:01Z",
        ] {
            assert_eq!(parse_rfc3339_ms(s), None, "{s}");
        }
    }

    #[test]
    fn unix_numbers_seconds_or_millis() {
        assert_eq!(
            unix_number_to_ms(1_764_331_201.532),
            Some(1_764_331_201_532)
        );
        assert_eq!(
            unix_number_to_ms(1_764_331_201_532.0),
            Some(1_764_331_201_532)
        );
        assert_eq!(unix_number_to_ms(f64::NAN), None);
        assert_eq!(unix_number_to_ms(-1.0), None);
    }

    #[test]
    fn alignment_is_epoch_floor() {
        assert_eq!(align_down(119_999, 60_000), 60_000);
        assert_eq!(align_down(120_000, 60_000), 120_000);
        assert_eq!(align_down(-1, 60_000), -60_000);
    }
}
