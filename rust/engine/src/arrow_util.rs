//! Column builders shared by the tables' Arrow schemas.

use arrow_array::builder::{
    Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::ArrayRef;
use arrow_schema::{DataType, TimeUnit};
use std::sync::Arc;

/// The type of every time column gpuledger writes: milliseconds, UTC.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// A non-null `utf8` column.
pub fn str_col<'a>(values: impl ExactSizeIterator<Item = &'a str>) -> ArrayRef {
    let n = values.len();
    let mut b = StringBuilder::with_capacity(n, n * 16);
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

/// A `timestamp[ms, UTC]` column.
pub fn ts_col(values: impl ExactSizeIterator<Item = i64>) -> ArrayRef {
    let mut b = TimestampMillisecondBuilder::with_capacity(values.len()).with_timezone("UTC");
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

/// A nullable `float64` column.
pub fn float_col(values: impl ExactSizeIterator<Item = Option<f64>>) -> ArrayRef {
    let mut b = Float64Builder::with_capacity(values.len());
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

/// A non-null `int64` column.
pub fn int_col(values: impl ExactSizeIterator<Item = i64>) -> ArrayRef {
    let mut b = Int64Builder::with_capacity(values.len());
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}
