//! Tables `late_events` and `dead_letters`: data that could not change an aggregate is
//! output, not a log line.

use crate::arrow_util::{float_col, str_col, ts_col, ts_type};
use crate::time::EpochMs;
use arrow_array::builder::{BinaryBuilder, Int32Builder, Int64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use std::sync::{Arc, OnceLock};

/// An event that arrived after a window it belongs to was emitted: one row per window
/// family (size, slide) it missed, naming the newest missed window of that family.
#[derive(Debug, Clone, PartialEq)]
pub struct LateEvent {
    pub stream: &'static str,
    /// The GPU (`gpu_uuid`) or, for requests, the service.
    pub key: String,
    pub namespace: String,
    pub pod: String,
    pub field: String,
    pub event_time: EpochMs,
    pub window_start: EpochMs,
    pub window_end: EpochMs,
    /// How far past the window's end the watermark was when the event arrived.
    pub lateness_s: f64,
    pub source: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

/// A message that could not be used, with where it came from and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub source: Arc<str>,
    pub partition: i32,
    /// Kafka offset, or the line or row number in a file.
    pub offset: i64,
    pub received_at: EpochMs,
    pub reason: String,
    /// The message's first `dead_letter_max_bytes` bytes.
    pub raw: Vec<u8>,
    pub raw_size: i64,
}

pub fn late_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("stream", DataType::Utf8, false),
            Field::new("key", DataType::Utf8, false),
            Field::new("namespace", DataType::Utf8, false),
            Field::new("pod", DataType::Utf8, false),
            Field::new("field", DataType::Utf8, false),
            Field::new("event_time", ts_type(), false),
            Field::new("window_start", ts_type(), false),
            Field::new("window_end", ts_type(), false),
            Field::new("lateness_s", DataType::Float64, false),
            Field::new("source", DataType::Utf8, false),
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
        ]))
    })
    .clone()
}

pub fn dead_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, false),
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
            Field::new("received_at", ts_type(), false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("raw", DataType::Binary, false),
            Field::new("raw_size", DataType::Int64, false),
        ]))
    })
    .clone()
}

pub fn late_batch(rows: &[LateEvent]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    for r in rows {
        partition.append_value(r.partition);
        offset.append_value(r.offset);
    }
    let columns: Vec<ArrayRef> = vec![
        str_col(rows.iter().map(|r| r.stream)),
        str_col(rows.iter().map(|r| r.key.as_str())),
        str_col(rows.iter().map(|r| r.namespace.as_str())),
        str_col(rows.iter().map(|r| r.pod.as_str())),
        str_col(rows.iter().map(|r| r.field.as_str())),
        ts_col(rows.iter().map(|r| r.event_time)),
        ts_col(rows.iter().map(|r| r.window_start)),
        ts_col(rows.iter().map(|r| r.window_end)),
        float_col(rows.iter().map(|r| Some(r.lateness_s))),
        str_col(rows.iter().map(|r| &*r.source)),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
    ];
    RecordBatch::try_new(late_schema(), columns)
}

pub fn dead_batch(rows: &[DeadLetter]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut raw = BinaryBuilder::with_capacity(n, rows.iter().map(|r| r.raw.len()).sum());
    let mut raw_size = Int64Builder::with_capacity(n);
    for r in rows {
        partition.append_value(r.partition);
        offset.append_value(r.offset);
        raw.append_value(&r.raw);
        raw_size.append_value(r.raw_size);
    }
    let columns: Vec<ArrayRef> = vec![
        str_col(rows.iter().map(|r| &*r.source)),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        ts_col(rows.iter().map(|r| r.received_at)),
        str_col(rows.iter().map(|r| r.reason.as_str())),
        Arc::new(raw.finish()),
        Arc::new(raw_size.finish()),
    ];
    RecordBatch::try_new(dead_schema(), columns)
}
