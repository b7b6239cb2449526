//! The per-message path: readings are held until the message is known valid, then routed to
//! panes and counted once; invalid messages become dead letters. Works on `State` (the
//! mutable part of the engine) so decoders can borrow the configuration meanwhile.

use super::positions::Positions;
use super::types::Stats;
use crate::config::EngineConfig;
use crate::decode::exposition::LineSink;
use crate::decode::latency_json::Request;
use crate::decode::{Reading, ReadingSink};
use crate::fields::{FieldId, FieldRegistry, DCGM_BLANK_THRESHOLD};
use crate::late_dead::{DeadLetter, LateEvent};
use crate::latency_store::{LatencyStore, RequestIn, ServiceId, ServiceTable};
use crate::panes::PaneStore;
use crate::pod_table::PodTable;
use crate::series::{SeriesId, SeriesTable};
use crate::shard::Shard;
use crate::time::{EpochMs, MIN_VALID_MS};
use crate::watermark::Watermarks;
use crate::window::Insert;
use std::collections::HashMap;
use std::sync::Arc;

/// Watermark key of a (source, partition): partitions of different topics are different.
pub(crate) type PartitionKey = u64;

/// The mutable state of an engine.
pub(crate) struct State {
    pub series: SeriesTable,
    pub watermarks: Watermarks,
    pub panes: PaneStore,
    pub latency: LatencyStore,
    pub service_names: ServiceTable,
    /// (namespace, pod) pairs of requests, interned.
    pub pod_names: PodTable,
    /// SLO latency threshold by service id (looked up once per service).
    pub service_slo_ms: Vec<f64>,
    /// Per window family: start of the earliest window not yet emitted.
    pub next_start: Vec<Option<EpochMs>>,
    pub sources: HashMap<String, (Arc<str>, u32)>,
    pub stats: Stats,
    pub late_events: Vec<LateEvent>,
    pub dead_letters: Vec<DeadLetter>,
    /// Largest reading time and largest request end time of this batch per partition
    /// (`EpochMs::MIN`: none), applied to the watermarks at its end (a batch comes from one
    /// partition, so this holds one entry).
    pub batch_max: Vec<(PartitionKey, EpochMs, EpochMs)>,
    pub positions: Positions,
    /// This engine's shard (`shard.rs`); None: the only engine.
    pub shard: Option<Shard>,
    /// Set by the request paths during a batch: the batch held requests.
    pub request_batch: bool,
    /// The batch came split by shard (`push_record_batch_of_shard`): each row reached one
    /// shard only, so this shard counts every row it was given.
    pub presplit_batch: bool,
    /// What a batch must leave as it found it on a shard other than the first (see
    /// `end_batch`): the counters and the lengths of the event lists at its start.
    pub batch_start: (Stats, usize, usize),
}

impl State {
    /// The interned source name and its watermark key for `partition`.
    pub fn source(&mut self, name: &str, partition: i32) -> (Arc<str>, PartitionKey) {
        let next = self.sources.len() as u32;
        let (arc, idx) = self
            .sources
            .entry(name.to_string())
            .or_insert_with(|| (name.into(), next))
            .clone();
        (arc, ((idx as u64) << 32) | (partition as u32 as u64))
    }

    /// Starts a batch from one partition.
    pub fn begin_batch(&mut self, key: PartitionKey) {
        self.positions.begin_batch(key);
        if self.shard.is_some() {
            self.request_batch = false;
            self.presplit_batch = false;
            self.batch_start = (self.stats, self.late_events.len(), self.dead_letters.len());
        }
    }

    /// Applies the batch's largest event times to the watermarks.
    pub fn end_batch(&mut self) {
        for (key, reading, request) in self.batch_max.drain(..) {
            self.watermarks.observe(key, reading, request);
        }
        self.positions.end_batch();
        if let Some(shard) = self.shard.filter(|s| !s.is_first()) {
            self.forget_shared_outcomes(shard);
        }
    }

