//! Column builders shared by the tables' Arrow schemas.

use arrow_array::builder::{
    Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
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

/// The values of a binary column (any offset width or view) as byte slices, nulls as
/// `None`; with `strings`, string columns too (their UTF-8 bytes). `None` for other types.
pub fn byte_values(a: &dyn Array, strings: bool) -> Option<Vec<Option<&[u8]>>> {
    let v = match a.data_type() {
        DataType::Binary => a.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => a.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => a.as_binary_view().iter().collect(),
        DataType::Utf8 if strings => a
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::as_bytes))
            .collect(),
        DataType::LargeUtf8 if strings => a
            .as_string::<i64>()
            .iter()
            .map(|s| s.map(str::as_bytes))
            .collect(),
        DataType::Utf8View if strings => a
            .as_string_view()
            .iter()
            .map(|s| s.map(str::as_bytes))
            .collect(),
        _ => return None,
    };
    Some(v)
}
