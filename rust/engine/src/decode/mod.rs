//! Decoders: raw message bytes to [`Decoded`] outcomes. Each decoder borrows from the message.

pub mod prom_json;

use crate::fields::Field;
use crate::series::GpuLabels;
use crate::time::EpochMs;

/// One GPU telemetry reading, borrowing its labels from the message bytes.
#[derive(Debug, Clone, Copy)]
pub struct GpuSample<'a> {
    pub ts_ms: EpochMs,
    pub field: Field,
    pub value: f64,
    pub labels: GpuLabels<'a>,
}

/// Why a well-formed message does not contribute to an aggregate (a counted skip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A DCGM metric gpuledger does not aggregate.
    UnknownField,
    /// A DCGM blank sentinel (value at or above 9.2e18).
    Blank,
}
