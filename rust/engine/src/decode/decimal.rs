//! Decimal text to f64, with a short path for the plain decimals that telemetry and request
//! events are made of ("182.4", "1764331201.532", "512"): the digits as an integer divided by
//! a power of ten. Everything else goes to the standard parser, so results equal
//! `str::parse::<f64>` for every input.

/// Powers of ten exactly representable as f64.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Reads the run of ASCII digits in `b` from `i` into `m` (`m * 10 + digit` each, wrapping
/// past 19 digits, where `exact_decimal` is not used anyway); returns the index after it.
#[inline(always)]
pub fn digit_run(b: &[u8], mut i: usize, m: &mut u64) -> usize {
    while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        *m = m.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        i += 1;
    }
    i
}

/// `text.parse::<f64>().ok()`, faster for `-?digits(.digits)?` with at most 15 digits.
///
/// Why the short path is exact: with at most 15 digits the integer `m` is below 2^53, so it
/// and 10^f (f <= 15) are exact f64 values, and IEEE division rounds their quotient
/// correctly, which is what the standard parser returns (Clinger's fast path).
#[inline]
pub fn parse_f64(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let (negative, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let mut m: u64 = 0;
    let mut i = digit_run(digits, 0, &mut m);
    let int_digits = i;
    let mut frac_digits = 0;
    if digits.get(i) == Some(&b'.') {
        i = digit_run(digits, i + 1, &mut m);
        frac_digits = i - int_digits - 1;
        if frac_digits == 0 {
            return text.parse::<f64>().ok(); // "1." (the standard parser takes it)
        }
    }
    if i != digits.len() || int_digits == 0 || int_digits + frac_digits > EXACT_DIGITS {
        return text.parse::<f64>().ok();
    }
    Some(exact_decimal(m, frac_digits, negative))
}

/// `m` / 10^`frac_digits`, negated when `negative`: the correctly rounded value of a decimal
/// whose digits (at most 15, so `m` < 2^53) make `m`, `frac_digits` of them after the point.
#[inline(always)]
pub fn exact_decimal(m: u64, frac_digits: usize, negative: bool) -> f64 {
    let v = m as f64 / POW10[frac_digits];
    if negative {
        -v
    } else {
        v
    }
}

/// Most digits a decimal may have for `exact_decimal`.
pub const EXACT_DIGITS: usize = 15;

#[cfg(test)]
mod tests {
    use super::parse_f64;

    fn same(text: &str) {
        let want = text.parse::<f64>().ok();
        let got = parse_f64(text);
        assert_eq!(
            got.map(f64::to_bits),
            want.map(f64::to_bits),
            "{text:?}: {got:?} != {want:?}"
        );
    }

    #[rustfmt::skip]
    const EDGE_CASES: &[&str] = &[
        "0", "-0", "0.0", "-0.0", "00", "007", "1", "-1", "182.4", "1764331201.532",
        "0.1", "0.3", "123456789012345", "1234567890123456", "12345678901234567890",
        "999999999999999", "0.000000000000001", "0.0000000000000001", "9007199254740993",
        "1.", ".5", "-.5", "+1", "1e3", "1E-3", "-1.5e10", "1..2", "1.2.3", "-", "", ".",
        "-.", "inf", "-inf", "NaN", "nan", "infinity", " 1", "1 ", "1_0", "0x10", "١",
        "1.7976931348623157", "4.9406564584124654", "2.2250738585072014", "0.1000000000000",
        "100000000000000.0", "10000000000000000", "-999999999999999.9", "--1", "00.5",
        "-1.", "1.-5", "1.5.", "-0.000", "12345678901234567890123.5",
    ];

    #[test]
    fn equals_the_standard_parser_on_edge_cases() {
        for t in EDGE_CASES {
            same(t);
        }
    }

    #[test]
    fn equals_the_standard_parser_on_generated_decimals() {
        // Every split of digit strings of 1..=18 digits into integer and fraction parts,
        // from a fixed-seed generator (xorshift), signed and not.
        let mut next = crate::test_rng::xorshift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let len = (next() % 18 + 1) as usize;
            let digits: String = (0..len)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect();
            let point = (next() % (len as u64 + 1)) as usize;
            let text = if point == 0 || point == len {
                digits.clone()
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            };
            same(&text);
            same(&format!("-{text}"));
        }
    }
}
