//! The engine facade: batches of raw messages in, closed `gpu_windows` rows out.
//!
//! Every message ends in exactly one counter (aggregated, skipped, late or dead), so the
//! counts always reconcile with what was consumed.

use crate::decode::{prom_json, DecodeContext, Reading, ReadingSink};
use crate::fields::{FieldRegistry, DCGM_BLANK_THRESHOLD};
use crate::gpu_windows::GpuWindowRow;
use crate::series::SeriesTable;
use crate::time::{EpochMs, MIN_VALID_MS};
use crate::watermark::Watermarks;
use crate::window::{GpuWindowAcc, Insert, WindowSpec};
use foldhash::fast::FixedState;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub windows: Vec<WindowSpec>,
    pub allowed_lateness_ms: i64,
    pub sample_interval_s: f64,
    /// Messages larger than this are dead letters, never parsed.
    pub max_message_bytes: usize,
    /// Event times later than this are dead letters ("far in the future").
    pub max_event_time_ms: EpochMs,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            windows: vec![WindowSpec::tumbling(60)],
            allowed_lateness_ms: 30_000,
            sample_interval_s: 1.0,
            max_message_bytes: 1 << 20,
            // 2100-01-01T00:00:00Z; the wall-clock bound arrives with configuration (issue 3).
            max_event_time_ms: 4_102_444_800_000,
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

/// A message that could not be used, with where it came from and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
}

/// Open windows of one window family and start, keyed by series.
type OpenWindow = HashMap<u32, GpuWindowAcc, FixedState>;

/// Collects one message's readings, so a message that turns out dead contributes nothing.
#[derive(Default)]
struct MessageReadings {
    readings: Vec<(u32, crate::fields::FieldId, EpochMs, f64)>,
    unknown: u32,
}

struct InterningSink<'s> {
    series: &'s mut SeriesTable,
    out: &'s mut MessageReadings,
}

impl ReadingSink for InterningSink<'_> {
    fn reading(&mut self, r: Reading<'_>) {
        let id = self.series.intern(&r.labels);
        self.out.readings.push((id, r.field, r.ts_ms, r.value));
    }
    fn unknown_field(&mut self) {
        self.out.unknown += 1;
    }
}

