//! The `pool_windows` rows of one engine from the partial rows of its shards (engines that
//! split the GPUs, `shard.rs`), merged in Rust: `replay --workers` merges once per run, and
//! the per-key group-bys of the general `gpuledger combine` rules cost more than the engines'
//! own work on a small fleet (docs/scale-out.md "All cores, one machine").
//!
//! The rules are `gpuledger.output.combine_rules`' for `pool_windows`, which give one engine's
//! values bit for bit when the parts hold disjoint GPUs: a key with one partial row keeps it;
//! a key with several adds its per-bucket demand and provisioned counts element-wise (integer,
//! exact), takes the figures from `pool_windows::demand_figures`, counts the distinct GPUs of
//! its `gpu_windows` rows and re-adds their GPU time and cost in the engine's order (window,
//! then `gpu_uuid`, `namespace`, `pod`), so the float sums equal one engine's.

use crate::pool_windows::{demand_figures, to_record_batch, PoolWindowRow};
use crate::time::EpochMs;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, Float64Array, RecordBatch, StringArray};
use std::collections::{BTreeMap, HashMap, HashSet};

/// (window_start, window_end, team, model_name).
type Key<'a> = (EpochMs, EpochMs, &'a str, &'a str);

/// The float columns of `pool_windows`, in `PoolWindowRow` order; the first five are the
/// GPU-time and cost sums.
const FLOATS: [&str; 12] = [
    "gpu_s",
    "busy_gpu_s",
    "idle_gpu_s",
    "cost_usd",
    "idle_cost_usd",
    "provisioned_mean_gpus",
    "demand_mean_gpus",
    "demand_p95_gpus",
    "demand_peak_gpus",
    "buffer_gpus",
    "buffer_cost_usd",
    "utilization",
];
/// The `gpu_windows` columns whose sums are a pool's first five floats.
const GPU_SUMS: [&str; 5] = [
    "covered_s",
    "busy_gpu_s",
    "idle_gpu_s",
    "cost_usd",
    "idle_cost_usd",
];

fn column<'b>(b: &'b RecordBatch, name: &str) -> Result<&'b dyn Array, String> {
    b.column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| format!("no column {name:?}"))
}

fn times<'b>(b: &'b RecordBatch, name: &str) -> Result<&'b [i64], String> {
    let c = column(b, name)?;
    c.as_primitive_opt::<TimestampMillisecondType>()
        .map(|a| &a.values()[..])
        .ok_or_else(|| format!("{name} is {}, not timestamp[ms]", c.data_type()))
}

fn floats<'b>(b: &'b RecordBatch, name: &str) -> Result<&'b Float64Array, String> {
    let c = column(b, name)?;
    c.as_primitive_opt::<Float64Type>()
        .ok_or_else(|| format!("{name} is {}, not float64", c.data_type()))
}

fn strings<'b>(b: &'b RecordBatch, name: &str) -> Result<&'b StringArray, String> {
    let c = column(b, name)?;
    c.as_string_opt::<i32>()
        .ok_or_else(|| format!("{name} is {}, not string", c.data_type()))
}

/// A list column of `T` items: its offsets and flat values.
fn list<'b, T: arrow_array::ArrowPrimitiveType>(
    b: &'b RecordBatch,
    name: &str,
) -> Result<(&'b [i32], &'b [T::Native]), String> {
    let c = column(b, name)?;
    let l = c
        .as_list_opt::<i32>()
        .ok_or_else(|| format!("{name} is {}, not a list", c.data_type()))?;
    let items = l.values().as_primitive_opt::<T>().ok_or_else(|| {
        format!(
            "{name} is {}, not a list of {}",
            c.data_type(),
            T::DATA_TYPE
        )
    })?;
    Ok((l.value_offsets(), &items.values()[..]))
}

/// The columns of one batch of partial `pool_windows` rows, resolved once.
struct PoolColumns<'b> {
    start: &'b [i64],
    end: &'b [i64],
    team: &'b StringArray,
    model: &'b StringArray,
    gpus: &'b [i64],
    floats: Vec<&'b Float64Array>,
    demand: (&'b [i32], &'b [i64]),
    provisioned: (&'b [i32], &'b [i32]),
}

