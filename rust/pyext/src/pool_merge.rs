//! `merge_pool_windows`: one engine's `pool_windows` from the partial rows of its shards
//! (`gpuledger_engine::pool_merge`), for `gpuledger.shards.merge_shards`.

use crate::errors::{input_err, reading_arrow_err};
use arrow_array::RecordBatch;
use pyo3::prelude::*;
use pyo3_arrow::input::AnyRecordBatch;
use pyo3_arrow::PyRecordBatch;

fn batches(data: AnyRecordBatch) -> PyResult<Vec<RecordBatch>> {
    data.into_reader()?
        .collect::<Result<Vec<_>, _>>()
        .map_err(reading_arrow_err)
}

/// The merged `pool_windows` (a pyarrow RecordBatch sorted by key) of `parts` (the shards'
/// partial pool_windows rows, in shard order) and `gpu_windows` (the shards' gpu_windows
/// rows): each any producer of the Arrow PyCapsule interface (a Table, a RecordBatch).
/// Raises InputError for a missing column or partial rows that disagree on their buckets.
#[pyfunction]
pub fn merge_pool_windows(
    py: Python<'_>,
    parts: AnyRecordBatch,
    gpu_windows: AnyRecordBatch,
) -> PyResult<Py<PyAny>> {
    let (parts, gpu) = (batches(parts)?, batches(gpu_windows)?);
    let merged = py
        .detach(|| gpuledger_engine::pool_merge::merge_pool_windows(&parts, &gpu))
        .map_err(|e| input_err(format!("merging pool_windows: {e}")))?;
    Ok(PyRecordBatch::new(merged).into_pyarrow(py)?.unbind())
}
