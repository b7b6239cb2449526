//! Columnar input (docs/inputs.md 1d), read in place from Arrow record batches: the long
//! form (`ts, gpu, field, value` plus label columns, one reading per row) or the wide form
//! (the columns of the wide JSON form, several readings per row). Each row is one message
//! for counting and provenance (its row number is the offset).

use super::arrow_cols::{find_column, num_column, str_column, NumCol, StrCol, TimeCol};
use super::wide_json::NAMED_METRICS;
use super::{DecodeContext, Reading, ReadingSink};
use crate::fields::FieldId;
use crate::series::{GpuLabels, MAX_EXTRA_LABELS};
use crate::time::EpochMs;
use arrow_array::RecordBatch;

/// Names a columnar batch's time column may have, in order of preference.
pub const TIME_COLUMNS: &[&str] = &["ts", "timestamp", "time"];

/// The largest event time of the batch's time column (rows whose time cannot be read are
/// left out); `None` when it has no time column or no readable time. Replay's estimate of
/// how far a file has got, to merge files by event time.
pub fn batch_max_time(batch: &RecordBatch) -> Option<EpochMs> {
    TimeCol::new(find_column(batch, TIME_COLUMNS)?)?.max_ms(batch.num_rows())
}

/// Exact signatures of rows' label sets (`ColumnarBatch::label_signatures`).
pub enum LabelSignatures<'a> {
    /// Every label column has i32 keys and no nulls (as the Parquet reader, pyarrow and
    /// DuckDB give them): a row's signature is built when asked, only for the rows that need
    /// one, from (keys, dictionary length, bit shift) per column. `new_run[i]`: some key of
    /// row `i` differs from row `i - 1`'s (found column by column, vectorized).
    PerRow {
        cols: Vec<(&'a [i32], u32, u32)>,
        new_run: Vec<bool>,
    },
    /// Built for the whole batch, column by column (other key types, or nulls).
    Batch(Vec<u64>),
}