impl<'b> PoolColumns<'b> {
    fn new(b: &'b RecordBatch) -> Result<Self, String> {
        let gpus = column(b, "gpus")?;
        let gpus = gpus
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| format!("gpus is {}, not int64", gpus.data_type()))?;
        Ok(PoolColumns {
            start: times(b, "window_start")?,
            end: times(b, "window_end")?,
            team: strings(b, "team")?,
            model: strings(b, "model_name")?,
            gpus: gpus.values(),
            floats: FLOATS
                .iter()
                .map(|c| floats(b, c))
                .collect::<Result<_, _>>()?,
            demand: list::<Int64Type>(b, "demand_buckets")?,
            provisioned: list::<Int32Type>(b, "provisioned_buckets")?,
        })
    }

    fn key(&self, row: usize) -> Key<'b> {
        let s = |a: &'b StringArray| if a.is_valid(row) { a.value(row) } else { "" };
        (self.start[row], self.end[row], s(self.team), s(self.model))
    }

    fn float(&self, k: usize, row: usize) -> Option<f64> {
        let a = self.floats[k];
        a.is_valid(row).then(|| a.value(row))
    }

    fn demand(&self, row: usize) -> &'b [i64] {
        let (o, v) = self.demand;
        &v[o[row] as usize..o[row + 1] as usize]
    }

    fn provisioned(&self, row: usize) -> &'b [i32] {
        let (o, v) = self.provisioned;
        &v[o[row] as usize..o[row + 1] as usize]
    }
}

/// The GPU-time and cost sums of one pool key over its `gpu_windows` rows.
#[derive(Default)]
struct GpuSums<'a> {
    gpus: HashSet<&'a str>,
    sums: [f64; 5],
}

/// The merged `pool_windows` of the shards' partial rows `parts` (any number of batches, in
/// shard order) and their `gpu_windows` rows `gpu` (any order), sorted by key (window_start,
/// window_end, team, model_name). `Err` names a column that is missing or of another type,
/// or a key whose partial rows disagree on the number of buckets.
pub fn merge_pool_windows<'a>(
    parts: &'a [RecordBatch],
    gpu: &'a [RecordBatch],
) -> Result<RecordBatch, String> {
    let columns: Vec<PoolColumns<'a>> = parts
        .iter()
        .map(PoolColumns::new)
        .collect::<Result<_, _>>()?;
    // Each key's partial rows (batch, row), in input order.
    let mut by_key: BTreeMap<Key<'a>, Vec<(usize, usize)>> = BTreeMap::new();
    for (b, cols) in columns.iter().enumerate() {
        for row in 0..cols.start.len() {
            by_key.entry(cols.key(row)).or_default().push((b, row));
        }
    }
    let sums = gpu_sums(gpu, &by_key)?;
    let mut rows = Vec::with_capacity(by_key.len());
    for (key, partials) in &by_key {
        rows.push(merged_row(key, &columns, partials, sums.get(key))?);
    }
    to_record_batch(&rows).map_err(|e| e.to_string())
}

