//! Request-latency state: per pane and service, the exact counts and sums, mergeable
//! sketches of latency and TTFT, per-second request counts, SLO violations and the pods that
//! served. Panes merge into windows exactly (sketch merge is bucket-wise addition).

use crate::decode::latency_json::RequestValues;
use crate::pod_table::PodId;
use crate::sketch::LatencySketch;
use crate::time::{align_down, EpochMs};
use foldhash::fast::FixedState;
use std::collections::{HashMap, HashSet};

pub type ServiceId = u32;

/// Service names, interned.
#[derive(Default)]
pub struct ServiceTable {
    ids: HashMap<Box<str>, ServiceId, FixedState>,
    names: Vec<Box<str>>,
    /// The id returned last: consecutive requests are mostly of one service.
    last: Option<ServiceId>,
}

impl ServiceTable {
    #[inline]
    pub fn intern(&mut self, name: &str) -> ServiceId {
        if let Some(id) = self.last {
            if *self.names[id as usize] == *name {
                return id;
            }
        }
        let id = match self.ids.get(name) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as ServiceId;
                self.names.push(name.into());
                self.ids.insert(name.into(), id);
                id
            }
        };
        self.last = Some(id);
        id
    }

    pub fn name(&self, id: ServiceId) -> &str {
        &self.names[id as usize]
    }
}

/// Requests per second, by second since the epoch. Requests come mostly in time order, so
/// the current second is counted apart and only reaches the map when the second changes.
#[derive(Debug, Clone, Default)]
pub struct SecondCounts {
    map: HashMap<i64, u32, FixedState>,
    /// (second, count) not yet in `map`; count 0 when there is none.
    open: (i64, u32),
}

impl SecondCounts {
    #[inline]
    pub fn add(&mut self, second: i64, n: u32) {
        if self.open.0 == second || self.open.1 == 0 {
            self.open = (second, self.open.1 + n);
        } else {
            *self.map.entry(self.open.0).or_default() += self.open.1;
            self.open = (second, n);
        }
    }

    pub fn merge(&mut self, o: &SecondCounts) {
        for (s, n) in o.iter() {
            self.add(s, n);
        }
    }

    /// (second, count) pairs; a second may appear twice (its counts then add up).
    pub fn iter(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        let open = (self.open.1 > 0).then_some(self.open);
        self.map.iter().map(|(&s, &n)| (s, n)).chain(open)
    }

    pub fn heap_bytes(&self) -> usize {
        self.map.capacity() * 16
    }
}

/// One pane's (or, merged, one window's) requests of one service.
#[derive(Debug, Clone, Default)]
pub struct LatencyAcc {
    pub requests: u64,
    pub errors: u64,
    pub latency_max: f64,
    /// Its sum is order-independent: `latency_mean_ms` is the same for any arrival order.
    pub latency: LatencySketch,
    pub ttft: LatencySketch,
    pub tokens_in: f64,
    pub tokens_out: f64,
    pub slo_violations: u64,
    pub per_second: SecondCounts,
    /// Requests served, by interned (namespace, pod) (see `PodTable`).
    pub pods: HashMap<PodId, u64, FixedState>,
    /// 128-bit hashes of the request ids seen (collisions are out of reach in practice, and
    /// no id string is kept).
    request_ids: HashSet<u128, FixedState>,
}

fn id_hash(id: &str) -> u128 {
    use std::hash::BuildHasher;
    let a = FixedState::with_seed(0x9e37_79b9_7f4a_7c15).hash_one(id);
    let b = FixedState::with_seed(0x2545_f491_4f6c_dd1d).hash_one(id);
    ((a as u128) << 64) | b as u128
}

/// A request's sketch bucket keys when computed beforehand, for `multiplier` (see
/// `LatencySketch::insert_keyed`); `None`: computed on insert.
#[derive(Clone, Copy)]
pub struct KnownKeys {
    pub latency: Option<i32>,
    pub ttft: Option<i32>,
    pub multiplier: f64,
}

