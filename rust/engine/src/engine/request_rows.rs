//! Columnar request events into the latency panes. A plain row (valid values, a service
//! named, open for every window family) takes a short path: each dictionary entry of the
//! service and of (namespace, pod) is resolved to its id once per batch, and no per-row
//! strings or request structs are built. Any other row takes the per-message path
//! (`settle_request`), which checks it, dead-letters it or records it late exactly as it
//! does JSON events; both paths add the same values, so results do not depend on which.

use super::ingest::{
    add_request, closed_until, open_everywhere_from, service_id, settle_request, Origin, State,
};
use crate::config::EngineConfig;
use crate::decode::arrow_cols::{Keys, StrCol};
use crate::decode::latency_columnar::LatencyBatch;
use crate::latency_store::{KnownKeys, PaneCursor, RequestIn};
use crate::pod_table::PodId;
use crate::sketch::LatencySketch;
use crate::sketch_key::KeyFn;
use crate::time::{EpochMs, MIN_VALID_MS};
use arrow_buffer::NullBuffer;

const UNRESOLVED: u32 = u32::MAX;

/// A label column read as codes: 0 for absent, null or an out-of-range key (all read as
/// ""), else the dictionary key + 1; plain string columns have no codes.
enum LabelCodes<'b, 'a> {
    Absent,
    /// A dictionary column; its nulls and value count are read once, not per row.
    Dict {
        keys: &'b Keys<'a>,
        nulls: Option<&'b NullBuffer>,
        values: &'b StrCol<'a>,
        n_values: usize,
        col: &'b StrCol<'a>,
    },
    Plain(&'b StrCol<'a>),
}

impl<'b, 'a> LabelCodes<'b, 'a> {
    fn of(col: Option<&'b StrCol<'a>>) -> Self {
        match col {
            None => LabelCodes::Absent,
            Some(c) => match c.dictionary() {
                Some((keys, values)) => LabelCodes::Dict {
                    keys,
                    nulls: c.dictionary_nulls(),
                    values,
                    n_values: values.len(),
                    col: c,
                },
                None => LabelCodes::Plain(c),
            },
        }
    }

    /// Codes for the dictionary's entries: the dictionary length + 1.
    fn cardinality(&self) -> usize {
        match self {
            LabelCodes::Dict { n_values, .. } => n_values + 1,
            _ => 1,
        }
    }

    /// The codes of the rows `from..from + out.len()` into `out`, one loop per key type
    /// (the per-row match and null test then leave the row loop): 0 for absent, null or an
    /// out-of-range key (all read as ""), else the dictionary key + 1. False for a plain
    /// column, which has no codes.
    fn fill_codes(&self, from: usize, out: &mut [u32]) -> bool {
        match self {
            LabelCodes::Absent => out.fill(0),
            LabelCodes::Plain(_) => return false,
            LabelCodes::Dict {
                keys,
                nulls,
                n_values,
                ..
            } => {
                let (n, len) = (*n_values, out.len());
                macro_rules! each {
                    ($k:expr) => {
                        for (o, &k) in out.iter_mut().zip(&$k[from..from + len]) {
                            // As `Keys::get`: a negative key reads as 0.
                            #[allow(clippy::unnecessary_cast)]
                            let k = k.max(0) as usize;
                            *o = if k < n { k as u32 + 1 } else { 0 };
                        }
                    };
                }
                match keys {
                    Keys::I8(k) => each!(k),
                    Keys::I16(k) => each!(k),
                    Keys::I32(k) => each!(k),
                    Keys::I64(k) => each!(k),
                    Keys::U8(k) => each!(k),
                    Keys::U16(k) => each!(k),
                    Keys::U32(k) => each!(k),
                    Keys::U64(k) => each!(k),
                }
                if let Some(b) = nulls {
                    for (j, o) in out.iter_mut().enumerate() {
                        if b.is_null(from + j) {
                            *o = 0;
                        }
                    }
                }
            }
        }
        true
    }

