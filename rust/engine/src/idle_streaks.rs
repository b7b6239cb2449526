//! Table `idle_streaks`: forgotten allocations, pods whose GPUs stay idle for longer than a
//! TTL. An [`IdleTracker`] is fed the `gpu_windows` rows of every closed window of one
//! tumbling family (the smallest, [`crate::EngineConfig::idle_family`]) in close order. While
//! a (pod, GPU)'s streak of consecutive idle windows lasts beyond the TTL, every window adds
//! one row; when the streak ends, a final row (`ended = true`) repeats its totals.
//!
//! The rules (docs/design.md, "idle_streaks"):
//! - a window is idle for a (GPU, namespace, pod) when the pod is not empty, the rows of that
//!   key hold utilization samples, and their sample-weighted `util_mean` is below the
//!   threshold;
//! - a streak ends at a window that is not idle (busy, or no utilization sample), at a
//!   window of the family closing without a row of the key (the GPU stopped reporting, the
//!   pod is gone or the GPU moved), and at a gap (the next row of the key is not in the very
//!   next window);
//! - a window without any GPU row (only request events) says nothing about GPUs: skipped,
//!   so the state depends on `gpu_windows` rows alone and can be rebuilt from them
//!   ([`IdleTracker::window`] without output, `Engine::seed_idle_streaks`).
//!
//! State: one entry per key currently idle, plus the end of the last window seen.

use crate::arrow_util::{float_col, str_col, ts_col, ts_type};
use crate::decode::arrow_cols::{find_column, num_column, str_column, TimeCol};
use crate::time::EpochMs;
use arrow_array::builder::BooleanBuilder;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use foldhash::fast::FixedState;
use std::sync::{Arc, OnceLock};

/// One row of `idle_streaks`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleStreakRow {
    pub namespace: Arc<str>,
    pub pod: Arc<str>,
    pub team: Arc<str>,
    pub gpu_uuid: Arc<str>,
    pub model_name: Arc<str>,
    /// Start of the streak's first idle window.
    pub streak_start: EpochMs,
    /// End of the streak's latest idle window.
    pub as_of: EpochMs,
    pub streak_s: f64,
    pub idle_gpu_s: f64,
    pub idle_cost_usd: f64,
    pub ended: bool,
}

/// What the tracker reads of one `gpu_windows` row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowGpu<'a> {
    pub gpu_uuid: &'a str,
    pub namespace: &'a str,
    pub pod: &'a str,
    pub team: &'a str,
    pub model_name: &'a str,
    pub samples: i64,
    pub util_mean: Option<f64>,
    pub idle_gpu_s: f64,
    pub idle_cost_usd: f64,
}

impl WindowGpu<'_> {
    fn key(&self) -> (&str, &str, &str) {
        (self.gpu_uuid, self.namespace, self.pod)
    }

    /// The order rows of one window are summed in: by key, then by value, so that the
    /// totals never depend on how the rows arrived (bit for bit, also after seeding).
    fn canonical_cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key()
            .cmp(&other.key())
            .then_with(|| self.idle_gpu_s.total_cmp(&other.idle_gpu_s))
            .then_with(|| self.idle_cost_usd.total_cmp(&other.idle_cost_usd))
            .then_with(|| self.samples.cmp(&other.samples))
            .then_with(|| {
                let m = |r: &Self| r.util_mean.unwrap_or(f64::NAN);
                m(self).total_cmp(&m(other))
            })
            .then_with(|| (self.team, self.model_name).cmp(&(other.team, other.model_name)))
    }
}

/// (gpu_uuid, namespace, pod).
type Key = (Arc<str>, Arc<str>, Arc<str>);

/// A borrowed key that hashes and compares like the owned one.
#[derive(Hash)]
struct KeyRef<'a>(&'a str, &'a str, &'a str);

impl hashbrown::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *key.0 == *self.0 && *key.1 == *self.1 && *key.2 == *self.2
    }
}

