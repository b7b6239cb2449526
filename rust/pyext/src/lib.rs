//! `gpuledger._engine`: thin PyO3 bindings over gpuledger-engine.
//!
//! Messages arrive as a list of `bytes` (no per-event Python object is created) and windows
//! leave as `pyarrow.RecordBatch` through the Arrow PyCapsule interface. Work on a batch
//! runs with the GIL released, in chunks, checking for Ctrl-C between chunks.

use gpuledger_engine::{gpu_windows, Engine as CoreEngine, EngineConfig, GpuWindowRow, WindowSpec};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use pyo3_arrow::PyRecordBatch;

create_exception!(
    _engine,
    GpuledgerError,
    PyException,
    "Base class of gpuledger errors."
);
create_exception!(
    _engine,
    ConfigError,
    GpuledgerError,
    "Invalid engine configuration."
);
create_exception!(
    _engine,
    ArrowExportError,
    GpuledgerError,
    "Building Arrow output failed."
);

/// Messages handed to Rust per GIL release; between chunks Ctrl-C is checked.
const CHUNK: usize = 65_536;

#[pyclass(module = "gpuledger._engine", name = "Engine")]
struct Engine {
    inner: CoreEngine,
}

impl Engine {
    fn to_batch<'py>(&self, py: Python<'py>, rows: &[GpuWindowRow]) -> PyResult<Bound<'py, PyAny>> {
        let batch = gpu_windows::to_record_batch(rows, self.inner.series())
            .map_err(|e| ArrowExportError::new_err(e.to_string()))?;
        PyRecordBatch::new(batch).into_pyarrow(py)
    }
}

#[pymethods]
impl Engine {
    /// Creates an engine. `window_s` lists tumbling window sizes in seconds.
    #[new]
    #[pyo3(signature = (window_s = vec![60], allowed_lateness_s = 30.0, sample_interval_s = 1.0))]
    fn new(window_s: Vec<i64>, allowed_lateness_s: f64, sample_interval_s: f64) -> PyResult<Self> {
        if window_s.is_empty() {
            return Err(ConfigError::new_err(
                "window_s: at least one window size is needed",
            ));
        }
        if let Some(w) = window_s.iter().find(|&&w| w <= 0) {
            return Err(ConfigError::new_err(format!(
                "window_s: {w} is not a positive number of seconds"
            )));
        }
        if !(allowed_lateness_s.is_finite() && allowed_lateness_s >= 0.0) {
            return Err(ConfigError::new_err(format!(
                "allowed_lateness_s: {allowed_lateness_s} must be a finite number >= 0"
            )));
        }
        if !(sample_interval_s.is_finite() && sample_interval_s > 0.0) {
            return Err(ConfigError::new_err(format!(
                "sample_interval_s: {sample_interval_s} must be a finite number > 0"
            )));
        }
        let cfg = EngineConfig {
            windows: window_s.into_iter().map(WindowSpec::tumbling).collect(),
            allowed_lateness_ms: (allowed_lateness_s * 1000.0).round() as i64,
            sample_interval_s,
            ..EngineConfig::default()
        };
        Ok(Engine {
            inner: CoreEngine::new(cfg),
        })
    }

    /// Ingests prometheus-kafka-adapter JSON messages (a list of bytes) from one partition.
    /// `first_offset` is the Kafka offset (or line number) of the first message.
    #[pyo3(signature = (messages, partition = 0, first_offset = 0))]
    fn push_prom_json(
        &mut self,
        py: Python<'_>,
        messages: &Bound<'_, PyList>,
        partition: i32,
        first_offset: i64,
    ) -> PyResult<()> {
        // Holding the Bound references keeps every bytes object alive while the GIL is
        // released; bytes are immutable, so borrowing their buffers is sound.
        let owned: Vec<Bound<'_, PyBytes>> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.cast_into::<PyBytes>().map_err(|e| {
                    PyValueError::new_err(format!(
                        "messages[{i}] must be bytes, not {}",
                        e.into_inner().get_type()
                    ))
                })
            })
            .collect::<PyResult<_>>()?;
        let slices: Vec<&[u8]> = owned.iter().map(|b| b.as_bytes()).collect();
        for (c, chunk) in slices.chunks(CHUNK).enumerate() {
            let offset = first_offset + (c * CHUNK) as i64;
            let inner = &mut self.inner;
            py.detach(|| inner.push_prom_json(chunk, partition, offset));
            py.check_signals()?;
        }
        Ok(())
    }

    /// Stops `partition` from holding the watermark back until it sends data again.
    fn mark_idle(&mut self, partition: i32) {
        self.inner.mark_idle(partition);
    }

    /// Closes the windows the watermark has passed; returns them as a pyarrow.RecordBatch.
    fn poll<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = &mut self.inner;
        let rows = py.detach(|| inner.poll());
        self.to_batch(py, &rows)
    }

    /// End of input: closes every open window.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = &mut self.inner;
        let rows = py.detach(|| inner.finish());
        self.to_batch(py, &rows)
    }

    /// Dead letters since the last call: a list of (partition, offset, reason).
    fn take_dead_letters(&mut self) -> Vec<(i32, i64, String)> {
        self.inner
            .take_dead_letters()
            .into_iter()
            .map(|d| (d.partition, d.offset, d.reason))
            .collect()
    }

    /// Counters: consumed = aggregated + skipped_* + late + dead.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("consumed", s.consumed)?;
        d.set_item("aggregated", s.aggregated)?;
        d.set_item("skipped_unknown_field", s.skipped_unknown_field)?;
        d.set_item("skipped_blank", s.skipped_blank)?;
        d.set_item("skipped_duplicate", s.skipped_duplicate)?;
        d.set_item("late", s.late)?;
        d.set_item("dead", s.dead)?;
        Ok(d)
    }

    /// The current watermark in epoch milliseconds (None before any window closed).
    #[getter]
    fn watermark_ms(&self) -> Option<i64> {
        let w = self.inner.watermark();
        (w != i64::MIN).then_some(w)
    }
}

/// Schema of the `gpu_windows` table.
#[pyfunction]
fn gpu_windows_schema(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    pyo3_arrow::PySchema::new(gpu_windows::schema()).into_pyarrow(py)
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Engine>()?;
    m.add_function(wrap_pyfunction!(gpu_windows_schema, m)?)?;
    m.add("GpuledgerError", py.get_type::<GpuledgerError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("ArrowExportError", py.get_type::<ArrowExportError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
