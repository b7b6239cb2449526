//! Plain types the engine takes and gives: message formats, provenance, counters, and the
//! rows closed by one call.

use crate::custom_agg::CustomRow;
use crate::fields::FieldId;
use crate::gpu_windows::GpuWindowRow;
use crate::idle_streaks::IdleStreakRow;
use crate::latency_windows::LatencyWindowRow;
use crate::pool_windows::PoolWindowRow;
use crate::series::SeriesId;
use crate::service_cost::{ServiceCostRow, ServiceMemberRow};
use crate::time::EpochMs;

/// Message formats handed over as one message per element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageFormat {
    /// prometheus-kafka-adapter JSON (docs/inputs.md 1a).
    PromJson,
    /// gpuledger's wide JSON, one message per GPU per sample (docs/inputs.md 1b).
    WideJson,
    /// Request latency events, gpuledger's or vLLM's JSON (docs/inputs.md 2).
    LatencyJson,
}

/// Where a batch came from: source (topic or file), partition, and message offsets.
#[derive(Debug, Clone, Copy)]
pub struct Provenance<'a> {
    pub source: &'a str,
    pub partition: i32,
    pub offsets: Offsets<'a>,
    /// When each message was received (e.g. its Kafka timestamp), in ms since the epoch:
    /// the dead letters' `received_at` and the "now" of the future-timestamp check, so a
    /// re-read gives the same rows. `None`: the wall clock.
    pub received_at: Option<&'a [i64]>,
}

#[derive(Debug, Clone, Copy)]
pub enum Offsets<'a> {
    /// Contiguous offsets (or line numbers) starting here.
    From(i64),
    /// One offset per message.
    Each(&'a [i64]),
}

impl Offsets<'_> {
    pub(crate) fn get(&self, i: usize) -> i64 {
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
    /// Re-reads after a restart of input whose output was already written.
    pub skipped_replayed: u64,
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
                + self.skipped_replayed
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
    pub latency: Vec<LatencyWindowRow>,
    pub service_cost: Vec<ServiceCostRow>,
    /// The pods and GPUs each service was joined with (written by shards only).
    pub service_members: Vec<ServiceMemberRow>,
    /// Idle streak rows of the closed windows of the idle family (`EngineConfig::idle_family`).
    pub idle_streaks: Vec<IdleStreakRow>,
}

impl Closed {
    pub fn extend(&mut self, more: Closed) {
        self.gpu.extend(more.gpu);
        self.pool.extend(more.pool);
        if self.custom.len() < more.custom.len() {
            self.custom.resize_with(more.custom.len(), Vec::new);
        }
        for (a, b) in self.custom.iter_mut().zip(more.custom) {
            a.extend(b);
        }
        self.points.extend(more.points);
        self.latency.extend(more.latency);
        self.service_cost.extend(more.service_cost);
        self.service_members.extend(more.service_members);
        self.idle_streaks.extend(more.idle_streaks);
    }
}
