//! Input positions for exactly-once restarts. Per input partition: the smallest offset of an
//! event still held in a pane (a restart must re-read from there, because those events are
//! not yet in any written file), and the offset after the last one consumed. After a restart,
//! offsets below `replay_until` are re-reads of input whose late and dead rows were already
//! written, so they must not produce those rows again.

use super::ingest::PartitionKey;
use crate::time::{align_down, EpochMs};
use std::collections::{BTreeMap, HashMap};

/// Where a restart of one input partition resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Re-read from here: every event at or after it that a pane still holds.
    pub commit_offset: i64,
    /// One past the largest offset consumed.
    pub next_offset: i64,
}

#[derive(Debug)]
pub(crate) struct Positions {
    pane_ms: i64,
    /// Pane start -> (partition, smallest offset of an event that pane holds).
    held: BTreeMap<EpochMs, Vec<(PartitionKey, i64)>>,
    next: HashMap<PartitionKey, i64>,
    replay_until: HashMap<PartitionKey, i64>,
    /// Per partition resumed: the watermark its windows were written through (by whichever
    /// process last committed it); its events for windows ending by then are not new.
    floor: HashMap<PartitionKey, EpochMs>,
    // The current batch (one partition): its key, replay bound, largest offset, and the
    // panes it already noted (events mostly arrive in time order, so this stays tiny).
    batch_key: PartitionKey,
    batch_replay_until: i64,
    pub batch_floor: EpochMs,
    batch_next: i64,
    batch_panes: Vec<EpochMs>,
}

impl Positions {
    pub fn new(pane_ms: i64) -> Positions {
        Positions {
            pane_ms,
            held: BTreeMap::new(),
            next: HashMap::new(),
            replay_until: HashMap::new(),
            floor: HashMap::new(),
            batch_key: 0,
            batch_replay_until: i64::MIN,
            batch_floor: EpochMs::MIN,
            batch_next: i64::MIN,
            batch_panes: Vec::new(),
        }
    }

    pub fn begin_batch(&mut self, key: PartitionKey) {
        self.batch_key = key;
        self.batch_replay_until = self.replay_until.get(&key).copied().unwrap_or(i64::MIN);
        self.batch_floor = self.floor.get(&key).copied().unwrap_or(EpochMs::MIN);
        self.batch_next = i64::MIN;
        self.batch_panes.clear();
    }

    /// Notes the largest offset of the batch (one past it is the next to consume).
    pub fn consumed_through(&mut self, last_offset: i64) {
        self.batch_next = self.batch_next.max(last_offset.saturating_add(1));
    }

    pub fn end_batch(&mut self) {
        if self.batch_next != i64::MIN {
            let n = self.next.entry(self.batch_key).or_insert(i64::MIN);
            *n = (*n).max(self.batch_next);
        }
        self.batch_next = i64::MIN;
    }

    /// True when `offset` of the current batch re-reads input already accounted for.
    #[inline]
    pub fn is_replay(&self, offset: i64) -> bool {
        offset < self.batch_replay_until
    }

    /// Notes that a pane now holds the event at `offset` (time `ts`) of the current batch.
    #[inline(always)]
    pub fn hold(&mut self, ts: EpochMs, offset: i64) {
        // Events come mostly in time order: the pane noted last is the common case.
        if let Some(&last) = self.batch_panes.last() {
            if ts >= last && ts < last + self.pane_ms {
                return;
            }
        }
        self.hold_new_pane(ts, offset);
    }

    #[inline(never)]
    fn hold_new_pane(&mut self, ts: EpochMs, offset: i64) {
        let pane = align_down(ts, self.pane_ms);
        if self.batch_panes.len() < 64 && self.batch_panes.contains(&pane) {
            return;
        }
        if self.batch_panes.len() < 64 {
            self.batch_panes.push(pane);
        }
        let key = self.batch_key;
        let entries = self.held.entry(pane).or_default();
        match entries.iter_mut().find(|e| e.0 == key) {
            Some(e) => e.1 = e.1.min(offset),
            None => entries.push((key, offset)),
        }
    }

    /// Forgets the panes `done` says are dropped (in time order, from the oldest).
    pub fn drop_while(&mut self, mut done: impl FnMut(EpochMs) -> bool) {
        while let Some((&pane, _)) = self.held.first_key_value() {
            if !done(pane) {
                break;
            }
            self.held.pop_first();
        }
    }

    pub fn set_replay_until(&mut self, key: PartitionKey, offset: i64) {
        self.replay_until.insert(key, offset);
    }

    pub fn set_floor(&mut self, key: PartitionKey, watermark: EpochMs) {
        self.floor.insert(key, watermark);
    }

    /// Every partition seen or resumed, with where a restart resumes it.
    pub fn all(&self) -> Vec<(PartitionKey, Position)> {
        let mut keys: Vec<PartitionKey> = self.next.keys().copied().collect();
        keys.extend(self.replay_until.keys().copied());
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .map(|key| {
                let next = self.next.get(&key).copied();
                let replay = self.replay_until.get(&key).copied();
                // Nothing consumed since a resume: the resume point still stands.
                let next_offset = next.or(replay).unwrap_or(0);
                let held = self
                    .held
                    .values()
                    .flat_map(|v| v.iter())
                    .filter(|e| e.0 == key)
                    .map(|e| e.1)
                    .min();
                let commit_offset = held.map_or(next_offset, |h| h.min(next_offset));
                (
                    key,
                    Position {
                        commit_offset,
                        next_offset,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_offset_is_the_oldest_event_still_held() {
        let mut p = Positions::new(10_000);
        p.begin_batch(1);
        for (off, ts) in [(5, 1_000), (6, 2_000), (7, 12_000), (8, 25_000)] {
            p.hold(ts, off);
            p.consumed_through(off);
        }
        p.end_batch();
        let at = |p: &Positions| p.all()[0].1;
        assert_eq!(
            at(&p),
            Position {
                commit_offset: 5,
                next_offset: 9
            }
        );
        p.drop_while(|pane| pane < 10_000);
        assert_eq!(
            at(&p),
            Position {
                commit_offset: 7,
                next_offset: 9
            }
        );
        p.drop_while(|_| true);
        assert_eq!(
            at(&p),
            Position {
                commit_offset: 9,
                next_offset: 9
            }
        );
    }

    #[test]
    fn replay_bound_applies_to_its_partition_only() {
        let mut p = Positions::new(1_000);
        p.set_replay_until(2, 100);
        p.begin_batch(2);
        assert!(p.is_replay(99) && !p.is_replay(100));
        p.end_batch();
        p.begin_batch(3);
        assert!(!p.is_replay(0));
        // Resumed but nothing consumed: the resume point is where to restart.
        assert_eq!(
            p.all(),
            vec![(
                2,
                Position {
                    commit_offset: 100,
                    next_offset: 100
                }
            )]
        );
    }
}
