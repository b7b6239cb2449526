//! The sketch's bucket key `ceil(ln(v) * multiplier)` without a libm `ln` call in the common
//! case, always equal to the libm-based key: a short table-and-polynomial `ln` (error
//! around 1e-14) gives the key unless its product lands within a safety margin of an
//! integer, and only then (about 2 values in a million at alpha 0.005) is the libm `ln`
//! computed. Per request this replaced two libm calls and what waited on them, about a
//! third of the engine's time on columnar request batches (docs/design.md).

use std::f64::consts::LN_2;
use std::sync::LazyLock;

/// Mantissa bits that pick a table entry.
const TABLE_BITS: u32 = 8;
const TABLE_LEN: usize = 1 << TABLE_BITS;

/// Per entry `j`, the centre `c = 1 + (j + 0.5) / 256` of its mantissa range: `1 / c` and
/// `ln(c)`.
struct LnTable {
    inv_c: [f64; TABLE_LEN],
    ln_c: [f64; TABLE_LEN],
}

static TABLE: LazyLock<LnTable> = LazyLock::new(|| {
    let mut t = LnTable {
        inv_c: [0.0; TABLE_LEN],
        ln_c: [0.0; TABLE_LEN],
    };
    for j in 0..TABLE_LEN {
        let c = 1.0 + (j as f64 + 0.5) / TABLE_LEN as f64; // exact in f64
        t.inv_c[j] = 1.0 / c;
        t.ln_c[j] = c.ln();
    }
    t
});

/// `ceil(x)` for |x| well inside the i32 range, without a libm call (SSE2 has no `roundsd`).
#[inline(always)]
pub(crate) fn ceil_i32(x: f64) -> i32 {
    let t = x as i32; // truncates toward zero
    t + (x > t as f64) as i32
}

/// The key as the sketch always computed it (libm `ln`).
#[inline(always)]
pub(crate) fn exact_key(v: f64, multiplier: f64) -> i32 {
    ceil_i32(v.ln() * multiplier)
}

/// A handle on the table, taken once per batch of values (the first use builds it).
#[derive(Clone, Copy)]
pub(crate) struct KeyFn {
    t: &'static LnTable,
}

impl KeyFn {
    #[inline(always)]
    pub(crate) fn get() -> KeyFn {
        KeyFn { t: &TABLE }
    }

    /// `exact_key(v, multiplier)` for a finite `v >= 1e-3` (a normal positive double); any
    /// other `v` gets some key, without undefined behaviour (callers ignore it).
    ///
    /// With `v = 2^e m`, `m` in [1, 2) and `c` the centre of `m`'s table range,
    /// `ln v = e ln 2 + ln c + ln(1 + r)` with `r = m / c - 1`, |r| <= 1/512. Four terms of
    /// the series leave under 6e-15; the table, `ln 2` and the roundings of the sum add
    /// under 4e-16 |ln v|. With `y` the product computed this way and
    /// `y0 = fl(fl(ln v) * multiplier)` the libm one (libm's `ln` within 1 ulp), that gives
    /// |y - y0| < 6e-15 multiplier + 1e-15 |y|. The margin below, 1e-6 + 1e-12 |y| (checked
    /// against `ceil(y) - y`, rounded by under 1e-16 |y|), is over 100 times that for every
    /// accepted multiplier (at most 5e5, alpha >= 1e-6): when `y` is farther than the margin
    /// from both integers around it, `ceil(y) == ceil(y0)`; otherwise the libm key is used.
    #[inline(always)]
    pub(crate) fn key(self, v: f64, multiplier: f64) -> i32 {
        let bits = v.to_bits();
        let e = ((bits >> 52) as i32 - 1023) as f64;
        let j = ((bits >> (52 - TABLE_BITS)) as usize) & (TABLE_LEN - 1);
        let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
        let r = m * self.t.inv_c[j] - 1.0;
        let r2 = r * r;
        let ln1p = r - 0.5 * r2 + r2 * (r * (1.0 / 3.0) - 0.25 * r2);
        let y = (e * LN_2 + self.t.ln_c[j] + ln1p) * multiplier;
        let size = y.abs();
        // |y| <= 710 * 5e5 for every accepted multiplier; the test keeps the cast sound.
        if size < 2e9 {
            // SAFETY: y is finite and |y| < 2e9, inside the i32 range (no saturation needed).
            let t = unsafe { y.to_int_unchecked::<i32>() }; // truncates toward zero
            let k = t + (y > t as f64) as i32; // ceil(y)
            let above = k as f64 - y; // in [0, 1)
            let margin = 1e-6 + 1e-12 * size;
            if above > margin && above < 1.0 - margin {
                return k;
            }
        }
        exact_key(v, multiplier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multipliers() -> Vec<f64> {
        // As LatencySketch::with_params computes it, across the accepted alphas.
        [1e-6, 1e-5, 1e-4, 0.001, 0.005, 0.01, 0.02, 0.1, 0.3, 0.5]
            .iter()
            .map(|&a: &f64| {
                let gm = 2.0 * a / (1.0 - a);
                1.0 / gm.ln_1p()
            })
            .collect()
    }

    /// Random values over the whole indexable range, log-uniform, and every value next to
    /// a bucket boundary (where the libm fallback must decide), for each multiplier.
    #[test]
    fn fast_key_equals_the_libm_key() {
        let f = KeyFn::get();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        for mult in multipliers() {
            for _ in 0..300_000 {
                let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
                let v = (1e-3f64.ln() + u * (1e300f64.ln() - 1e-3f64.ln())).exp();
                assert_eq!(f.key(v, mult), exact_key(v, mult), "v {v:e}, mult {mult}");
                // Any bit pattern of a double in [2^-10, 2^1000).
                let b = 0x3f50_0000_0000_0000
                    + next() % (0x7e70_0000_0000_0000 - 0x3f50_0000_0000_0000);
                let w = f64::from_bits(b);
                assert_eq!(f.key(w, mult), exact_key(w, mult), "w {w:e}, mult {mult}");
            }
            let lo = (1e-3f64.ln() * mult).floor() as i64;
            let hi = ((1e12f64.ln() * mult).ceil() as i64).min(lo + 200_000);
            for k in lo..hi {
                let b = (k as f64 / mult).exp();
                if b < 1e-3 {
                    continue;
                }
                // The doubles next to the boundary (positive: adjacent bit patterns).
                for d in -3i64..4 {
                    let v = f64::from_bits((b.to_bits() as i64 + d) as u64);
                    assert_eq!(f.key(v, mult), exact_key(v, mult), "v {v:e}, mult {mult}");
                }
            }
        }
    }
}