    /// On a shard other than the first, takes back what shard 0 reports for all shards:
    /// everything a batch of requests counted or recorded (each shard keeps the requests
    /// themselves, for the join to GPUs), and, when every shard reads the whole input, the
    /// outcomes decided before a reading's GPU is known (consumed, blank, unknown field,
    /// dead). Readings of this shard's own GPUs keep their outcome (aggregated, duplicate,
    /// late): summed over the shards, every counter is one engine's.
    fn forget_shared_outcomes(&mut self, shard: Shard) {
        let (before, late, dead) = self.batch_start;
        if self.request_batch {
            let windows_emitted = self.stats.windows_emitted;
            self.stats = Stats {
                windows_emitted,
                ..before
            };
            self.late_events.truncate(late);
            self.dead_letters.truncate(dead);
        } else if shard.filter && !self.presplit_batch {
            self.stats.consumed = before.consumed;
            self.stats.skipped_blank = before.skipped_blank;
            self.stats.skipped_unknown_field = before.skipped_unknown_field;
            self.stats.dead = before.dead;
            self.dead_letters.truncate(dead);
        }
    }

    /// Notes a reading time of the current batch.
    #[inline]
    pub fn saw(&mut self, key: PartitionKey, ts: EpochMs) {
        match self.batch_max.iter_mut().find(|e| e.0 == key) {
            Some(e) => e.1 = e.1.max(ts),
            None => self.batch_max.push((key, ts, EpochMs::MIN)),
        }
    }

    /// Notes a request end time of the current batch.
    #[inline]
    pub fn saw_request(&mut self, key: PartitionKey, ts: EpochMs) {
        match self.batch_max.iter_mut().find(|e| e.0 == key) {
            Some(e) => e.2 = e.2.max(ts),
            None => self.batch_max.push((key, EpochMs::MIN, ts)),
        }
    }
}

/// One message's readings, held until the message is known to be valid.
#[derive(Default)]
pub(crate) struct MessageReadings {
    pub readings: Vec<(SeriesId, FieldId, EpochMs, f64)>,
    pub unknown: u32,
}

impl MessageReadings {
    pub fn clear(&mut self) {
        self.readings.clear();
        self.unknown = 0;
    }
}

/// Where one message came from.
pub(crate) struct Origin<'a> {
    pub source: &'a Arc<str>,
    pub partition: i32,
    pub key: PartitionKey,
    pub offset: i64,
    pub now: EpochMs,
}

#[inline]
pub(crate) fn is_blank(v: f64) -> bool {
    v.is_finite() && v >= DCGM_BLANK_THRESHOLD
}

/// Applies a decoded message, or records it as a dead letter.
pub(crate) fn settle(
    st: &mut State,
    cfg: &EngineConfig,
    fields: &FieldRegistry,
    msg: &MessageReadings,
    decoded: Result<(), String>,
    at: &Origin<'_>,
    raw: &[u8],
) {
    match decoded.and_then(|_| check(cfg, fields, msg, at.now)) {
        Ok(()) => apply(st, cfg, fields, msg, at),
        Err(reason) => dead(st, cfg, at, reason, raw),
    }
}

pub(crate) fn dead(
    st: &mut State,
    cfg: &EngineConfig,
    at: &Origin<'_>,
    reason: String,
    raw: &[u8],
) {
    if st.positions.is_replay(at.offset) {
        // Its dead-letter row was written before the restart.
        st.stats.skipped_replayed += 1;
        return;
    }
    st.stats.dead += 1;
    let keep = raw.len().min(cfg.dead_letter_max_bytes);
    st.dead_letters.push(DeadLetter {
        source: at.source.clone(),
        partition: at.partition,
        offset: at.offset,
        received_at: at.now,
        reason,
        raw: raw[..keep].to_vec(),
        raw_size: raw.len() as i64,
    });
}

