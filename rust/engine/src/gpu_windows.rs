//! Table `gpu_windows`: the per (window, GPU, pod) row, how it is computed from a window's
//! points, and its Arrow schema. Column names and units are the spec's contract.

use crate::fields::FieldId;
use crate::series::{SeriesId, SeriesTable};
use crate::time::EpochMs;
use crate::window::GpuWindowAcc;
use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field as ArrowField, Schema, SchemaRef, TimeUnit};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, PartialEq)]
pub struct GpuWindowRow {
    pub window_start: EpochMs,
    pub window_end: EpochMs,
    pub series: SeriesId,
    pub samples: i64,
    pub covered_s: f64,
    pub util_mean: Option<f64>,
    pub busy_gpu_s: f64,
    pub idle_gpu_s: f64,
}

impl GpuWindowRow {
    /// Computes the row of one closed window. Utilization comes from GR_ENGINE_ACTIVE when
    /// the GPU reported it in this window, else from GPU_UTIL / 100.
    pub fn compute(
        window_start: EpochMs,
        window_end: EpochMs,
        series: SeriesId,
        acc: &GpuWindowAcc,
        sample_interval_s: f64,
    ) -> GpuWindowRow {
        let gr = acc.points(FieldId::GR_ENGINE_ACTIVE);
        let (pts, scale) = if gr.is_empty() {
            (acc.points(FieldId::GPU_UTIL), 0.01)
        } else {
            (gr, 1.0)
        };
        let samples = pts.len() as i64;
        let sum_u: f64 = pts.iter().map(|p| p.1 * scale).sum();
        let window_s = (window_end - window_start) as f64 / 1000.0;
        let covered_s = (samples as f64 * sample_interval_s).min(window_s);
        let util_mean = (samples > 0).then(|| sum_u / samples as f64);
        // busy = sum(u) * interval, scaled down with covered_s when the cap binds, so that
        // idle never goes negative (docs/schema.md).
        let busy_gpu_s = util_mean.map_or(0.0, |m| m * covered_s);
        GpuWindowRow {
            window_start,
            window_end,
            series,
            samples,
            covered_s,
            util_mean,
            busy_gpu_s,
            idle_gpu_s: covered_s - busy_gpu_s,
        }
    }
}

pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
            let f = ArrowField::new;
            Arc::new(Schema::new(vec![
                f("window_start", ts.clone(), false),
                f("window_end", ts, false),
                f("gpu_uuid", DataType::Utf8, false),
                f("namespace", DataType::Utf8, false),
                f("pod", DataType::Utf8, false),
                f("hostname", DataType::Utf8, false),
                f("gpu_index", DataType::Int32, true),
                f("model_name", DataType::Utf8, false),
                f("container", DataType::Utf8, false),
                f("team", DataType::Utf8, false),
                f("samples", DataType::Int64, false),
                f("covered_s", DataType::Float64, false),
                f("util_mean", DataType::Float64, true),
                f("busy_gpu_s", DataType::Float64, false),
                f("idle_gpu_s", DataType::Float64, false),
            ]))
        })
        .clone()
}

/// Builds the Arrow batch for `rows`, resolving series ids through `series`.
pub fn to_record_batch(
    rows: &[GpuWindowRow],
    series: &SeriesTable,
) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut start = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut end = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut strings: Vec<StringBuilder> = (0..7).map(|_| StringBuilder::new()).collect();
    let mut gpu_index = Int32Builder::with_capacity(n);
    let mut samples = Int64Builder::with_capacity(n);
    let mut covered = Float64Builder::with_capacity(n);
    let mut util_mean = Float64Builder::with_capacity(n);
    let mut busy = Float64Builder::with_capacity(n);
    let mut idle = Float64Builder::with_capacity(n);
    for r in rows {
        let s = series.get(r.series);
        start.append_value(r.window_start);
        end.append_value(r.window_end);
        // team: the namespace until the namespace-to-team map arrives (issue 3).
        let text = [
            &s.gpu_uuid,
            &s.namespace,
            &s.pod,
            &s.hostname,
            &s.model_name,
            &s.container,
            &s.namespace,
        ];
        for (b, v) in strings.iter_mut().zip(text) {
            b.append_value(v);
        }
        gpu_index.append_option(s.gpu_index);
        samples.append_value(r.samples);
        covered.append_value(r.covered_s);
        util_mean.append_option(r.util_mean);
        busy.append_value(r.busy_gpu_s);
        idle.append_value(r.idle_gpu_s);
    }
    let mut s = strings
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut next = || s.next().expect("seven string columns");
    let (uuid, ns, pod, host, model, container, team) =
        (next(), next(), next(), next(), next(), next(), next());
    let columns: Vec<ArrayRef> = vec![
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        uuid,
        ns,
        pod,
        host,
        Arc::new(gpu_index.finish()),
        model,
        container,
        team,
        Arc::new(samples.finish()),
        Arc::new(covered.finish()),
        Arc::new(util_mean.finish()),
        Arc::new(busy.finish()),
        Arc::new(idle.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(field: FieldId, pts: &[(i64, f64)]) -> GpuWindowAcc {
        let mut a = GpuWindowAcc::default();
        for &(t, v) in pts {
            a.insert(field, t, v);
        }
        a
    }

    #[test]
    fn gr_engine_active_is_preferred_over_gpu_util() {
        let mut a = acc(FieldId::GPU_UTIL, &[(0, 100.0), (1000, 100.0)]);
        a.insert(FieldId::GR_ENGINE_ACTIVE, 0, 0.5);
        let r = GpuWindowRow::compute(0, 60_000, 0, &a, 1.0);
        assert_eq!(r.samples, 1);
        assert_eq!(r.util_mean, Some(0.5));
        assert_eq!(r.busy_gpu_s, 0.5);
        assert_eq!(r.idle_gpu_s, 0.5);
    }

    #[test]
    fn gpu_util_percent_is_scaled_and_covered_is_capped() {
        let pts: Vec<_> = (0..60).map(|i| (i * 1000, 50.0)).collect();
        let a = acc(FieldId::GPU_UTIL, &pts);
        let r = GpuWindowRow::compute(0, 60_000, 0, &a, 2.0);
        assert_eq!(r.samples, 60);
        assert_eq!(r.covered_s, 60.0);
        assert_eq!(r.util_mean, Some(0.5));
        assert_eq!(r.busy_gpu_s, 30.0);
        assert_eq!(r.idle_gpu_s, 30.0);
    }

    #[test]
    fn no_utilization_samples_gives_null_mean() {
        let a = acc(FieldId::POWER_USAGE, &[(0, 300.0)]);
        let r = GpuWindowRow::compute(0, 60_000, 0, &a, 1.0);
        assert_eq!((r.samples, r.util_mean, r.covered_s), (0, None, 0.0));
    }
}