    /// The text of a code from `fill_codes`.
    fn text_of(&self, code: usize) -> &'b str {
        match self {
            LabelCodes::Dict { values, .. } if code > 0 => values.get(code - 1).unwrap_or(""),
            _ => "",
        }
    }

    /// The text at row `i` ("" for absent or null).
    #[inline]
    fn text(&self, i: usize) -> &'b str {
        match self {
            LabelCodes::Absent => "",
            LabelCodes::Plain(c) | LabelCodes::Dict { col: c, .. } => c.get(i).unwrap_or(""),
        }
    }
}

/// Rows whose label codes are read per block.
const CODE_BLOCK: usize = 1024;

/// For one block of rows: the codes (`LabelCodes::fill_codes`) of service, namespace and
/// pod, and the sketch bucket keys of `latency_ms` and `ttft_ms` when those are Float64
/// (a loop of independent key computations, which the row loop then only reads).
struct BlockCodes {
    from: usize,
    end: usize,
    codes: [[u32; CODE_BLOCK]; 3],
    has: [bool; 3],
    keys: [[i32; CODE_BLOCK]; 2],
    has_keys: [bool; 2],
    /// The default sketches' multiplier, the keys' (every pane sketch has it).
    multiplier: f64,
}

impl BlockCodes {
    fn new() -> BlockCodes {
        BlockCodes {
            from: 0,
            end: 0,
            codes: [[0; CODE_BLOCK]; 3],
            has: [false; 3],
            keys: [[0; CODE_BLOCK]; 2],
            has_keys: [false; 2],
            multiplier: LatencySketch::new().multiplier(),
        }
    }

    /// Fills the block starting at row `from` (of `rows`).
    #[inline(never)]
    fn fill(
        &mut self,
        labels: &[LabelCodes<'_, '_>; 3],
        latencies: &[Option<&[f64]>; 2],
        from: usize,
        rows: usize,
    ) {
        let len = CODE_BLOCK.min(rows - from);
        self.from = from;
        self.end = from + len;
        for (c, label) in labels.iter().enumerate() {
            self.has[c] = label.fill_codes(from, &mut self.codes[c][..len]);
        }
        let (key, mult) = (KeyFn::get(), self.multiplier);
        for (c, values) in latencies.iter().enumerate() {
            self.has_keys[c] = values.is_some();
            if let Some(v) = values {
                // Every value gets a key; only those of valid values >= 1e-3 are read.
                for (k, &x) in self.keys[c][..len].iter_mut().zip(&v[from..from + len]) {
                    *k = key.key(x, mult);
                }
            }
        }
    }

    /// The sketch keys of row `i` (in the block), where computed.
    #[inline(always)]
    fn known_keys(&self, i: usize) -> KnownKeys {
        let j = (i - self.from) % CODE_BLOCK;
        KnownKeys {
            latency: self.has_keys[0].then(|| self.keys[0][j]),
            ttft: self.has_keys[1].then(|| self.keys[1][j]),
            multiplier: self.multiplier,
        }
    }

    /// Column `c`'s code at row `i` (in the block); `None` for a plain column.
    #[inline(always)]
    fn code(&self, c: usize, i: usize) -> Option<usize> {
        self.has[c].then(|| self.codes[c][(i - self.from) % CODE_BLOCK] as usize)
    }
}

