//! Event-time watermarks: per input partition (a source and partition, as one key), the
//! largest event time seen; overall, the minimum over partitions that are not idle, minus
//! the allowed lateness. Never moves back.

use crate::time::EpochMs;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy)]
struct PartitionClock {
    max_ts: EpochMs,
    idle: bool,
}

#[derive(Debug)]
pub struct Watermarks {
    lateness_ms: i64,
    partitions: BTreeMap<u64, PartitionClock>,
    /// The watermark windows were last closed at; windows ending at or before it are final.
    current: EpochMs,
}

impl Watermarks {
    pub fn new(lateness_ms: i64) -> Watermarks {
        Watermarks {
            lateness_ms,
            partitions: BTreeMap::new(),
            current: EpochMs::MIN,
        }
    }

    /// Records an event time from `partition`; the partition counts as active again.
    pub fn observe(&mut self, partition: u64, ts: EpochMs) {
        let c = self.partitions.entry(partition).or_insert(PartitionClock {
            max_ts: ts,
            idle: false,
        });
        c.max_ts = c.max_ts.max(ts);
        c.idle = false;
    }

    /// Registers `partition` before its first event: it holds the watermark where it is
    /// until it sends data or is marked idle.
    pub fn expect(&mut self, partition: u64) {
        let c = self.partitions.entry(partition).or_insert(PartitionClock {
            max_ts: EpochMs::MIN,
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

    #[test]
    fn slowest_active_partition_holds_the_watermark() {
        let mut w = Watermarks::new(30_000);
        assert_eq!(w.candidate(), None);
        w.observe(0, 100_000);
        w.observe(1, 70_000);
        assert_eq!(w.advance(), 40_000);
        w.mark_idle(1);
        assert_eq!(w.advance(), 70_000);
        // The idle partition wakes up behind: the watermark does not move back.
        w.observe(1, 50_000);
        assert_eq!(w.advance(), 70_000);
        w.observe(1, 200_000);
        assert_eq!(w.advance(), 70_000);
        w.observe(0, 300_000);
        assert_eq!(w.advance(), 170_000);
    }

    #[test]
    fn explicit_advance_is_monotone() {
        let mut w = Watermarks::new(0);
        assert_eq!(w.advance_to(10), 10);
        assert_eq!(w.advance_to(5), 10);
    }
}