/// Validates a message's readings; `Err` is the dead-letter reason.
fn check(
    cfg: &EngineConfig,
    fields: &FieldRegistry,
    msg: &MessageReadings,
    now: EpochMs,
) -> Result<(), String> {
    for &(_, field, ts, v) in &msg.readings {
        check_reading(cfg, fields, field, ts, v, now)?;
    }
    Ok(())
}

/// Validates one reading (blanks pass: they are skips, not errors).
#[inline(always)]
pub(crate) fn check_reading(
    cfg: &EngineConfig,
    fields: &FieldRegistry,
    field: FieldId,
    ts: EpochMs,
    v: f64,
    now: EpochMs,
) -> Result<(), String> {
    if is_blank(v) {
        return Ok(());
    }
    fields.validate(field, v)?;
    if ts < MIN_VALID_MS {
        return Err(format!("event time {} is before 2000-01-01", fmt_ms(ts)));
    }
    if ts > now.saturating_add(cfg.max_future_ms) {
        return Err(format!(
            "event time {} is more than engine.max_future_s ahead of now",
            fmt_ms(ts)
        ));
    }
    Ok(())
}

/// What routing one reading did.
#[derive(Default, Clone, Copy)]
pub(crate) struct Routed {
    pub new: bool,
    pub duplicate: bool,
    pub late: bool,
    /// A re-read (after a restart) of a reading whose windows were all written.
    pub replayed: bool,
    /// Another shard's GPU: that shard counts it.
    pub foreign: bool,
}

/// Routes one valid, non-blank reading to its pane (or to `late_events` for every window
/// family it missed). The common case (on time in every family) stays small enough to be
/// inlined into the decoders' loops; everything else is in `route_late`.
#[inline(always)]
pub(crate) fn route(
    st: &mut State,
    cfg: &EngineConfig,
    fields: &FieldRegistry,
    reading: (SeriesId, FieldId, EpochMs, f64),
    at: &Origin<'_>,
) -> Routed {
    let ts = reading.2;
    let closed_until = closed_until(st);
    st.saw(at.key, ts);
    if !cfg
        .windows
        .iter()
        .all(|spec| spec.last_end_holding(ts) > closed_until)
    {
        return route_late(st, cfg, fields, reading, at);
    }
    route_on_time(st, reading, at.offset)
}

/// `route` for a reading on time in every window family (the caller checked, e.g. against
/// `open_everywhere_from`, and notes its event time with `State::saw` itself).
#[inline(always)]
pub(crate) fn route_on_time(
    st: &mut State,
    (id, field, ts, v): (SeriesId, FieldId, EpochMs, f64),
    offset: i64,
) -> Routed {
    let mut out = Routed::default();
    if st.series.is_foreign(id) {
        out.foreign = true;
        return out;
    }
    match st.panes.insert(id, field, ts, v) {
        Insert::New => {
            out.new = true;
            st.positions.hold(ts, offset);
        }
        Insert::Duplicate => out.duplicate = true,
    }
    out
}

/// `route` for a reading that missed at least one window family: late rows (or, for a
/// re-read after a restart, none), and the pane for the families it is still on time for.
#[cold]
#[inline(never)]
fn route_late(
    st: &mut State,
    cfg: &EngineConfig,
    fields: &FieldRegistry,
    (id, field, ts, v): (SeriesId, FieldId, EpochMs, f64),
    at: &Origin<'_>,
) -> Routed {
    let mut out = Routed::default();
    if st.series.is_foreign(id) {
        // Late or not, it is the other shard's to record.
        out.foreign = true;
        return out;
    }
    let global = st.watermarks.current();
    let closed_until = global.max(st.positions.batch_floor);
    let replay = st.positions.is_replay(at.offset);
    let mut on_time = false;
    for spec in &cfg.windows {
        let newest_end = spec.last_end_holding(ts);
        if newest_end > closed_until {
            on_time = true;
            continue;
        }
        if replay {
            out.replayed = true;
            continue;
        }
        out.late = true;
        let s = st.series.get(id);
        st.late_events.push(LateEvent {
            stream: "gpu_telemetry",
            key: s.gpu_uuid.to_string(),
            namespace: s.namespace.to_string(),
            pod: s.pod.to_string(),
            field: fields.name(field).to_string(),
            event_time: ts,
            window_start: newest_end - spec.size_ms,
            window_end: newest_end,
            lateness_s: (closed_until - newest_end) as f64 / 1000.0,
            source: at.source.clone(),
            partition: at.partition,
            offset: at.offset,
        });
    }
    if on_time {
        let r = route_on_time(st, (id, field, ts, v), at.offset);
        out.new = r.new;
        out.duplicate = r.duplicate;
    } else if replay
        && still_held(cfg, st.panes.pane_ms(), ts, closed_until)
        && cfg.windows.iter().all(|w| w.last_end_holding(ts) <= global)
    {
        // Its windows were written before the restart, but its pane is still kept as the
        // starting point of the next window's energy increase: restore it there. (Not when
        // only this partition's own checkpoint covers the windows: this engine would emit
        // them again.)
        st.panes.insert(id, field, ts, v);
        st.positions.hold(ts, at.offset);
    }
    out
}

