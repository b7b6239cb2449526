//! Small exact statistics over value slices shared by the tables.

/// Quantile `q` of `sorted` (ascending) by linear interpolation between closest ranks
/// (numpy's default `linear` method). `None` for an empty slice.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// Sorts `values` in place (total order; callers hold no NaN) and returns it.
pub fn sort_values(values: &mut [f64]) -> &[f64] {
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
}
