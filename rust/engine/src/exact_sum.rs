//! An exact floating-point sum (Shewchuk's partials, as Python's `math.fsum`): the result is
//! the correctly rounded sum of every value added, so it does not depend on the order values
//! arrive in. Latency sums use it, so a window's mean is the same whatever the interleaving
//! of partitions or the batching of the input (daemon, replay and library agree to the bit).

/// Partials of non-overlapping magnitude whose exact sum is the sum of the values added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExactSum {
    partials: Vec<f64>,
}

impl ExactSum {
    /// A sum holding one value.
    pub fn of(x: f64) -> ExactSum {
        let mut s = ExactSum::default();
        s.add(x);
        s
    }

    #[inline]
    pub fn add(&mut self, mut x: f64) {
        if x == 0.0 {
            return;
        }
        let mut i = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        self.partials.truncate(i);
        self.partials.push(x);
    }

    pub fn merge(&mut self, other: &ExactSum) {
        for &p in &other.partials {
            self.add(p);
        }
    }

    /// The exact sum, correctly rounded to the nearest f64 (ties to even).
    pub fn value(&self) -> f64 {
        let p = &self.partials;
        let mut n = p.len();
        if n == 0 {
            return 0.0;
        }
        n -= 1;
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        // Round half-way cases the way the exact sum says, not the way the last addition did.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_of_values_never_changes_the_sum() {
        let values = [61.87, 1e16, 0.1, -1e16, 0.2, 3.3, 1e-9, 173.9, 0.3];
        let mut forward = ExactSum::default();
        values.iter().for_each(|&v| forward.add(v));
        let mut backward = ExactSum::default();
        values.iter().rev().for_each(|&v| backward.add(v));
        assert_eq!(forward.value().to_bits(), backward.value().to_bits());
        // The naive sum loses everything below 1e16's precision.
        assert_ne!(values.iter().sum::<f64>(), forward.value());
        assert!((forward.value() - 239.670_000_001).abs() < 1e-9);
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
}
