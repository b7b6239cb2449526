//! Window specifications (tumbling and hopping, epoch-aligned) and per-window GPU state.

use crate::fields::FieldId;
use crate::time::{align_down, EpochMs};

/// A window family: `size_ms` long, a new one every `slide_ms` (tumbling when equal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    pub size_ms: i64,
    pub slide_ms: i64,
}

impl WindowSpec {
    pub fn tumbling(size_s: i64) -> WindowSpec {
        WindowSpec {
            size_ms: size_s * 1000,
            slide_ms: size_s * 1000,
        }
    }

    pub fn hopping(size_s: i64, slide_s: i64) -> WindowSpec {
        WindowSpec {
            size_ms: size_s * 1000,
            slide_ms: slide_s * 1000,
        }
    }

    /// Starts of every window of this family that holds `ts`, newest first.
    pub fn starts_of(&self, ts: EpochMs) -> impl Iterator<Item = EpochMs> {
        let newest = align_down(ts, self.slide_ms);
        let size = self.size_ms;
        let slide = self.slide_ms;
        (0..)
            .map(move |i: i64| newest - i * slide)
            .take_while(move |&s| s + size > ts)
    }
}

/// Whether a point was new in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    New,
    /// Same series, field and timestamp as a point already held: counts once.
    Duplicate,
}

/// Points of one series in one window: per field, `(ts, value)` sorted by time, unique in time.
///
/// Kept exact (not pre-aggregated) so that order, duplicates and quantiles are all exact;
/// see docs/design.md for the memory this costs per open (GPU, window).
#[derive(Default, Debug)]
pub struct GpuWindowAcc {
    /// Indexed by `FieldId`; grown on demand.
    points: Vec<Vec<(EpochMs, f64)>>,
}

impl GpuWindowAcc {
    pub fn insert(&mut self, field: FieldId, ts: EpochMs, value: f64) -> Insert {
        if self.points.len() <= field.index() {
            self.points.resize_with(field.index() + 1, Vec::new);
        }
        let v = &mut self.points[field.index()];
        match v.last() {
            None => v.push((ts, value)),
            Some(&(last, _)) if ts > last => v.push((ts, value)),
            _ => match v.binary_search_by_key(&ts, |p| p.0) {
                Ok(i) => {
                    // Duplicates with different values: keep the larger, so that arrival
                    // order never changes a result.
                    if value > v[i].1 {
                        v[i].1 = value;
                    }
                    return Insert::Duplicate;
                }
                Err(i) => v.insert(i, (ts, value)),
            },
        }
        Insert::New
    }

    pub fn points(&self, field: FieldId) -> &[(EpochMs, f64)] {
        self.points.get(field.index()).map_or(&[], |v| v.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_has_one_window_per_instant() {
        let w = WindowSpec::tumbling(60);
        assert_eq!(w.starts_of(59_999).collect::<Vec<_>>(), vec![0]);
        assert_eq!(w.starts_of(60_000).collect::<Vec<_>>(), vec![60_000]);
    }

    #[test]
    fn hopping_covers_size_over_slide_windows() {
        let w = WindowSpec::hopping(3600, 300);
        let starts: Vec<_> = w.starts_of(3_600_000).collect();
        assert_eq!(starts.len(), 12);
        assert_eq!(starts[0], 3_600_000);
        assert_eq!(*starts.last().unwrap(), 300_000);
        for s in starts {
            assert!(s <= 3_600_000 && 3_600_000 < s + 3_600_000);
        }
    }

    #[test]
    fn acc_is_order_independent_and_dedups() {
        let pts = [(3, 0.3), (1, 0.1), (2, 0.2), (1, 0.15), (3, 0.3)];
        let mut a = GpuWindowAcc::default();
        let mut dups = 0;
        for (t, v) in pts {
            if a.insert(FieldId::GPU_UTIL, t, v) == Insert::Duplicate {
                dups += 1;
            }
        }
        let mut b = GpuWindowAcc::default();
        for (t, v) in pts.iter().rev() {
            b.insert(FieldId::GPU_UTIL, *t, *v);
        }
        assert_eq!(dups, 2);
        assert_eq!(
            a.points(FieldId::GPU_UTIL),
            &[(1, 0.15), (2, 0.2), (3, 0.3)]
        );
        assert_eq!(a.points(FieldId::GPU_UTIL), b.points(FieldId::GPU_UTIL));
    }
}
