//! The engine facade: batches of raw messages in, closed windows of every table out.
//!
//! Every message ends in exactly one counter (aggregated, skipped, late or dead), so the
//! counts always reconcile with what was consumed. Windows close only in `poll`,
//! `advance_to` and `finish`, never inside a batch, so order within a batch never matters.

mod close;
mod ingest;
mod positions;
mod request_json;
mod request_rows;
mod types;

pub use positions::Position;
pub use types::{Closed, MessageFormat, Offsets, PointRow, Provenance, Stats};

use crate::config::EngineConfig;
use crate::custom_agg::{CustomAggregation, GroupLabel};
use crate::decode::columnar::{ColumnarBatch, Form};
use crate::decode::exposition::Exposition;
use crate::decode::latency_columnar::{self, LatencyBatch};
use crate::decode::{prom_json, wide_json, DecodeContext};
use crate::error::EngineError;
use crate::fields::{FieldId, FieldRegistry};
use crate::idle_streaks::{IdleTracker, SeedRows};
use crate::late_dead::{DeadLetter, LateEvent};
use crate::latency_store::{LatencyStore, ServiceTable};
use crate::panes::PaneStore;
use crate::pod_table::PodTable;
use crate::series::{SeriesId, SeriesTable, MAX_EXTRA_LABELS};
use crate::time::EpochMs;
use crate::watermark::Watermarks;
use arrow_array::RecordBatch;
use close::{close_until, CloseContext};
use ingest::{settle, InterningSink, LabelCache, LineIngest, MessageReadings, Origin, State};
use request_json::push_request_messages;
use request_rows::push_request_rows;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Engine {
    cfg: EngineConfig,
    fields: FieldRegistry,
    extra_labels: Vec<Box<str>>,
    aggregations: Vec<CustomAggregation>,
    st: State,
    scratch: MessageReadings,
    label_cache: LabelCache,
    /// Idle streaks over the windows of the idle family (table `idle_streaks`).
    idle: IdleTracker,
    receive_time: Option<EpochMs>,
}

