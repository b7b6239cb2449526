//! Python exception classes raised by `gpuledger._engine`.

use pyo3::create_exception;
use pyo3::exceptions::PyException;

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
    "Invalid configuration; the message starts with the offending key."
);
create_exception!(
    _engine,
    InputError,
    GpuledgerError,
    "An input batch is malformed as a whole (not a single bad message: those are dead letters)."
);
create_exception!(
    _engine,
    ArrowExportError,
    GpuledgerError,
    "Building Arrow output failed."
);
