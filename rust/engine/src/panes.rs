//! Pane store: every point lives once, in the pane (a slice of time as long as the greatest
//! common divisor of all window sizes and slides) that holds it. A window is the union of
//! its panes, so tumbling and hopping windows of several sizes share one copy of the data.

use crate::fields::FieldId;
use crate::series::SeriesId;
use crate::time::{align_down, EpochMs};
use crate::window::{Insert, SeriesPoints};
use foldhash::fast::FixedState;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

type Pane = HashMap<SeriesId, SeriesPoints, FixedState>;

pub struct PaneStore {
    pane_ms: i64,
    panes: BTreeMap<EpochMs, Pane>,
}

impl PaneStore {
    pub fn new(pane_ms: i64) -> PaneStore {
        assert!(pane_ms > 0, "pane length must be positive");
        PaneStore {
            pane_ms,
            panes: BTreeMap::new(),
        }
    }

    pub fn pane_ms(&self) -> i64 {
        self.pane_ms
    }

    pub fn insert(&mut self, series: SeriesId, field: FieldId, ts: EpochMs, v: f64) -> Insert {
        let pane = align_down(ts, self.pane_ms);
        self.panes
            .entry(pane)
            .or_default()
            .entry(series)
            .or_default()
            .insert(field, ts, v)
    }

    /// Start of the first pane at or after `t` that holds data.
    pub fn next_pane_from(&self, t: EpochMs) -> Option<EpochMs> {
        self.panes.range(t..).next().map(|(&k, _)| k)
    }

    /// Every series with points in `[start, end)`, its points merged across panes (borrowed
    /// when the window is a single pane).
    pub fn window(&self, start: EpochMs, end: EpochMs) -> Vec<(SeriesId, Cow<'_, SeriesPoints>)> {
        let mut merged: HashMap<SeriesId, Cow<'_, SeriesPoints>, FixedState> = HashMap::default();
        for pane in self.panes.range(start..end).map(|(_, p)| p) {
            for (&id, pts) in pane {
                match merged.get_mut(&id) {
                    Some(m) => m.to_mut().extend_later(pts),
                    None => {
                        merged.insert(id, Cow::Borrowed(pts));
                    }
                }
            }
        }
        merged.into_iter().collect()
    }

    /// The last point of `field` for `series` in the pane just before `start`, if still held
    /// (counters need it to attribute the increase across a window boundary).
    pub fn last_point_before(
        &self,
        series: SeriesId,
        field: FieldId,
        start: EpochMs,
    ) -> Option<(EpochMs, f64)> {
        self.panes
            .get(&(start - self.pane_ms))
            .and_then(|p| p.get(&series))
            .and_then(|s| s.points(field).last().copied())
    }

    /// Drops the leading panes for which `done(pane_start)` holds.
    pub fn drop_while(&mut self, mut done: impl FnMut(EpochMs) -> bool) {
        while let Some(entry) = self.panes.first_entry() {
            if !done(*entry.key()) {
                break;
            }
            entry.remove();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.panes.is_empty()
    }

    /// Start of the latest pane holding data.
    pub fn last_pane(&self) -> Option<EpochMs> {
        self.panes.keys().next_back().copied()
    }

    /// Number of (pane, series) entries held.
    pub fn open_series_panes(&self) -> usize {
        self.panes.values().map(|p| p.len()).sum()
    }

    /// Approximate heap bytes held by points and maps.
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(SeriesId, SeriesPoints)>() + 8;
        self.panes
            .values()
            .map(|p| p.capacity() * entry + p.values().map(|s| s.heap_bytes()).sum::<usize>())
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
    }
}
