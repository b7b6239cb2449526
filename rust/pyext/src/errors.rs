//! The one place where the engine's typed errors become Python exceptions: each
//! `EngineError` kind is raised as its class of `gpuledger.errors` (pure Python, so
//! `except gpuledger.InputError` catches a bad batch whether Python or Rust found it).

use arrow_schema::ArrowError;
use gpuledger_engine::EngineError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pyo3::import_exception!(gpuledger.errors, GpuledgerError);
pyo3::import_exception!(gpuledger.errors, ConfigError);
pyo3::import_exception!(gpuledger.errors, InputError);
pyo3::import_exception!(gpuledger.errors, ArrowExportError);

/// The classes `gpuledger._engine` re-exports under their own names (older imports such as
/// `from gpuledger._engine import InputError` keep working; they are the same classes).
pub const REEXPORTED: [&str; 4] = [
    "GpuledgerError",
    "ConfigError",
    "InputError",
    "ArrowExportError",
];

/// `e` as the Python exception of its kind. `ConfigError` gets `(key, problem)`, so the
/// Python side reads `e.key` and `e.problem` without parsing the message.
pub fn to_py_err(e: EngineError) -> PyErr {
    match e {
        EngineError::Config { key, problem } => ConfigError::new_err((key, problem)),
        EngineError::Input(m) => InputError::new_err(m),
        EngineError::ArrowExport(e) => ArrowExportError::new_err(e.to_string()),
        EngineError::Argument(m) => PyValueError::new_err(m),
    }
}

/// An input error (a call's arguments or data unreadable as a whole), as a Python exception.
pub fn input_err(message: impl Into<String>) -> PyErr {
    to_py_err(EngineError::input(message))
}

/// An Arrow stream that fails while it is read: an input error.
pub fn reading_arrow_err(e: ArrowError) -> PyErr {
    input_err(format!("reading Arrow data: {e}"))
}

/// confluent-kafka's `KafkaError(code, reason, fatal)`: the native consumer reports client
/// errors as the same objects confluent-kafka does, so the daemon has one way to read them.
pub fn confluent_kafka_error<'py>(
    py: Python<'py>,
    code: i32,
    reason: &str,
    fatal: bool,
) -> PyResult<Bound<'py, PyAny>> {
    py.import("confluent_kafka")?
        .getattr("KafkaError")?
        .call1((code, reason, fatal))
}

/// A failed librdkafka call as confluent-kafka's `KafkaException`, which the daemon catches.
pub fn kafka_exception(py: Python<'_>, code: i32, reason: &str) -> PyErr {
    let built = confluent_kafka_error(py, code, reason, false).and_then(|err| {
        py.import("confluent_kafka")?
            .getattr("KafkaException")?
            .call1((err,))
    });
    match built {
        Ok(exc) => PyErr::from_value(exc),
        Err(import_failed) => import_failed,
    }
}