impl KnownKeys {
    pub const NONE: KnownKeys = KnownKeys {
        latency: None,
        ttft: None,
        multiplier: 0.0,
    };
}

/// One request, validated, ready to add.
pub struct RequestIn<'a> {
    pub values: RequestValues<'a>,
    pub pod: PodId,
    pub slo_latency_ms: f64,
}

impl LatencyAcc {
    /// Adds a request; false when its `request_id` was already counted (a duplicate).
    #[inline]
    pub fn add(&mut self, req: &RequestIn<'_>) -> bool {
        if !self.add_but_pod(req) {
            return false;
        }
        *self.pods.entry(req.pod).or_default() += 1;
        true
    }

    /// `add` without counting the request in `pods` (the caller counts it).
    #[inline(always)]
    pub(crate) fn add_but_pod(&mut self, req: &RequestIn<'_>) -> bool {
        self.add_but_pod_keyed(req, KnownKeys::NONE)
    }

    /// `add_but_pod` with the sketches' bucket keys computed beforehand, if any.
    #[inline(always)]
    pub(crate) fn add_but_pod_keyed(&mut self, req: &RequestIn<'_>, keys: KnownKeys) -> bool {
        let r = &req.values;
        if !r.request_id.is_empty() && !self.request_ids.insert(id_hash(&r.request_id)) {
            return false;
        }
        self.requests += 1;
        self.errors += r.error as u64;
        self.latency_max = self.latency_max.max(r.latency_ms);
        // Values were validated finite and >= 0, which is all the sketch requires.
        let _ = match keys.latency {
            Some(k) => self.latency.insert_keyed(r.latency_ms, k, keys.multiplier),
            None => self.latency.insert(r.latency_ms),
        };
        if let Some(t) = r.ttft_ms {
            let _ = match keys.ttft {
                Some(k) => self.ttft.insert_keyed(t, k, keys.multiplier),
                None => self.ttft.insert(t),
            };
        }
        self.tokens_in += r.tokens_in;
        self.tokens_out += r.tokens_out;
        self.slo_violations += (r.latency_ms > req.slo_latency_ms) as u64;
        self.per_second.add(r.ts_ms.div_euclid(1000), 1);
        true
    }

    /// Sum of the latencies (ms), exact and order-independent (the sketch's fixed-point sum).
    pub fn latency_sum(&self) -> f64 {
        self.latency.sum()
    }

    /// Adds another pane's requests (disjoint in time from this one's).
    pub fn merge(&mut self, o: &LatencyAcc) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.latency_max = self.latency_max.max(o.latency_max);
        let _ = self.latency.merge(&o.latency);
        let _ = self.ttft.merge(&o.ttft);
        self.tokens_in += o.tokens_in;
        self.tokens_out += o.tokens_out;
        self.slo_violations += o.slo_violations;
        self.per_second.merge(&o.per_second);
        for (k, n) in &o.pods {
            *self.pods.entry(*k).or_default() += n;
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.latency.heap_bytes()
            + self.ttft.heap_bytes()
            + self.per_second.heap_bytes()
            + self.pods.capacity() * 16
            + self.request_ids.capacity() * 17
    }
}

/// Slots of a held accumulator's pod counter (direct-mapped by pod id).
const POD_SLOTS: usize = 8;

/// Requests per pod not yet in an accumulator's `pods` map: a direct-mapped cache by pod
/// id, so a service served by a few pods costs no hash lookup per request. A slot taken by
/// another pod is first added to the map; so is every slot when the accumulator goes back
/// to the store. Counts are integers, so the map ends the same whatever the order.
#[derive(Default)]
struct PodCounts {
    /// (pod, requests); requests 0: empty.
    slots: [(PodId, u64); POD_SLOTS],
}

impl PodCounts {
    #[inline(always)]
    fn count(&mut self, pod: PodId, acc: &mut LatencyAcc) {
        let slot = &mut self.slots[pod as usize % POD_SLOTS];
        if slot.0 == pod {
            slot.1 += 1;
        } else {
            if slot.1 > 0 {
                *acc.pods.entry(slot.0).or_default() += slot.1;
            }
            *slot = (pod, 1);
        }
    }

