//! Table `pool_windows`: one row per (window, team, GPU model). Demand `D(t)` is the sum of
//! utilization over the pool's GPUs in each `sample_interval_s` bucket, provisioned `P(t)`
//! the number of the pool's GPUs reporting in it; buckets with no report count as zero.
//!
//! Each GPU's bucket mean enters `D(t)` in fixed point (`DEMAND_UNITS_PER_GPU` units per busy
//! GPU), so `D(t)` is an integer sum whose value does not depend on the order GPUs are added
//! in. The per-bucket `D` and `P` are written with the row (`demand_buckets`,
//! `provisioned_buckets`): partial rows of disjoint GPUs (shards, consumer-group members)
//! add element-wise and `demand_figures` gives the pool figures one engine gives, bit for bit
//! (docs/scale-out.md).

use crate::arrow_util::{float_col, str_col, ts_col, ts_type};
use crate::gpu_windows::{utilization_points, GpuWindowRow};
use crate::series::Series;
use crate::stats::{min_max, quantile_select};
use crate::time::EpochMs;
use crate::window::SeriesPoints;
use arrow_array::builder::{Int32Builder, Int64Builder, ListBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, PartialEq)]
pub struct PoolWindowRow {
    pub window_start: EpochMs,
    pub window_end: EpochMs,
    pub team: String,
    pub model_name: String,
    pub gpus: i64,
    pub gpu_s: f64,
    pub busy_gpu_s: f64,
    pub idle_gpu_s: f64,
    pub cost_usd: f64,
    pub idle_cost_usd: f64,
    pub provisioned_mean_gpus: f64,
    pub demand_mean_gpus: f64,
    pub demand_p95_gpus: f64,
    pub demand_peak_gpus: f64,
    pub buffer_gpus: f64,
    pub buffer_cost_usd: f64,
    pub utilization: Option<f64>,
    /// `D(t)` per bucket in units of 1/`DEMAND_UNITS_PER_GPU` busy GPU.
    pub demand_buckets: Vec<i64>,
    /// `P(t)` per bucket: GPUs reporting.
    pub provisioned_buckets: Vec<i32>,
}

/// Fixed-point units per busy GPU in `demand_buckets`: 2^32, so one GPU's bucket mean is
/// kept to 2.3e-10 and a bucket holds up to 2^31 busy GPUs before i64 overflows (and 2^21
/// before its f64 value stops being exact).
pub const DEMAND_UNITS_PER_GPU: f64 = 4_294_967_296.0;

/// One GPU's bucket mean utilization in demand units (rounded to the nearest unit).
pub fn demand_units(mean_utilization: f64) -> i64 {
    (mean_utilization * DEMAND_UNITS_PER_GPU).round() as i64
}

/// The pool figures a window's per-bucket demand and provisioned counts give.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemandFigures {
    pub provisioned_mean_gpus: f64,
    pub demand_mean_gpus: f64,
    pub demand_p95_gpus: f64,
    pub demand_peak_gpus: f64,
}

/// The figures of `demand` / `provisioned` (one value per bucket, equal lengths): the one
/// computation the engine and `gpuledger.combine` share, so merged partial rows give the
/// engine's values exactly. Empty input gives zeros.
pub fn demand_figures(
    demand: &[i64],
    provisioned: &[i32],
    scratch: &mut Vec<f64>,
) -> DemandFigures {
    let n = demand.len().max(1) as f64;
    let provisioned_sum: i64 = provisioned.iter().map(|&p| i64::from(p)).sum();
    let demand_sum: i128 = demand.iter().map(|&d| i128::from(d)).sum();
    scratch.clear();
    scratch.extend(demand.iter().map(|&d| d as f64 / DEMAND_UNITS_PER_GPU));
    let demand_peak_gpus = min_max(scratch).map_or(0.0, |r| r.1);
    let demand_p95_gpus = quantile_select(scratch, 0.95).unwrap_or(0.0);
    DemandFigures {
        provisioned_mean_gpus: provisioned_sum as f64 / n,
        demand_mean_gpus: demand_sum as f64 / DEMAND_UNITS_PER_GPU / n,
        demand_p95_gpus,
        demand_peak_gpus,
    }
}

