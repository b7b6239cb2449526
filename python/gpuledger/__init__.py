"""gpuledger: GPU utilization, idle headroom and tail-latency cost windows as Apache Arrow.

The engine is Rust (`gpuledger._engine`); this package is its Python face. Its rooms:
`config` (settings), `daemon` (`gpuledger run`), `replay` (recorded files), `output` (the sink,
combine), `cli`, `simulate`; at the top the engine wrapper (`engine`), latency sketches
(`sketch`), every exception (`errors`) and the list of output tables (`tables`).
docs/architecture.md shows the data's path through them.
"""

import sys
from typing import Any

from gpuledger import _startup  # first: pauses the garbage collector while importing
from gpuledger._engine import __version__ as __version__
from gpuledger._engine import schemas
from gpuledger.config import Config, load_config
from gpuledger.engine import Engine, WindowFunction, Windows
from gpuledger.errors import (
    ArrowExportError,
    BillError,
    BillingError,
    CombineError,
    ConfigError,
    GpuledgerError,
    InputError,
    MappingError,
    OutputConflictError,
    ReconciliationError,
    ReplayError,
    ReplayInputError,
    ReportError,
    SinkWriteError,
    WindowFunctionError,
)
from gpuledger.output import sink as _sink
from gpuledger.sketch import LatencySketch, merge_sketches, quantiles_of


def __getattr__(name: str) -> Any:
    """`gpuledger.allocate`, `gpuledger.report` and the combine functions, imported on first
    use: the CLI, the daemon and replay start without loading billing, charting or combine."""
    if name in ("combine_dirs", "combine_tables"):
        from gpuledger.output import combine

        return getattr(combine, name)
    if name == "combine":
        import gpuledger.combine

        return gpuledger.combine
    if name == "allocate":
        from gpuledger.billing import allocate

        return allocate
    if name == "report":
        import gpuledger.report

        return gpuledger.report
    raise AttributeError(f"module 'gpuledger' has no attribute {name!r}")


# Import paths documented before the package had rooms stay importable (`gpuledger.combine`
# is a module of its own that stands for `gpuledger.output.combine` when imported).
sys.modules["gpuledger.sink"] = _sink

_startup.resume()

__all__ = [
    "ArrowExportError",
    "BillError",
    "BillingError",
    "CombineError",
    "Config",
    "ConfigError",
    "Engine",
    "GpuledgerError",
    "InputError",
    "LatencySketch",
    "MappingError",
    "OutputConflictError",
    "ReconciliationError",
    "ReplayError",
    "ReplayInputError",
    "ReportError",
    "SinkWriteError",
    "WindowFunction",
    "WindowFunctionError",
    "Windows",
    "__version__",
    "allocate",
    "combine_dirs",
    "combine_tables",
    "load_config",
    "merge_sketches",
    "quantiles_of",
    "report",
    "schemas",
]