    fn flush(&mut self, acc: &mut LatencyAcc) {
        for slot in &mut self.slots {
            if slot.1 > 0 {
                *acc.pods.entry(slot.0).or_default() += slot.1;
            }
            slot.1 = 0;
        }
    }
}

#[derive(Default)]
struct HeldAcc {
    acc: Option<LatencyAcc>,
    pods: PodCounts,
}

/// One pane's accumulators, by service id, taken out of a [`LatencyStore`] while a
/// batch's requests stay in that pane (`LatencyStore::add_through`); the owner must
/// `put_back` before anything else reads or writes the store's latency state.
#[derive(Default)]
pub struct PaneCursor {
    /// The pane: [start, end); empty (0, 0) until the first request.
    start: EpochMs,
    end: EpochMs,
    held: Vec<HeldAcc>,
    /// Services whose accumulator is held.
    taken: Vec<ServiceId>,
}

impl PaneCursor {
    /// Requests before this time are not for the cursor (add them with `acc_mut`).
    #[inline(always)]
    pub fn start(&self) -> EpochMs {
        self.start
    }
}

/// Latency panes, sorted by start, aligned like the GPU panes.
pub struct LatencyStore {
    pane_ms: i64,
    panes: Vec<(EpochMs, HashMap<ServiceId, LatencyAcc, FixedState>)>,
    /// Index of the pane used last (checked before use: panes are inserted and dropped).
    last: usize,
}

impl LatencyStore {
    pub fn new(pane_ms: i64) -> LatencyStore {
        LatencyStore {
            pane_ms,
            panes: Vec::new(),
            last: 0,
        }
    }

    #[inline]
    pub fn acc_mut(&mut self, service: ServiceId, ts: EpochMs) -> &mut LatencyAcc {
        let i = self.pane_index(ts);
        self.panes[i].1.entry(service).or_default()
    }

    /// The index of the pane holding `ts`, inserted when missing.
    #[inline]
    fn pane_index(&mut self, ts: EpochMs) -> usize {
        // Requests come mostly in time order: the pane used last is the common case, found
        // without a division.
        let in_last = |p: &(EpochMs, _)| ts >= p.0 && ts - p.0 < self.pane_ms;
        let i = if self.panes.get(self.last).is_some_and(in_last) {
            self.last
        } else {
            let start = align_down(ts, self.pane_ms);
            match self.panes.binary_search_by_key(&start, |p| p.0) {
                Ok(i) => i,
                Err(i) => {
                    self.panes.insert(i, (start, HashMap::default()));
                    i
                }
            }
        };
        self.last = i;
        i
    }

    /// Adds a request at or after the cursor's pane (`ts >= cursor.start()`), through the
    /// cursor: the accumulator of the cursor's pane and `service` is taken out of the store
    /// on first use and stays in the cursor while the requests stay in that pane. A request
    /// of a later pane moves the cursor there (putting back what it holds). False for a
    /// duplicate, as `LatencyAcc::add`.
    #[inline(always)]
    pub fn add_through(
        &mut self,
        cursor: &mut PaneCursor,
        service: ServiceId,
        req: &RequestIn<'_>,
        keys: KnownKeys,
    ) -> bool {
        let ts = req.values.ts_ms;
        if ts >= cursor.end {
            self.move_cursor(cursor, ts);
        }
        let s = service as usize;
        if s >= cursor.held.len() || cursor.held[s].acc.is_none() {
            self.take_into(cursor, service);
        }
        let held = &mut cursor.held[s];
        let Some(acc) = held.acc.as_mut() else {
            unreachable!("taken just above")
        };
        if !acc.add_but_pod_keyed(req, keys) {
            return false;
        }
        held.pods.count(req.pod, acc);
        true
    }

    #[inline(never)]
    fn move_cursor(&mut self, cursor: &mut PaneCursor, ts: EpochMs) {
        self.put_back(cursor);
        let start = align_down(ts, self.pane_ms);
        cursor.start = start;
        cursor.end = start.saturating_add(self.pane_ms);
    }