/// True while the pane holding `ts` is kept (the rule of `close_until`'s pane dropping).
fn still_held(cfg: &EngineConfig, pane_ms: i64, ts: EpochMs, wm: EpochMs) -> bool {
    let pane = crate::time::align_down(ts, pane_ms);
    cfg.windows
        .iter()
        .map(|w| w.last_end_holding(pane + pane_ms))
        .max()
        .is_some_and(|needed_until| needed_until > wm)
}

/// Counts a message once: aggregated if any reading was new; a duplicate if its readings
/// were all seen; late if it missed every window; else a blank or unknown-field skip.
#[inline]
pub(crate) fn count(stats: &mut Stats, r: Routed, blank: bool) {
    if r.foreign && !(r.new || r.duplicate || r.late || r.replayed) {
        return;
    }
    if r.new {
        stats.aggregated += 1;
    } else if r.duplicate {
        stats.skipped_duplicate += 1;
    } else if r.replayed {
        stats.skipped_replayed += 1;
    } else if r.late {
        stats.late += 1;
    } else if blank {
        stats.skipped_blank += 1;
    } else {
        stats.skipped_unknown_field += 1;
    }
}

/// Routes a valid message's readings to their panes and counts the message once.
fn apply(
    st: &mut State,
    cfg: &EngineConfig,
    fields: &FieldRegistry,
    msg: &MessageReadings,
    at: &Origin<'_>,
) {
    let mut all = Routed::default();
    let mut blank = false;
    for &reading in &msg.readings {
        if is_blank(reading.3) {
            blank = true;
            continue;
        }
        let r = route(st, cfg, fields, reading, at);
        all.new |= r.new;
        all.duplicate |= r.duplicate;
        all.late |= r.late;
        all.replayed |= r.replayed;
        all.foreign |= r.foreign;
    }
    count(&mut st.stats, all, blank);
}

/// Applies a decoded request, or records it as a dead letter.
pub(crate) fn settle_request(
    st: &mut State,
    cfg: &EngineConfig,
    decoded: Result<Request<'_>, String>,
    at: &Origin<'_>,
    raw: &[u8],
) {
    st.request_batch = true;
    let r = match decoded.and_then(|r| check_request(cfg, r, at.now)) {
        Ok(r) => r,
        Err(reason) => return dead(st, cfg, at, reason, raw),
    };
    st.saw_request(at.key, r.values.ts_ms);
    if !request_on_time(st, cfg, &r, at) {
        return;
    }
    let sid = service_id(st, cfg, &r.service);
    let pod = st.pod_names.intern(&r.namespace, &r.pod);
    add_request(
        st,
        sid,
        &RequestIn {
            values: r.values,
            pod,
            slo_latency_ms: st.service_slo_ms[sid as usize],
        },
        at.offset,
    );
}

