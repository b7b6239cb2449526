//! Pane store: every point lives once, in the pane (a slice of time as long as the greatest
//! common divisor of all window sizes and slides) that holds it. A window is the union of
//! its panes, so tumbling and hopping windows of several sizes share one copy of the data.
//!
//! Panes are few (the open windows' span), kept sorted in a vector with the last one used
//! remembered; inside a pane, series are found through a dense index by series id. Both make
//! the per-reading insert a couple of array lookups instead of hash or tree searches.

use crate::fields::FieldId;
use crate::series::SeriesId;
use crate::time::{align_down, EpochMs};
use crate::window::{Insert, SeriesPoints};
use std::borrow::Cow;

const ABSENT: u32 = u32::MAX;

#[derive(Default)]
struct Pane {
    /// Slot in `entries` by series id (`ABSENT` when the series has no point here).
    slot_of: Vec<u32>,
    entries: Vec<(SeriesId, SeriesPoints)>,
}

impl Pane {
    #[inline(always)]
    fn points_mut(&mut self, series: SeriesId) -> &mut SeriesPoints {
        let slot = match self.slot_of.get(series as usize) {
            Some(&slot) if slot != ABSENT => slot,
            _ => self.add_series(series),
        };
        &mut self.entries[slot as usize].1
    }

    /// The slot of a series this pane does not hold yet.
    #[inline(never)]
    fn add_series(&mut self, series: SeriesId) -> u32 {
        let i = series as usize;
        if self.slot_of.len() <= i {
            self.slot_of.resize(i + 1, ABSENT);
        }
        let slot = self.entries.len() as u32;
        self.slot_of[i] = slot;
        self.entries.push((series, SeriesPoints::default()));
        slot
    }

    fn points(&self, series: SeriesId) -> Option<&SeriesPoints> {
        match self.slot_of.get(series as usize) {
            Some(&slot) if slot != ABSENT => Some(&self.entries[slot as usize].1),
            _ => None,
        }
    }
}

pub struct PaneStore {
    pane_ms: i64,
    /// Points a series' field usually holds per pane (room reserved up front).
    expected_points: usize,
    /// Sorted by pane start.
    panes: Vec<(EpochMs, Pane)>,
    last: usize,
}

impl PaneStore {
    pub fn new(pane_ms: i64) -> PaneStore {
        Self::with_interval(pane_ms, 1000)
    }

    /// A store whose series report every `interval_ms` (sizes each pane's point vectors).
    pub fn with_interval(pane_ms: i64, interval_ms: i64) -> PaneStore {
        assert!(pane_ms > 0, "pane length must be positive");
        PaneStore {
            expected_points: (pane_ms / interval_ms.max(1)).clamp(1, 64) as usize,
            pane_ms,
            panes: Vec::new(),
            last: 0,
        }
    }

    pub fn pane_ms(&self) -> i64 {
        self.pane_ms
    }

    /// The pane holding `ts`: the last one used when it does (a range check), else found
    /// (or made) by its start.
    #[inline(always)]
    fn pane_mut(&mut self, ts: EpochMs) -> &mut Pane {
        let in_last = self
            .panes
            .get(self.last)
            .is_some_and(|p| ts >= p.0 && ts - p.0 < self.pane_ms);
        if !in_last {
            self.find_pane(align_down(ts, self.pane_ms));
        }
        &mut self.panes[self.last].1
    }

    /// Points `last` at the pane starting at `start`, made if missing (kept sorted).
    #[inline(never)]
    fn find_pane(&mut self, start: EpochMs) {
        self.last = match self.panes.binary_search_by_key(&start, |p| p.0) {
            Ok(i) => i,
            Err(i) => {
                self.panes.insert(i, (start, Pane::default()));
                i
            }
        };
    }

    /// Inlined into the decoders' loops: readings mostly go to the last pane used, for a
    /// series it holds, later than the field's last point.
    #[inline(always)]
    pub fn insert(&mut self, series: SeriesId, field: FieldId, ts: EpochMs, v: f64) -> Insert {
        let expected = self.expected_points;
        self.pane_mut(ts)
            .points_mut(series)
            .insert_sized(field, ts, v, expected)
    }

