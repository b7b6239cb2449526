//! The engine facade: batches of raw messages in, closed windows of every table out.
//!
//! Every message ends in exactly one counter (aggregated, skipped, late or dead), so the
//! counts always reconcile with what was consumed. Windows close only in `poll`,
//! `advance_to` and `finish`, never inside a batch, so order within a batch never matters.

use crate::config::EngineConfig;
use crate::custom_agg::{CustomAggregation, CustomBuilder, CustomRow, GroupLabel};
use crate::decode::columnar::{ColumnarBatch, Form};
use crate::decode::{prom_json, DecodeContext, Reading, ReadingSink};
use crate::fields::{FieldId, FieldRegistry, DCGM_BLANK_THRESHOLD};
use crate::gpu_windows::{GpuWindowRow, RowContext};
use crate::late_dead::{DeadLetter, LateEvent};
use crate::panes::PaneStore;
use crate::pool_windows::{PoolBuilder, PoolWindowRow};
use crate::series::{SeriesId, SeriesTable, MAX_EXTRA_LABELS};
use crate::time::{EpochMs, MIN_VALID_MS};
use crate::watermark::Watermarks;
use crate::window::{Insert, SeriesPoints};
use arrow_array::RecordBatch;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Message formats handed over as one message per element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageFormat {
    /// prometheus-kafka-adapter JSON (spec inputs.md 1a).
    PromJson,
}

/// Where a batch came from: source (topic or file), partition, and message offsets.
#[derive(Debug, Clone, Copy)]
pub struct Provenance<'a> {
    pub source: &'a str,
    pub partition: i32,
    pub offsets: Offsets<'a>,
}

#[derive(Debug, Clone, Copy)]
pub enum Offsets<'a> {
    /// Contiguous offsets (or line numbers) starting here.
    From(i64),
    /// One offset per message.
    Each(&'a [i64]),
}

impl Offsets<'_> {
    fn get(&self, i: usize) -> i64 {
        match self {
            Offsets::From(first) => first + i as i64,
            Offsets::Each(v) => v[i],
        }
    }
}

/// Counters; `consumed == aggregated + skipped_* + late + dead` at all times.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub consumed: u64,
    pub aggregated: u64,
    pub skipped_unknown_field: u64,
    pub skipped_blank: u64,
    pub skipped_duplicate: u64,
    pub late: u64,
    pub dead: u64,
    pub windows_emitted: u64,
}

impl Stats {
    pub fn reconciles(&self) -> bool {
        self.consumed
            == self.aggregated
                + self.skipped_unknown_field
                + self.skipped_blank
                + self.skipped_duplicate
                + self.late
                + self.dead
    }
}

/// One point of a closed window, for Python window functions (`keep_points`).
#[derive(Debug, Clone, PartialEq)]
pub struct PointRow {
    pub window_start: EpochMs,
    pub window_end: EpochMs,
    pub series: SeriesId,
    pub field: FieldId,
    pub ts: EpochMs,
    pub value: f64,
}

/// Rows of the windows closed by one call, per table.
#[derive(Debug, Default)]
pub struct Closed {
    pub gpu: Vec<GpuWindowRow>,
    pub pool: Vec<PoolWindowRow>,
    /// One list per configured aggregation, in configuration order.
    pub custom: Vec<Vec<CustomRow>>,
    pub points: Vec<PointRow>,
}

/// One message's readings, held until the message is known to be valid.
#[derive(Default)]
struct MessageReadings {
    readings: Vec<(SeriesId, FieldId, EpochMs, f64)>,
    unknown: u32,
}

struct InterningSink<'s> {
    series: &'s mut SeriesTable,
    out: &'s mut MessageReadings,
    /// The decoder knows these readings carry the previous message's labels.
    same_series: Option<SeriesId>,
}

impl ReadingSink for InterningSink<'_> {
    fn reading(&mut self, r: Reading<'_>) {
        let id = match self.same_series {
            Some(id) => id,
            None => self.series.intern(&r.labels),
        };
        self.out.readings.push((id, r.field, r.ts_ms, r.value));
    }
    fn unknown_field(&mut self) {
        self.out.unknown += 1;
    }
}