#[derive(Debug, Clone)]
struct Streak {
    team: Arc<str>,
    model_name: Arc<str>,
    start: EpochMs,
    end: EpochMs,
    idle_gpu_s: f64,
    idle_cost_usd: f64,
}

impl Streak {
    fn row(&self, key: &Key, ended: bool) -> IdleStreakRow {
        IdleStreakRow {
            namespace: key.1.clone(),
            pod: key.2.clone(),
            team: self.team.clone(),
            gpu_uuid: key.0.clone(),
            model_name: self.model_name.clone(),
            streak_start: self.start,
            as_of: self.end,
            streak_s: (self.end - self.start) as f64 / 1000.0,
            idle_gpu_s: self.idle_gpu_s,
            idle_cost_usd: self.idle_cost_usd,
            ended,
        }
    }
}

/// One key's rows of one window, summed.
struct Group<'a> {
    first: WindowGpu<'a>,
    samples: i64,
    sum_u: f64,
    idle_gpu_s: f64,
    idle_cost_usd: f64,
}

/// Tracks idle streaks per (GPU, namespace, pod) over the windows of one family.
#[derive(Debug, Clone)]
pub struct IdleTracker {
    threshold: f64,
    ttl_ms: i64,
    streaks: hashbrown::HashMap<Key, Streak, FixedState>,
    /// End of the last window taken; a window ending at or before it is a repeat, skipped.
    last_end: Option<EpochMs>,
}

impl IdleTracker {
    /// `threshold`: utilization below which a window is idle; `ttl_ms`: streaks longer than
    /// this are reported.
    pub fn new(threshold: f64, ttl_ms: i64) -> IdleTracker {
        IdleTracker {
            threshold,
            ttl_ms,
            streaks: hashbrown::HashMap::default(),
            last_end: None,
        }
    }

    /// Number of (GPU, namespace, pod) currently idle.
    pub fn len(&self) -> usize {
        self.streaks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streaks.is_empty()
    }

    /// End of the last window taken.
    pub fn last_end(&self) -> Option<EpochMs> {
        self.last_end
    }

