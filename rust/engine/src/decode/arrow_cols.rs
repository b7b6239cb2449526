//! Typed, zero-copy accessors over Arrow columns of the kinds producers send: strings (plain,
//! large, view, or dictionary-encoded), numbers of any width, and timestamps of any unit.

use crate::time::{parse_rfc3339_ms, unix_number_to_ms, EpochMs};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, TimeUnit};

/// The first of `names` the batch has as a column.
pub fn find_column<'a>(batch: &'a RecordBatch, names: &[&str]) -> Option<&'a ArrayRef> {
    names
        .iter()
        .find_map(|n| batch.schema().index_of(n).ok())
        .map(|i| batch.column(i))
}

/// The first of `names` as a string column; `Err` when it exists with another type.
pub fn str_column<'a>(
    batch: &'a RecordBatch,
    names: &[&str],
) -> Result<Option<StrCol<'a>>, String> {
    find_column(batch, names)
        .map(|a| {
            StrCol::new(a).ok_or_else(|| {
                format!(
                    "column {:?} must be a string column, not {}",
                    names[0],
                    a.data_type()
                )
            })
        })
        .transpose()
}

/// The first of `names` as a numeric column; `Err` when it exists with another type.
pub fn num_column<'a>(
    batch: &'a RecordBatch,
    names: &[&str],
) -> Result<Option<NumCol<'a>>, String> {
    find_column(batch, names)
        .map(|a| {
            NumCol::new(a).ok_or_else(|| {
                format!(
                    "column {:?} must be numeric, not {}",
                    names[0],
                    a.data_type()
                )
            })
        })
        .transpose()
}

/// A string column.
pub enum StrCol<'a> {
    Utf8(&'a StringArray),
    LargeUtf8(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
    /// Dictionary-encoded: keys read in place, values a string column.
    Dict {
        array: &'a ArrayRef,
        nulls: Option<NullBuffer>,
        keys: Keys<'a>,
        values: Box<StrCol<'a>>,
    },
}

/// Dictionary keys of any integer width, read in place (no per-batch copy).
pub enum Keys<'a> {
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
}

impl Keys<'_> {
    /// Adds `(key + 1) << shift` to `sig[i]` for every row (0 for a null row), in the same
    /// pass checking every key: false when one is negative or not below `dictionary_len`
    /// (the signatures are then meaningless and must not be used).
    pub fn add_to_signatures(
        &self,
        nulls: Option<&NullBuffer>,
        dictionary_len: usize,
        shift: u32,
        width: u32,
        sig: &mut [u64],
    ) -> bool {
        macro_rules! each {
            ($k:expr, $u:ty) => {{
                // Compared as unsigned of the key's own width (a negative key is then huge),
                // which keeps the loop vectorized. A dictionary longer than that type's range
                // flags its largest key: the caller then compares labels row by row instead.
                let limit = dictionary_len.min(<$u>::MAX as usize) as $u;
                let mut bad = false;
                for (s, &k) in sig.iter_mut().zip($k.iter()) {
                    let k = k as $u;
                    bad |= k >= limit;
                    *s |= (k as u64 + 1) << shift;
                }
                bad
            }};
        }
        let bad = match self {
            Keys::I8(k) => each!(k, u8),
            Keys::I16(k) => each!(k, u16),
            Keys::I32(k) => each!(k, u32),
            Keys::I64(k) => each!(k, u64),
            Keys::U8(k) => each!(k, u8),
            Keys::U16(k) => each!(k, u16),
            Keys::U32(k) => each!(k, u32),
            Keys::U64(k) => each!(k, u64),
        };
        if bad {
            return false;
        }
        if let Some(n) = nulls {
            let mask = !(((1u64 << width) - 1) << shift);
            for (i, s) in sig.iter_mut().enumerate() {
                if n.is_null(i) {
                    *s &= mask;
                }
            }
        }
        true
    }

    /// The key at row `i` (a negative key, which Arrow forbids, reads as 0).
    #[inline(always)] // per row in the request fast path, where the compiler did not inline it
    pub fn get(&self, i: usize) -> usize {
        match self {
            Keys::I8(k) => k[i].max(0) as usize,
            Keys::I16(k) => k[i].max(0) as usize,
            Keys::I32(k) => k[i].max(0) as usize,
            Keys::I64(k) => k[i].max(0) as usize,
            Keys::U8(k) => k[i] as usize,
            Keys::U16(k) => k[i] as usize,
            Keys::U32(k) => k[i] as usize,
            Keys::U64(k) => k[i] as usize,
        }
    }

    fn of(a: &ArrayRef) -> Option<Keys<'_>> {
        let DataType::Dictionary(k, _) = a.data_type() else {
            return None;
        };
        Some(match **k {
            DataType::Int8 => Keys::I8(a.as_dictionary::<Int8Type>().keys().values()),
            DataType::Int16 => Keys::I16(a.as_dictionary::<Int16Type>().keys().values()),
            DataType::Int32 => Keys::I32(a.as_dictionary::<Int32Type>().keys().values()),
            DataType::Int64 => Keys::I64(a.as_dictionary::<Int64Type>().keys().values()),
            DataType::UInt8 => Keys::U8(a.as_dictionary::<UInt8Type>().keys().values()),
            DataType::UInt16 => Keys::U16(a.as_dictionary::<UInt16Type>().keys().values()),
            DataType::UInt32 => Keys::U32(a.as_dictionary::<UInt32Type>().keys().values()),
            DataType::UInt64 => Keys::U64(a.as_dictionary::<UInt64Type>().keys().values()),
            _ => return None,
        })
    }
}