    #[inline(never)]
    fn take_into(&mut self, cursor: &mut PaneCursor, service: ServiceId) {
        let s = service as usize;
        if s >= cursor.held.len() {
            cursor.held.resize_with(s + 1, HeldAcc::default);
        }
        let i = self.pane_index(cursor.start);
        let acc = self.panes[i].1.remove(&service).unwrap_or_default();
        cursor.held[s].acc = Some(acc);
        cursor.taken.push(service);
    }

    /// Returns every accumulator the cursor holds to the store (its pane stays set): the
    /// store is then complete again, as if every request had been added by `acc_mut`.
    pub fn put_back(&mut self, cursor: &mut PaneCursor) {
        if cursor.taken.is_empty() {
            return;
        }
        let i = self.pane_index(cursor.start);
        for service in cursor.taken.drain(..) {
            let held = &mut cursor.held[service as usize];
            if let Some(mut acc) = held.acc.take() {
                held.pods.flush(&mut acc);
                self.panes[i].1.insert(service, acc);
            }
        }
    }

    pub fn next_pane_from(&self, t: EpochMs) -> Option<EpochMs> {
        let i = self.panes.partition_point(|p| p.0 < t);
        self.panes.get(i).map(|p| p.0)
    }

    pub fn last_pane(&self) -> Option<EpochMs> {
        self.panes.last().map(|p| p.0)
    }

