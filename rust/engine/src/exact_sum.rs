//! An order-independent sum of latencies: each value is rounded once to a fixed-point grid of
//! 2^-32 (about 2.3e-10 ms) and the integers are added exactly, so the result never depends
//! on the order values arrive in. A window's latency mean and its sketch's sum are therefore
//! the same bit for bit in the daemon, replay and the library, whatever the interleaving of
//! partitions or the batching of the input. Values are finite and non-negative (validated
//! before). Values of 2^64 or more (half a billion years in ms) are summed as floats
//! instead: only they could depend on order.

const SCALE: f64 = 4_294_967_296.0; // 2^32

/// Below this a value goes to the fixed-point sum, which then cannot overflow.
const FIXED_BELOW: f64 = 18_446_744_073_709_551_616.0; // 2^64

/// `y.round() as i128` (half away from zero), without the libm and i128 conversion calls
/// for |y| < 2^62 (values below about 12 days in ms): trunc and the remainder are exact
/// there.
#[inline]
fn round_half_away(y: f64) -> i128 {
    const FAST_BELOW: f64 = 4_611_686_018_427_387_904.0; // 2^62
    if y.abs() < FAST_BELOW {
        // SAFETY: |y| < 2^62 (so not NaN), inside the i64 range: no saturation needed.
        let t = unsafe { y.to_int_unchecked::<i64>() }; // truncates toward zero
        let frac = y - t as f64;
        let up = (frac >= 0.5) as i64 - (frac <= -0.5) as i64;
        (t + up) as i128
    } else {
        y.round() as i128
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExactSum {
    fixed: i128,
    huge: f64,
}

impl ExactSum {
    /// A sum holding one value.
    pub fn of(x: f64) -> ExactSum {
        let mut s = ExactSum::default();
        s.add(x);
        s
    }

    #[inline]
    pub fn add(&mut self, x: f64) {
        if x.abs() < FIXED_BELOW {
            self.fixed += round_half_away(x * SCALE);
        } else {
            self.huge += x;
        }
    }

    pub fn merge(&mut self, other: &ExactSum) {
        self.fixed += other.fixed;
        self.huge += other.huge;
    }

    /// The sum, rounded once to the nearest f64 (when no value was 2^64 or more).
    pub fn value(&self) -> f64 {
        self.fixed as f64 / SCALE + self.huge
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_of_values_never_changes_the_sum() {
        let values = [
            61.87,
            0.1,
            1e9,
            0.2,
            3.3,
            1e-6,
            173.9,
            0.3,
            99_999.123_456_7,
        ];
        let mut forward = ExactSum::default();
        values.iter().for_each(|&v| forward.add(v));
        let mut backward = ExactSum::default();
        values.iter().rev().for_each(|&v| backward.add(v));
        assert_eq!(forward.value().to_bits(), backward.value().to_bits());
        let naive: f64 = values.iter().sum();
        assert!((forward.value() - naive).abs() < 1e-6);
    }

    #[test]
    fn merging_equals_adding_everything_to_one() {
        let (mut a, mut b, mut all) = (
            ExactSum::default(),
            ExactSum::default(),
            ExactSum::default(),
        );
        for i in 0..1000 {
            let v = (i as f64 * 0.37).sin() * 100.0 + 100.0;
            if i % 3 == 0 {
                a.add(v)
            } else {
                b.add(v)
            }
            all.add(v);
        }
        a.merge(&b);
        assert_eq!(a.value().to_bits(), all.value().to_bits());
        assert_eq!(ExactSum::of(2.5).value(), 2.5);
        assert_eq!(ExactSum::default().value(), 0.0);
    }

    #[test]
    fn fast_rounding_matches_round() {
        let edge = [
            0.5,
            1.5,
            2.5,
            0.49999999999999994,
            4503599627370495.5,
            1e18 + 0.5,
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut values: Vec<f64> = edge.iter().flat_map(|&v| [v, -v]).collect();
        for _ in 0..100_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let v = f64::from_bits(seed >> 2); // finite, spread over many magnitudes
            values.extend([v, -v, (seed % 1_000_000) as f64 / 1000.0 * SCALE]);
        }
        for y in values.into_iter().filter(|y| y.abs() < 1e30) {
            assert_eq!(round_half_away(y), y.round() as i128, "{y:e}");
        }
    }
}
