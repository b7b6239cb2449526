//! Decoders: raw message bytes to [`Reading`]s, borrowing label strings from the message.
//!
//! A decoder finds readings and hands them to a [`ReadingSink`]; it does not judge values.
//! Blank sentinels, range checks and event-time bounds are applied in one place, by the
//! engine, so every input form follows the same rules. A decoder returns `Err(reason)`
//! when the message as a whole is unusable (a dead letter); the engine then discards any
//! readings the sink already took from that message.

pub mod arrow_cols;
pub mod columnar;
pub mod decimal;
pub mod exposition;
pub mod json_scan;
pub mod latency_columnar;
pub mod latency_json;
pub mod latency_json_plain;
pub mod packed;
pub mod prom_json;
mod request_fields;
pub mod units;
pub mod wide_json;

#[cfg(test)]
pub(crate) mod test_support;

use crate::fields::{FieldId, FieldRegistry};
use crate::series::GpuLabels;
use crate::time::EpochMs;

/// What decoders need to know about the engine's configuration.
pub struct DecodeContext<'r> {
    pub fields: &'r FieldRegistry,
    /// Label names kept beyond the standard ones (for custom `group_by`), in slot order.
    pub extra_labels: &'r [Box<str>],
}

impl DecodeContext<'_> {
    /// Slot of an extra label name, if it is kept.
    #[inline]
    pub fn extra_slot(&self, name: &str) -> Option<usize> {
        self.extra_labels.iter().position(|l| &**l == name)
    }
}

/// One reading of a known field: value already converted to the field's default unit.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    pub ts_ms: EpochMs,
    pub field: FieldId,
    pub value: f64,
    pub labels: GpuLabels<'a>,
}

/// Receives what a decoder finds in one message.
pub trait ReadingSink {
    fn reading(&mut self, r: Reading<'_>);
    /// A metric the engine does not aggregate (counted, not an error).
    fn unknown_field(&mut self);
    /// Offers the raw bytes of a message's whole, valid label set. A sink that knows the
    /// series of exactly these bytes returns true; the decoder then need not read the labels
    /// and its readings carry empty ones. Byte-identical label sets repeat in every message
    /// of a series, so this spares most label parsing.
    fn known_labels(&mut self, _raw: &[u8]) -> bool {
        false
    }
}