impl<'a> StrCol<'a> {
    pub fn new(a: &'a ArrayRef) -> Option<StrCol<'a>> {
        Some(match a.data_type() {
            DataType::Utf8 => StrCol::Utf8(a.as_string::<i32>()),
            DataType::LargeUtf8 => StrCol::LargeUtf8(a.as_string::<i64>()),
            DataType::Utf8View => StrCol::View(a.as_string_view()),
            DataType::Dictionary(_, _) => {
                let d = a.as_any_dictionary_opt()?;
                StrCol::Dict {
                    array: a,
                    nulls: a.logical_nulls(),
                    keys: Keys::of(a)?,
                    values: Box::new(StrCol::new(d.values())?),
                }
            }
            _ => return None,
        })
    }

    /// Whether rows `i` and `j` hold the same value (cheap for dictionaries: key equality).
    #[inline]
    pub fn same(&self, i: usize, j: usize) -> bool {
        match self {
            StrCol::Dict { nulls, keys, .. } => {
                keys.get(i) == keys.get(j)
                    && nulls.as_ref().is_none_or(|n| n.is_null(i) == n.is_null(j))
            }
            _ => self.get(i) == self.get(j),
        }
    }

    /// Bits a dictionary column's keys take in a row signature (key + 1, 0 for null);
    /// `None` for other columns.
    /// Bits a row's key takes in a label signature (keys + 1, so 0 is null); `None` for a
    /// column that is not dictionary-encoded.
    pub fn signature_width(&self) -> Option<u32> {
        match self {
            StrCol::Dict { values, .. } => {
                Some((64 - (values.len() as u64).leading_zeros()).max(1))
            }
            _ => None,
        }
    }

    /// Adds this column's keys to the signatures (see `Keys::add_to_signatures`); false when
    /// a key is out of its dictionary's range.
    pub fn add_to_signatures(&self, shift: u32, width: u32, sig: &mut [u64]) -> bool {
        match self {
            StrCol::Dict {
                nulls,
                keys,
                values,
                ..
            } => keys.add_to_signatures(nulls.as_ref(), values.len(), shift, width, sig),
            _ => false,
        }
    }

    /// The keys and dictionary length of a dictionary column with i32 keys and no nulls.
    pub fn i32_keys_without_nulls(&self) -> Option<(&'a [i32], usize)> {
        match self {
            StrCol::Dict {
                nulls: None,
                keys: Keys::I32(k),
                values,
                ..
            } => Some((k, values.len())),
            _ => None,
        }
    }

    pub fn dictionary(&self) -> Option<(&Keys<'a>, &StrCol<'a>)> {
        match self {
            StrCol::Dict { keys, values, .. } => Some((keys, values)),
            _ => None,
        }
    }

    /// For a dictionary column: its row nulls (the keys' nulls and null values alike).
    pub fn dictionary_nulls(&self) -> Option<&NullBuffer> {
        match self {
            StrCol::Dict { nulls, .. } => nulls.as_ref(),
            _ => None,
        }
    }

    /// Whether row `i` is null (without reading the value).
    #[inline]
    pub fn is_null(&self, i: usize) -> bool {
        match self {
            StrCol::Utf8(a) => a.is_null(i),
            StrCol::LargeUtf8(a) => a.is_null(i),
            StrCol::View(a) => a.is_null(i),
            StrCol::Dict { nulls, .. } => nulls.as_ref().is_some_and(|n| n.is_null(i)),
        }
    }

    /// Number of rows (of values, for dictionaries).
    pub fn len(&self) -> usize {
        match self {
            StrCol::Utf8(a) => a.len(),
            StrCol::LargeUtf8(a) => a.len(),
            StrCol::View(a) => a.len(),
            StrCol::Dict { array, .. } => array.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at row `i`, or `None` when null.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&str> {
        match self {
            StrCol::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::LargeUtf8(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::View(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::Dict {
                nulls,
                keys,
                values,
                ..
            } => {
                if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                    None
                } else {
                    // An out-of-range key (invalid Arrow data) reads as null, never panics.
                    let k = keys.get(i);
                    if k < values.len() {
                        values.get(k)
                    } else {
                        None
                    }
                }
            }
        }
    }
}

/// A numeric column read as f64. The common types (float64, int64, int32) read straight
/// from their buffer; the rest go through a per-type conversion function.
pub struct NumCol<'a> {
    array: &'a ArrayRef,
    nulls: Option<NullBuffer>,
    values: NumValues<'a>,
}

enum NumValues<'a> {
    F64(&'a [f64]),
    I64(&'a [i64]),
    I32(&'a [i32]),
    Other(fn(&dyn Array, usize) -> f64),
}

fn prim<T: arrow_array::ArrowPrimitiveType>(a: &dyn Array, i: usize) -> f64
where
    T::Native: Into<F64Conv>,
{
    let v: F64Conv = a.as_primitive::<T>().value(i).into();
    v.0
}

/// Widening of Arrow natives to f64 (i64/u64 beyond 2^53 round, as f64 does).
pub struct F64Conv(f64);
macro_rules! conv {
    ($($t:ty),*) => {$(impl From<$t> for F64Conv { fn from(v: $t) -> Self { F64Conv(v as f64) } })*};
}
conv!(f32, f64, i8, i16, i32, i64, u8, u16, u32, u64);

impl<'a> NumCol<'a> {
    pub fn new(a: &'a ArrayRef) -> Option<NumCol<'a>> {
        let values = match a.data_type() {
            DataType::Float64 => NumValues::F64(a.as_primitive::<Float64Type>().values()),
            DataType::Int64 => NumValues::I64(a.as_primitive::<Int64Type>().values()),
            DataType::Int32 => NumValues::I32(a.as_primitive::<Int32Type>().values()),
            DataType::Float32 => NumValues::Other(prim::<Float32Type>),
            DataType::Int16 => NumValues::Other(prim::<Int16Type>),
            DataType::Int8 => NumValues::Other(prim::<Int8Type>),
            DataType::UInt64 => NumValues::Other(prim::<UInt64Type>),
            DataType::UInt32 => NumValues::Other(prim::<UInt32Type>),
            DataType::UInt16 => NumValues::Other(prim::<UInt16Type>),
            DataType::UInt8 => NumValues::Other(prim::<UInt8Type>),
            _ => return None,
        };
        Some(NumCol {
            array: a,
            nulls: a.logical_nulls(),
            values,
        })
    }

    /// The values of a Float64 column (nulls included, as stored), for loops over many rows.
    pub fn f64_values(&self) -> Option<&'a [f64]> {
        match self.values {
            NumValues::F64(v) => Some(v),
            _ => None,
        }
    }

    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<f64> {
        if self.nulls.as_ref().is_some_and(|n| n.is_null(i)) {
            return None;
        }
        Some(match self.values {
            NumValues::F64(v) => v[i],
            NumValues::I64(v) => v[i] as f64,
            NumValues::I32(v) => f64::from(v[i]),
            NumValues::Other(at) => at(self.array.as_ref(), i),
        })
    }
}

/// Row `i` of an Arrow timestamp column in milliseconds (`mul`, `div`: from its unit);
/// `None` when null. Millisecond columns skip the division.
#[inline(always)]
fn timestamp_ms(
    values: &[i64],
    nulls: Option<&NullBuffer>,
    mul: i64,
    div: i64,
    i: usize,
) -> Option<EpochMs> {
    if nulls.is_some_and(|n| n.is_null(i)) {
        return None;
    }
    if (mul, div) == (1, 1) {
        return Some(values[i]);
    }
    Some(values[i].saturating_mul(mul).div_euclid(div))
}

/// An event-time column: Arrow timestamps of any unit, Unix numbers (seconds, or integer
/// milliseconds above 1e11), or RFC 3339 strings.
pub enum TimeCol<'a> {
    /// Raw values, their nulls, and (multiplier, divisor) to milliseconds.
    Timestamp(&'a [i64], Option<NullBuffer>, i64, i64),
    Number(NumCol<'a>),
    Text(StrCol<'a>),
}

impl<'a> TimeCol<'a> {
    pub fn new(a: &'a ArrayRef) -> Option<TimeCol<'a>> {
        if let DataType::Timestamp(unit, _) = a.data_type() {
            let (values, mul, div): (&[i64], i64, i64) = match unit {
                TimeUnit::Second => (a.as_primitive::<TimestampSecondType>().values(), 1000, 1),
                TimeUnit::Millisecond => {
                    (a.as_primitive::<TimestampMillisecondType>().values(), 1, 1)
                }
                TimeUnit::Microsecond => (
                    a.as_primitive::<TimestampMicrosecondType>().values(),
                    1,
                    1000,
                ),
                TimeUnit::Nanosecond => (
                    a.as_primitive::<TimestampNanosecondType>().values(),
                    1,
                    1_000_000,
                ),
            };
            return Some(TimeCol::Timestamp(values, a.logical_nulls(), mul, div));
        }
        NumCol::new(a)
            .map(TimeCol::Number)
            .or_else(|| StrCol::new(a).map(TimeCol::Text))
    }

    /// Epoch milliseconds at row `i`, `None` when it has none (`get` says why); Arrow
    /// timestamps read inline, the per-row fast path's common case.
    #[inline(always)]
    pub fn get_ms(&self, i: usize) -> Option<EpochMs> {
        match self {
            TimeCol::Timestamp(values, nulls, mul, div) => {
                timestamp_ms(values, nulls.as_ref(), *mul, *div, i)
            }
            _ => self.get(i).ok(),
        }
    }

    /// Epoch milliseconds at row `i`; `Err` names what is wrong.
    /// The largest event time of rows `0..rows`, in epoch ms; rows without one are left out.
    /// For timestamps, the maximum of the stored values (a vectorized pass) converted once:
    /// the conversion to ms never reorders values.
    pub fn max_ms(&self, rows: usize) -> Option<EpochMs> {
        match self {
            TimeCol::Timestamp(values, nulls, mul, div) => {
                let values = &values[..rows];
                // (Readers may give a null buffer with no nulls in it.)
                let max = match nulls.as_ref().filter(|n| n.null_count() > 0) {
                    None => values.iter().copied().max(),
                    Some(n) => n.valid_indices().map(|i| values[i]).max(),
                }?;
                Some(max.saturating_mul(*mul).div_euclid(*div))
            }
            _ => (0..rows).filter_map(|i| self.get_ms(i)).max(),
        }
    }

    /// The event time of row `i` in epoch ms; `Err` is why it has none. Timestamp columns
    /// (the common case) are read inline; numbers and text out of line.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Result<EpochMs, String> {
        if let TimeCol::Timestamp(values, nulls, mul, div) = self {
            if let Some(t) = timestamp_ms(values, nulls.as_ref(), *mul, *div, i) {
                return Ok(t);
            }
        }
        self.get_converted(i)
    }

    #[inline(never)]
    fn get_converted(&self, i: usize) -> Result<EpochMs, String> {
        match self {
            TimeCol::Timestamp(values, nulls, mul, div) => {
                timestamp_ms(values, nulls.as_ref(), *mul, *div, i)
                    .ok_or_else(|| "null timestamp".into())
            }
            TimeCol::Number(n) => {
                let v = n.get(i).ok_or("null timestamp")?;
                unix_number_to_ms(v).ok_or_else(|| format!("timestamp {v} is not a Unix time"))
            }
            TimeCol::Text(s) => {
                let v = s.get(i).ok_or("null timestamp")?;
                parse_rfc3339_ms(v).ok_or_else(|| format!("timestamp {v:?} is not RFC 3339"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, Int8Array, UInt16Array,
        UInt32Array, UInt64Array, UInt8Array,
    };
    use std::sync::Arc;

    /// Every numeric type reads the same values and nulls, sliced or not (the buffer
    /// fast paths for float64, int64 and int32 agree with the per-type conversion).
    #[test]
    fn numeric_columns_of_every_width_read_alike() {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![
                Some(1.0),
                None,
                Some(7.0),
                Some(120.0),
            ])),
            Arc::new(Float32Array::from(vec![
                Some(1.0),
                None,
                Some(7.0),
                Some(120.0),
            ])),
            Arc::new(Int64Array::from(vec![Some(1), None, Some(7), Some(120)])),
            Arc::new(Int32Array::from(vec![Some(1), None, Some(7), Some(120)])),
            Arc::new(Int16Array::from(vec![Some(1), None, Some(7), Some(120)])),
            Arc::new(Int8Array::from(vec![Some(1), None, Some(7), Some(120)])),
            Arc::new(UInt64Array::from(vec![Some(1), None, Some(7), Some(120)])),
            Arc::new(UInt32Array::from(vec![Some(1), None, Some(7), Some(120)])),
            Arc::new(UInt16Array::from(vec![Some(1), None, Some(7), Some(120)])),
            Arc::new(UInt8Array::from(vec![Some(1), None, Some(7), Some(120)])),
        ];
        for full in &cols {
            let n = NumCol::new(full).expect("numeric");
            let got: Vec<_> = (0..4).map(|i| n.get(i)).collect();
            assert_eq!(
                got,
                [Some(1.0), None, Some(7.0), Some(120.0)],
                "{}",
                full.data_type()
            );
            let sliced = full.slice(1, 3);
            let n = NumCol::new(&sliced).expect("numeric");
            let got: Vec<_> = (0..3).map(|i| n.get(i)).collect();
            assert_eq!(got, [None, Some(7.0), Some(120.0)], "{}", full.data_type());
        }
        let text: ArrayRef = Arc::new(StringArray::from(vec!["1"]));
        assert!(NumCol::new(&text).is_none());
    }
}