/// Accumulates one pool's GPU rows and per-bucket demand within one window.
struct PoolAcc<'a> {
    gpus: HashSet<&'a str>,
    gpu_s: f64,
    busy: f64,
    idle: f64,
    cost: f64,
    idle_cost: f64,
    demand: Vec<i64>,
    provisioned: Vec<i32>,
    price: f64,
}

type PoolKey<'a> = (&'a str, &'a str);

/// Builds the pool rows of one window from its GPU rows and their points. Rows must come
/// grouped by GPU (the engine sorts them by `gpu_uuid` first): one GPU's readings are
/// bucketed together, so a GPU that changes pod inside a bucket still counts once there.
pub struct PoolBuilder<'a> {
    window_start: EpochMs,
    window_end: EpochMs,
    bucket_ms: i64,
    pools: BTreeMap<PoolKey<'a>, PoolAcc<'a>>,
    /// The GPU being added and its per-pool bucket sums and reading counts.
    current_gpu: Option<&'a str>,
    pending: Vec<(PoolKey<'a>, Vec<(f64, u32)>)>,
}

impl<'a> PoolBuilder<'a> {
    pub fn new(window_start: EpochMs, window_end: EpochMs, sample_interval_s: f64) -> Self {
        PoolBuilder {
            window_start,
            window_end,
            bucket_ms: ((sample_interval_s * 1000.0).round() as i64).max(1),
            pools: BTreeMap::new(),
            current_gpu: None,
            pending: Vec::new(),
        }
    }

    fn buckets(&self) -> usize {
        ((self.window_end - self.window_start + self.bucket_ms - 1) / self.bucket_ms) as usize
    }

    /// Adds the pending GPU's mean utilization per bucket to its pools' demand.
    fn flush_gpu(&mut self) {
        for (key, buckets) in self.pending.drain(..) {
            let acc = self.pools.get_mut(&key).expect("pool created on add");
            for (b, &(sum, n)) in buckets.iter().enumerate() {
                if n > 0 {
                    acc.demand[b] += demand_units(sum / n as f64);
                    acc.provisioned[b] += 1;
                }
            }
        }
    }

    pub fn add(&mut self, team: &'a str, series: &'a Series, row: &GpuWindowRow, p: &SeriesPoints) {
        if self.current_gpu != Some(&*series.gpu_uuid) {
            self.flush_gpu();
            self.current_gpu = Some(&series.gpu_uuid);
        }
        let n = self.buckets();
        let key = (team, &*series.model_name);
        let acc = self.pools.entry(key).or_insert_with(|| PoolAcc {
            gpus: HashSet::new(),
            gpu_s: 0.0,
            busy: 0.0,
            idle: 0.0,
            cost: 0.0,
            idle_cost: 0.0,
            demand: vec![0; n],
            provisioned: vec![0; n],
            price: row.price_usd_per_gpu_hour,
        });
        acc.gpus.insert(&series.gpu_uuid);
        acc.gpu_s += row.covered_s;
        acc.busy += row.busy_gpu_s;
        acc.idle += row.idle_gpu_s;
        acc.cost += row.cost_usd;
        acc.idle_cost += row.idle_cost_usd;
        let slot = match self.pending.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.pending.push((key, vec![(0.0, 0); n]));
                self.pending.len() - 1
            }
        };
        let buckets = &mut self.pending[slot].1;
        let (pts, scale) = utilization_points(p);
        for &(ts, u) in pts {
            let b = &mut buckets[((ts - self.window_start) / self.bucket_ms) as usize];
            b.0 += u * scale;
            b.1 += 1;
        }
    }

    pub fn finish(mut self, scratch: &mut Vec<f64>) -> Vec<PoolWindowRow> {
        self.flush_gpu();
        let window_s = (self.window_end - self.window_start) as f64 / 1000.0;
        self.pools
            .into_iter()
            .map(|((team, model), a)| {
                let DemandFigures {
                    provisioned_mean_gpus,
                    demand_mean_gpus,
                    demand_p95_gpus,
                    demand_peak_gpus,
                } = demand_figures(&a.demand, &a.provisioned, scratch);
                let buffer_gpus = provisioned_mean_gpus - demand_p95_gpus;
                let mean_price = if a.gpu_s > 0.0 {
                    a.cost / a.gpu_s * 3600.0
                } else {
                    a.price
                };
                PoolWindowRow {
                    window_start: self.window_start,
                    window_end: self.window_end,
                    team: team.to_string(),
                    model_name: model.to_string(),
                    gpus: a.gpus.len() as i64,
                    gpu_s: a.gpu_s,
                    busy_gpu_s: a.busy,
                    idle_gpu_s: a.idle,
                    cost_usd: a.cost,
                    idle_cost_usd: a.idle_cost,
                    provisioned_mean_gpus,
                    demand_mean_gpus,
                    demand_p95_gpus,
                    demand_peak_gpus,
                    buffer_gpus,
                    buffer_cost_usd: buffer_gpus.max(0.0) * window_s / 3600.0 * mean_price,
                    utilization: (a.gpu_s > 0.0).then(|| a.busy / a.gpu_s),
                    demand_buckets: a.demand,
                    provisioned_buckets: a.provisioned,
                }
            })
            .collect()
    }
}

