//! Window specifications (tumbling and hopping, epoch-aligned) and the exact points one
//! series holds in one pane of time.

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

    /// Start of the earliest window of this family that holds `ts`.
    pub fn first_start_holding(&self, ts: EpochMs) -> EpochMs {
        align_down(ts.saturating_sub(self.size_ms), self.slide_ms).saturating_add(self.slide_ms)
    }

    /// End of the latest window of this family that holds `ts`.
    pub fn last_end_holding(&self, ts: EpochMs) -> EpochMs {
        align_down(ts, self.slide_ms) + self.size_ms
    }
}

/// Whether a point was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    New,
    /// Same series, field and timestamp as a point already held: counts once.
    Duplicate,
}

/// Points of one series: per field, `(ts, value)` sorted by time, unique in time.
///
/// Kept exact (not pre-aggregated) so that order, duplicates and quantiles are all exact;
/// docs/design.md gives the memory this costs per open (GPU, window).
#[derive(Default, Debug, Clone)]
pub struct SeriesPoints {
    /// Indexed by `FieldId`; grown on demand.
    points: Vec<Vec<(EpochMs, f64)>>,
}

impl SeriesPoints {
    pub fn insert(&mut self, field: FieldId, ts: EpochMs, value: f64) -> Insert {
        self.insert_sized(field, ts, value, 0)
    }

    /// Inserts, reserving room for `expected` points on a field's first point (the pane's
    /// samples at the configured interval), so a pane fills without reallocating. The
    /// common case (a later point of a field already started) is inlined.
    #[inline(always)]
    pub fn insert_sized(
        &mut self,
        field: FieldId,
        ts: EpochMs,
        value: f64,
        expected: usize,
    ) -> Insert {
        if let Some(v) = self.points.get_mut(field.index()) {
            if let Some(&(last, _)) = v.last() {
                if ts > last {
                    v.push((ts, value));
                    return Insert::New;
                }
            }
        }
        self.insert_slow(field, ts, value, expected)
    }

    #[inline(never)]
    fn insert_slow(&mut self, field: FieldId, ts: EpochMs, value: f64, expected: usize) -> Insert {
        if self.points.len() <= field.index() {
            self.points.resize_with(field.index() + 1, Vec::new);
        }
        let v = &mut self.points[field.index()];
        if v.capacity() == 0 {
            v.reserve_exact(expected);
        }
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

    /// Appends `later`'s points, all of which are later in time than this one's.
    pub fn extend_later(&mut self, later: &SeriesPoints) {
        if self.points.len() < later.points.len() {
            self.points.resize_with(later.points.len(), Vec::new);
        }
        for (mine, theirs) in self.points.iter_mut().zip(&later.points) {
            mine.extend_from_slice(theirs);
        }
    }

    /// Approximate heap bytes held (for the memory report).
    pub fn heap_bytes(&self) -> usize {
        self.points.capacity() * std::mem::size_of::<Vec<(EpochMs, f64)>>()
            + self
                .points
                .iter()
                .map(|v| v.capacity() * std::mem::size_of::<(EpochMs, f64)>())
                .sum::<usize>()
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
        assert_eq!(w.first_start_holding(60_000), 60_000);
        assert_eq!(w.last_end_holding(60_000), 120_000);
    }

    #[test]
    fn hopping_covers_size_over_slide_windows() {
        let w = WindowSpec::hopping(3600, 300);
        let starts: Vec<_> = w.starts_of(3_600_000).collect();
        assert_eq!(starts.len(), 12);
        assert_eq!(starts[0], 3_600_000);
        assert_eq!(*starts.last().unwrap(), 300_000);
        assert_eq!(w.first_start_holding(3_600_000), 300_000);
        assert_eq!(w.last_end_holding(3_600_000), 7_200_000);
        for s in starts {
            assert!(s <= 3_600_000 && 3_600_000 < s + 3_600_000);
        }
    }

    #[test]
    fn points_are_order_independent_and_dedup() {
        let pts = [(3, 0.3), (1, 0.1), (2, 0.2), (1, 0.15), (3, 0.3)];
        let mut a = SeriesPoints::default();
        let mut dups = 0;
        for (t, v) in pts {
            if a.insert(FieldId::GPU_UTIL, t, v) == Insert::Duplicate {
                dups += 1;
            }
        }
        let mut b = SeriesPoints::default();
        for (t, v) in pts.iter().rev() {
            b.insert(FieldId::GPU_UTIL, *t, *v);
        }
        assert_eq!(dups, 2);
        assert_eq!(
            a.points(FieldId::GPU_UTIL),
            &[(1, 0.15), (2, 0.2), (3, 0.3)]
        );
        assert_eq!(a.points(FieldId::GPU_UTIL), b.points(FieldId::GPU_UTIL));
        assert!(a.points(FieldId::POWER_USAGE).is_empty());
    }

    #[test]
    fn extend_later_concatenates_per_field() {
        let mut a = SeriesPoints::default();
        a.insert(FieldId::GPU_UTIL, 1, 1.0);
        let mut b = SeriesPoints::default();
        b.insert(FieldId::GPU_UTIL, 5, 2.0);
        b.insert(FieldId::POWER_USAGE, 5, 300.0);
        a.extend_later(&b);
        assert_eq!(a.points(FieldId::GPU_UTIL), &[(1, 1.0), (5, 2.0)]);
        assert_eq!(a.points(FieldId::POWER_USAGE), &[(5, 300.0)]);
    }
}