    fn first_index_from(&self, t: EpochMs) -> usize {
        self.panes.partition_point(|p| p.0 < t)
    }

    /// Start of the first pane at or after `t` that holds data.
    pub fn next_pane_from(&self, t: EpochMs) -> Option<EpochMs> {
        self.panes.get(self.first_index_from(t)).map(|p| p.0)
    }

    /// Every series with points in `[start, end)`, its points merged across panes (borrowed
    /// when the window is a single pane), in no particular order.
    pub fn window(&self, start: EpochMs, end: EpochMs) -> Vec<(SeriesId, Cow<'_, SeriesPoints>)> {
        let lo = self.first_index_from(start);
        let hi = self.first_index_from(end);
        let mut merged: Vec<(SeriesId, Cow<'_, SeriesPoints>)> = Vec::new();
        let mut slot_of: Vec<u32> = Vec::new();
        for (_, pane) in &self.panes[lo..hi] {
            for (id, pts) in &pane.entries {
                let i = *id as usize;
                if slot_of.len() <= i {
                    slot_of.resize(i + 1, ABSENT);
                }
                match slot_of[i] {
                    ABSENT => {
                        slot_of[i] = merged.len() as u32;
                        merged.push((*id, Cow::Borrowed(pts)));
                    }
                    s => merged[s as usize].1.to_mut().extend_later(pts),
                }
            }
        }
        merged
    }

    /// The last point of `field` for `series` in the pane just before `start`, if still held
    /// (counters need it to attribute the increase across a window boundary).
    pub fn last_point_before(
        &self,
        series: SeriesId,
        field: FieldId,
        start: EpochMs,
    ) -> Option<(EpochMs, f64)> {
        let prev = start - self.pane_ms;
        let i = self.panes.binary_search_by_key(&prev, |p| p.0).ok()?;
        self.panes[i]
            .1
            .points(series)
            .and_then(|s| s.points(field).last().copied())
    }

    /// Drops the leading panes for which `done(pane_start)` holds.
    pub fn drop_while(&mut self, mut done: impl FnMut(EpochMs) -> bool) {
        let n = self.panes.iter().take_while(|p| done(p.0)).count();
        if n > 0 {
            self.panes.drain(..n);
            self.last = 0;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.panes.is_empty()
    }

    /// Start of the latest pane holding data.
    pub fn last_pane(&self) -> Option<EpochMs> {
        self.panes.last().map(|p| p.0)
    }

    /// Number of (pane, series) entries held.
    pub fn open_series_panes(&self) -> usize {
        self.panes.iter().map(|p| p.1.entries.len()).sum()
    }

    /// Approximate heap bytes held by points and indexes.
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(SeriesId, SeriesPoints)>();
        self.panes
            .iter()
            .map(|(_, p)| {
                p.slot_of.capacity() * 4
                    + p.entries.capacity() * entry
                    + p.entries.iter().map(|e| e.1.heap_bytes()).sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_merge_panes_in_time_order() {
        let mut s = PaneStore::new(60_000);
        s.insert(1, FieldId::GPU_UTIL, 61_000, 2.0);
        s.insert(1, FieldId::GPU_UTIL, 1_000, 1.0);
        s.insert(2, FieldId::GPU_UTIL, 1_000, 5.0);
        let mut w = s.window(0, 120_000);
        w.sort_by_key(|(id, _)| *id);
        assert_eq!(w.len(), 2);
        assert_eq!(
            w[0].1.points(FieldId::GPU_UTIL),
            &[(1_000, 1.0), (61_000, 2.0)]
        );
        assert!(matches!(s.window(0, 60_000)[0].1, Cow::Borrowed(_)));
        assert_eq!(
            s.last_point_before(1, FieldId::GPU_UTIL, 60_000),
            Some((1_000, 1.0))
        );
        assert_eq!(s.next_pane_from(1), Some(60_000));
        s.drop_while(|p| p < 60_000);
        assert_eq!(s.open_series_panes(), 1);
        // inserting into an earlier pane after a later one keeps panes sorted
        s.insert(3, FieldId::GPU_UTIL, 5_000, 1.0);
        assert_eq!(s.next_pane_from(i64::MIN), Some(0));
        assert_eq!(s.last_pane(), Some(60_000));
    }
}