/// The list type of the per-bucket columns (item field named "item", non-null items, as
/// arrow-rs' `ListBuilder` makes it).
fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, false)))
}

pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let ts = ts_type();
            let float = |name: &str, nullable: bool| Field::new(name, DataType::Float64, nullable);
            Arc::new(Schema::new(vec![
                Field::new("window_start", ts.clone(), false),
                Field::new("window_end", ts, false),
                Field::new("team", DataType::Utf8, false),
                Field::new("model_name", DataType::Utf8, false),
                Field::new("gpus", DataType::Int64, false),
                float("gpu_s", false),
                float("busy_gpu_s", false),
                float("idle_gpu_s", false),
                float("cost_usd", false),
                float("idle_cost_usd", false),
                float("provisioned_mean_gpus", false),
                float("demand_mean_gpus", false),
                float("demand_p95_gpus", false),
                float("demand_peak_gpus", false),
                float("buffer_gpus", false),
                float("buffer_cost_usd", false),
                float("utilization", true),
                Field::new("demand_buckets", list_of(DataType::Int64), false),
                Field::new("provisioned_buckets", list_of(DataType::Int32), false),
            ]))
        })
        .clone()
}

pub fn to_record_batch(rows: &[PoolWindowRow]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut gpus = Int64Builder::with_capacity(n);
    for r in rows {
        gpus.append_value(r.gpus);
    }
    let item = |t: DataType| Arc::new(Field::new("item", t, false));
    let mut demand = ListBuilder::new(Int64Builder::new()).with_field(item(DataType::Int64));
    let mut provisioned = ListBuilder::new(Int32Builder::new()).with_field(item(DataType::Int32));
    for r in rows {
        demand.values().append_slice(&r.demand_buckets);
        demand.append(true);
        provisioned.values().append_slice(&r.provisioned_buckets);
        provisioned.append(true);
    }
    let f = |get: fn(&PoolWindowRow) -> f64| float_col(rows.iter().map(|r| Some(get(r))));
    let columns: Vec<ArrayRef> = vec![
        ts_col(rows.iter().map(|r| r.window_start)),
        ts_col(rows.iter().map(|r| r.window_end)),
        str_col(rows.iter().map(|r| r.team.as_str())),
        str_col(rows.iter().map(|r| r.model_name.as_str())),
        Arc::new(gpus.finish()),
        f(|r| r.gpu_s),
        f(|r| r.busy_gpu_s),
        f(|r| r.idle_gpu_s),
        f(|r| r.cost_usd),
        f(|r| r.idle_cost_usd),
        f(|r| r.provisioned_mean_gpus),
        f(|r| r.demand_mean_gpus),
        f(|r| r.demand_p95_gpus),
        f(|r| r.demand_peak_gpus),
        f(|r| r.buffer_gpus),
        f(|r| r.buffer_cost_usd),
        float_col(rows.iter().map(|r| r.utilization)),
        Arc::new(demand.finish()),
        Arc::new(provisioned.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::Attribution;
    use crate::fields::FieldId;
    use crate::gpu_windows::RowContext;
    use crate::series::{GpuLabels, SeriesTable};

    /// Two H100s of one team over a 4 s window with 1 s buckets (price 3.6 $/h):
    /// GPU a: u = 1.0, 1.0, 0.0, 0.0; GPU b reports only in the first two seconds: 0.5, 0.5.
    /// D = [1.5, 1.5, 0, 0], P = [2, 2, 1, 1].
    #[test]
    fn worked_example() {
        let mut t = SeriesTable::default();
        let labels = |uuid| GpuLabels {
            uuid,
            namespace: "ns",
            pod: "p",
            model_name: "H100",
            ..Default::default()
        };
        let (ia, ib) = (t.intern(&labels("a")), t.intern(&labels("b")));
        let mut pa = SeriesPoints::default();
        for (i, u) in [1.0, 1.0, 0.0, 0.0].into_iter().enumerate() {
            pa.insert(FieldId::GR_ENGINE_ACTIVE, i as i64 * 1000, u);
        }
        let mut pb = SeriesPoints::default();
        pb.insert(FieldId::GR_ENGINE_ACTIVE, 0, 0.5);
        pb.insert(FieldId::GR_ENGINE_ACTIVE, 1000, 0.5);
        let mut attr = Attribution::default();
        attr.prices.insert("H100".into(), 3.6);
        let mut scratch = Vec::new();
        let mut ctx = RowContext {
            window_start: 0,
            window_end: 4000,
            sample_interval_s: 1.0,
            attribution: &attr,
            scratch: &mut scratch,
        };
        let ra = GpuWindowRow::compute(&mut ctx, ia, t.get(ia), &pa, None);
        let rb = GpuWindowRow::compute(&mut ctx, ib, t.get(ib), &pb, None);
        let mut b = PoolBuilder::new(0, 4000, 1.0);
        b.add("ns", t.get(ia), &ra, &pa);
        b.add("ns", t.get(ib), &rb, &pb);
        let rows = b.finish(&mut Vec::new());
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.gpus, r.gpu_s, r.busy_gpu_s, r.idle_gpu_s),
            (2, 6.0, 3.0, 3.0)
        );
        assert_eq!(r.provisioned_mean_gpus, 1.5);
        assert_eq!(r.demand_mean_gpus, 0.75);
        // D sorted [0, 0, 1.5, 1.5]: p95 at rank 2.85 -> 1.5
        assert_eq!(r.demand_p95_gpus, 1.5);
        assert_eq!(r.demand_peak_gpus, 1.5);
        assert_eq!(r.buffer_gpus, 0.0);
        assert_eq!(r.buffer_cost_usd, 0.0);
        assert_eq!(r.utilization, Some(0.5));
        assert!((r.cost_usd - 0.006).abs() < 1e-12);
        let unit = DEMAND_UNITS_PER_GPU as i64;
        assert_eq!(r.demand_buckets, vec![unit * 3 / 2, unit * 3 / 2, 0, 0]);
        assert_eq!(r.provisioned_buckets, vec![2, 2, 1, 1]);
        let batch = to_record_batch(&rows).unwrap();
        assert_eq!(batch.schema(), schema());
    }

    /// Partial vectors of disjoint GPUs add up to the whole's, and the figures of the sum are
    /// the whole's whatever order the GPUs' units were added in.
    #[test]
    fn figures_of_merged_partials_equal_the_whole() {
        let gpus: Vec<Vec<i64>> = (0..7)
            .map(|g| {
                (0..10)
                    .map(|b| demand_units(((g * 31 + b * 17) % 100) as f64 / 97.0))
                    .collect()
            })
            .collect();
        let sum = |ids: &[usize]| -> Vec<i64> {
            (0..10)
                .map(|b| ids.iter().map(|&g| gpus[g][b]).sum())
                .collect()
        };
        let whole = sum(&[0, 1, 2, 3, 4, 5, 6]);
        let (a, b) = (sum(&[0, 2, 4, 6]), sum(&[5, 3, 1]));
        let merged: Vec<i64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert_eq!(merged, whole);
        let p = vec![7; 10];
        let mut s = Vec::new();
        assert_eq!(
            demand_figures(&merged, &p, &mut s),
            demand_figures(&whole, &p, &mut s)
        );
        assert_eq!(demand_figures(&[], &[], &mut s).demand_p95_gpus, 0.0);
    }
}
