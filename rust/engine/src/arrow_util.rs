//! Column builders shared by the tables' Arrow schemas.

use arrow_array::builder::{Float64Builder, Int64Builder, TimestampMillisecondBuilder};
use arrow_array::ArrayRef;
use std::sync::Arc;

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
