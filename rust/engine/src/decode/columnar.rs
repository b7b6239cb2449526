//! Columnar input (spec inputs.md 1d), read in place from Arrow record batches: the long
//! form (`ts, gpu, field, value` plus label columns, one reading per row) or the wide form
//! (the columns of the wide JSON form, several readings per row). Each row is one message
//! for counting and provenance (its row number is the offset).

use super::arrow_cols::{find_column, num_column, str_column, NumCol, StrCol, TimeCol};
use super::wide_json::NAMED_METRICS;
use super::{DecodeContext, Reading, ReadingSink};
use crate::fields::FieldId;
use crate::series::{GpuLabels, MAX_EXTRA_LABELS};
use arrow_array::RecordBatch;

/// Names a columnar batch's time column may have, in order of preference.
pub const TIME_COLUMNS: &[&str] = &["ts", "timestamp", "time"];

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

    /// One exact signature per row of all its labels, when every label column is a
    /// dictionary and their keys pack into 64 bits: rows with equal signatures carry the same
    /// labels. Built column by column, which the compiler vectorizes.
    pub fn label_signatures(&self) -> Option<Vec<u64>> {
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
        let mut sig = vec![0u64; self.rows];
        let mut shift = 0;
        for (c, &w) in cols.iter().zip(&widths) {
            c.add_to_signatures(shift, w, &mut sig);
            shift += w;
        }
        Some(sig)
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
