//! `shard_of_rows`: the shard of each row of a columnar batch, by the engine's own label rules
//! (`gpuledger_engine::shard`), so a splitter (Spark, a thread pool) agrees with the engines.

use crate::engine::parse_form;
use crate::errors::{input_err, reading_arrow_err};
use arrow_array::{ArrayRef, UInt32Array};
use pyo3::prelude::*;
use pyo3_arrow::input::AnyRecordBatch;
use pyo3_arrow::PyArray;
use std::sync::Arc;

/// A pyarrow uint32 Array: the shard (0..count) of every row of `data` (any producer of the
/// Arrow PyCapsule interface; `form` as `Engine.push_arrow` takes it). Rows without a readable
/// GPU and request rows are 0. Raises InputError when the columns cannot be read.
#[pyfunction]
#[pyo3(signature = (data, count, form = None))]
pub fn shard_of_rows(
    py: Python<'_>,
    data: AnyRecordBatch,
    count: u32,
    form: Option<&str>,
) -> PyResult<Py<PyAny>> {
    if count == 0 {
        return Err(input_err("count must be >= 1".to_string()));
    }
    let form = parse_form(form)?;
    let mut shards: Vec<u32> = Vec::new();
    for batch in data.into_reader()? {
        let batch = batch.map_err(reading_arrow_err)?;
        let part = py
            .detach(|| gpuledger_engine::shard::shard_of_rows(&batch, form, count))
            .map_err(input_err)?;
        shards.extend(part);
    }
    let array: ArrayRef = Arc::new(UInt32Array::from(shards));
    Ok(PyArray::from_array_ref(array).to_pyarrow(py)?.unbind())
}