pub struct Engine {
    cfg: EngineConfig,
    fields: FieldRegistry,
    series: SeriesTable,
    watermarks: Watermarks,
    /// Keyed by (window_end, spec index, window_start) so closing pops from the front.
    open: BTreeMap<(EpochMs, usize, EpochMs), OpenWindow>,
    stats: Stats,
    dead_letters: Vec<DeadLetter>,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        Engine {
            watermarks: Watermarks::new(cfg.allowed_lateness_ms),
            cfg,
            fields: FieldRegistry::default(),
            series: SeriesTable::default(),
            open: BTreeMap::new(),
            stats: Stats::default(),
            dead_letters: Vec::new(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn series(&self) -> &SeriesTable {
        &self.series
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn watermark(&self) -> EpochMs {
        self.watermarks.current()
    }

    /// Dead letters recorded since the last call.
    pub fn take_dead_letters(&mut self) -> Vec<DeadLetter> {
        std::mem::take(&mut self.dead_letters)
    }

    fn dead(&mut self, partition: i32, offset: i64, reason: String) {
        self.stats.dead += 1;
        self.dead_letters.push(DeadLetter {
            partition,
            offset,
            reason,
        });
    }

    /// Ingests prometheus-kafka-adapter JSON messages from one partition. `first_offset` is
    /// the offset (or line number) of `messages[0]`; the rest follow contiguously.
    pub fn push_prom_json<M: AsRef<[u8]>>(
        &mut self,
        messages: &[M],
        partition: i32,
        first_offset: i64,
    ) {
        for (i, m) in messages.iter().enumerate() {
            let offset = first_offset + i as i64;
            self.stats.consumed += 1;
            let bytes = m.as_ref();
            if bytes.len() > self.cfg.max_message_bytes {
                let reason = format!(
                    "message of {} bytes exceeds max_message_bytes {}",
                    bytes.len(),
                    self.cfg.max_message_bytes
                );
                self.dead(partition, offset, reason);
                continue;
            }
            let mut msg = MessageReadings::default();
            let ctx = DecodeContext {
                fields: &self.fields,
                extra_labels: &[],
            };
            let mut sink = InterningSink {
                series: &mut self.series,
                out: &mut msg,
            };
            let decoded = prom_json::decode(bytes, &ctx, &mut sink);
            if let Err(reason) = decoded.and_then(|_| self.check(&msg)) {
                self.dead(partition, offset, reason);
                continue;
            }
            self.apply(&msg, partition);
        }
    }

    /// Validates a message's readings; `Err` is the dead-letter reason.
    fn check(&self, msg: &MessageReadings) -> Result<(), String> {
        for &(_, field, ts, v) in &msg.readings {
            if v.is_finite() && v >= DCGM_BLANK_THRESHOLD {
                continue;
            }
            self.fields.validate(field, v)?;
            if !(MIN_VALID_MS..=self.cfg.max_event_time_ms).contains(&ts) {
                return Err(format!("event time {ts} ms is outside the accepted range"));
            }
        }
        Ok(())
    }

    /// Routes a valid message's readings to their windows and counts the message once.
    fn apply(&mut self, msg: &MessageReadings, partition: i32) {
        let closed_until = self.watermarks.current();
        let (mut on_time, mut late, mut duplicate) = (false, false, false);
        for &(id, field, ts, v) in &msg.readings {
            if v >= DCGM_BLANK_THRESHOLD {
                continue;
            }
            self.watermarks.observe(partition, ts);
            for (k, spec) in self.cfg.windows.iter().enumerate() {
                for start in spec.starts_of(ts) {
                    let end = start + spec.size_ms;
                    if end <= closed_until {
                        late = true;
                        continue;
                    }
                    on_time = true;
                    let acc = self.open.entry((end, k, start)).or_default();
                    if acc.entry(id).or_default().insert(field, ts, v) == Insert::Duplicate {
                        duplicate = true;
                    }
                }
            }
        }
        // Late only when every window of the message was already emitted; a blank-only
        // message is a blank skip, one without known fields an unknown-field skip.
        let s = &mut self.stats;
        if on_time && !duplicate {
            s.aggregated += 1;
        } else if on_time {
            s.skipped_duplicate += 1;
        } else if late {
            s.late += 1;
        } else if msg.readings.is_empty() {
            s.skipped_unknown_field += 1;
        } else {
            s.skipped_blank += 1;
        }
    }

    /// Stops `partition` from holding the watermark back (it has been idle).
    pub fn mark_idle(&mut self, partition: i32) {
        self.watermarks.mark_idle(partition);
    }

    /// Closes every window the data's watermark has passed.
    pub fn poll(&mut self) -> Vec<GpuWindowRow> {
        let wm = self.watermarks.advance();
        self.close_until(wm)
    }

    /// Moves the watermark to at least `ts` and closes what that finishes.
    pub fn advance_to(&mut self, ts: EpochMs) -> Vec<GpuWindowRow> {
        self.watermarks.advance();
        let wm = self.watermarks.advance_to(ts);
        self.close_until(wm)
    }

    /// End of input: closes every open window.
    pub fn finish(&mut self) -> Vec<GpuWindowRow> {
        let last_end = self.open.keys().next_back().map(|k| k.0);
        match last_end {
            Some(end) => self.advance_to(end),
            None => Vec::new(),
        }
    }

    fn close_until(&mut self, wm: EpochMs) -> Vec<GpuWindowRow> {
        let mut rows = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            let (end, _, start) = *entry.key();
            if end > wm {
                break;
            }
            let window = entry.remove();
            let first = rows.len();
            for (id, acc) in &window {
                rows.push(GpuWindowRow::compute(
                    start,
                    end,
                    *id,
                    acc,
                    self.cfg.sample_interval_s,
                ));
            }
            // Series ids depend on arrival order; sort by labels so output never does.
            let series = &self.series;
            rows[first..].sort_by(|a, b| {
                let (sa, sb) = (series.get(a.series), series.get(b.series));
                (&sa.gpu_uuid, &sa.namespace, &sa.pod, &sa.container).cmp(&(
                    &sb.gpu_uuid,
                    &sb.namespace,
                    &sb.pod,
                    &sb.container,
                ))
            });
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ts: &str, name: &str, value: &str, uuid: &str, pod: &str) -> String {
        format!(
            r#"{{"timestamp":"{ts}","value":"{value}","name":"{name}","labels":{{"UUID":"{uuid}","gpu":"0","modelName":"NVIDIA H100 80GB HBM3","Hostname":"h1","namespace":"ns","pod":"{pod}","container":"c"}}}}"#
        )
    }

    fn ts(s: u32) -> String {
        format!("2026-11-28T12:{:02}:{:02}Z", s / 60, s % 60)
    }

    const GR: &str = "DCGM_FI_PROF_GR_ENGINE_ACTIVE";

    #[test]
    fn tumbling_windows_close_on_watermark_and_finish() {
        let mut e = Engine::new(EngineConfig::default());
        let msgs: Vec<String> = (0..90).map(|s| msg(&ts(s), GR, "0.5", "G1", "p")).collect();
        e.push_prom_json(&msgs, 0, 0);
        // max ts 12:01:29, lateness 30 s: watermark 12:00:59 < 12:01:00, nothing closes.
        assert!(e.poll().is_empty());
        e.push_prom_json(&[msg(&ts(90), GR, "0.5", "G1", "p")], 0, 90);
        let rows = e.poll();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].samples, 60);
        assert_eq!(rows[0].busy_gpu_s, 30.0);
        let rest = e.finish();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].samples, 31);
        assert!(e.stats().reconciles());
        assert_eq!(e.stats().aggregated, 91);
    }

    #[test]
    fn late_duplicate_blank_unknown_and_dead_are_all_counted() {
        let mut e = Engine::new(EngineConfig::default());
        let mut msgs = vec![
            msg(&ts(0), GR, "0.5", "G1", "p"),
            msg(&ts(0), GR, "0.5", "G1", "p"),
            msg(&ts(1), "DCGM_FI_DEV_MEMORY_TEMP", "50", "G1", "p"),
            msg(&ts(2), GR, "9223372036854775794", "G1", "p"),
            msg(&ts(3), GR, "1.5", "G1", "p"),
            "not json".to_string(),
            msg("1999-12-31T23:59:59Z", GR, "0.5", "G1", "p"),
        ];
        msgs.push(msg(&ts(200), GR, "0.5", "G1", "p"));
        e.push_prom_json(&msgs, 0, 100);
        assert_eq!(e.poll().len(), 1);
        e.push_prom_json(&[msg(&ts(5), GR, "0.5", "G1", "p")], 0, 108);
        let s = e.stats();
        assert_eq!(s.consumed, 9);
        assert_eq!(
            (
                s.aggregated,
                s.skipped_duplicate,
                s.skipped_unknown_field,
                s.skipped_blank
            ),
            (2, 1, 1, 1)
        );
        assert_eq!((s.late, s.dead), (1, 3));
        assert!(s.reconciles());
        let dead = e.take_dead_letters();
        assert_eq!(
            dead.iter().map(|d| d.offset).collect::<Vec<_>>(),
            vec![104, 105, 106]
        );
    }

    #[test]
    fn order_does_not_change_results() {
        let mut msgs: Vec<String> = (0..300)
            .flat_map(|s| {
                [
                    msg(&ts(s), GR, &format!("{}", (s % 7) as f64 / 10.0), "G1", "p"),
                    msg(&ts(s), "DCGM_FI_DEV_GPU_UTIL", "40", "G2", ""),
                ]
            })
            .collect();
        let mut a = Engine::new(EngineConfig::default());
        a.push_prom_json(&msgs, 0, 0);
        let ra = a.finish();
        msgs.reverse();
        let mut b = Engine::new(EngineConfig::default());
        b.push_prom_json(&msgs, 0, 0);
        let rb = b.finish();
        assert_eq!(ra.len(), 10);
        let key = |e: &Engine, r: &GpuWindowRow| {
            (
                r.window_start,
                e.series().get(r.series).gpu_uuid.clone(),
                r.samples,
                r.busy_gpu_s.to_bits(),
            )
        };
        let ka: Vec<_> = ra.iter().map(|r| key(&a, r)).collect();
        let kb: Vec<_> = rb.iter().map(|r| key(&b, r)).collect();
        assert_eq!(ka, kb);
    }

    #[test]
    fn idle_partition_stops_holding_back() {
        let mut e = Engine::new(EngineConfig::default());
        e.push_prom_json(&[msg(&ts(0), GR, "0.1", "G1", "p")], 1, 0);
        e.push_prom_json(&[msg(&ts(200), GR, "0.1", "G2", "p")], 0, 0);
        assert!(e.poll().is_empty());
        e.mark_idle(1);
        assert_eq!(e.poll().len(), 1);
    }
}
