//! `pool_demand_figures`: the pool figures of merged per-bucket demand, computed by the
//! engine's own `demand_figures` so `gpuledger.combine` gives one engine's values exactly.

use crate::errors::input_err;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use gpuledger_engine::pool_windows::demand_figures;
use pyo3::prelude::*;
use pyo3_arrow::input::AnyArray;
use pyo3_arrow::PyRecordBatch;
use std::sync::Arc;

/// The one Arrow array of a pyarrow Array (a ChunkedArray must be combined first).
fn one_array(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<ArrayRef> {
    let reader = obj.extract::<AnyArray>()?.into_reader()?;
    let mut chunks = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| input_err(format!("reading {what}: {e}")))?;
    match chunks.len() {
        1 => Ok(chunks.remove(0)),
        n => Err(input_err(format!(
            "{what}: expected one array, got {n} chunks (combine_chunks() first)"
        ))),
    }
}

/// `provisioned_mean_gpus`, `demand_mean_gpus`, `demand_p95_gpus`, `demand_peak_gpus` (a
/// pyarrow RecordBatch, one row per input row) of `demand` (list<int64>, the
/// `demand_buckets` column) and `provisioned` (list<int32>). Raises InputError on other
/// types, nulls, or rows whose two lists differ in length.
#[pyfunction]
pub fn pool_demand_figures(
    py: Python<'_>,
    demand: &Bound<'_, PyAny>,
    provisioned: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let d = one_array(demand, "demand_buckets")?;
    let p = one_array(provisioned, "provisioned_buckets")?;
    let batch = py.detach(|| figures(&d, &p)).map_err(input_err)?;
    Ok(PyRecordBatch::new(batch).into_pyarrow(py)?.unbind())
}

fn figures(d: &ArrayRef, p: &ArrayRef) -> Result<RecordBatch, String> {
    let (DataType::List(_), DataType::List(_)) = (d.data_type(), p.data_type()) else {
        return Err(format!(
            "expected list<int64> and list<int32>, got {} and {}",
            d.data_type(),
            p.data_type()
        ));
    };
    let (d, p) = (d.as_list::<i32>(), p.as_list::<i32>());
    if d.len() != p.len() || d.null_count() > 0 || p.null_count() > 0 {
        return Err("demand_buckets and provisioned_buckets: rows differ or hold nulls".into());
    }
    let n = d.len();
    let mut cols: [Vec<f64>; 4] = Default::default();
    let mut scratch = Vec::new();
    for i in 0..n {
        let (dv, pv) = (d.value(i), p.value(i));
        let dv = dv
            .as_primitive_opt::<Int64Type>()
            .ok_or("demand_buckets: items must be int64")?;
        let pv = pv
            .as_primitive_opt::<Int32Type>()
            .ok_or("provisioned_buckets: items must be int32")?;
        if dv.len() != pv.len() {
            return Err(format!(
                "row {i}: {} demand buckets but {} provisioned buckets",
                dv.len(),
                pv.len()
            ));
        }
        let f = demand_figures(dv.values(), pv.values(), &mut scratch);
        cols[0].push(f.provisioned_mean_gpus);
        cols[1].push(f.demand_mean_gpus);
        cols[2].push(f.demand_p95_gpus);
        cols[3].push(f.demand_peak_gpus);
    }
    let names = [
        "provisioned_mean_gpus",
        "demand_mean_gpus",
        "demand_p95_gpus",
        "demand_peak_gpus",
    ];
    let schema = Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Float64, false))
            .collect::<Vec<_>>(),
    );
    let arrays: Vec<ArrayRef> = cols
        .into_iter()
        .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef)
        .collect();
    RecordBatch::try_new(Arc::new(schema), arrays).map_err(|e| e.to_string())
}