    /// Approximate bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.streaks
            .keys()
            .map(|k| k.0.len() + k.1.len() + k.2.len() + 64 + std::mem::size_of::<Streak>())
            .sum()
    }

    /// Takes the `gpu_windows` rows (any order) of the window [`start`, `end`) of the
    /// family, and appends the rows it produces to `out` (ordered by GPU, namespace, pod,
    /// then `as_of`); `None` only updates the state (seeding).
    pub fn window<'a>(
        &mut self,
        start: EpochMs,
        end: EpochMs,
        rows: impl IntoIterator<Item = WindowGpu<'a>>,
        out: Option<&mut Vec<IdleStreakRow>>,
    ) {
        let mut rows: Vec<WindowGpu<'a>> = rows.into_iter().collect();
        self.window_rows(start, end, &mut rows, out);
    }

    fn window_rows(
        &mut self,
        start: EpochMs,
        end: EpochMs,
        rows: &mut [WindowGpu<'_>],
        out: Option<&mut Vec<IdleStreakRow>>,
    ) {
        if rows.is_empty() || self.last_end.is_some_and(|l| end <= l) {
            return;
        }
        self.last_end = Some(end);
        rows.sort_unstable_by(WindowGpu::canonical_cmp);
        let mut emitted: Vec<IdleStreakRow> = Vec::new();
        let mut i = 0;
        while i < rows.len() {
            let first = rows[i];
            let mut g = Group {
                first,
                samples: 0,
                sum_u: 0.0,
                idle_gpu_s: 0.0,
                idle_cost_usd: 0.0,
            };
            while i < rows.len() && rows[i].key() == first.key() {
                let r = &rows[i];
                if let (Some(m), true) = (r.util_mean, r.samples > 0) {
                    g.samples += r.samples;
                    g.sum_u += m * r.samples as f64;
                }
                g.idle_gpu_s += r.idle_gpu_s;
                g.idle_cost_usd += r.idle_cost_usd;
                i += 1;
            }
            if !first.pod.is_empty() {
                self.take_group(start, end, &g, &mut emitted);
            }
        }
        // Keys idle until now without a row in this window: their streaks end.
        let ttl_ms = self.ttl_ms;
        self.streaks.retain(|key, s| {
            if s.end == end {
                return true;
            }
            if s.end - s.start > ttl_ms {
                emitted.push(s.row(key, true));
            }
            false
        });
        if let Some(out) = out {
            emitted.sort_by(|a, b| {
                (&a.gpu_uuid, &a.namespace, &a.pod, a.as_of, a.ended).cmp(&(
                    &b.gpu_uuid,
                    &b.namespace,
                    &b.pod,
                    b.as_of,
                    b.ended,
                ))
            });
            out.extend(emitted);
        }
    }

    fn take_group(
        &mut self,
        start: EpochMs,
        end: EpochMs,
        g: &Group<'_>,
        emitted: &mut Vec<IdleStreakRow>,
    ) {
        let r = g.first;
        let idle = g.samples > 0 && g.sum_u / (g.samples as f64) < self.threshold;
        let at = KeyRef(r.gpu_uuid, r.namespace, r.pod);
        let ttl_ms = self.ttl_ms;
        let key = match self.streaks.get_key_value_mut(&at) {
            Some((key, s)) if idle && s.end == start => {
                s.end = end;
                s.idle_gpu_s += g.idle_gpu_s;
                s.idle_cost_usd += g.idle_cost_usd;
                if *s.model_name != *r.model_name {
                    s.model_name = r.model_name.into();
                }
                if s.end - s.start > ttl_ms {
                    emitted.push(s.row(key, false));
                }
                return;
            }
            Some(_) => {
                // Busy, or idle after a gap: the streak ends (a new one may start here).
                let (key, s) = self.streaks.remove_entry(&at).expect("present");
                if s.end - s.start > ttl_ms {
                    emitted.push(s.row(&key, true));
                }
                key
            }
            None => (r.gpu_uuid.into(), r.namespace.into(), r.pod.into()),
        };
        if idle {
            let s = Streak {
                team: r.team.into(),
                model_name: r.model_name.into(),
                start,
                end,
                idle_gpu_s: g.idle_gpu_s,
                idle_cost_usd: g.idle_cost_usd,
            };
            if s.end - s.start > ttl_ms {
                emitted.push(s.row(&key, false));
            }
            self.streaks.insert(key, s);
        }
    }
}

/// The `gpu_windows` rows of a window family read back from Arrow data (for seeding).
#[derive(Debug, Default)]
pub struct SeedRows {
    rows: Vec<SeedRow>,
}

#[derive(Debug)]
struct SeedRow {
    start: EpochMs,
    end: EpochMs,
    gpu_uuid: Box<str>,
    namespace: Box<str>,
    pod: Box<str>,
    container: Box<str>,
    hostname: Box<str>,
    team: Box<str>,
    model_name: Box<str>,
    samples: i64,
    util_mean: Option<f64>,
    idle_gpu_s: f64,
    idle_cost_usd: f64,
}

impl SeedRow {
    fn view(&self) -> WindowGpu<'_> {
        WindowGpu {
            gpu_uuid: &self.gpu_uuid,
            namespace: &self.namespace,
            pod: &self.pod,
            team: &self.team,
            model_name: &self.model_name,
            samples: self.samples,
            util_mean: self.util_mean,
            idle_gpu_s: self.idle_gpu_s,
            idle_cost_usd: self.idle_cost_usd,
        }
    }

    /// Everything that makes two rows the same row (rows written twice count once).
    fn same(&self, o: &SeedRow) -> bool {
        (self.start, self.end) == (o.start, o.end)
            && (&self.container, &self.hostname) == (&o.container, &o.hostname)
            && self.view().canonical_cmp(&o.view()).is_eq()
    }
}