/// The end of event time closed so far: a window ending at or before it is closed.
#[inline]
pub(crate) fn closed_until(st: &State) -> EpochMs {
    st.watermarks.current().max(st.positions.batch_floor)
}

/// The earliest event time whose windows are all still open, for every window family, while
/// `closed_until` holds: a request at or after it has no late event to record (the common
/// case). A window family's newest window holding `ts` ends at `align_down(ts, slide) +
/// size`, which is after `c` exactly when `ts >= align_down(c - size, slide) + slide`.
pub(crate) fn open_everywhere_from(cfg: &EngineConfig, closed_until: EpochMs) -> EpochMs {
    cfg.windows
        .iter()
        .map(|spec| {
            closed_until
                .checked_sub(spec.size_ms)
                .and_then(|x| x.div_euclid(spec.slide_ms).checked_mul(spec.slide_ms))
                .map_or(EpochMs::MIN, |start| start.saturating_add(spec.slide_ms))
        })
        .max()
        .unwrap_or(EpochMs::MIN)
}

/// Records the late events of a request (one per window family it is too late for); false
/// when it is too late for every family, counted then as late or as replayed.
fn request_on_time(st: &mut State, cfg: &EngineConfig, r: &Request<'_>, at: &Origin<'_>) -> bool {
    let closed_until = closed_until(st);
    let replay = st.positions.is_replay(at.offset);
    let mut on_time = false;
    for spec in &cfg.windows {
        let newest_end = spec.last_end_holding(r.values.ts_ms);
        if newest_end > closed_until {
            on_time = true;
            continue;
        }
        if replay {
            continue;
        }
        st.late_events.push(LateEvent {
            stream: "request_latency",
            key: r.service.to_string(),
            namespace: r.namespace.to_string(),
            pod: r.pod.to_string(),
            field: "latency_ms".to_string(),
            event_time: r.values.ts_ms,
            window_start: newest_end - spec.size_ms,
            window_end: newest_end,
            lateness_s: (closed_until - newest_end) as f64 / 1000.0,
            source: at.source.clone(),
            partition: at.partition,
            offset: at.offset,
        });
    }
    if !on_time {
        if replay {
            st.stats.skipped_replayed += 1;
        } else {
            st.stats.late += 1;
        }
    }
    on_time
}

/// The id of a (non-empty) service name, with its SLO threshold looked up on first sight.
pub(crate) fn service_id(st: &mut State, cfg: &EngineConfig, name: &str) -> ServiceId {
    let sid = st.service_names.intern(name);
    // Services can also be interned by the join (pod rules), so fill every id up to this one.
    while st.service_slo_ms.len() <= sid as usize {
        let name = st.service_names.name(st.service_slo_ms.len() as u32);
        st.service_slo_ms.push(cfg.services.slo_of(name).latency_ms);
    }
    sid
}

/// Adds an on-time, valid request to its pane (a duplicate `request_id` is only counted).
#[inline]
pub(crate) fn add_request(st: &mut State, sid: ServiceId, r: &RequestIn<'_>, offset: i64) {
    let ts_ms = r.values.ts_ms;
    if st.latency.acc_mut(sid, ts_ms).add(r) {
        st.positions.hold(ts_ms, offset);
        st.stats.aggregated += 1;
    } else {
        st.stats.skipped_duplicate += 1;
    }
}

/// Resolves the service (from the pod patterns when the event names none) and checks the
/// event time; `Err` is the dead-letter reason.
fn check_request<'a>(
    cfg: &EngineConfig,
    mut r: Request<'a>,
    now: EpochMs,
) -> Result<Request<'a>, String> {
    if r.service.is_empty() {
        match cfg.services.service_of_pod(&r.namespace, &r.pod) {
            Some(s) => r.service = s.to_string().into(),
            None => {
                return Err(format!(
                    "request names no service and pod {:?} in namespace {:?} matches no services.pods rule",
                    &*r.pod, &*r.namespace
                ))
            }
        }
    }
    if r.values.ts_ms < MIN_VALID_MS {
        return Err(format!(
            "event time {} is before 2000-01-01",
            fmt_ms(r.values.ts_ms)
        ));
    }
    if r.values.ts_ms > now.saturating_add(cfg.max_future_ms) {
        return Err(format!(
            "event time {} is more than engine.max_future_s ahead of now",
            fmt_ms(r.values.ts_ms)
        ));
    }
    Ok(r)
}