/// Resolves the configured aggregations' labels and fields (extra labels get slots).
fn resolve_aggregations(
    cfg: &EngineConfig,
    fields: &mut FieldRegistry,
) -> Result<(Vec<CustomAggregation>, Vec<Box<str>>), EngineError> {
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
                        return Err(EngineError::config(
                            format!("aggregations[{i}].group_by"),
                            format!("at most {MAX_EXTRA_LABELS} labels beyond the standard ones"),
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
    Ok((aggregations, extra_labels))
}

impl Engine {
    /// Builds an engine; the error names the configuration key that is wrong.
    pub fn new(cfg: EngineConfig) -> Result<Engine, EngineError> {
        cfg.validate()?;
        let mut fields = FieldRegistry::default();
        for (name, unit) in &cfg.units {
            fields.set_source_unit(name, *unit)?;
        }
        for name in &cfg.extra_fields {
            fields.register(name);
        }
        let (aggregations, extra_labels) = resolve_aggregations(&cfg, &mut fields)?;
        let st = State {
            series: match cfg.shard {
                Some(s) if s.filter => SeriesTable::for_shard(s.index, s.count),
                _ => SeriesTable::default(),
            },
            watermarks: Watermarks::new(
                cfg.allowed_lateness_ms,
                (cfg.sample_interval_s * 1000.0).round() as i64,
            ),
            panes: PaneStore::with_interval(
                cfg.pane_ms(),
                (cfg.sample_interval_s * 1000.0).round() as i64,
            ),
            latency: LatencyStore::new(cfg.pane_ms()),
            service_names: ServiceTable::default(),
            pod_names: PodTable::default(),
            service_slo_ms: Vec::new(),
            next_start: vec![None; cfg.windows.len()],
            sources: HashMap::new(),
            stats: Stats::default(),
            late_events: Vec::new(),
            dead_letters: Vec::new(),
            batch_max: Vec::new(),
            positions: positions::Positions::new(cfg.pane_ms()),
            shard: cfg.shard,
            request_batch: false,
            presplit_batch: false,
            batch_start: (Stats::default(), 0, 0),
        };
        let idle = IdleTracker::new(cfg.idle_threshold, cfg.idle_ttl_ms);
        Ok(Engine {
            idle,
            cfg,
            fields,
            extra_labels,
            aggregations,
            st,
            scratch: MessageReadings::default(),
            label_cache: LabelCache::default(),
            receive_time: None,
        })
    }

    /// A fixed receive time for the messages of every following batch that brings none of
    /// its own: dead letters' `received_at` and the "now" of the future-time check (replay
    /// uses the file's modification time, so replays are repeatable). `None`: the wall clock.
    pub fn set_receive_time(&mut self, at: Option<EpochMs>) {
        self.receive_time = at;
    }

    fn now(&self) -> EpochMs {
        self.receive_time.unwrap_or_else(wall_clock_ms)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn series(&self) -> &SeriesTable {
        &self.st.series
    }

    pub fn fields(&self) -> &FieldRegistry {
        &self.fields
    }

    pub fn aggregations(&self) -> &[CustomAggregation] {
        &self.aggregations
    }

    pub fn stats(&self) -> Stats {
        self.st.stats
    }

    pub fn watermark(&self) -> EpochMs {
        self.st.watermarks.current()
    }

    /// Every partition's watermark clock: (source, partition, newest event time, covered
    /// until, idle); for `merge_watermark_clocks` on the other shards of one input.
    pub fn watermark_clocks(&self) -> Vec<(String, i32, EpochMs, EpochMs, bool)> {
        let name_of: HashMap<u32, &str> = self
            .st
            .sources
            .iter()
            .map(|(name, (_, idx))| (*idx, name.as_str()))
            .collect();
        self.st
            .watermarks
            .clocks()
            .into_iter()
            .map(|(key, max_ts, covered, idle)| {
                let name = name_of.get(&((key >> 32) as u32)).copied().unwrap_or("");
                (name.to_string(), key as u32 as i32, max_ts, covered, idle)
            })
            .collect()
    }

    /// Takes the watermark clocks of the other shards of one input (see
    /// `Watermarks::merge_clocks`), after each has been handed the same batch: every shard then
    /// holds the watermark one engine reading all of it would.
    pub fn merge_watermark_clocks(&mut self, clocks: &[(String, i32, EpochMs, EpochMs, bool)]) {
        let keyed: Vec<_> = clocks
            .iter()
            .map(|(name, partition, max_ts, covered, idle)| {
                let (_, key) = self.st.source(name, *partition);
                (key, *max_ts, *covered, *idle)
            })
            .collect();
        self.st.watermarks.merge_clocks(&keyed);
    }

    /// Approximate bytes of window state held (points, requests, indexes, labels).
    pub fn state_bytes(&self) -> usize {
        self.st.panes.heap_bytes()
            + self.st.series.heap_bytes()
            + self.st.latency.heap_bytes()
            + self.st.pod_names.heap_bytes()
            + self.idle.heap_bytes()
    }

    /// Number of (pane, series) entries open.
    pub fn open_series_panes(&self) -> usize {
        self.st.panes.open_series_panes()
    }

    pub fn take_late_events(&mut self) -> Vec<LateEvent> {
        std::mem::take(&mut self.st.late_events)
    }

    pub fn take_dead_letters(&mut self) -> Vec<DeadLetter> {
        std::mem::take(&mut self.st.dead_letters)
    }

    /// Ingests a batch of messages of one format from one partition.
    pub fn push_messages<M: AsRef<[u8]>>(
        &mut self,
        format: MessageFormat,
        messages: &[M],
        prov: Provenance<'_>,
    ) {
        let wall = self.now();
        let (source, key) = self.st.source(prov.source, prov.partition);
        self.st.begin_batch(key);
        if format == MessageFormat::LatencyJson {
            push_request_messages(&mut self.st, &self.cfg, messages, &prov, &source, key, wall);
            self.st.end_batch();
            return;
        }
        let mut msg = std::mem::take(&mut self.scratch);
        for (i, m) in messages.iter().enumerate() {
            let bytes = m.as_ref();
            self.st.stats.consumed += 1;
            msg.clear();
            let at = Origin {
                source: &source,
                partition: prov.partition,
                key,
                offset: prov.offsets.get(i),
                now: prov.received_at.map_or(wall, |t| t[i]),
            };
            self.st.positions.consumed_through(at.offset);
            let too_big = (bytes.len() > self.cfg.max_message_bytes).then(|| {
                format!(
                    "message of {} bytes exceeds engine.max_message_bytes {}",
                    bytes.len(),
                    self.cfg.max_message_bytes
                )
            });
            let decoded = if let Some(reason) = too_big {
                Err(reason)
            } else {
                let ctx = DecodeContext {
                    fields: &self.fields,
                    extra_labels: &self.extra_labels,
                };
                self.label_cache.has_pending = false;
                let mut sink = InterningSink {
                    series: &mut self.st.series,
                    out: &mut msg,
                    same_series: None,
                    cache: Some(&mut self.label_cache),
                };
                match format {
                    MessageFormat::WideJson => wide_json::decode(bytes, &ctx, &mut sink),
                    _ => prom_json::decode(bytes, &ctx, &mut sink),
                }
            };
            settle(
                &mut self.st,
                &self.cfg,
                &self.fields,
                &msg,
                decoded,
                &at,
                bytes,
            );
        }
        self.scratch = msg;
        self.st.end_batch();
    }

    /// Ingests an Arrow record batch: GPU telemetry in the long or wide columnar form, or
    /// request events (`Form::Requests`); `None` detects the form from the columns.
    /// Each row is one message; its offset is `first_row` plus its index. `Err` when the
    /// batch's columns cannot be read at all (nothing of it is counted then).
    pub fn push_record_batch(
        &mut self,
        batch: &RecordBatch,
        form: Option<Form>,
        source: &str,
        partition: i32,
        first_row: i64,
    ) -> Result<(), EngineError> {
        self.push_rows(batch, form, source, partition, first_row, None)
    }

    /// `push_record_batch` for one shard of an input split by `shard::shard_of_rows`
    /// (`row_shards`, one per row): telemetry rows of other shards are not looked at (their
    /// event times reach this engine through `merge_watermark_clocks`); request batches are
    /// read whole, as every shard needs every request.
    pub fn push_record_batch_of_shard(
        &mut self,
        batch: &RecordBatch,
        form: Option<Form>,
        source: &str,
        partition: i32,
        first_row: i64,
        row_shards: &[u32],
    ) -> Result<(), EngineError> {
        let me = self.cfg.shard.map_or(0, |s| s.index);
        if row_shards.len() != batch.num_rows() {
            return Err(EngineError::Input(format!(
                "{} shard ids for {} rows",
                row_shards.len(),
                batch.num_rows()
            )));
        }
        let mine: Vec<u32> = (0..row_shards.len() as u32)
            .filter(|&i| row_shards[i as usize] == me)
            .collect();
        self.push_rows(batch, form, source, partition, first_row, Some(&mine))
    }

    /// `push_record_batch` for one shard of an input split by `shard::rows_by_shard`: `rows`
    /// (ascending) are this shard's telemetry rows of `batch`, and no other row is looked at
    /// (other shards' event times reach this engine through `merge_watermark_clocks`);
    /// request batches are read whole, as every shard needs every request.
    pub fn push_record_batch_rows(
        &mut self,
        batch: &RecordBatch,
        form: Option<Form>,
        source: &str,
        partition: i32,
        first_row: i64,
        rows: &[u32],
    ) -> Result<(), EngineError> {
        let n = batch.num_rows();
        if rows.windows(2).any(|w| w[0] >= w[1]) || rows.last().is_some_and(|&r| r as usize >= n) {
            return Err(EngineError::Input(format!(
                "shard rows must ascend and be below the batch's {n} rows"
            )));
        }
        self.push_rows(batch, form, source, partition, first_row, Some(rows))
    }

    fn push_rows(
        &mut self,
        batch: &RecordBatch,
        form: Option<Form>,
        source: &str,
        partition: i32,
        first_row: i64,
        rows: Option<&[u32]>,
    ) -> Result<(), EngineError> {
        let now = self.now();
        let (source, key) = self.st.source(source, partition);
        self.st.begin_batch(key);
        self.st.presplit_batch = rows.is_some();
        if batch.num_rows() > 0 {
            self.st
                .positions
                .consumed_through(first_row + batch.num_rows() as i64 - 1);
        }
        if form == Some(Form::Requests) || (form.is_none() && latency_columnar::is_requests(batch))
        {
            let rows = LatencyBatch::new(batch).map_err(EngineError::Input)?;
            let at = Origin {
                source: &source,
                partition,
                key,
                offset: first_row,
                now,
            };
            push_request_rows(&mut self.st, &self.cfg, &rows, &at, first_row);
            self.st.end_batch();
            return Ok(());
        }
        let ctx = DecodeContext {
            fields: &self.fields,
            extra_labels: &self.extra_labels,
        };
        let cols = ColumnarBatch::new(batch, form, &ctx).map_err(EngineError::Input)?;
        if cols.form() == Form::Long {
            match rows {
                Some(r) => {
                    let own = r.iter().map(|&i| i as usize);
                    self.push_long_rows(&cols, &source, partition, key, first_row, now, own)
                }
                None => {
                    let all = 0..cols.rows();
                    self.push_long_rows(&cols, &source, partition, key, first_row, now, all)
                }
            }
            self.st.end_batch();
            return Ok(());
        }
        let mut msg = std::mem::take(&mut self.scratch);
        let mut previous: Option<SeriesId> = None;
        let all: Vec<u32>;
        let rows = match rows {
            Some(r) => r,
            None => {
                all = (0..cols.rows() as u32).collect();
                &all
            }
        };
        let mut next_row = 0usize; // the row after the last one read
        for i in rows.iter().map(|&i| i as usize) {
            if i != next_row {
                previous = None; // rows of other shards in between
            }
            next_row = i + 1;
            self.st.stats.consumed += 1;
            msg.clear();
            let same_series = previous.filter(|_| cols.same_labels_as_previous(i));
            let mut sink = InterningSink {
                series: &mut self.st.series,
                out: &mut msg,
                same_series,
                cache: None,
            };
            let decoded = cols.row(i, same_series.is_some(), &ctx, &mut sink);
            previous = msg.readings.first().map(|r| r.0).or(same_series);
            let at = Origin {
                source: &source,
                partition,
                key,
                offset: first_row + i as i64,
                now,
            };
            settle(
                &mut self.st,
                &self.cfg,
                &self.fields,
                &msg,
                decoded,
                &at,
                &[],
            );
        }
        self.scratch = msg;
        self.st.end_batch();
        Ok(())
    }

    /// The long columnar form has one reading per row, so rows skip the per-message
    /// buffering: each is checked and routed directly (same rules, same counters).
    #[allow(clippy::too_many_arguments)]
    fn push_long_rows(
        &mut self,
        cols: &ColumnarBatch<'_>,
        source: &std::sync::Arc<str>,
        partition: i32,
        key: ingest::PartitionKey,
        first_row: i64,
        now: EpochMs,
        rows: impl Iterator<Item = usize>,
    ) {
        let ctx = DecodeContext {
            fields: &self.fields,
            extra_labels: &self.extra_labels,
        };
        let (st, cfg, fields) = (&mut self.st, &self.cfg, &self.fields);
        // Without signatures: the last row whose series is known, to reuse it while labels
        // repeat. With them, each distinct signature of the batch is interned once.
        let mut last: Option<(usize, SeriesId)> = None;
        let signatures = cols.label_signatures();
        let mut by_signature: HashMap<u64, SeriesId, foldhash::fast::FixedState> =
            HashMap::default();
        // The series of the current run of rows with equal labels, once one row resolved it.
        let mut run_series: Option<SeriesId> = None;
        // Readings at or after `open.1` are on time in every window family (one comparison
        // instead of a division per family); `open.0` is the closed_until it was taken from.
        let mut open = (EpochMs::MIN, EpochMs::MIN);
        // The newest event time routed on time, noted once (`saw`) after the loop.
        let mut newest = EpochMs::MIN;
        let mut at = Origin {
            source,
            partition,
            key,
            offset: first_row,
            now,
        };
        let mut next_row = 0usize; // the row after the last one read
        for i in rows {
            if i != next_row {
                // Rows of other shards in between; the run of equal labels may go on past them.
                run_series = None;
                last = None;
            }
            next_row = i + 1;
            st.stats.consumed += 1;
            if !signatures.as_ref().is_some_and(|s| s.continues_run(i)) {
                run_series = None;
            }
            at.offset = first_row + i as i64;
            let closed = ingest::closed_until(st);
            if closed != open.0 {
                open = (closed, ingest::open_everywhere_from(cfg, closed));
            }
            let reading = cols.time(i).and_then(|ts| {
                cols.long_reading(i, &ctx)
                    .map(|fv| fv.map(|(f, v)| (f, ts, v)))
            });
            let (field, ts, v) = match reading {
                Ok(Some(r)) => r,
                Ok(None) => {
                    st.stats.skipped_unknown_field += 1;
                    continue;
                }
                Err(reason) => {
                    ingest::dead(st, cfg, &at, reason, &[]);
                    continue;
                }
            };
            if let Some(id) = run_series {
                let reading = (id, field, ts, v);
                ingest_reading(st, cfg, fields, &at, reading, open.1, &mut newest);
                continue;
            }
            let sig = signatures.as_ref().and_then(|s| s.get(i));
            let known = match (sig, last) {
                (Some(s), _) => by_signature.get(&s).copied(),
                (None, Some((row, id))) if cols.same_labels(i, row) => Some(id),
                (None, _) => None,
            };
            let id = match known {
                Some(id) => id,
                None => match cols.labels(i) {
                    Ok(labels) => {
                        let id = st.series.intern(&labels);
                        if let Some(s) = sig {
                            by_signature.insert(s, id);
                        }
                        id
                    }
                    Err(reason) => {
                        ingest::dead(st, cfg, &at, reason, &[]);
                        continue;
                    }
                },
            };
            last = Some((i, id));
            if signatures.is_some() {
                run_series = Some(id);
            }
            let reading = (id, field, ts, v);
            ingest_reading(st, cfg, fields, &at, reading, open.1, &mut newest);
        }
        if newest != EpochMs::MIN {
            st.saw(key, newest);
        }
    }

    /// Ingests dcgm-exporter exposition text; every sample line is a message whose offset
    /// is its line number (plus `line_base`). `state` carries the current `# scrape_ts`
    /// from one chunk to the next; with `last` false, an unfinished last line is left
    /// unread and the number of bytes read is returned, so the caller can carry the rest.
    pub fn push_exposition(
        &mut self,
        state: &mut Exposition,
        text: &[u8],
        last: bool,
        source: &str,
        partition: i32,
        line_base: i64,
    ) -> usize {
        let now = self.now();
        let (source, key) = self.st.source(source, partition);
        self.st.begin_batch(key);
        let ctx = DecodeContext {
            fields: &self.fields,
            extra_labels: &self.extra_labels,
        };
        let mut sink = LineIngest {
            st: &mut self.st,
            cfg: &self.cfg,
            fields: &self.fields,
            msg: std::mem::take(&mut self.scratch),
            source,
            partition,
            key,
            line_base,
            now,
        };
        let used = if last {
            state.finish(text, &ctx, &mut sink);
            text.len()
        } else {
            state.feed(text, &ctx, &mut sink)
        };
        self.scratch = sink.msg;
        self.st.end_batch();
        used
    }

    /// Makes (`source`, `partition`) hold the watermark back from now on, before it sends
    /// data (a partition just assigned), until it sends data or is marked idle.
    pub fn expect_partition(&mut self, source: &str, partition: i32) {
        let (_, key) = self.st.source(source, partition);
        self.st.watermarks.expect(key);
    }

    /// Restarts from a checkpoint, before any data. Per partition (source, partition,
    /// replay_until, written_through): events at offsets below `replay_until` are re-reads
    /// whose late and dead rows were written already; windows ending at or before
    /// `written_through` were written already with this partition's events, which are
    /// therefore not aggregated again. The watermark starts at the lowest `written_through`
    /// (`None`: nothing written yet). Every listed partition holds the watermark back until
    /// it sends data or goes idle.
    pub fn resume(&mut self, partitions: &[(&str, i32, i64, Option<EpochMs>)]) {
        let floors: Vec<Option<EpochMs>> = partitions.iter().map(|p| p.3).collect();
        let start = if floors.iter().all(|f| f.is_some()) {
            floors.iter().flatten().min().copied()
        } else {
            None
        };
        if let Some(wm) = start {
            // On an engine without data this only moves the watermark and window cursors.
            let closed = self.advance_to(wm);
            debug_assert!(closed.gpu.is_empty() && closed.latency.is_empty());
        }
        for &(source, partition, until, floor) in partitions {
            let (_, key) = self.st.source(source, partition);
            self.st.positions.set_replay_until(key, until);
            if let Some(f) = floor {
                self.st.positions.set_floor(key, f);
            }
            self.st.watermarks.expect(key);
        }
    }

    /// The largest event time seen in any partition (`None` before any data).
    pub fn max_event_time(&self) -> Option<EpochMs> {
        self.st.watermarks.max_seen()
    }

    /// Per partition seen or resumed: where a restart must re-read from so that nothing
    /// not yet written is lost (`commit_offset`), and one past the last offset consumed.
    pub fn positions(&self) -> Vec<(Arc<str>, i32, Position)> {
        self.st
            .positions
            .all()
            .into_iter()
            .filter_map(|(key, pos)| {
                let idx = (key >> 32) as u32;
                let partition = key as u32 as i32;
                let (name, _) = self.st.sources.values().find(|(_, i)| *i == idx)?;
                Some((name.clone(), partition, pos))
            })
            .collect()
    }

    /// Stops (`source`, `partition`) from holding the watermark back until it sends data.
    pub fn mark_idle(&mut self, source: &str, partition: i32) {
        let (_, key) = self.st.source(source, partition);
        self.st.watermarks.mark_idle(key);
    }

    fn close(&mut self, wm: EpochMs) -> Closed {
        let cx = CloseContext {
            cfg: &self.cfg,
            fields: &self.fields,
            aggregations: &self.aggregations,
        };
        close_until(&mut self.st, &cx, &mut self.idle, wm)
    }

    /// Rebuilds the idle streaks from `gpu_windows` rows written earlier (a restart that
    /// re-reads only the open windows): rows of the idle family's windows, in any order and
    /// batches, are taken window by window, oldest first, producing no rows, so that the
    /// next windows continue the streaks as an uninterrupted run would. Pass every row of
    /// those windows (unallocated GPUs too: a window where a pod's GPU has no row ends its
    /// streak). Windows ending at or before the last one already taken are skipped, as are
    /// rows present twice. Returns the number of windows taken; `Err` names a missing or
    /// mistyped column (nothing is taken then).
    pub fn seed_idle_streaks(&mut self, batches: &[RecordBatch]) -> Result<usize, EngineError> {
        let Some(k) = self.cfg.idle_family() else {
            return Ok(0);
        };
        let size_ms = self.cfg.windows[k].size_ms;
        let mut rows = SeedRows::default();
        for b in batches {
            rows.add_batch(b, size_ms)
                .map_err(|e| EngineError::input(e).context("gpu_windows"))?;
        }
        Ok(rows.feed(&mut self.idle))
    }

    /// Number of (GPU, namespace, pod) currently in an idle streak.
    pub fn idle_streaks_open(&self) -> usize {
        self.idle.len()
    }

    /// Closes every window the data's watermark has passed.
    pub fn poll(&mut self) -> Closed {
        let wm = self.st.watermarks.advance();
        self.close(wm)
    }

    /// Moves the watermark to at least `ts` and closes what that finishes.
    pub fn advance_to(&mut self, ts: EpochMs) -> Closed {
        self.st.watermarks.advance();
        let wm = self.st.watermarks.advance_to(ts);
        self.close(wm)
    }

    /// How far the data seen covers event time: the newest reading's time plus
    /// `sample_interval_s`, or the newest request's end time, whichever is later (`None`
    /// before any data). `close_quiet` closes the windows ending at or before it.
    pub fn quiet_close_time(&self) -> Option<EpochMs> {
        self.st.watermarks.covered_until()
    }

    /// Every partition has gone quiet (the caller's judgement: no data for `idle_timeout_s`
    /// plus `allowed_lateness_s`): closes every window ending at or before
    /// `quiet_close_time`, so the last windows of a stream that stops are written; what
    /// arrives for them afterwards is late. Unlike `finish`, a window the data does not
    /// cover to its end (the data stops inside it, or a hopping window reaching beyond)
    /// stays open for data still to come.
    pub fn close_quiet(&mut self) -> Closed {
        let wm = self.st.watermarks.quiet_close();
        self.close(wm)
    }

    /// End of input: closes every window that holds data.
    pub fn finish(&mut self) -> Closed {
        let mut closed = self.poll();
        let pane_ms = self.st.panes.pane_ms();
        let last_pane = self.st.panes.last_pane().max(self.st.latency.last_pane());
        let last_end = last_pane.and_then(|p| {
            self.cfg
                .windows
                .iter()
                .map(|w| w.last_end_holding(p + pane_ms - 1))
                .max()
        });
        if let Some(end) = last_end {
            closed.extend(self.advance_to(end));
        }
        // End of input: every window is written, so a restart resumes after the last event
        // (the panes kept for the next window's energy increase are not needed any more).
        self.st.positions.drop_while(|_| true);
        closed
    }
}

/// One long-form reading whose series is known: a blank is skipped, an invalid value is a
/// dead letter, anything else is routed and counted. At or after `open_from` it is on time
/// everywhere (its time goes into `newest`); before, `route` decides.
#[inline(always)]
fn ingest_reading(
    st: &mut State,
    cfg: &EngineConfig,
    fields: &FieldRegistry,
    at: &Origin<'_>,
    reading: (SeriesId, FieldId, EpochMs, f64),
    open_from: EpochMs,
    newest: &mut EpochMs,
) {
    let (_, field, ts, v) = reading;
    if ingest::is_blank(v) {
        st.stats.skipped_blank += 1;
        return;
    }
    if let Err(reason) = ingest::check_reading(cfg, fields, field, ts, v, at.now) {
        ingest::dead(st, cfg, at, reason, &[]);
        return;
    }
    let routed = if ts >= open_from {
        *newest = (*newest).max(ts);
        ingest::route_on_time(st, reading, at.offset)
    } else {
        ingest::route(st, cfg, fields, reading, at)
    };
    ingest::count(&mut st.stats, routed, false);
}

fn wall_clock_ms() -> EpochMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