    /// Every service with requests in `[start, end)`, merged across panes, by service id.
    pub fn window(&self, start: EpochMs, end: EpochMs) -> Vec<(ServiceId, LatencyAcc)> {
        let lo = self.panes.partition_point(|p| p.0 < start);
        let hi = self.panes.partition_point(|p| p.0 < end);
        let mut merged: HashMap<ServiceId, LatencyAcc, FixedState> = HashMap::default();
        for (_, pane) in &self.panes[lo..hi] {
            for (id, acc) in pane {
                merged.entry(*id).or_default().merge(acc);
            }
        }
        let mut out: Vec<_> = merged.into_iter().collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    pub fn drop_while(&mut self, mut done: impl FnMut(EpochMs) -> bool) {
        let n = self.panes.iter().take_while(|p| done(p.0)).count();
        self.panes.drain(..n);
        self.last = 0;
    }

    pub fn heap_bytes(&self) -> usize {
        self.panes
            .iter()
            .flat_map(|p| p.1.values())
            .map(|a| a.heap_bytes() + 64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ts_ms: i64, latency_ms: f64, pod: PodId, id: &'static str) -> RequestIn<'static> {
        RequestIn {
            values: RequestValues {
                ts_ms,
                latency_ms,
                ttft_ms: Some(latency_ms / 4.0),
                error: latency_ms > 1000.0,
                tokens_in: 10.0,
                tokens_out: 5.0,
                request_id: id.into(),
            },
            pod,
            slo_latency_ms: 200.0,
        }
    }

    #[test]
    fn panes_merge_into_windows_exactly() {
        let mut s = LatencyStore::new(60_000);
        assert!(s.acc_mut(0, 1_000).add(&req(1_000, 100.0, 0, "r1")));
        assert!(!s.acc_mut(0, 1_000).add(&req(1_000, 100.0, 0, "r1")));
        assert!(s.acc_mut(0, 61_000).add(&req(61_000, 300.0, 1, "r2")));
        assert!(s.acc_mut(0, 62_000).add(&req(62_000, 2000.0, 1, "")));
        let w = s.window(0, 120_000);
        assert_eq!(w.len(), 1);
        let a = &w[0].1;
        assert_eq!((a.requests, a.errors, a.slo_violations), (3, 1, 2));
        assert_eq!((a.latency_sum(), a.latency_max), (2400.0, 2000.0));
        assert_eq!((a.tokens_in, a.tokens_out), (30.0, 15.0));
        assert_eq!(a.latency.count(), 3);
        assert_eq!(a.per_second.iter().count(), 3);
        assert_eq!(a.pods.len(), 2);
        s.drop_while(|p| p < 60_000);
        assert_eq!(s.next_pane_from(0), Some(60_000));
    }

    /// Adding through a cursor (moved forward, older rows beside it, put back mid-way, pods
    /// colliding in the direct-mapped slots, keys given, given for another multiplier, or
    /// not given) ends with the store `acc_mut` + `add` builds.
    #[test]
    fn the_cursor_path_adds_what_acc_mut_adds() {
        use crate::sketch_key::KeyFn;
        // Rows in pairs of one id and service: mostly duplicates (when in one pane).
        let ids: Vec<String> = (0..3000).map(|i| format!("r{}", i / 2)).collect();
        let mut duplicates = 0;
        let mut plain = LatencyStore::new(60_000);
        let mut held = LatencyStore::new(60_000);
        let mut cursor = PaneCursor::default();
        let mult = LatencySketch::new().multiplier();
        for i in 0..3000i64 {
            let ts = 1_000 + i * 70 - (i % 7) * 9_000; // forward, with older rows
            let mut r = req(ts, 3.0 + (i % 97) as f64 * 7.3, (i % 23) as PodId * 8, "");
            r.values.request_id = ids[i as usize].as_str().into();
            r.values.tokens_in = 0.1 * (i % 13) as f64;
            let sid = (i / 2 % 5) as ServiceId;
            let new = plain.acc_mut(sid, ts).add(&r);
            duplicates += !new as usize;
            let keys = match i % 3 {
                0 => KnownKeys::NONE,
                1 => KnownKeys {
                    latency: Some(KeyFn::get().key(r.values.latency_ms, mult)),
                    ttft: Some(KeyFn::get().key(r.values.ttft_ms.unwrap_or(0.0), mult)),
                    multiplier: mult,
                },
                _ => KnownKeys {
                    latency: Some(-5),
                    ttft: Some(7),
                    multiplier: 1.0, // not the sketches': ignored
                },
            };
            let added = if ts >= cursor.start() {
                held.add_through(&mut cursor, sid, &r, keys)
            } else {
                held.acc_mut(sid, ts).add(&r)
            };
            assert_eq!(added, new, "row {i} through the cursor");
            if i % 500 == 0 {
                held.put_back(&mut cursor);
            }
        }
        held.put_back(&mut cursor);
        assert!(duplicates > 500, "{duplicates} duplicates");
        for (start, end) in [(0, 60_000), (60_000, 180_000), (0, 1 << 40)] {
            let (a, b) = (plain.window(start, end), held.window(start, end));
            assert_eq!(a.len(), b.len());
            for ((sa, x), (sb, y)) in a.iter().zip(&b) {
                assert_eq!(sa, sb);
                assert_eq!(
                    (x.requests, x.errors, x.slo_violations),
                    (y.requests, y.errors, y.slo_violations)
                );
                assert_eq!(x.latency, y.latency);
                assert_eq!(x.ttft, y.ttft);
                assert_eq!(x.tokens_in.to_bits(), y.tokens_in.to_bits());
                assert_eq!(x.latency_max.to_bits(), y.latency_max.to_bits());
                assert_eq!(x.pods, y.pods);
                let (mut p, mut q): (Vec<_>, Vec<_>) =
                    (x.per_second.iter().collect(), y.per_second.iter().collect());
                p.sort_unstable();
                q.sort_unstable();
                assert_eq!(p, q);
            }
        }
    }

    #[test]
    fn second_counts_add_up_in_any_order() {
        let mut c = SecondCounts::default();
        for s in [5, 5, 6, 5, 7, 7, 6] {
            c.add(s, 1);
        }
        let mut m = SecondCounts::default();
        m.add(7, 2);
        m.merge(&c);
        let mut total: HashMap<i64, u32> = HashMap::new();
        for (s, n) in m.iter() {
            *total.entry(s).or_default() += n;
        }
        assert_eq!(total, HashMap::from([(5, 3), (6, 2), (7, 4)]));
        assert_eq!(SecondCounts::default().iter().count(), 0);
    }
}
