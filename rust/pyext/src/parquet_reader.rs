//! `ParquetBatches`: a Parquet file read in Rust (string label columns as dictionaries),
//! either iterated from Python as `pyarrow.RecordBatch`es or handed whole to
//! `Engine.push_parquet`, which pushes its batches without any Python object per batch.
//! With `read_ahead`, a Rust thread decodes batches ahead of the engine. `next_chunk` takes
//! the next batches adding up to a byte budget as a `ParquetChunk`, a plain value that knows
//! its rows and newest event time before it is pushed (replay merges files by those times).

use crate::errors::to_py_err;
use arrow_array::RecordBatch;
use gpuledger_engine::decode::columnar::batch_max_time;
use gpuledger_engine::parquet_input::ParquetBatches as Core;
use gpuledger_engine::EngineError;
use pyo3::prelude::*;
use pyo3_arrow::PyRecordBatch;
use std::sync::Mutex;

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, EngineError>> + Send>;

#[pyclass(module = "gpuledger._engine", name = "ParquetBatches")]
pub struct ParquetBatches {
    // A Python object may be used from any thread; the reader is Send but not Sync, so it
    // sits behind a lock that only `next_batch` takes.
    inner: Mutex<Option<Batches>>,
    rows: u64,
}

/// Decoded batches of a Parquet file, held in Rust until `Engine.push_parquet_chunk`.
#[pyclass(module = "gpuledger._engine", name = "ParquetChunk", frozen)]
pub struct ParquetChunk {
    pub batches: Vec<RecordBatch>,
    rows: u64,
    end_ms: Option<i64>,
    /// Each shard's rows of every batch, once `assign_shards` ran: (count, per batch, per
    /// shard: its rows, ascending).
    pub shards: std::sync::OnceLock<(u32, Vec<Vec<Vec<u32>>>)>,
}

#[pymethods]
impl ParquetChunk {
    /// Rows in the chunk.
    #[getter]
    fn rows(&self) -> u64 {
        self.rows
    }

    /// The largest event time in the chunk, epoch ms (None: no readable time).
    #[getter]
    fn end_ms(&self) -> Option<i64> {
        self.end_ms
    }

    /// Computes the shard among `count` of every row (`gpuledger.shards.shard_of_rows`) and
    /// each shard's rows, once: shard engines then read only their own rows
    /// (`Engine.push_parquet_chunk`), without stepping over the others'. Raises
    /// InputError for a batch whose columns cannot be read.
    #[pyo3(signature = (count, form = None))]
    fn assign_shards(&self, py: Python<'_>, count: u32, form: Option<&str>) -> PyResult<()> {
        let form = crate::engine::parse_form(form)?;
        if count == 0 {
            return Err(crate::errors::input_err("count must be >= 1"));
        }
        let shards = py
            .detach(|| {
                self.batches
                    .iter()
                    .map(|b| {
                        let ids = gpuledger_engine::shard::shard_of_rows(b, form, count)?;
                        Ok(gpuledger_engine::shard::rows_by_shard(&ids, count))
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .map_err(crate::errors::input_err)?;
        let _ = self.shards.set((count, shards));
        Ok(())
    }
}

impl ParquetBatches {
    /// The next batch, or `None` at the end. After the end or an error the file is closed
    /// (and every later call gives `None`). Call it without the GIL: it decodes.
    pub fn next_batch(&self) -> Option<Result<RecordBatch, EngineError>> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let next = guard.as_mut()?.next();
        if !matches!(next, Some(Ok(_))) {
            *guard = None;
        }
        next
    }
}

#[pymethods]
impl ParquetBatches {
    /// Opens `path` (raises `InputError` naming the file when it is not readable Parquet);
    /// batches hold at most `batch_size` rows. `read_ahead` > 0: a thread decodes up to that
    /// many batches ahead.
    #[new]
    #[pyo3(signature = (path, batch_size = 65_536, read_ahead = 0))]
    fn new(py: Python<'_>, path: &str, batch_size: usize, read_ahead: usize) -> PyResult<Self> {
        let core = py
            .detach(|| Core::open(path, batch_size))
            .map_err(to_py_err)?;
        let rows = core.rows();
        let inner: Batches = if read_ahead > 0 {
            Box::new(core.read_ahead(read_ahead).map_err(to_py_err)?)
        } else {
            Box::new(core)
        };
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

    /// The next batches, decoded until they hold at least `max_bytes` of Arrow data (at
    /// least one batch) or the file ends; None at the end. Raises `InputError` on a read error.
    fn next_chunk(&self, py: Python<'_>, max_bytes: usize) -> PyResult<Option<ParquetChunk>> {
        let mut chunk = ParquetChunk {
            batches: Vec::new(),
            rows: 0,
            end_ms: None,
            shards: std::sync::OnceLock::new(),
        };
        let mut bytes = 0usize;
        while bytes < max_bytes.max(1) {
            let Some(batch) = py.detach(|| self.next_batch()) else {
                break;
            };
            let batch = batch.map_err(to_py_err)?;
            chunk.rows += batch.num_rows() as u64;
            bytes += batch.get_array_memory_size();
            chunk.end_ms = chunk.end_ms.max(batch_max_time(&batch));
            chunk.batches.push(batch);
            py.check_signals()?;
        }
        Ok((!chunk.batches.is_empty()).then_some(chunk))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match py.detach(|| self.next_batch()) {
            None => Ok(None),
            Some(Err(e)) => Err(to_py_err(e)),
            Some(Ok(batch)) => Ok(Some(PyRecordBatch::new(batch).into_pyarrow(py)?)),
        }
    }
}
