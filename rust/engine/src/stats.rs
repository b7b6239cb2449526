//! Small exact statistics over value slices shared by the tables.

/// Quantile `q` of `sorted` (ascending) by linear interpolation between closest ranks
/// (numpy's default `linear` method). `None` for an empty slice.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let (h, lo, hi) = ranks(sorted.len(), q)?;
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// The fractional rank `h` of quantile `q` among `n` values and the ranks around it.
fn ranks(n: usize, q: f64) -> Option<(f64, usize, usize)> {
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    Some((h, h.floor() as usize, h.ceil() as usize))
}

/// `quantile_sorted(sorted(values), q)` without sorting: the one or two order statistics it
/// interpolates between are found by selection, O(n) (`values` is reordered). Bit for bit
/// the same result, order statistics taken in the same total order.
pub fn quantile_select(values: &mut [f64], q: f64) -> Option<f64> {
    let (h, lo, hi) = ranks(values.len(), q)?;
    let (_, &mut at_lo, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let at_hi = if hi == lo {
        at_lo
    } else {
        // hi = lo + 1: the smallest of what selection put above rank lo.
        above.iter().copied().min_by(f64::total_cmp)?
    };
    Some(at_lo + (h - lo as f64) * (at_hi - at_lo))
}

/// The smallest and largest of `values` in total order; `None` when empty.
pub fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let first = *values.first()?;
    Some(values.iter().fold((first, first), |(lo, hi), &v| {
        (
            if v.total_cmp(&lo).is_lt() { v } else { lo },
            if v.total_cmp(&hi).is_gt() { v } else { hi },
        )
    }))
}

/// Sorts `values` in place (total order; callers hold no NaN) and returns it: the reference
/// `quantile_select` is tested against.
#[cfg(test)]
fn sort_values(values: &mut [f64]) -> &[f64] {
    values.sort_unstable_by(f64::total_cmp);
    values
}

/// Increase of a counter over consecutive points, treating a decrease as a reset (the new
/// value is what accumulated since the reset). `None` with fewer than two points.
pub fn counter_increase(points: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut it = points.into_iter();
    let mut prev = it.next()?;
    let mut total = None;
    for v in it {
        let delta = if v >= prev { v - prev } else { v };
        total = Some(total.unwrap_or(0.0) + delta);
        prev = v;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_linear() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.5), Some(2.5));
        assert!((quantile_sorted(&v, 0.95).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(quantile_sorted(&v, 0.0), Some(1.0));
        assert_eq!(quantile_sorted(&v, 1.0), Some(4.0));
        assert_eq!(quantile_sorted(&[], 0.5), None);
        assert_eq!(quantile_sorted(&[7.0], 0.95), Some(7.0));
    }

    #[test]
    fn counter_increase_handles_resets() {
        assert_eq!(counter_increase([10.0, 15.0, 22.0]), Some(12.0));
        // reset after 22: counter restarts at 0 and reaches 3
        assert_eq!(counter_increase([10.0, 22.0, 3.0, 5.0]), Some(17.0));
        assert_eq!(counter_increase([10.0]), None);
    }

    #[test]
    fn selection_gives_the_sorted_quantiles_bit_for_bit() {
        // A deterministic spread of values with ties, zeros of both signs and one-element
        // and two-element slices.
        let mut next = crate::test_rng::xorshift(0x9E37_79B9_7F4A_7C15);
        for n in [1usize, 2, 3, 7, 59, 60, 61, 300] {
            for round in 0..20 {
                let mut v: Vec<f64> = (0..n)
                    .map(|_| match next() % 10 {
                        0 => 0.0,
                        1 => -0.0,
                        2 => 0.5,
                        _ => (next() % 10_000) as f64 / 9_999.0,
                    })
                    .collect();
                if round == 0 {
                    v.sort_by(f64::total_cmp); // already sorted input too
                }
                let mut sorted = v.clone();
                sort_values(&mut sorted);
                let (lo, hi) = min_max(&v).unwrap();
                assert_eq!(lo.to_bits(), sorted[0].to_bits());
                assert_eq!(hi.to_bits(), sorted[n - 1].to_bits());
                for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
                    let mut work = v.clone();
                    let got = quantile_select(&mut work, q).unwrap();
                    let want = quantile_sorted(&sorted, q).unwrap();
                    assert_eq!(got.to_bits(), want.to_bits(), "n {n} q {q}");
                }
            }
        }
        assert_eq!(quantile_select(&mut [], 0.5), None);
        assert_eq!(min_max(&[]), None);
    }
}
