//! Table `gpu_windows`: the row of one (window, GPU, pod), how it is computed from the
//! window's points, and its Arrow schema. Column names and units are the contract of docs/schema.md.

use crate::arrow_util::{float_col, ts_col, ts_type};
use crate::attribution::Attribution;
use crate::fields::FieldId;
use crate::series::{Series, SeriesId, SeriesTable};
use crate::stats::{counter_increase, min_max, quantile_select};
use crate::time::EpochMs;
use crate::window::SeriesPoints;
use arrow_array::builder::{BooleanBuilder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, PartialEq)]
pub struct GpuWindowRow {
    pub window_start: EpochMs,
    pub window_end: EpochMs,
    pub series: SeriesId,
    pub samples: i64,
    pub covered_s: f64,
    pub util_mean: Option<f64>,
    pub util_min: Option<f64>,
    pub util_max: Option<f64>,
    pub util_p50: Option<f64>,
    pub util_p95: Option<f64>,
    pub busy_gpu_s: f64,
    pub idle_gpu_s: f64,
    pub allocated: bool,
    pub fb_used_max_mib: Option<f64>,
    pub power_mean_w: Option<f64>,
    pub energy_j: Option<f64>,
    pub price_usd_per_gpu_hour: f64,
    pub cost_usd: f64,
    pub idle_cost_usd: f64,
    pub unallocated_cost_usd: f64,
}

/// Which utilization signal a window uses and how to scale it to a ratio.
pub fn utilization_points(p: &SeriesPoints) -> (&[(EpochMs, f64)], f64) {
    let gr = p.points(FieldId::GR_ENGINE_ACTIVE);
    if gr.is_empty() {
        (p.points(FieldId::GPU_UTIL), 0.01)
    } else {
        (gr, 1.0)
    }
}

/// Everything a row needs besides the points.
pub struct RowContext<'a> {
    pub window_start: EpochMs,
    pub window_end: EpochMs,
    pub sample_interval_s: f64,
    pub attribution: &'a Attribution,
    /// Reused buffer for sorting values.
    pub scratch: &'a mut Vec<f64>,
}

impl GpuWindowRow {
    /// Computes the row of one closed window. Utilization comes from GR_ENGINE_ACTIVE when
    /// the GPU reported it in this window, else from GPU_UTIL / 100. `energy_before` is the
    /// last energy counter reading before the window, when known.
    pub fn compute(
        ctx: &mut RowContext<'_>,
        id: SeriesId,
        series: &Series,
        p: &SeriesPoints,
        energy_before: Option<f64>,
    ) -> GpuWindowRow {
        let (pts, scale) = utilization_points(p);
        let samples = pts.len() as i64;
        let window_s = (ctx.window_end - ctx.window_start) as f64 / 1000.0;
        let covered_s = (samples as f64 * ctx.sample_interval_s).min(window_s);
        let buf = &mut *ctx.scratch;
        buf.clear();
        buf.extend(pts.iter().map(|&(_, v)| v * scale));
        let sum_u: f64 = buf.iter().sum();
        let util_range = min_max(buf);
        let util_p95 = quantile_select(buf, 0.95);
        let util_p50 = quantile_select(buf, 0.5);
        let util_mean = (samples > 0).then(|| sum_u / samples as f64);
        // busy = sum(u) * interval, scaled down with covered_s when the cap binds, so that
        // idle never goes negative (docs/design.md).
        let busy_gpu_s = util_mean.map_or(0.0, |m| m * covered_s);
        let idle_gpu_s = covered_s - busy_gpu_s;

        let fb = p.points(FieldId::FB_USED);
        let fb_used_max_mib = fb.iter().map(|p| p.1).reduce(f64::max);
        let power = p.points(FieldId::POWER_USAGE);
        let power_mean_w = (!power.is_empty())
            .then(|| power.iter().map(|p| p.1).sum::<f64>() / power.len() as f64);
        let energy = p.points(FieldId::TOTAL_ENERGY).iter().map(|p| p.1);
        let energy_j = counter_increase(energy_before.into_iter().chain(energy))
            .map(|mj| mj / 1000.0)
            .or_else(|| power_mean_w.map(|w| w * covered_s));

        let allocated = !series.pod.is_empty();
        let price = ctx.attribution.price_of(&series.model_name);
        let cost_usd = covered_s / 3600.0 * price;
        GpuWindowRow {
            window_start: ctx.window_start,
            window_end: ctx.window_end,
            series: id,
            samples,
            covered_s,
            util_mean,
            util_min: util_range.map(|r| r.0),
            util_max: util_range.map(|r| r.1),
            util_p50,
            util_p95,
            busy_gpu_s,
            idle_gpu_s,
            allocated,
            fb_used_max_mib,
            power_mean_w,
            energy_j,
            price_usd_per_gpu_hour: price,
            cost_usd,
            idle_cost_usd: idle_gpu_s / 3600.0 * price,
            unallocated_cost_usd: if allocated { 0.0 } else { cost_usd },
        }
    }
}

pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let ts = ts_type();
            let f = Field::new;
            let float = |name: &str, nullable: bool| Field::new(name, DataType::Float64, nullable);
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
                float("covered_s", false),
                float("util_mean", true),
                float("util_min", true),
                float("util_max", true),
                float("util_p50", true),
                float("util_p95", true),
                float("busy_gpu_s", false),
                float("idle_gpu_s", false),
                f("allocated", DataType::Boolean, false),
                float("fb_used_max_mib", true),
                float("power_mean_w", true),
                float("energy_j", true),
                float("price_usd_per_gpu_hour", false),
                float("cost_usd", false),
                float("idle_cost_usd", false),
                float("unallocated_cost_usd", false),
            ]))
        })
        .clone()
}

/// Builds the Arrow batch for `rows`, resolving series ids through `series`.
pub fn to_record_batch(
    rows: &[GpuWindowRow],
    series: &SeriesTable,
    attribution: &Attribution,
) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let s = |r: &GpuWindowRow| series.get(r.series);
    let text = |get: &dyn Fn(&Series) -> &str| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * 16);
        for r in rows {
            b.append_value(get(s(r)));
        }
        Arc::new(b.finish())
    };
    let mut gpu_index = Int32Builder::with_capacity(n);
    let mut samples = Int64Builder::with_capacity(n);
    let mut allocated = BooleanBuilder::with_capacity(n);
    for r in rows {
        gpu_index.append_option(s(r).gpu_index);
        samples.append_value(r.samples);
        allocated.append_value(r.allocated);
    }
    let f = |get: fn(&GpuWindowRow) -> f64| float_col(rows.iter().map(|r| Some(get(r))));
    let fo = |get: fn(&GpuWindowRow) -> Option<f64>| float_col(rows.iter().map(get));
    let columns: Vec<ArrayRef> = vec![
        ts_col(rows.iter().map(|r| r.window_start)),
        ts_col(rows.iter().map(|r| r.window_end)),
        text(&|s| &s.gpu_uuid),
        text(&|s| &s.namespace),
        text(&|s| &s.pod),
        text(&|s| &s.hostname),
        Arc::new(gpu_index.finish()),
        text(&|s| &s.model_name),
        text(&|s| &s.container),
        {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            for r in rows {
                b.append_value(attribution.team_of(&s(r).namespace));
            }
            Arc::new(b.finish())
        },
        Arc::new(samples.finish()),
        f(|r| r.covered_s),
        fo(|r| r.util_mean),
        fo(|r| r.util_min),
        fo(|r| r.util_max),
        fo(|r| r.util_p50),
        fo(|r| r.util_p95),
        f(|r| r.busy_gpu_s),
        f(|r| r.idle_gpu_s),
        Arc::new(allocated.finish()),
        fo(|r| r.fb_used_max_mib),
        fo(|r| r.power_mean_w),
        fo(|r| r.energy_j),
        f(|r| r.price_usd_per_gpu_hour),
        f(|r| r.cost_usd),
        f(|r| r.idle_cost_usd),
        f(|r| r.unallocated_cost_usd),
    ];
    RecordBatch::try_new(schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::GpuLabels;

    fn series(pod: &str, model: &str) -> Series {
        let mut t = SeriesTable::default();
        let id = t.intern(&GpuLabels {
            uuid: "GPU-1",
            pod,
            model_name: model,
            ..Default::default()
        });
        t.get(id).clone()
    }

    fn row(p: &SeriesPoints, pod: &str, interval: f64, before: Option<f64>) -> GpuWindowRow {
        let mut attribution = Attribution::default();
        attribution.prices.insert("H100".into(), 3.6);
        let mut scratch = Vec::new();
        let mut ctx = RowContext {
            window_start: 0,
            window_end: 60_000,
            sample_interval_s: interval,
            attribution: &attribution,
            scratch: &mut scratch,
        };
        GpuWindowRow::compute(&mut ctx, 0, &series(pod, "H100"), p, before)
    }

    fn pts(field: FieldId, v: &[(i64, f64)]) -> SeriesPoints {
        let mut a = SeriesPoints::default();
        for &(t, x) in v {
            a.insert(field, t, x);
        }
        a
    }

    #[test]
    fn gr_engine_active_is_preferred_over_gpu_util() {
        let mut a = pts(FieldId::GPU_UTIL, &[(0, 100.0), (1000, 100.0)]);
        a.insert(FieldId::GR_ENGINE_ACTIVE, 0, 0.5);
        let r = row(&a, "p", 1.0, None);
        assert_eq!(r.samples, 1);
        assert_eq!(r.util_mean, Some(0.5));
        assert_eq!((r.busy_gpu_s, r.idle_gpu_s), (0.5, 0.5));
    }

    #[test]
    fn worked_example_costs_and_quantiles() {
        // 60 samples: u = 0.0, 0.1, ... cycling 0..0.5 (10 of each), price 3.6 $/h = 0.001 $/s
        let v: Vec<(i64, f64)> = (0..60).map(|i| (i * 1000, (i % 6) as f64 * 10.0)).collect();
        let mut a = pts(FieldId::GPU_UTIL, &v);
        for i in 0..60 {
            a.insert(FieldId::POWER_USAGE, i * 1000, 300.0);
        }
        let r = row(&a, "", 1.0, None);
        assert_eq!(r.samples, 60);
        assert_eq!(r.covered_s, 60.0);
        assert!((r.util_mean.unwrap() - 0.25).abs() < 1e-12);
        assert_eq!((r.util_min, r.util_max), (Some(0.0), Some(0.5)));
        assert!((r.util_p50.unwrap() - 0.25).abs() < 1e-12);
        assert!((r.util_p95.unwrap() - 0.5).abs() < 1e-12);
        assert!((r.busy_gpu_s - 15.0).abs() < 1e-9);
        assert!((r.idle_gpu_s - 45.0).abs() < 1e-9);
        assert!(!r.allocated);
        assert!((r.cost_usd - 0.06).abs() < 1e-12);
        assert!((r.idle_cost_usd - 0.045).abs() < 1e-12);
        assert_eq!(r.unallocated_cost_usd, r.cost_usd);
        assert_eq!(r.power_mean_w, Some(300.0));
        // no energy counter: power * covered
        assert_eq!(r.energy_j, Some(18_000.0));
    }

    #[test]
    fn energy_counter_uses_boundary_point_and_resets() {
        let a = pts(
            FieldId::TOTAL_ENERGY,
            &[(0, 5_000.0), (30_000, 9_000.0), (59_000, 1_000.0)],
        );
        let r = row(&a, "p", 1.0, Some(4_000.0));
        // 1000 (from the point before the window) + 4000 + reset to 1000
        assert_eq!(r.energy_j, Some(6.0));
        assert!(r.allocated);
        assert_eq!(r.unallocated_cost_usd, 0.0);
    }

    #[test]
    fn covered_is_capped_and_busy_scaled() {
        let v: Vec<(i64, f64)> = (0..60).map(|i| (i * 1000, 50.0)).collect();
        let r = row(&pts(FieldId::GPU_UTIL, &v), "p", 2.0, None);
        assert_eq!(
            (r.covered_s, r.busy_gpu_s, r.idle_gpu_s),
            (60.0, 30.0, 30.0)
        );
    }

    #[test]
    fn no_utilization_samples_gives_nulls() {
        let r = row(&pts(FieldId::POWER_USAGE, &[(0, 300.0)]), "p", 1.0, None);
        assert_eq!(
            (r.samples, r.util_mean, r.util_p95, r.covered_s),
            (0, None, None, 0.0)
        );
        assert_eq!(r.energy_j, Some(0.0));
    }
}