pub struct Engine {
    cfg: EngineConfig,
    fields: FieldRegistry,
    extra_labels: Vec<Box<str>>,
    aggregations: Vec<CustomAggregation>,
    series: SeriesTable,
    watermarks: Watermarks,
    panes: PaneStore,
    /// Per window family: start of the earliest window not yet emitted.
    next_start: Vec<Option<EpochMs>>,
    sources: HashMap<String, Arc<str>>,
    stats: Stats,
    late_events: Vec<LateEvent>,
    dead_letters: Vec<DeadLetter>,
    scratch: MessageReadings,
}

impl Engine {
    /// Builds an engine; the error names the configuration key that is wrong.
    pub fn new(cfg: EngineConfig) -> Result<Engine, String> {
        cfg.validate()?;
        let mut fields = FieldRegistry::default();
        for (name, unit) in &cfg.units {
            fields.set_source_unit(name, *unit)?;
        }
        for name in &cfg.extra_fields {
            fields.register(name);
        }
        let mut extra_labels: Vec<Box<str>> = Vec::new();
        let mut aggregations = Vec::new();
        for (i, a) in cfg.aggregations.iter().enumerate() {
            let mut group_by = Vec::new();
            for label in &a.group_by {
                let g = match GroupLabel::standard(label) {
                    Some(g) => g,
                    None => {
                        let slot = match extra_labels.iter().position(|l| &**l == label) {
                            Some(s) => s,
                            None => {
                                extra_labels.push(label.as_str().into());
                                extra_labels.len() - 1
                            }
                        };
                        if slot >= MAX_EXTRA_LABELS {
                            return Err(format!(
                                "aggregations[{i}].group_by: at most {MAX_EXTRA_LABELS} labels beyond the standard ones"
                            ));
                        }
                        GroupLabel::Extra(slot)
                    }
                };
                group_by.push((label.clone(), g));
            }
            aggregations.push(CustomAggregation {
                name: a.name.clone(),
                field: fields.register(&a.field),
                reducer: a.reducer,
                group_by,
            });
        }
        Ok(Engine {
            watermarks: Watermarks::new(cfg.allowed_lateness_ms),
            panes: PaneStore::new(cfg.pane_ms()),
            next_start: vec![None; cfg.windows.len()],
            cfg,
            fields,
            extra_labels,
            aggregations,
            series: SeriesTable::default(),
            sources: HashMap::new(),
            stats: Stats::default(),
            late_events: Vec::new(),
            dead_letters: Vec::new(),
            scratch: MessageReadings::default(),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn series(&self) -> &SeriesTable {
        &self.series
    }

    pub fn fields(&self) -> &FieldRegistry {
        &self.fields
    }

    pub fn aggregations(&self) -> &[CustomAggregation] {
        &self.aggregations
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn watermark(&self) -> EpochMs {
        self.watermarks.current()
    }

    /// Approximate bytes of window state held (points, maps and series labels).
    pub fn state_bytes(&self) -> usize {
        self.panes.heap_bytes() + self.series.heap_bytes()
    }

    /// Number of (pane, series) entries open.
    pub fn open_series_panes(&self) -> usize {
        self.panes.open_series_panes()
    }

    pub fn take_late_events(&mut self) -> Vec<LateEvent> {
        std::mem::take(&mut self.late_events)
    }

    pub fn take_dead_letters(&mut self) -> Vec<DeadLetter> {
        std::mem::take(&mut self.dead_letters)
    }

    fn source(&mut self, name: &str) -> Arc<str> {
        if let Some(s) = self.sources.get(name) {
            return s.clone();
        }
        let s: Arc<str> = name.into();
        self.sources.insert(name.to_string(), s.clone());
        s
    }

    /// Ingests a batch of messages of one format from one partition.
    pub fn push_messages<M: AsRef<[u8]>>(
        &mut self,
        format: MessageFormat,
        messages: &[M],
        prov: Provenance<'_>,
    ) {
        let now = wall_clock_ms();
        let source = self.source(prov.source);
        let mut msg = std::mem::take(&mut self.scratch);
        for (i, m) in messages.iter().enumerate() {
            let bytes = m.as_ref();
            let offset = prov.offsets.get(i);
            self.stats.consumed += 1;
            msg.readings.clear();
            msg.unknown = 0;
            let decoded = if bytes.len() > self.cfg.max_message_bytes {
                Err(format!(
                    "message of {} bytes exceeds engine.max_message_bytes {}",
                    bytes.len(),
                    self.cfg.max_message_bytes
                ))
            } else {
                let ctx = DecodeContext {
                    fields: &self.fields,
                    extra_labels: &self.extra_labels,
                };
                let mut sink = InterningSink {
                    series: &mut self.series,
                    out: &mut msg,
                    same_series: None,
                };
                match format {
                    MessageFormat::PromJson => prom_json::decode(bytes, &ctx, &mut sink),
                }
            };
            self.settle(&msg, decoded, &source, prov.partition, offset, now, bytes);
        }
        self.scratch = msg;
    }

    /// Ingests an Arrow record batch in the long or wide columnar form (`None`: detect).
    /// Each row is one message; its offset is `first_row` plus its index. `Err` when the
    /// batch's columns cannot be read at all (nothing of it is counted then).
    pub fn push_record_batch(
        &mut self,
        batch: &RecordBatch,
        form: Option<Form>,
        source: &str,
        partition: i32,
        first_row: i64,
    ) -> Result<(), String> {
        let now = wall_clock_ms();
        let source = self.source(source);
        let ctx = DecodeContext {
            fields: &self.fields,
            extra_labels: &self.extra_labels,
        };
        let cols = ColumnarBatch::new(batch, form, &ctx)?;
        let mut msg = std::mem::take(&mut self.scratch);
        let mut previous: Option<SeriesId> = None;
        for i in 0..cols.rows() {
            self.stats.consumed += 1;
            msg.readings.clear();
            msg.unknown = 0;
            let ctx = DecodeContext {
                fields: &self.fields,
                extra_labels: &self.extra_labels,
            };
            let same_series = previous.filter(|_| cols.same_labels_as_previous(i));
            let mut sink = InterningSink {
                series: &mut self.series,
                out: &mut msg,
                same_series,
            };
            let decoded = cols.row(i, same_series.is_some(), &ctx, &mut sink);
            previous = msg.readings.first().map(|r| r.0).or(same_series);
            self.settle(
                &msg,
                decoded,
                &source,
                partition,
                first_row + i as i64,
                now,
                &[],
            );
        }
        self.scratch = msg;
        Ok(())
    }

    /// Applies a decoded message, or records it as a dead letter.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &mut self,
        msg: &MessageReadings,
        decoded: Result<(), String>,
        source: &Arc<str>,
        partition: i32,
        offset: i64,
        now: EpochMs,
        raw: &[u8],
    ) {
        match decoded.and_then(|_| self.check(msg, now)) {
            Ok(()) => self.apply(msg, source, partition, offset),
            Err(reason) => self.dead(source, partition, offset, now, reason, raw),
        }
    }

    fn dead(
        &mut self,
        source: &Arc<str>,
        partition: i32,
        offset: i64,
        now: EpochMs,
        reason: String,
        bytes: &[u8],
    ) {
        self.stats.dead += 1;
        let keep = bytes.len().min(self.cfg.dead_letter_max_bytes);
        self.dead_letters.push(DeadLetter {
            source: source.clone(),
            partition,
            offset,
            received_at: now,
            reason,
            raw: bytes[..keep].to_vec(),
            raw_size: bytes.len() as i64,
        });
    }

    /// Validates a message's readings; `Err` is the dead-letter reason.
    fn check(&self, msg: &MessageReadings, now: EpochMs) -> Result<(), String> {
        let latest = now.saturating_add(self.cfg.max_future_ms);
        for &(_, field, ts, v) in &msg.readings {
            if is_blank(v) {
                continue;
            }
            self.fields.validate(field, v)?;
            if ts < MIN_VALID_MS {
                return Err(format!("event time {} is before 2000-01-01", fmt_ms(ts)));
            }
            if ts > latest {
                return Err(format!(
                    "event time {} is more than engine.max_future_s ahead of now",
                    fmt_ms(ts)
                ));
            }
        }
        Ok(())
    }

    /// Routes a valid message's readings to their panes and counts the message once.
    fn apply(&mut self, msg: &MessageReadings, source: &Arc<str>, partition: i32, offset: i64) {
        let closed_until = self.watermarks.current();
        let (mut new, mut duplicate, mut late, mut blank) = (false, false, false, false);
        for &(id, field, ts, v) in &msg.readings {
            if is_blank(v) {
                blank = true;
                continue;
            }
            self.watermarks.observe(partition, ts);
            let mut on_time = false;
            for spec in &self.cfg.windows {
                let newest_end = spec.last_end_holding(ts);
                if newest_end > closed_until {
                    on_time = true;
                    continue;
                }
                late = true;
                let s = self.series.get(id);
                self.late_events.push(LateEvent {
                    stream: "gpu_telemetry",
                    key: s.gpu_uuid.to_string(),
                    namespace: s.namespace.to_string(),
                    pod: s.pod.to_string(),
                    field: self.fields.name(field).to_string(),
                    event_time: ts,
                    window_start: newest_end - spec.size_ms,
                    window_end: newest_end,
                    lateness_s: (closed_until - newest_end) as f64 / 1000.0,
                    source: source.clone(),
                    partition,
                    offset,
                });
            }
            if on_time {
                match self.panes.insert(id, field, ts, v) {
                    Insert::New => new = true,
                    Insert::Duplicate => duplicate = true,
                }
            }
        }
        // A message counts once: aggregated if any reading was new; a duplicate if its
        // readings were all seen; late if it missed every window; else a skip.
        let s = &mut self.stats;
        if new {
            s.aggregated += 1;
        } else if duplicate {
            s.skipped_duplicate += 1;
        } else if late {
            s.late += 1;
        } else if blank {
            s.skipped_blank += 1;
        } else {
            s.skipped_unknown_field += 1;
        }
    }

    /// Stops `partition` from holding the watermark back (it has been idle).
    pub fn mark_idle(&mut self, partition: i32) {
        self.watermarks.mark_idle(partition);
    }

    /// Closes every window the data's watermark has passed.
    pub fn poll(&mut self) -> Closed {
        let wm = self.watermarks.advance();
        self.close_until(wm)
    }

    /// Moves the watermark to at least `ts` and closes what that finishes.
    pub fn advance_to(&mut self, ts: EpochMs) -> Closed {
        self.watermarks.advance();
        let wm = self.watermarks.advance_to(ts);
        self.close_until(wm)
    }

    /// End of input: closes every window that holds data.
    pub fn finish(&mut self) -> Closed {
        let mut closed = self.poll();
        let last_end = self
            .cfg
            .windows
            .iter()
            .filter_map(|w| {
                self.panes
                    .last_pane()
                    .map(|p| w.last_end_holding(p + self.panes.pane_ms() - 1))
            })
            .max();
        if let Some(end) = last_end {
            let more = self.advance_to(end);
            closed.gpu.extend(more.gpu);
            closed.pool.extend(more.pool);
            for (a, b) in closed.custom.iter_mut().zip(more.custom) {
                a.extend(b);
            }
            closed.points.extend(more.points);
        }
        closed
    }

    /// The windows of every family whose end is at or before `wm`, not yet emitted and
    /// holding data, ordered by (end, family, start).
    fn due_windows(&mut self, wm: EpochMs) -> Vec<(EpochMs, usize, EpochMs)> {
        let mut due = Vec::new();
        for (k, spec) in self.cfg.windows.iter().enumerate() {
            let after_wm = spec.first_start_holding(wm);
            let mut start = self.next_start[k].unwrap_or(EpochMs::MIN);
            while let Some(q) = self.panes.next_pane_from(start) {
                start = start.max(spec.first_start_holding(q));
                let end = start + spec.size_ms;
                if end > wm {
                    break;
                }
                if q < end {
                    due.push((end, k, start));
                }
                start += spec.slide_ms;
            }
            // The first window that ends after the watermark; windows before it are final.
            self.next_start[k] = Some(start.max(after_wm));
        }
        due.sort_unstable();
        due
    }

    fn close_until(&mut self, wm: EpochMs) -> Closed {
        let mut closed = Closed {
            custom: vec![Vec::new(); self.aggregations.len()],
            ..Closed::default()
        };
        if wm == EpochMs::MIN {
            // No watermark yet (no data, or every partition idle from the start).
            return closed;
        }
        let mut scratch = Vec::new();
        for (end, _, start) in self.due_windows(wm) {
            self.close_window(start, end, &mut closed, &mut scratch);
        }
        // A pane is dropped once every window holding it or the pane after it (whose counter
        // increase starts from this pane's last reading) has closed.
        let (windows, pane_ms) = (&self.cfg.windows, self.panes.pane_ms());
        self.panes.drop_while(|p| {
            windows
                .iter()
                .map(|w| w.last_end_holding(p + pane_ms))
                .max()
                .is_some_and(|needed_until| needed_until <= wm)
        });
        closed
    }

    fn close_window(
        &mut self,
        start: EpochMs,
        end: EpochMs,
        out: &mut Closed,
        scratch: &mut Vec<f64>,
    ) {
        let mut window = self.panes.window(start, end);
        let series = &self.series;
        // Series ids depend on arrival order; sort by labels so output never does.
        window.sort_by(|(a, _), (b, _)| {
            let (sa, sb) = (series.get(*a), series.get(*b));
            (
                &sa.gpu_uuid,
                &sa.namespace,
                &sa.pod,
                &sa.container,
                &sa.hostname,
            )
                .cmp(&(
                    &sb.gpu_uuid,
                    &sb.namespace,
                    &sb.pod,
                    &sb.container,
                    &sb.hostname,
                ))
                .then_with(|| sa.extra.cmp(&sb.extra))
        });
        let attribution = &self.cfg.attribution;
        let mut ctx = RowContext {
            window_start: start,
            window_end: end,
            sample_interval_s: self.cfg.sample_interval_s,
            attribution,
            scratch,
        };
        let mut pools = PoolBuilder::new(start, end, self.cfg.sample_interval_s);
        let mut customs: Vec<CustomBuilder<'_>> = self
            .aggregations
            .iter()
            .map(|a| CustomBuilder::new(a, start, end))
            .collect();
        for (id, pts) in &window {
            let s = series.get(*id);
            let energy_before = self
                .panes
                .last_point_before(*id, FieldId::TOTAL_ENERGY, start)
                .map(|p| p.1);
            let row = GpuWindowRow::compute(&mut ctx, *id, s, pts, energy_before);
            pools.add(attribution.team_of(&s.namespace), s, &row, pts);
            for c in &mut customs {
                c.add(*id, s, attribution, pts);
            }
            if self.cfg.keep_points {
                push_points(&mut out.points, start, end, *id, pts, self.fields.len());
            }
            // A GPU that sent only non-utilization fields still gets a row (samples = 0).
            out.gpu.push(row);
        }
        out.pool.extend(pools.finish(ctx.scratch));
        for (c, rows) in customs.into_iter().zip(out.custom.iter_mut()) {
            c.finish(rows);
        }
        self.stats.windows_emitted += 1;
    }
}

fn push_points(
    out: &mut Vec<PointRow>,
    start: EpochMs,
    end: EpochMs,
    series: SeriesId,
    pts: &SeriesPoints,
    n_fields: usize,
) {
    for f in 0..n_fields {
        let field = FieldId(f as u16);
        for &(ts, value) in pts.points(field) {
            out.push(PointRow {
                window_start: start,
                window_end: end,
                series,
                field,
                ts,
                value,
            });
        }
    }
}

#[inline]
fn is_blank(v: f64) -> bool {
    v.is_finite() && v >= DCGM_BLANK_THRESHOLD
}

fn wall_clock_ms() -> EpochMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn fmt_ms(ms: EpochMs) -> String {
    format!("{:.3}s since the epoch", ms as f64 / 1000.0)
}