/// The GPU sums of every key that has several partial rows, from `gpu` in the engine's order.
fn gpu_sums<'a>(
    gpu: &'a [RecordBatch],
    by_key: &BTreeMap<Key<'a>, Vec<(usize, usize)>>,
) -> Result<HashMap<Key<'a>, GpuSums<'a>>, String> {
    struct GpuRow<'a> {
        start: EpochMs,
        end: EpochMs,
        uuid: Option<&'a str>,
        namespace: Option<&'a str>,
        pod: Option<&'a str>,
        team: &'a str,
        model: &'a str,
        values: [f64; 5],
    }
    let mut rows: Vec<GpuRow<'a>> = Vec::new();
    for b in gpu {
        let (start, end) = (times(b, "window_start")?, times(b, "window_end")?);
        let (uuid, namespace, pod) = (
            strings(b, "gpu_uuid")?,
            strings(b, "namespace")?,
            strings(b, "pod")?,
        );
        let (team, model) = (strings(b, "team")?, strings(b, "model_name")?);
        let values: Vec<&Float64Array> = GPU_SUMS
            .iter()
            .map(|c| floats(b, c))
            .collect::<Result<_, _>>()?;
        let get = |a: &'a StringArray, i: usize| a.is_valid(i).then(|| a.value(i));
        for i in 0..b.num_rows() {
            // A row without team or model is in no pool.
            let (Some(t), Some(m)) = (get(team, i), get(model, i)) else {
                continue;
            };
            if by_key
                .get(&(start[i], end[i], t, m))
                .is_none_or(|p| p.len() < 2)
            {
                continue; // a pool row that is kept as it is
            }
            rows.push(GpuRow {
                start: start[i],
                end: end[i],
                uuid: get(uuid, i),
                namespace: get(namespace, i),
                pod: get(pod, i),
                team: t,
                model: m,
                values: std::array::from_fn(|k| values[k].value(i)),
            });
        }
    }
    // The combined gpu_windows order (nulls last, as Arrow sorts them), stable.
    let last = |s: Option<&'a str>| (s.is_none(), s.unwrap_or_default());
    rows.sort_by(|a, b| {
        (a.start, a.end, last(a.uuid), last(a.namespace), last(a.pod)).cmp(&(
            b.start,
            b.end,
            last(b.uuid),
            last(b.namespace),
            last(b.pod),
        ))
    });
    let mut out: HashMap<Key<'a>, GpuSums<'a>> = HashMap::new();
    for r in &rows {
        let acc = out.entry((r.start, r.end, r.team, r.model)).or_default();
        if let Some(u) = r.uuid {
            acc.gpus.insert(u);
        }
        for (s, v) in acc.sums.iter_mut().zip(r.values) {
            *s += v;
        }
    }
    Ok(out)
}

