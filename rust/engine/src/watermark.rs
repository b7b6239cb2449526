//! Event-time watermarks: per input partition (a source and partition, as one key), the
//! largest event time seen; overall, the minimum over partitions that are not idle, minus
//! the allowed lateness. Never moves back.
//!
//! Each partition also knows how far its data covers event time: a reading at t covers
//! [t, t + sample_interval), a request ends at its own time. When every partition has gone
//! quiet, windows ending at or before the furthest coverage are complete (`quiet_close`,
//! docs/design.md "Windows close on a quiet stream").

use crate::time::EpochMs;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy)]
struct PartitionClock {
    max_ts: EpochMs,
    /// The end of the event time its data covers (`EpochMs::MIN`: none yet).
    covered_until: EpochMs,
    idle: bool,
}

#[derive(Debug)]
pub struct Watermarks {
    lateness_ms: i64,
    /// How long one telemetry reading stands for (`sample_interval_s`).
    sample_interval_ms: i64,
    partitions: BTreeMap<u64, PartitionClock>,
    /// The watermark windows were last closed at; windows ending at or before it are final.
    current: EpochMs,
}

impl Watermarks {
    pub fn new(lateness_ms: i64, sample_interval_ms: i64) -> Watermarks {
        Watermarks {
            lateness_ms,
            sample_interval_ms,
            partitions: BTreeMap::new(),
            current: EpochMs::MIN,
        }
    }

    /// Records the newest reading time and the newest request end time of a batch from
    /// `partition` (`EpochMs::MIN`: none of that kind); the partition counts as active again.
    pub fn observe(&mut self, partition: u64, newest_reading: EpochMs, newest_request: EpochMs) {
        let ts = newest_reading.max(newest_request);
        let covered = if newest_reading == EpochMs::MIN {
            newest_request
        } else {
            newest_request.max(newest_reading.saturating_add(self.sample_interval_ms))
        };
        let c = self.partitions.entry(partition).or_insert(PartitionClock {
            max_ts: ts,
            covered_until: covered,
            idle: false,
        });
        c.max_ts = c.max_ts.max(ts);
        c.covered_until = c.covered_until.max(covered);
        c.idle = false;
    }

    /// Registers `partition` before its first event: it holds the watermark where it is
    /// until it sends data or is marked idle.
    pub fn expect(&mut self, partition: u64) {
        let c = self.partitions.entry(partition).or_insert(PartitionClock {
            max_ts: EpochMs::MIN,
            covered_until: EpochMs::MIN,
            idle: false,
        });
        c.idle = false;
    }

    /// Stops `partition` from holding the watermark back until it sends data again.
    pub fn mark_idle(&mut self, partition: u64) {
        if let Some(c) = self.partitions.get_mut(&partition) {
            c.idle = true;
        }
    }

    /// The watermark the data supports now (not yet applied): `None` before any data or
    /// when every partition is idle.
    pub fn candidate(&self) -> Option<EpochMs> {
        self.partitions
            .values()
            .filter(|c| !c.idle)
            .map(|c| c.max_ts)
            .min()
            .map(|m| m.saturating_sub(self.lateness_ms))
    }

    /// Moves the watermark forward to what the data supports; returns the new value.
    pub fn advance(&mut self) -> EpochMs {
        if let Some(c) = self.candidate() {
            self.current = self.current.max(c);
        }
        self.current
    }

    /// Moves the watermark forward to at least `ts` (idle sources, end of input).
    pub fn advance_to(&mut self, ts: EpochMs) -> EpochMs {
        self.current = self.current.max(ts);
        self.current
    }

    /// How far the data of every partition covers event time together: the newest reading's
    /// time plus the sample interval, or the newest request's end time, whichever is later
    /// (`None` before any data). Once every partition is quiet, windows ending at or before
    /// it hold all the data they will get.
    pub fn covered_until(&self) -> Option<EpochMs> {
        self.partitions
            .values()
            .map(|c| c.covered_until)
            .filter(|&t| t != EpochMs::MIN)
            .max()
    }

    /// Every partition has gone quiet (the caller judges that by the wall clock): moves the
    /// watermark to `covered_until`, so the windows the data covers close and what arrives
    /// for them afterwards is late. Returns the watermark.
    pub fn quiet_close(&mut self) -> EpochMs {
        self.advance();
        match self.covered_until() {
            Some(t) => self.advance_to(t),
            None => self.current,
        }
    }

    /// Every partition's clock: (key, newest event time, covered until, idle).
    pub fn clocks(&self) -> Vec<(u64, EpochMs, EpochMs, bool)> {
        self.partitions
            .iter()
            .map(|(&k, c)| (k, c.max_ts, c.covered_until, c.idle))
            .collect()
    }