fn fmt_ms(ms: EpochMs) -> String {
    format!("{:.3}s since the epoch", ms as f64 / 1000.0)
}

/// Series by the raw bytes of their label sets (as messages carry them); bounded.
#[derive(Default)]
pub(crate) struct LabelCache {
    by_bytes: HashMap<Box<[u8]>, SeriesId, foldhash::fast::FixedState>,
    /// Bytes offered by the current message and not known, to remember once interned.
    pending: Vec<u8>,
    pub has_pending: bool,
}

/// Label sets remembered at most; beyond, the cache starts over (a fleet's series fit).
const LABEL_CACHE_MAX: usize = 1 << 17;

/// Interns each reading's labels (or reuses the series the decoder says is unchanged).
pub(crate) struct InterningSink<'s> {
    pub series: &'s mut SeriesTable,
    pub out: &'s mut MessageReadings,
    /// The decoder knows these readings carry the previous message's labels.
    pub same_series: Option<SeriesId>,
    pub cache: Option<&'s mut LabelCache>,
}

impl ReadingSink for InterningSink<'_> {
    fn reading(&mut self, r: Reading<'_>) {
        let id = match self.same_series {
            Some(id) => id,
            None => {
                let id = self.series.intern(&r.labels);
                if let Some(c) = self.cache.as_deref_mut().filter(|c| c.has_pending) {
                    if c.by_bytes.len() >= LABEL_CACHE_MAX {
                        c.by_bytes.clear();
                    }
                    c.by_bytes.insert(c.pending.as_slice().into(), id);
                    c.has_pending = false;
                }
                id
            }
        };
        self.out.readings.push((id, r.field, r.ts_ms, r.value));
    }
    fn unknown_field(&mut self) {
        self.out.unknown += 1;
    }
    fn known_labels(&mut self, raw: &[u8]) -> bool {
        let Some(c) = self.cache.as_deref_mut() else {
            return false;
        };
        match c.by_bytes.get(raw) {
            Some(&id) => {
                self.same_series = Some(id);
                true
            }
            None => {
                c.pending.clear();
                c.pending.extend_from_slice(raw);
                c.has_pending = true;
                false
            }
        }
    }
}

/// Exposition text: every sample line is a message, settled when the line ends.
pub(crate) struct LineIngest<'e> {
    pub st: &'e mut State,
    pub cfg: &'e EngineConfig,
    pub fields: &'e FieldRegistry,
    pub msg: MessageReadings,
    pub source: Arc<str>,
    pub partition: i32,
    pub key: PartitionKey,
    /// Added to the text's own line numbers (for texts fed in chunks by the caller).
    pub line_base: i64,
    pub now: EpochMs,
}

impl ReadingSink for LineIngest<'_> {
    fn reading(&mut self, r: Reading<'_>) {
        let id = self.st.series.intern(&r.labels);
        self.msg.readings.push((id, r.field, r.ts_ms, r.value));
    }
    fn unknown_field(&mut self) {
        self.msg.unknown += 1;
    }
}

impl LineSink for LineIngest<'_> {
    fn begin_line(&mut self, _line_no: u64) {
        self.st.stats.consumed += 1;
        self.msg.clear();
    }

    fn end_line(&mut self, line_no: u64, result: Result<(), String>, raw_line: &[u8]) {
        let at = Origin {
            source: &self.source,
            partition: self.partition,
            key: self.key,
            offset: self.line_base + line_no as i64,
            now: self.now,
        };
        settle(
            self.st,
            self.cfg,
            self.fields,
            &self.msg,
            result,
            &at,
            raw_line,
        );
    }
}