fn merged_row(
    key: &Key<'_>,
    columns: &[PoolColumns<'_>],
    partials: &[(usize, usize)],
    gpu: Option<&GpuSums<'_>>,
) -> Result<PoolWindowRow, String> {
    let &(start, end, team, model) = key;
    let (b0, r0) = partials[0];
    let first = &columns[b0];
    let mut demand = first.demand(r0).to_vec();
    let mut provisioned = first.provisioned(r0).to_vec();
    if partials.len() == 1 {
        // One partial row: its shard held all the pool's GPUs; the row is one engine's.
        let f = |k: usize| first.float(k, r0).unwrap_or_default();
        return Ok(PoolWindowRow {
            window_start: start,
            window_end: end,
            team: team.to_string(),
            model_name: model.to_string(),
            gpus: first.gpus[r0],
            gpu_s: f(0),
            busy_gpu_s: f(1),
            idle_gpu_s: f(2),
            cost_usd: f(3),
            idle_cost_usd: f(4),
            provisioned_mean_gpus: f(5),
            demand_mean_gpus: f(6),
            demand_p95_gpus: f(7),
            demand_peak_gpus: f(8),
            buffer_gpus: f(9),
            buffer_cost_usd: f(10),
            utilization: first.float(11, r0),
            demand_buckets: demand,
            provisioned_buckets: provisioned,
        });
    }
    let mut partial_sums = [0.0f64; 5];
    let mut max_gpus = i64::MIN;
    for (n, &(b, row)) in partials.iter().enumerate() {
        let cols = &columns[b];
        for (k, s) in partial_sums.iter_mut().enumerate() {
            *s += cols.float(k, row).unwrap_or_default();
        }
        max_gpus = max_gpus.max(cols.gpus[row]);
        if n == 0 {
            continue;
        }
        let (d, v) = (cols.demand(row), cols.provisioned(row));
        if d.len() != demand.len() || v.len() != provisioned.len() {
            return Err(format!(
                "the partial rows of pool ({team}, {model}) at window {start}..{end} disagree \
                 on the number of buckets ({} and {})",
                demand.len(),
                d.len()
            ));
        }
        for (a, b) in demand.iter_mut().zip(d) {
            *a += b;
        }
        for (a, &b) in provisioned.iter_mut().zip(v) {
            *a = a
                .checked_add(b)
                .ok_or("provisioned_buckets: a bucket's GPU count overflows int32")?;
        }
    }
    let (gpus, [gpu_s, busy, idle, cost, idle_cost]) = match gpu {
        Some(g) => (g.gpus.len() as i64, g.sums),
        None => (max_gpus, partial_sums),
    };
    let figures = demand_figures(&demand, &provisioned, &mut Vec::new());
    let window_s = (end - start) as f64 / 1000.0;
    let buffer_gpus = figures.provisioned_mean_gpus - figures.demand_p95_gpus;
    // As `combine_rules`: the mean price is 0 without GPU time (then nothing is priced).
    let mean_price = if gpu_s > 0.0 {
        cost / gpu_s * 3600.0
    } else {
        0.0
    };
    Ok(PoolWindowRow {
        window_start: start,
        window_end: end,
        team: team.to_string(),
        model_name: model.to_string(),
        gpus,
        gpu_s,
        busy_gpu_s: busy,
        idle_gpu_s: idle,
        cost_usd: cost,
        idle_cost_usd: idle_cost,
        provisioned_mean_gpus: figures.provisioned_mean_gpus,
        demand_mean_gpus: figures.demand_mean_gpus,
        demand_p95_gpus: figures.demand_p95_gpus,
        demand_peak_gpus: figures.demand_peak_gpus,
        buffer_gpus,
        buffer_cost_usd: buffer_gpus.max(0.0) * window_s / 3600.0 * mean_price,
        utilization: (gpu_s > 0.0).then(|| busy / gpu_s),
        demand_buckets: demand,
        provisioned_buckets: provisioned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrow_util::{float_col, str_col, ts_col};
    use crate::attribution::Attribution;
    use crate::fields::FieldId;
    use crate::gpu_windows::{GpuWindowRow, RowContext};
    use crate::pool_windows::PoolBuilder;
    use crate::series::{GpuLabels, SeriesTable};
    use crate::window::SeriesPoints;
    use arrow_array::ArrayRef;
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    /// Five GPUs of two models in one 4 s window (1 s buckets), with utilizations and
    /// reporting gaps that make float sums order-dependent.
    fn gpus() -> (SeriesTable, Vec<(GpuWindowRow, SeriesPoints)>) {
        let mut t = SeriesTable::default();
        let mut attr = Attribution::default();
        attr.prices.insert("H100".into(), 3.7);
        attr.prices.insert("A100".into(), 1.3);
        let mut scratch = Vec::new();
        let mut ctx = RowContext {
            window_start: 0,
            window_end: 4000,
            sample_interval_s: 1.0,
            attribution: &attr,
            scratch: &mut scratch,
        };
        let mut out = Vec::new();
        for g in 0..5 {
            let uuid = format!("GPU-{g}");
            let model = if g % 2 == 0 { "H100" } else { "A100" };
            let id = t.intern(&GpuLabels {
                uuid: &uuid,
                namespace: "ns",
                pod: &format!("p{g}"),
                model_name: model,
                ..Default::default()
            });
            let mut p = SeriesPoints::default();
            for s in 0..4 - (g % 3) {
                let u = ((g * 7 + s * 3) % 10) as f64 / 9.7;
                p.insert(FieldId::GR_ENGINE_ACTIVE, s as i64 * 1000 + 1, u);
            }
            let row = GpuWindowRow::compute(&mut ctx, id, t.get(id), &p, None);
            out.push((row, p));
        }
        (t, out)
    }

    fn pools(t: &SeriesTable, rows: &[&(GpuWindowRow, SeriesPoints)]) -> RecordBatch {
        let mut b = PoolBuilder::new(0, 4000, 1.0);
        for (row, p) in rows {
            b.add("team", t.get(row.series), row, p);
        }
        to_record_batch(&b.finish(&mut Vec::new())).unwrap()
    }

    /// The columns of `gpu_windows` the merge reads.
    fn gpu_windows(t: &SeriesTable, rows: &[&(GpuWindowRow, SeriesPoints)]) -> RecordBatch {
        let series: Vec<_> = rows.iter().map(|(r, _)| t.get(r.series)).collect();
        let f = |get: fn(&GpuWindowRow) -> f64| float_col(rows.iter().map(|(r, _)| Some(get(r))));
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "window_start",
                ts_col(rows.iter().map(|(r, _)| r.window_start)),
            ),
            ("window_end", ts_col(rows.iter().map(|(r, _)| r.window_end))),
            ("gpu_uuid", str_col(series.iter().map(|s| &*s.gpu_uuid))),
            ("namespace", str_col(series.iter().map(|s| &*s.namespace))),
            ("pod", str_col(series.iter().map(|s| &*s.pod))),
            ("team", str_col(series.iter().map(|_| "team"))),
            ("model_name", str_col(series.iter().map(|s| &*s.model_name))),
            ("covered_s", f(|r| r.covered_s)),
            ("busy_gpu_s", f(|r| r.busy_gpu_s)),
            ("idle_gpu_s", f(|r| r.idle_gpu_s)),
            ("cost_usd", f(|r| r.cost_usd)),
            ("idle_cost_usd", f(|r| r.idle_cost_usd)),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(n, c)| Field::new(*n, c.data_type().clone(), false))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(Arc::new(schema), columns.into_iter().map(|c| c.1).collect()).unwrap()
    }

    #[test]
    fn shards_of_disjoint_gpus_merge_into_one_engines_rows_bit_for_bit() {
        let (t, all) = gpus();
        let every: Vec<_> = all.iter().collect();
        let whole = pools(&t, &every);
        // Shards: GPUs 0, 3, 4 and 1, 2 (both models in both shards); GPU rows out of order.
        let (a, b) = (vec![&all[0], &all[3], &all[4]], vec![&all[1], &all[2]]);
        let parts = [pools(&t, &a), pools(&t, &b)];
        let gpu = [gpu_windows(&t, &b), gpu_windows(&t, &a)];
        let merged = merge_pool_windows(&parts, &gpu).unwrap();
        assert_eq!(merged, whole);
        // A pool whose GPUs are all in one shard keeps that shard's row.
        let (c, d) = (vec![&all[0], &all[2], &all[4]], vec![&all[1], &all[3]]);
        let parts = [pools(&t, &c), pools(&t, &d)];
        let merged = merge_pool_windows(&parts, &[gpu_windows(&t, &every)]).unwrap();
        assert_eq!(merged, whole);
        assert_eq!(merged.schema(), crate::pool_windows::schema());
    }

    #[test]
    fn without_gpu_rows_the_partial_sums_and_the_largest_gpu_count_are_taken() {
        let (t, all) = gpus();
        let (a, b) = (vec![&all[0]], vec![&all[2]]);
        let parts = [pools(&t, &a), pools(&t, &b)];
        let merged = merge_pool_windows(&parts, &[]).unwrap();
        assert_eq!(merged.num_rows(), 1);
        let gpu_s = merged
            .column_by_name("gpu_s")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert_eq!(gpu_s.value(0), all[0].0.covered_s + all[2].0.covered_s);
        let gpus = merged
            .column_by_name("gpus")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(gpus.value(0), 1);
    }

    #[test]
    fn partial_rows_with_different_bucket_counts_are_refused() {
        let (t, all) = gpus();
        let a = pools(&t, &[&all[0]]);
        let mut b = PoolBuilder::new(0, 4000, 0.5); // 8 buckets, not 4
        b.add("team", t.get(all[2].0.series), &all[2].0, &all[2].1);
        let b = to_record_batch(&b.finish(&mut Vec::new())).unwrap();
        let err = merge_pool_windows(&[a, b], &[]).unwrap_err();
        assert!(
            err.contains("disagree on the number of buckets (4 and 8)"),
            "{err}"
        );
        let no_columns = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)])),
            vec![Arc::new(arrow_array::Int64Array::from(vec![1]))],
        )
        .unwrap();
        let err = merge_pool_windows(&[no_columns], &[]).unwrap_err();
        assert!(err.starts_with("no column"), "{err}");
    }
}
