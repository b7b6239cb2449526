//! `ParquetBatches`: a Parquet file read in Rust, as an iterator of `pyarrow.RecordBatch`
//! (string label columns as dictionaries). The GIL is released while each batch is decoded,
//! so replay's read-ahead thread overlaps reading with the engine's work.

use crate::errors::InputError;
use gpuledger_engine::parquet_input::ParquetBatches as Core;
use pyo3::prelude::*;
use pyo3_arrow::PyRecordBatch;
use std::sync::Mutex;

#[pyclass(module = "gpuledger._engine", name = "ParquetBatches")]
pub struct ParquetBatches {
    // A Python object may be used from any thread (replay reads ahead on one); the reader is
    // Send but not Sync, so it sits behind a lock that only `__next__` takes.
    inner: Mutex<Option<Core>>,
    rows: u64,
}

#[pymethods]
impl ParquetBatches {
    /// Opens `path` (raises `InputError` naming the file when it is not readable Parquet);
    /// batches hold at most `batch_size` rows.
    #[new]
    #[pyo3(signature = (path, batch_size = 65_536))]
    fn new(py: Python<'_>, path: &str, batch_size: usize) -> PyResult<Self> {
        let inner = py
            .detach(|| Core::open(path, batch_size))
            .map_err(InputError::new_err)?;
        let rows = inner.rows();
        Ok(ParquetBatches {
            inner: Mutex::new(Some(inner)),
            rows,
        })
    }

    /// Rows in the file, from its footer.
    #[getter]
    fn rows(&self) -> u64 {
        self.rows
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let next = py.detach(|| {
            let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let next = guard.as_mut()?.next();
            if !matches!(next, Some(Ok(_))) {
                *guard = None; // the end, or an error: the file is closed
            }
            next
        });
        match next {
            None => Ok(None),
            Some(Err(e)) => Err(InputError::new_err(e)),
            Some(Ok(batch)) => Ok(Some(PyRecordBatch::new(batch).into_pyarrow(py)?)),
        }
    }
}