impl SeedRows {
    /// Keeps the rows of `batch` (the `gpu_windows` schema) whose window belongs to the
    /// tumbling family of `size_ms`. `Err` names a missing or mistyped column.
    pub fn add_batch(&mut self, batch: &RecordBatch, size_ms: i64) -> Result<(), String> {
        let time = |name: &str| -> Result<TimeCol<'_>, String> {
            let a = find_column(batch, &[name]).ok_or(format!("no column {name:?}"))?;
            TimeCol::new(a).ok_or(format!("column {name:?} must be a timestamp"))
        };
        let text = |name: &str, required: bool| {
            str_column(batch, &[name]).and_then(|c| match c {
                None if required => Err(format!("no column {name:?}")),
                c => Ok(c),
            })
        };
        let num =
            |name: &str| num_column(batch, &[name])?.ok_or_else(|| format!("no column {name:?}"));
        let (start, end) = (time("window_start")?, time("window_end")?);
        let gpu_uuid = text("gpu_uuid", true)?;
        let namespace = text("namespace", true)?;
        let pod = text("pod", true)?;
        let team = text("team", true)?;
        let model_name = text("model_name", true)?;
        let container = text("container", false)?;
        let hostname = text("hostname", false)?;
        let (samples, util_mean) = (num("samples")?, num("util_mean")?);
        let (idle_gpu_s, idle_cost_usd) = (num("idle_gpu_s")?, num("idle_cost_usd")?);
        let s = |c: &Option<crate::decode::arrow_cols::StrCol<'_>>, i: usize| -> Box<str> {
            c.as_ref().and_then(|c| c.get(i)).unwrap_or("").into()
        };
        for i in 0..batch.num_rows() {
            let (ws, we) = (start.get(i)?, end.get(i)?);
            if we - ws != size_ms || ws.rem_euclid(size_ms) != 0 {
                continue;
            }
            let row_no = |what: &str| format!("row {i}: {what} is null");
            self.rows.push(SeedRow {
                start: ws,
                end: we,
                gpu_uuid: s(&gpu_uuid, i),
                namespace: s(&namespace, i),
                pod: s(&pod, i),
                container: s(&container, i),
                hostname: s(&hostname, i),
                team: s(&team, i),
                model_name: s(&model_name, i),
                samples: samples.get(i).ok_or_else(|| row_no("samples"))? as i64,
                util_mean: util_mean.get(i),
                idle_gpu_s: idle_gpu_s.get(i).ok_or_else(|| row_no("idle_gpu_s"))?,
                idle_cost_usd: idle_cost_usd
                    .get(i)
                    .ok_or_else(|| row_no("idle_cost_usd"))?,
            });
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Feeds the rows to `tracker` window by window, oldest first, producing no rows; a row
    /// present twice (written twice) counts once. Returns the number of windows fed.
    pub fn feed(mut self, tracker: &mut IdleTracker) -> usize {
        self.rows.sort_by(|a, b| {
            (a.end, a.start)
                .cmp(&(b.end, b.start))
                .then_with(|| a.view().canonical_cmp(&b.view()))
                .then_with(|| (&a.container, &a.hostname).cmp(&(&b.container, &b.hostname)))
        });
        self.rows.dedup_by(|b, a| a.same(b));
        let mut windows = 0;
        let mut i = 0;
        while i < self.rows.len() {
            let (start, end) = (self.rows[i].start, self.rows[i].end);
            let n = self.rows[i..]
                .iter()
                .take_while(|r| (r.start, r.end) == (start, end))
                .count();
            tracker.window(
                start,
                end,
                self.rows[i..i + n].iter().map(SeedRow::view),
                None,
            );
            windows += 1;
            i += n;
        }
        windows
    }
}

pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let f = Field::new;
            Arc::new(Schema::new(vec![
                f("namespace", DataType::Utf8, false),
                f("pod", DataType::Utf8, false),
                f("team", DataType::Utf8, false),
                f("gpu_uuid", DataType::Utf8, false),
                f("model_name", DataType::Utf8, false),
                f("streak_start", ts_type(), false),
                f("as_of", ts_type(), false),
                f("streak_s", DataType::Float64, false),
                f("idle_gpu_s", DataType::Float64, false),
                f("idle_cost_usd", DataType::Float64, false),
                f("ended", DataType::Boolean, false),
            ]))
        })
        .clone()
}

