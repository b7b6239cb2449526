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
use crate::latency_store::RequestIn;
use crate::pod_table::PodId;
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

    #[inline(always)] // three calls per row; left out of line it cost 7 % of the fast path
    fn code(&self, i: usize) -> Option<usize> {
        match self {
            LabelCodes::Absent => Some(0),
            LabelCodes::Dict {
                keys,
                nulls,
                n_values,
                ..
            } => {
                if nulls.is_some_and(|b| b.is_null(i)) {
                    return Some(0);
                }
                let k = keys.get(i);
                Some(if k < *n_values { k + 1 } else { 0 })
            }
            LabelCodes::Plain(_) => None,
        }
    }

    /// The text of a code from `code`.
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
    for i in 0..rows.rows() {
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
            settle_request(st, cfg, rows.row(i), &here, &[]);
            continue;
        };
        let sid = match service.code(i) {
            Some(c) if service_ids[c] != UNRESOLVED => service_ids[c],
            code => {
                let name = code.map_or_else(|| service.text(i), |c| service.text_of(c));
                if name.is_empty() {
                    // Named by the pod rules: the per-message path resolves it.
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
        let pod_id = match (namespace.code(i), pod.code(i)) {
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
        add_request(
            st,
            sid,
            &RequestIn {
                values: r,
                pod: pod_id,
                slo_latency_ms,
            },
            here.offset,
        );
    }
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
