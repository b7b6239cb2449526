"""Every exception gpuledger raises, in one tree rooted at `GpuledgerError`.

The Rust extension raises these same classes (rust/pyext/src/errors.rs maps the engine's typed
errors onto them in one place), so `except gpuledger.InputError` catches a bad batch whether
Python or Rust found it. This module imports nothing of gpuledger: the extension imports it.
"""

from __future__ import annotations

import errno
from pathlib import Path

__all__ = [
    "ArrowExportError",
    "BillError",
    "BillingError",
    "CombineError",
    "ConfigError",
    "GpuledgerError",
    "InputError",
    "MappingError",
    "OutputConflictError",
    "ReconciliationError",
    "ReplayError",
    "ReplayInputError",
    "ReportError",
    "SinkWriteError",
    "WindowFunctionError",
]


class GpuledgerError(Exception):
    """Base class of every gpuledger error."""


class ConfigError(GpuledgerError, ValueError):
    """Invalid gpuledger configuration.

    The message starts with what is at fault: a dotted key path (``engine.window_s[0]``), an
    environment variable (``GPULEDGER_ENGINE__WINDOW_S``) or the config file's path; `key`
    holds that part and `problem` the rest.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str]]:
        return (type(self), (self.key, self.problem))


class InputError(GpuledgerError):
    """An input batch is malformed as a whole (not a single bad message: those are dead
    letters)."""


class ArrowExportError(GpuledgerError):
    """Building Arrow output failed."""


class WindowFunctionError(GpuledgerError):
    """A user window function raised or returned something that is not a table."""


class OutputConflictError(GpuledgerError):
    """A file with the name of a new output file exists and holds different rows: the sink
    never overwrites it. Same batch key for different input, or a changed configuration."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem

    def __reduce__(self) -> tuple[type[OutputConflictError], tuple[Path, str]]:
        return (type(self), (self.path, self.problem))


class SinkWriteError(OSError, GpuledgerError):
    """Writing an output file failed (permissions, full disk...). Nothing partial is left
    behind: retrying the same `write` later is safe. `errno` and `strerror` are those of the
    failure (its exception is the `__cause__`); `filename` and `path` name the output file
    that was being written."""

    @property
    def path(self) -> Path:
        return Path(str(self.filename))

    @classmethod
    def of(cls, cause: OSError, path: Path) -> SinkWriteError:
        code = cause.errno if cause.errno is not None else errno.EIO
        reason = cause.strerror or str(cause) or type(cause).__name__
        return cls(code, reason, str(path))


class ReplayError(GpuledgerError):
    """Replay cannot run: bad arguments or an output directory that is not empty."""


class ReplayInputError(GpuledgerError):
    """An input file cannot be read as a whole (unknown format, unreadable, not columnar
    data the engine understands...). Single bad records are dead letters, not this."""


class ReportError(GpuledgerError, ValueError):
    """`gpuledger report` has nothing to show: no output under the directories, no rows in
    the time range, an unreadable argument. The message names the directory, file or range."""


class CombineError(GpuledgerError, ValueError):
    """Tables that cannot be combined: a schema that is not gpuledger's, or partial rows of
    one key computed under different configurations."""


class BillingError(GpuledgerError, ValueError):
    """Bill allocation (`gpuledger allocate`) cannot proceed; the message names the file, row or
    setting at fault."""


class BillError(BillingError):
    """A bill that cannot be read: not a FOCUS CSV/Parquet file, a required column missing,
    or an unparseable row (named by file, row number and column)."""


class MappingError(BillingError):
    """The hostname -> ResourceId mapping or the MIG profiles cannot be used as given."""


class ReconciliationError(BillingError):
    """The allocated parts do not add up to the bill (a bug: never expected)."""