    /// Takes the clocks of other engines reading the same partitions (shards of one input,
    /// each seeing only its own rows): a partition's times become the later of both, and it
    /// is active when either saw it active. Every engine then holds one engine's watermark.
    pub fn merge_clocks(&mut self, clocks: &[(u64, EpochMs, EpochMs, bool)]) {
        for &(key, max_ts, covered_until, idle) in clocks {
            let c = self.partitions.entry(key).or_insert(PartitionClock {
                max_ts,
                covered_until,
                idle,
            });
            c.max_ts = c.max_ts.max(max_ts);
            c.covered_until = c.covered_until.max(covered_until);
            c.idle &= idle;
        }
    }

    pub fn max_seen(&self) -> Option<EpochMs> {
        self.partitions
            .values()
            .map(|c| c.max_ts)
            .filter(|&t| t != EpochMs::MIN)
            .max()
    }

    pub fn current(&self) -> EpochMs {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: EpochMs = EpochMs::MIN;

    #[test]
    fn shards_merging_clocks_hold_one_engines_watermark() {
        // One engine sees both halves of a batch; two shards see one half each.
        let mut one = Watermarks::new(30_000, 1000);
        one.mark_idle(0);
        one.observe(0, 100_000, NONE);
        one.observe(0, 90_000, 95_000);
        one.observe(1, 50_000, NONE);
        let (mut a, mut b) = (Watermarks::new(30_000, 1000), Watermarks::new(30_000, 1000));
        a.mark_idle(0);
        b.mark_idle(0);
        a.observe(0, 100_000, NONE);
        b.observe(0, 90_000, 95_000);
        b.observe(1, 50_000, NONE);
        let (ca, cb) = (a.clocks(), b.clocks());
        a.merge_clocks(&cb);
        b.merge_clocks(&ca);
        for w in [&mut a, &mut b] {
            assert_eq!(w.clocks(), one.clocks());
            assert_eq!(w.advance(), one.advance());
            assert_eq!(w.covered_until(), Some(101_000));
        }
    }

    #[test]
    fn slowest_active_partition_holds_the_watermark() {
        let mut w = Watermarks::new(30_000, 1000);
        assert_eq!(w.candidate(), None);
        w.observe(0, 100_000, NONE);
        w.observe(1, 70_000, NONE);
        assert_eq!(w.advance(), 40_000);
        w.mark_idle(1);
        assert_eq!(w.advance(), 70_000);
        // The idle partition wakes up behind: the watermark does not move back.
        w.observe(1, 50_000, NONE);
        assert_eq!(w.advance(), 70_000);
        w.observe(1, 200_000, NONE);
        assert_eq!(w.advance(), 70_000);
        w.observe(0, 300_000, NONE);
        assert_eq!(w.advance(), 170_000);
    }

    #[test]
    fn explicit_advance_is_monotone() {
        let mut w = Watermarks::new(0, 1000);
        assert_eq!(w.advance_to(10), 10);
        assert_eq!(w.advance_to(5), 10);
    }

    #[test]
    fn quiet_close_reaches_what_readings_and_requests_cover() {
        let mut w = Watermarks::new(5_000, 1000);
        assert_eq!(w.covered_until(), None);
        w.expect(7);
        // A reading at 59 s covers up to 60 s; the watermark stays back by the lateness.
        w.observe(0, 59_000, NONE);
        w.observe(1, 30_000, NONE);
        assert_eq!(w.covered_until(), Some(60_000));
        // Partition 7, assigned but silent, holds the watermark until it is marked idle.
        assert_eq!(w.advance(), EpochMs::MIN);
        w.mark_idle(7);
        assert_eq!(w.advance(), 25_000);
        // A request ends at its own time: 59.5 s does not reach past the reading's cover.
        w.observe(2, NONE, 59_500);
        assert_eq!(w.covered_until(), Some(60_000));
        assert_eq!(w.quiet_close(), 60_000);
        // A later request end time moves the cover; the watermark never moves back.
        w.observe(2, NONE, 61_250);
        assert_eq!(w.covered_until(), Some(61_250));
        assert_eq!(w.quiet_close(), 61_250);
        w.observe(0, 10_000, NONE);
        assert_eq!(w.quiet_close(), 61_250);
    }

    #[test]
    fn quiet_close_without_data_changes_nothing() {
        let mut w = Watermarks::new(0, 1000);
        w.expect(0);
        assert_eq!(w.quiet_close(), EpochMs::MIN);
    }
}