impl<'a> LabelSignatures<'a> {
    fn per_row(cols: Vec<(&'a [i32], u32, u32)>, rows: usize) -> Self {
        let mut new_run = vec![false; rows];
        if let Some((first, rest)) = new_run.split_first_mut() {
            *first = true;
            for (keys, _, _) in &cols {
                let keys = &keys[..rows];
                for ((n, k), prev) in rest.iter_mut().zip(&keys[1..]).zip(keys) {
                    *n |= k != prev;
                }
            }
        }
        LabelSignatures::PerRow { cols, new_run }
    }

    /// Whether row `i` carries exactly the labels of row `i - 1`.
    #[inline(always)]
    pub fn continues_run(&self, i: usize) -> bool {
        match self {
            LabelSignatures::PerRow { new_run, .. } => !new_run[i],
            LabelSignatures::Batch(sig) => i > 0 && sig[i] == sig[i - 1],
        }
    }

    /// The signature of row `i`; `None` when one of its keys is outside its dictionary
    /// (the row's labels must then be compared one by one).
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<u64> {
        match self {
            LabelSignatures::Batch(sig) => Some(sig[i]),
            LabelSignatures::PerRow { cols, .. } => {
                let mut sig = 0u64;
                for &(keys, len, shift) in cols {
                    let k = keys[i] as u32; // a negative key becomes too large
                    if k >= len {
                        return None;
                    }
                    sig |= (u64::from(k) + 1) << shift;
                }
                Some(sig)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Long,
    Wide,
    /// Request latency events, one per row (see `latency_columnar`).
    Requests,
}

enum IndexCol<'a> {
    Text(StrCol<'a>),
    Number(NumCol<'a>),
}

pub struct ColumnarBatch<'a> {
    form: Form,
    rows: usize,
    ts: TimeCol<'a>,
    gpu: StrCol<'a>,
    gpu_index: Option<IndexCol<'a>>,
    hostname: Option<StrCol<'a>>,
    model: Option<StrCol<'a>>,
    namespace: Option<StrCol<'a>>,
    pod: Option<StrCol<'a>>,
    container: Option<StrCol<'a>>,
    instance: Option<StrCol<'a>>,
    extras: Vec<(usize, StrCol<'a>)>,
    field: Option<StrCol<'a>>,
    value: Option<NumCol<'a>>,
    metrics: Vec<(FieldId, f64, NumCol<'a>)>,
    /// Long form with a dictionary field column: the field of each dictionary value.
    field_of_key: Option<Vec<Option<FieldId>>>,
}

impl<'a> ColumnarBatch<'a> {
    /// Resolves the batch's columns; `Err` when the batch as a whole cannot be read.
    pub fn new(
        batch: &'a RecordBatch,
        form: Option<Form>,
        ctx: &DecodeContext<'_>,
    ) -> Result<Self, String> {
        let has = |n: &str| batch.schema().index_of(n).is_ok();
        let form = form.unwrap_or(if (has("field") || has("name")) && has("value") {
            Form::Long
        } else {
            Form::Wide
        });
        let ts_col = find_column(batch, TIME_COLUMNS)
            .ok_or("no time column (expected \"ts\", \"timestamp\" or \"time\")")?;
        let ts = TimeCol::new(ts_col)
            .ok_or_else(|| format!("column \"ts\" has unsupported type {}", ts_col.data_type()))?;
        let gpu = str_column(batch, &["gpu", "gpu_uuid", "UUID"])?
            .ok_or("no GPU column (expected \"gpu\", \"gpu_uuid\" or \"UUID\")")?;
        let gpu_index = match find_column(batch, &["gpu_index"]) {
            None => None,
            Some(a) => Some(match NumCol::new(a) {
                Some(n) => IndexCol::Number(n),
                None => IndexCol::Text(
                    StrCol::new(a).ok_or("column \"gpu_index\" must be numeric or string")?,
                ),
            }),
        };
        let mut extras = Vec::new();
        for (slot, name) in ctx.extra_labels.iter().enumerate().take(MAX_EXTRA_LABELS) {
            if let Some(c) = str_column(batch, &[name])? {
                extras.push((slot, c));
            }
        }
        let (mut field, mut value, mut metrics) = (None, None, Vec::new());
        match form {
            Form::Requests => return Err("request events are not GPU telemetry".into()),
            Form::Long => {
                field = Some(
                    str_column(batch, &["field", "name"])?
                        .ok_or("long form needs a \"field\" column")?,
                );
                value = Some(
                    num_column(batch, &["value"])?.ok_or("long form needs a \"value\" column")?,
                );
            }
            Form::Wide => {
                for (i, f) in batch.schema().fields().iter().enumerate() {
                    let col = batch.column(i);
                    let known = NAMED_METRICS
                        .iter()
                        .find(|(n, _)| n == f.name())
                        .map(|&(_, id)| (id, 1.0))
                        .or_else(|| {
                            ctx.fields
                                .lookup(f.name())
                                .map(|id| (id, ctx.fields.source_scale(id)))
                        });
                    if let Some((id, scale)) = known {
                        let n = NumCol::new(col).ok_or_else(|| {
                            format!(
                                "metric column {:?} must be numeric, not {}",
                                f.name(),
                                col.data_type()
                            )
                        })?;
                        metrics.push((id, scale, n));
                    }
                }
            }
        }
        let field_of_key = field
            .as_ref()
            .and_then(|f| f.dictionary())
            .map(|(_, values)| {
                (0..values.len())
                    .map(|k| values.get(k).and_then(|n| ctx.fields.lookup(n)))
                    .collect()
            });
        Ok(ColumnarBatch {
            field_of_key,
            form,
            rows: batch.num_rows(),
            ts,
            gpu,
            gpu_index,
            hostname: str_column(batch, &["hostname", "Hostname", "host"])?,
            model: str_column(batch, &["model_name", "modelName", "model"])?,
            namespace: str_column(batch, &["namespace"])?,
            pod: str_column(batch, &["pod"])?,
            container: str_column(batch, &["container"])?,
            instance: str_column(batch, &["gpu_instance_id", "GPU_I_ID"])?,
            extras,
            field,
            value,
            metrics,
        })
    }

    /// Whether row `i` carries the same labels as row `i - 1` (so the same series).
    pub fn same_labels_as_previous(&self, i: usize) -> bool {
        i > 0 && self.same_labels(i, i - 1)
    }

    /// Exact signatures of the rows' label sets, when every label column is a dictionary and
    /// their keys pack into 64 bits: rows with equal signatures carry the same labels.
    pub fn label_signatures(&self) -> Option<LabelSignatures<'_>> {
        if matches!(self.gpu_index, Some(IndexCol::Number(_))) {
            return None;
        }
        let mut cols: Vec<&StrCol<'_>> = vec![&self.gpu];
        if let Some(IndexCol::Text(t)) = &self.gpu_index {
            cols.push(t);
        }
        for c in [
            &self.hostname,
            &self.model,
            &self.namespace,
            &self.pod,
            &self.container,
            &self.instance,
        ]
        .into_iter()
        .flatten()
        {
            cols.push(c);
        }
        cols.extend(self.extras.iter().map(|(_, c)| c));
        let widths: Vec<u32> = cols
            .iter()
            .map(|c| c.signature_width())
            .collect::<Option<_>>()?;
        if widths.iter().sum::<u32>() > 64 {
            return None;
        }
        let shifts = widths.iter().scan(0, |at, &w| {
            let shift = *at;
            *at += w;
            Some(shift)
        });
        let per_row: Option<Vec<(&[i32], u32, u32)>> = cols
            .iter()
            .zip(shifts.clone())
            .map(|(c, shift)| {
                let (keys, len) = c.i32_keys_without_nulls()?;
                Some((keys, u32::try_from(len).ok()?, shift))
            })
            .collect();
        if let Some(cols) = per_row {
            return Some(LabelSignatures::per_row(cols, self.rows));
        }
        let mut sig = vec![0u64; self.rows];
        for ((c, &w), shift) in cols.iter().zip(&widths).zip(shifts) {
            if !c.add_to_signatures(shift, w, &mut sig) {
                return None; // a key outside its dictionary: rows are compared label by label
            }
        }
        Some(LabelSignatures::Batch(sig))
    }

    /// Whether rows `i` and `j` carry the same labels (so the same series).
    pub fn same_labels(&self, i: usize, j: usize) -> bool {
        let same = |c: &Option<StrCol<'_>>| c.as_ref().is_none_or(|c| c.same(i, j));
        self.gpu.same(i, j)
            && same(&self.pod)
            && same(&self.namespace)
            && same(&self.container)
            && same(&self.hostname)
            && same(&self.model)
            && same(&self.instance)
            && self.extras.iter().all(|(_, c)| c.same(i, j))
            && match &self.gpu_index {
                None => true,
                Some(IndexCol::Text(t)) => t.same(i, j),
                Some(IndexCol::Number(n)) => n.get(i) == n.get(j),
            }
    }

    pub fn form(&self) -> Form {
        self.form
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Decodes row `i`; `Err` is that row's dead-letter reason. With `labels_known`, the
    /// sink already knows the row's series, so label strings are not read.
    pub fn row(
        &self,
        i: usize,
        labels_known: bool,
        ctx: &DecodeContext<'_>,
        sink: &mut impl ReadingSink,
    ) -> Result<(), String> {
        let ts_ms = self.ts.get(i)?;
        let labels = if labels_known {
            GpuLabels::default()
        } else {
            self.labels(i)?
        };
        self.readings(i, ts_ms, labels, ctx, sink)
    }

    /// The event time of row `i`.
    #[inline]
    pub fn time(&self, i: usize) -> Result<i64, String> {
        self.ts.get(i)
    }

    /// Long form: the field and value of row `i` in the field's default unit; `Ok(None)` for
    /// a field the engine does not keep; a null value is `f64::MAX` (a blank: no reading).
    #[inline]
    pub fn long_reading(
        &self,
        i: usize,
        ctx: &DecodeContext<'_>,
    ) -> Result<Option<(FieldId, f64)>, String> {
        let col = self.field.as_ref().ok_or("no field column")?;
        let field = match (&self.field_of_key, col.dictionary()) {
            (Some(map), Some((keys, _))) => {
                if col.is_null(i) {
                    return Err("null field name".into());
                }
                map.get(keys.get(i)).copied().flatten()
            }
            _ => ctx.fields.lookup(col.get(i).ok_or("null field name")?),
        };
        let Some(field) = field else {
            return Ok(None);
        };
        let v = match self.value.as_ref().and_then(|v| v.get(i)) {
            Some(v) => v * ctx.fields.source_scale(field),
            None => f64::MAX,
        };
        Ok(Some((field, v)))
    }

    /// The shard among `count` of every row (`shard::shard_of_gpu` of its GPU identity, as
    /// `labels` and `Series` build it); rows without a GPU are 0. One hash per dictionary
    /// value when the GPU column is a dictionary and there is no MIG instance column.
    pub fn shard_ids(&self, count: u32) -> Vec<u32> {
        use crate::shard::shard_of_gpu;
        let n = self.rows();
        let of = |uuid: Option<&str>| {
            uuid.filter(|g| !g.is_empty())
                .map_or(0, |g| shard_of_gpu(g, count))
        };
        if self.instance.is_none() {
            if let Some((keys, values)) = self.gpu.dictionary() {
                let per_value: Vec<u32> = (0..values.len()).map(|v| of(values.get(v))).collect();
                let nulls = self.gpu.dictionary_nulls();
                return (0..n)
                    .map(|i| match nulls {
                        Some(b) if b.is_null(i) => 0,
                        _ => per_value.get(keys.get(i)).copied().unwrap_or(0),
                    })
                    .collect();
            }
        }
        (0..n)
            .map(|i| {
                let instance = opt(&self.instance, i);
                match self.gpu.get(i) {
                    Some(uuid) if !uuid.is_empty() && !instance.is_empty() => {
                        shard_of_gpu(&format!("{uuid}/{instance}"), count)
                    }
                    uuid => of(uuid),
                }
            })
            .collect()
    }

    /// The labels of row `i`.
    pub fn labels(&self, i: usize) -> Result<GpuLabels<'_>, String> {
        let uuid = self
            .gpu
            .get(i)
            .filter(|g| !g.is_empty())
            .ok_or("missing GPU UUID")?;
        let gpu_index = match &self.gpu_index {
            None => "",
            Some(IndexCol::Text(t)) => t.get(i).unwrap_or(""),
            Some(IndexCol::Number(n)) => match n.get(i) {
                None => "",
                Some(v) if v >= 0.0 && v.fract() == 0.0 && (v as usize) < index_text().len() => {
                    &index_text()[v as usize]
                }
                Some(v) => return Err(format!("gpu_index {v} is not a GPU index")),
            },
        };
        let mut extra = [""; MAX_EXTRA_LABELS];
        for (slot, c) in &self.extras {
            extra[*slot] = c.get(i).unwrap_or("");
        }
        Ok(GpuLabels {
            uuid,
            gpu_instance_id: opt(&self.instance, i),
            gpu_index,
            hostname: opt(&self.hostname, i),
            model_name: opt(&self.model, i),
            namespace: opt(&self.namespace, i),
            pod: opt(&self.pod, i),
            container: opt(&self.container, i),
            extra,
        })
    }

    fn readings(
        &self,
        i: usize,
        ts_ms: i64,
        labels: GpuLabels<'_>,
        ctx: &DecodeContext<'_>,
        sink: &mut impl ReadingSink,
    ) -> Result<(), String> {
        match self.form {
            Form::Requests => return Err("request events are not GPU telemetry".into()),
            Form::Long => {
                let col = self.field.as_ref().ok_or("no field column")?;
                let field = match (&self.field_of_key, col.dictionary()) {
                    (Some(map), Some((keys, _))) => {
                        col.get(i).ok_or("null field name")?;
                        map.get(keys.get(i)).copied().flatten()
                    }
                    _ => ctx.fields.lookup(col.get(i).ok_or("null field name")?),
                };
                let Some(field) = field else {
                    sink.unknown_field();
                    return Ok(());
                };
                // A null value is no reading (like a DCGM blank); the row is a counted skip.
                if let Some(v) = self.value.as_ref().and_then(|v| v.get(i)) {
                    let value = v * ctx.fields.source_scale(field);
                    sink.reading(Reading {
                        ts_ms,
                        field,
                        value,
                        labels,
                    });
                } else {
                    sink.reading(Reading {
                        ts_ms,
                        field,
                        value: f64::MAX,
                        labels,
                    });
                }
            }
            Form::Wide => {
                for (field, scale, col) in &self.metrics {
                    if let Some(v) = col.get(i) {
                        sink.reading(Reading {
                            ts_ms,
                            field: *field,
                            value: v * scale,
                            labels,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Decimal spellings of GPU indices, shared so numeric index columns need no allocation.
fn index_text() -> &'static [String] {
    static TEXT: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| (0..1024).map(|i| i.to_string()).collect())
}

fn opt<'c>(c: &'c Option<StrCol<'_>>, i: usize) -> &'c str {
    c.as_ref().and_then(|c| c.get(i)).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};
    use std::sync::Arc;

    fn batch(name: &str, ts: ArrayRef) -> RecordBatch {
        let n = ts.len();
        let gpu: ArrayRef = Arc::new(StringArray::from(vec!["GPU-0"; n]));
        RecordBatch::try_from_iter([(name, ts), ("gpu", gpu)]).unwrap()
    }

    #[test]
    fn batch_max_time_skips_unreadable_rows_and_reads_every_time_kind() {
        let ms: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            Some(1_764_331_201_000),
            None,
            Some(1_764_331_205_500),
            Some(1_764_331_203_000),
        ]));
        assert_eq!(batch_max_time(&batch("ts", ms)), Some(1_764_331_205_500));
        // Unix seconds as floats, under another time column name; NaN is no time.
        let secs: ArrayRef = Arc::new(Float64Array::from(vec![1_764_331_201.25, f64::NAN]));
        assert_eq!(
            batch_max_time(&batch("timestamp", secs)),
            Some(1_764_331_201_250)
        );
        let text: ArrayRef = Arc::new(StringArray::from(vec!["2025-11-28T12:00:01Z", "no"]));
        assert_eq!(
            batch_max_time(&batch("time", text)),
            Some(1_764_331_201_000)
        );
        let none: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![None, None]));
        assert_eq!(batch_max_time(&batch("ts", none)), None);
        let other: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
        assert_eq!(batch_max_time(&batch("value", other)), None);
        // A null slot's stored value (any bits) is not a time; units convert after the max.
        use arrow_array::{Array, TimestampNanosecondArray, TimestampSecondArray};
        use arrow_buffer::{NullBuffer, ScalarBuffer};
        let stored = ScalarBuffer::from(vec![1_764_331_201, i64::MAX, 1_764_331_202]);
        let valid = NullBuffer::from(vec![true, false, true]);
        let secs: ArrayRef = Arc::new(TimestampSecondArray::new(stored, Some(valid)));
        assert_eq!(batch_max_time(&batch("ts", secs)), Some(1_764_331_202_000));
        let ns: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![
            1_764_331_201_999_999_999,
            1_764_331_200_000_000_000,
        ]));
        assert_eq!(batch_max_time(&batch("ts", ns)), Some(1_764_331_201_999));
        // A slice: only its own rows count.
        let all = TimestampMillisecondArray::from(vec![Some(9), None, Some(5), Some(7), Some(99)]);
        let sliced: ArrayRef = Arc::new(all.slice(1, 3));
        assert_eq!(sliced.len(), 3);
        assert_eq!(batch_max_time(&batch("ts", sliced)), Some(7));
    }

    fn long_batch(gpu_keys: Vec<Option<i32>>, gpus: &[&str]) -> RecordBatch {
        long_batch_pods(gpu_keys, gpus, |i| if i % 2 == 0 { "p0" } else { "p1" })
    }

    fn long_batch_pods(
        gpu_keys: Vec<Option<i32>>,
        gpus: &[&str],
        pod: fn(usize) -> &'static str,
    ) -> RecordBatch {
        use arrow_array::{DictionaryArray, Int32Array};
        let n = gpu_keys.len();
        let values: ArrayRef = Arc::new(StringArray::from(gpus.to_vec()));
        // Unchecked, as data arriving over FFI may be: keys are not validated here.
        let gpu = unsafe { DictionaryArray::new_unchecked(Int32Array::from(gpu_keys), values) };
        let pods = DictionaryArray::<arrow_array::types::Int32Type>::from_iter(
            (0..n).map(|i| Some(pod(i))),
        );
        let cols: Vec<(&str, ArrayRef)> = vec![
            (
                "ts",
                Arc::new(TimestampMillisecondArray::from(vec![1_764_331_201_000; n])),
            ),
            ("gpu", Arc::new(gpu)),
            ("pod", Arc::new(pods)),
            (
                "field",
                Arc::new(StringArray::from(vec!["DCGM_FI_DEV_GPU_UTIL"; n])),
            ),
            ("value", Arc::new(Float64Array::from(vec![1.0; n]))),
        ];
        RecordBatch::try_from_iter(cols).unwrap()
    }

    #[test]
    fn label_signatures_tell_label_sets_apart_and_refuse_keys_outside_the_dictionary() {
        let fields = crate::fields::FieldRegistry::default();
        let ctx = DecodeContext {
            fields: &fields,
            extra_labels: &[],
        };
        let ok = long_batch(vec![Some(0), Some(1), Some(0), None], &["GPU-a", "GPU-b"]);
        let cols = ColumnarBatch::new(&ok, None, &ctx).unwrap();
        let sigs = cols.label_signatures().expect("all keys in range");
        assert!(
            matches!(sigs, LabelSignatures::Batch(_)),
            "a null key: whole batch"
        );
        let sig: Vec<u64> = (0..4).map(|i| sigs.get(i).unwrap()).collect();
        // rows: (a, p0), (b, p1), (a, p0), (null, p1)
        assert_eq!(sig[0], sig[2]);
        assert_ne!(sig[0], sig[1]);
        assert_ne!(sig[1], sig[3], "a null GPU is not GPU key 0");
        for (i, j) in [(0, 1), (0, 2), (1, 3)] {
            assert_eq!(sig[i] == sig[j], cols.same_labels(i, j), "rows {i} and {j}");
        }
        // Without nulls, signatures are built per row, and equal the whole-batch ones.
        let plain = long_batch(
            vec![Some(0), Some(1), Some(0), Some(1)],
            &["GPU-a", "GPU-b"],
        );
        let cols = ColumnarBatch::new(&plain, None, &ctx).unwrap();
        let sigs = cols.label_signatures().unwrap();
        assert!(matches!(sigs, LabelSignatures::PerRow { .. }));
        assert_eq!(sigs.get(0), Some(sig[0]));
        assert_eq!(sigs.get(1), Some(sig[1]));
        for (i, j) in [(0, 1), (0, 2), (1, 3)] {
            assert_eq!(sigs.get(i) == sigs.get(j), cols.same_labels(i, j));
        }
        // A key outside the dictionary: no signature for that row (per row), or for the
        // batch (whole batch, here with a null key too).
        for keys in [vec![Some(0), Some(2)], vec![Some(0), Some(-1)]] {
            let bad = long_batch(keys, &["GPU-a", "GPU-b"]);
            let cols = ColumnarBatch::new(&bad, None, &ctx).unwrap();
            let sigs = cols.label_signatures().unwrap();
            assert!(sigs.get(0).is_some());
            assert_eq!(sigs.get(1), None);
        }
        for keys in [vec![None, Some(2)], vec![None, Some(-1)]] {
            let bad = long_batch(keys, &["GPU-a", "GPU-b"]);
            let cols = ColumnarBatch::new(&bad, None, &ctx).unwrap();
            assert!(cols.label_signatures().is_none());
        }
        let beyond = long_batch(vec![Some(0), Some(2)], &["GPU-a", "GPU-b"]);
        let cols = ColumnarBatch::new(&beyond, None, &ctx).unwrap();
        assert!(
            cols.labels(1).is_err(),
            "no GPU for a key beyond the dictionary"
        );
    }

    #[test]
    fn an_empty_batch_has_signatures_and_no_runs() {
        let fields = crate::fields::FieldRegistry::default();
        let ctx = DecodeContext {
            fields: &fields,
            extra_labels: &[],
        };
        let empty = long_batch(vec![], &["GPU-a"]);
        let cols = ColumnarBatch::new(&empty, None, &ctx).unwrap();
        assert!(matches!(
            cols.label_signatures(),
            Some(LabelSignatures::PerRow { .. })
        ));
        assert_eq!(batch_max_time(&empty), None);
    }

    #[test]
    fn runs_of_equal_labels_are_found_in_both_signature_kinds() {
        let fields = crate::fields::FieldRegistry::default();
        let ctx = DecodeContext {
            fields: &fields,
            extra_labels: &[],
        };
        // rows: (a, p0) (a, p0) (b, p0) (b, p1) (b, p1) (a, p1)
        let pod = |i: usize| if i < 3 { "p0" } else { "p1" };
        let keys = vec![Some(0), Some(0), Some(1), Some(1), Some(1), Some(0)];
        let want = [false, true, false, false, true, false];
        let plain = long_batch_pods(keys.clone(), &["GPU-a", "GPU-b"], pod);
        let with_null = long_batch_pods(
            keys.into_iter().chain([None, None]).collect(),
            &["GPU-a", "GPU-b"],
            |i| if i < 3 { "p0" } else { "p1" },
        );
        for (batch, kind) in [(&plain, "per row"), (&with_null, "batch")] {
            let cols = ColumnarBatch::new(batch, None, &ctx).unwrap();
            let sigs = cols.label_signatures().unwrap();
            let got: Vec<bool> = (0..6).map(|i| sigs.continues_run(i)).collect();
            assert_eq!(got, want, "{kind}");
            for i in 1..6 {
                assert_eq!(
                    sigs.continues_run(i),
                    cols.same_labels(i, i - 1),
                    "{kind} {i}"
                );
            }
        }
        let cols = ColumnarBatch::new(&with_null, None, &ctx).unwrap();
        let sigs = cols.label_signatures().unwrap();
        assert!(matches!(sigs, LabelSignatures::Batch(_)));
        assert!(sigs.continues_run(7), "two null GPUs on one pod");
    }
}