/// Ingests every row of a columnar request batch (offsets `first_row` + row index).
pub(crate) fn push_request_rows(
    st: &mut State,
    cfg: &EngineConfig,
    rows: &LatencyBatch<'_>,
    at: &Origin<'_>,
    first_row: i64,
) {
    st.request_batch = true;
    let [service, namespace, pod] = rows.labels().map(LabelCodes::of);
    // By service code: its id. By pod code: (namespace code, pod id) of the pair seen last.
    let mut service_ids = vec![UNRESOLVED; service.cardinality()];
    let mut pod_ids = vec![(UNRESOLVED as usize, 0 as PodId); pod.cardinality()];
    let latest_ts = at.now.saturating_add(cfg.max_future_ms);
    // (closed_until, open_everywhere_from of it): recomputed only when windows close.
    let closed = closed_until(st);
    let mut open = (closed, open_everywhere_from(cfg, closed));
    // The newest event time of the plain rows, noted once (`saw`) after the loop.
    let mut newest = EpochMs::MIN;
    // The current pane's accumulators, held out of the store (put back before any other
    // path touches it, and at the end).
    let mut cursor = PaneCursor::default();
    let labels = [service, namespace, pod];
    let latencies = rows.f64_latencies();
    let mut codes = BlockCodes::new();
    for i in 0..rows.rows() {
        if i == codes.end {
            codes.fill(&labels, &latencies, i, rows.rows());
        }
        let [service, namespace, pod] = &labels;
        st.stats.consumed += 1;
        let here = Origin {
            offset: first_row + i as i64,
            ..*at
        };
        let closed = closed_until(st);
        if closed != open.0 {
            open = (closed, open_everywhere_from(cfg, closed));
        }
        let plain = rows
            .plain_row(i)
            .filter(|r| r.ts_ms >= MIN_VALID_MS && r.ts_ms <= latest_ts && r.ts_ms >= open.1);
        let Some(r) = plain else {
            st.latency.put_back(&mut cursor);
            settle_request(st, cfg, rows.row(i), &here, &[]);
            continue;
        };
        let sid = match codes.code(0, i) {
            Some(c) if service_ids[c] != UNRESOLVED => service_ids[c],
            code => {
                let name = code.map_or_else(|| service.text(i), |c| service.text_of(c));
                if name.is_empty() {
                    // Named by the pod rules: the per-message path resolves it.
                    st.latency.put_back(&mut cursor);
                    settle_request(st, cfg, rows.row(i), &here, &[]);
                    continue;
                }
                let sid = service_id(st, cfg, name);
                if let Some(c) = code {
                    service_ids[c] = sid;
                }
                sid
            }
        };
        let pod_id = match (codes.code(1, i), codes.code(2, i)) {
            (Some(n), Some(p)) if pod_ids[p].0 == n => pod_ids[p].1,
            (Some(n), Some(p)) => {
                let id = st.pod_names.intern(namespace.text_of(n), pod.text_of(p));
                pod_ids[p] = (n, id);
                id
            }
            _ => st.pod_names.intern(namespace.text(i), pod.text(i)),
        };
        newest = newest.max(r.ts_ms);
        let slo_latency_ms = st.service_slo_ms[sid as usize];
        let req = RequestIn {
            values: r,
            pod: pod_id,
            slo_latency_ms,
        };
        if req.values.ts_ms >= cursor.start() {
            // What `add_request` does, through the cursor.
            if st
                .latency
                .add_through(&mut cursor, sid, &req, codes.known_keys(i))
            {
                st.positions.hold(req.values.ts_ms, here.offset);
                st.stats.aggregated += 1;
            } else {
                st.stats.skipped_duplicate += 1;
            }
        } else {
            add_request(st, sid, &req, here.offset);
        }
    }
    st.latency.put_back(&mut cursor);
    if newest != EpochMs::MIN {
        st.saw_request(at.key, newest);
    }
}

#[cfg(test)]
mod tests {
    use super::open_everywhere_from;
    use crate::config::EngineConfig;
    use crate::window::WindowSpec;

    /// The per-batch threshold agrees with asking every window family per event, around
    /// window edges, for tumbling and hopping families together and for nothing closed yet.
    #[test]
    fn open_everywhere_from_matches_the_per_event_rule() {
        let cfg = EngineConfig {
            windows: vec![
                WindowSpec::tumbling(60),
                WindowSpec::hopping(300, 60),
                WindowSpec::tumbling(10),
            ],
            ..EngineConfig::default()
        };
        let base = 1_764_331_200_000;
        for closed in [
            i64::MIN,
            base - 1,
            base,
            base + 1,
            base + 59_999,
            base + 123_456,
        ] {
            let from = open_everywhere_from(&cfg, closed);
            for ts in (base - 400_000..base + 200_000).step_by(997) {
                let open = cfg.windows.iter().all(|w| w.last_end_holding(ts) > closed);
                assert_eq!(ts >= from, open, "closed {closed}, ts {ts}");
            }
        }
    }
}