pub fn to_record_batch(rows: &[IdleStreakRow]) -> Result<RecordBatch, ArrowError> {
    let mut ended = BooleanBuilder::with_capacity(rows.len());
    for r in rows {
        ended.append_value(r.ended);
    }
    let f = |get: fn(&IdleStreakRow) -> f64| float_col(rows.iter().map(|r| Some(get(r))));
    let columns: Vec<ArrayRef> = vec![
        str_col(rows.iter().map(|r| &*r.namespace)),
        str_col(rows.iter().map(|r| &*r.pod)),
        str_col(rows.iter().map(|r| &*r.team)),
        str_col(rows.iter().map(|r| &*r.gpu_uuid)),
        str_col(rows.iter().map(|r| &*r.model_name)),
        ts_col(rows.iter().map(|r| r.streak_start)),
        ts_col(rows.iter().map(|r| r.as_of)),
        f(|r| r.streak_s),
        f(|r| r.idle_gpu_s),
        f(|r| r.idle_cost_usd),
        Arc::new(ended.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array, StringArray, TimestampMillisecondArray};

    const W: i64 = 60_000;

    /// A 60 s row of `gpu` in `pod` (namespace "ns") at mean utilization `u` (None: no
    /// utilization sample), 60 samples, price 3.6 $/h.
    fn row<'a>(gpu: &'a str, pod: &'a str, u: Option<f64>) -> WindowGpu<'a> {
        let covered = if u.is_some() { 60.0 } else { 0.0 };
        let idle = covered - u.unwrap_or(0.0) * covered;
        WindowGpu {
            gpu_uuid: gpu,
            namespace: if pod.is_empty() { "" } else { "ns" },
            pod,
            team: if pod.is_empty() { "" } else { "team-ns" },
            model_name: "H100",
            samples: if u.is_some() { 60 } else { 0 },
            util_mean: u,
            idle_gpu_s: idle,
            idle_cost_usd: idle / 3600.0 * 3.6,
        }
    }

    /// Feeds window `k` ([k*W, (k+1)*W)) and returns its rows.
    fn feed(t: &mut IdleTracker, k: i64, rows: &[WindowGpu<'_>]) -> Vec<IdleStreakRow> {
        let mut out = Vec::new();
        t.window(k * W, (k + 1) * W, rows.iter().copied(), Some(&mut out));
        out
    }

    fn summary(rows: &[IdleStreakRow]) -> Vec<(&str, &str, i64, i64, f64, bool)> {
        rows.iter()
            .map(|r| {
                (
                    &*r.gpu_uuid,
                    &*r.pod,
                    r.streak_start / 1000,
                    r.as_of / 1000,
                    r.streak_s,
                    r.ended,
                )
            })
            .collect()
    }

    #[test]
    fn forgotten_pod_gets_a_row_per_window_beyond_the_ttl_and_a_final_row() {
        let mut t = IdleTracker::new(0.05, 120_000);
        let idle = [row("G1", "nb", Some(0.01))];
        assert!(feed(&mut t, 0, &idle).is_empty());
        assert!(feed(&mut t, 1, &idle).is_empty()); // 120 s: not longer than the ttl
        let r = feed(&mut t, 2, &idle);
        assert_eq!(summary(&r), [("G1", "nb", 0, 180, 180.0, false)]);
        assert!((r[0].idle_gpu_s - 3.0 * 59.4).abs() < 1e-9);
        assert!((r[0].idle_cost_usd - 3.0 * 0.0594).abs() < 1e-12);
        assert_eq!((&*r[0].namespace, &*r[0].team), ("ns", "team-ns"));
        assert_eq!(
            summary(&feed(&mut t, 3, &idle)),
            [("G1", "nb", 0, 240, 240.0, false)]
        );
        // busy: the final row repeats the streak's totals, as of its last idle window
        let r = feed(&mut t, 4, &[row("G1", "nb", Some(0.9))]);
        assert_eq!(summary(&r), [("G1", "nb", 0, 240, 240.0, true)]);
        assert!((r[0].idle_gpu_s - 4.0 * 59.4).abs() < 1e-9);
        assert!(t.is_empty());
        assert!(feed(&mut t, 5, &idle).is_empty());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn short_streaks_give_no_rows_and_threshold_is_strict() {
        let mut t = IdleTracker::new(0.05, 120_000);
        let idle = [row("G1", "p", Some(0.0))];
        assert!(feed(&mut t, 0, &idle).is_empty());
        assert!(feed(&mut t, 1, &idle).is_empty());
        assert!(feed(&mut t, 2, &[row("G1", "p", Some(0.05))]).is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn gpus_of_one_pod_are_separate_and_unallocated_gpus_never_count() {
        let mut t = IdleTracker::new(0.05, 60_000);
        let both = [
            row("G2", "p", Some(0.0)),
            row("G1", "p", Some(0.0)),
            row("G3", "", Some(0.0)),
        ];
        assert!(feed(&mut t, 0, &both).is_empty());
        assert_eq!(
            summary(&feed(&mut t, 1, &both)),
            [
                ("G1", "p", 0, 120, 120.0, false),
                ("G2", "p", 0, 120, 120.0, false)
            ]
        );
        let r = feed(
            &mut t,
            2,
            &[
                row("G1", "p", Some(0.5)),
                row("G2", "p", Some(0.0)),
                row("G3", "", Some(0.0)),
            ],
        );
        assert_eq!(
            summary(&r),
            [
                ("G1", "p", 0, 120, 120.0, true),
                ("G2", "p", 0, 180, 180.0, false)
            ]
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn missing_row_gap_and_no_samples_end_a_streak_an_empty_window_does_not() {
        let mut t = IdleTracker::new(0.05, 60_000);
        let g1 = row("G1", "p", Some(0.0));
        let other = row("G9", "q", Some(0.8));
        feed(&mut t, 0, &[g1]);
        feed(&mut t, 1, &[g1]);
        // a window with rows of other GPUs only: G1 stopped reporting
        assert_eq!(
            summary(&feed(&mut t, 2, &[other])),
            [("G1", "p", 0, 120, 120.0, true)]
        );
        // a window without any GPU row is skipped; the gap ends the streak at the next row
        feed(&mut t, 3, &[g1]);
        feed(&mut t, 4, &[g1]);
        assert!(feed(&mut t, 5, &[]).is_empty());
        let r = feed(&mut t, 6, &[g1]);
        assert_eq!(summary(&r), [("G1", "p", 180, 300, 120.0, true)]);
        assert_eq!(t.len(), 1); // a new streak from window 6
                                // a row without utilization samples is not idle
        feed(&mut t, 7, &[g1]);
        assert_eq!(
            summary(&feed(&mut t, 8, &[row("G1", "p", None)])),
            [("G1", "p", 360, 480, 120.0, true)]
        );
        assert!(t.is_empty());
    }

    #[test]
    fn rows_of_one_key_are_weighted_by_samples_and_repeated_windows_skipped() {
        let mut t = IdleTracker::new(0.05, 30_000);
        let mut a = row("G1", "p", Some(0.0));
        a.samples = 90;
        let mut b = row("G1", "p", Some(0.2));
        b.samples = 10;
        // (0 * 90 + 0.2 * 10) / 100 = 0.02 < 0.05: idle, totals add up
        let r = feed(&mut t, 0, &[b, a]);
        assert_eq!(summary(&r), [("G1", "p", 0, 60, 60.0, false)]);
        assert!((r[0].idle_gpu_s - (60.0 + 48.0)).abs() < 1e-9);
        assert!(feed(&mut t, 0, &[row("G1", "p", Some(0.9))]).is_empty());
        assert_eq!(t.last_end(), Some(W));
        assert_eq!(t.len(), 1);
    }

    fn batch(windows: &[(i64, Vec<WindowGpu<'_>>)], size_ms: i64) -> RecordBatch {
        let rows: Vec<(i64, &WindowGpu<'_>)> = windows
            .iter()
            .flat_map(|(k, rs)| rs.iter().map(move |r| (*k, r)))
            .collect();
        let ts = |f: &dyn Fn(i64) -> i64| -> ArrayRef {
            Arc::new(
                TimestampMillisecondArray::from_iter_values(rows.iter().map(|(k, _)| f(*k)))
                    .with_timezone("UTC"),
            )
        };
        let s = |f: &dyn Fn(&WindowGpu<'_>) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(_, r)| f(r)),
            ))
        };
        RecordBatch::try_from_iter(vec![
            ("window_start", ts(&|k| k * size_ms)),
            ("window_end", ts(&|k| (k + 1) * size_ms)),
            ("gpu_uuid", s(&|r| r.gpu_uuid.into())),
            ("namespace", s(&|r| r.namespace.into())),
            ("pod", s(&|r| r.pod.into())),
            ("team", s(&|r| r.team.into())),
            ("model_name", s(&|r| r.model_name.into())),
            (
                "samples",
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|(_, r)| r.samples),
                )) as ArrayRef,
            ),
            (
                "util_mean",
                Arc::new(Float64Array::from_iter(
                    rows.iter().map(|(_, r)| r.util_mean),
                )),
            ),
            (
                "idle_gpu_s",
                Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|(_, r)| r.idle_gpu_s),
                )),
            ),
            (
                "idle_cost_usd",
                Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|(_, r)| r.idle_cost_usd),
                )),
            ),
        ])
        .unwrap()
    }

    #[test]
    fn seeding_from_written_rows_continues_like_an_uninterrupted_run() {
        let g1 = row("G1", "p", Some(0.01));
        let g2 = row("G2", "p", Some(0.02));
        let busy2 = row("G2", "p", Some(0.7));
        let other = row("G9", "", Some(0.0));
        let windows: Vec<(i64, Vec<WindowGpu<'_>>)> = vec![
            (0, vec![g1, g2]),
            (1, vec![g1, busy2]),
            (2, vec![g1, g2]),
            (3, vec![g1, g2, other]),
            (4, vec![g1, other]),
            (5, vec![g1, g2]),
            (6, vec![busy2, g1]),
        ];
        let mut a = IdleTracker::new(0.05, 90_000);
        let mut rows_a = Vec::new();
        for (k, rs) in &windows {
            let r = feed(&mut a, *k, rs);
            if *k >= 4 {
                rows_a.extend(r);
            }
        }
        assert!(!rows_a.is_empty());
        // B: seeded with windows 0..4 (shuffled, one written twice, plus a 120 s window),
        // then fed the rest.
        let mut seed = SeedRows::default();
        let mut written: Vec<_> = windows[..4].to_vec();
        written.reverse();
        written.push(windows[2].clone());
        seed.add_batch(&batch(&written, W), W).unwrap();
        seed.add_batch(&batch(&[(0, vec![busy2])], 2 * W), W)
            .unwrap();
        let mut b = IdleTracker::new(0.05, 90_000);
        assert_eq!(seed.feed(&mut b), 4);
        let mut rows_b = Vec::new();
        for (k, rs) in &windows[4..] {
            rows_b.extend(feed(&mut b, *k, rs));
        }
        assert_eq!(rows_a, rows_b);
    }

    #[test]
    fn seeding_rejects_a_missing_column() {
        let b = batch(&[(0, vec![row("G1", "p", Some(0.0))])], W);
        let b = b.project(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
        let err = SeedRows::default().add_batch(&b, W).unwrap_err();
        assert!(err.contains("idle_cost_usd"), "{err}");
    }

    #[test]
    fn record_batch_has_the_schema() {
        let mut t = IdleTracker::new(0.05, 1);
        let r = feed(&mut t, 0, &[row("G1", "p", Some(0.0))]);
        let b = to_record_batch(&r).unwrap();
        assert_eq!(b.schema(), schema());
        assert_eq!(b.num_rows(), 1);
        assert_eq!(to_record_batch(&[]).unwrap().num_rows(), 0);
    }
}
