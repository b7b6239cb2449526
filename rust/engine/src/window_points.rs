//! The raw points of closed windows as an Arrow table, for Python window functions
//! (enabled by `keep_points`): one row per (window, series, field, timestamp).

use crate::arrow_util::{float_col, ts_col, ts_type};
use crate::attribution::Attribution;
use crate::engine::PointRow;
use crate::fields::FieldRegistry;
use crate::series::{Series, SeriesTable};
use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use std::sync::{Arc, OnceLock};

pub fn schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let ts = ts_type();
        let text = |n: &str| Field::new(n, DataType::Utf8, false);
        Arc::new(Schema::new(vec![
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts.clone(), false),
            text("gpu_uuid"),
            text("namespace"),
            text("pod"),
            text("hostname"),
            text("model_name"),
            text("container"),
            text("team"),
            text("field"),
            Field::new("ts", ts, false),
            Field::new("value", DataType::Float64, false),
        ]))
    })
    .clone()
}

pub fn to_record_batch(
    rows: &[PointRow],
    series: &SeriesTable,
    fields: &FieldRegistry,
    attribution: &Attribution,
) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let text = |get: &dyn Fn(&PointRow, &Series) -> String| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * 16);
        for r in rows {
            b.append_value(get(r, series.get(r.series)));
        }
        Arc::new(b.finish())
    };
    let columns: Vec<ArrayRef> = vec![
        ts_col(rows.iter().map(|r| r.window_start)),
        ts_col(rows.iter().map(|r| r.window_end)),
        text(&|_, s| s.gpu_uuid.to_string()),
        text(&|_, s| s.namespace.to_string()),
        text(&|_, s| s.pod.to_string()),
        text(&|_, s| s.hostname.to_string()),
        text(&|_, s| s.model_name.to_string()),
        text(&|_, s| s.container.to_string()),
        text(&|_, s| attribution.team_of(&s.namespace).to_string()),
        text(&|r, _| fields.name(r.field).to_string()),
        ts_col(rows.iter().map(|r| r.ts)),
        float_col(rows.iter().map(|r| Some(r.value))),
    ];
    RecordBatch::try_new(schema(), columns)
}
