"""gpuledger: GPU utilization, idle headroom and tail-latency cost windows as Apache Arrow.

The engine is Rust (`gpuledger._engine`); this package is its Python face. Its rooms:
`config` (settings), `daemon` (`gpuledger run`), `replay` (recorded files), `output` (the sink,
combine), `cli`, `simulate`; at the top the engine wrapper (`engine`), latency sketches
(`sketch`), every exception (`errors`) and the list of output tables (`tables`).
docs/architecture.md shows the data's path through them.
"""

import sys
from typing import Any

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
from gpuledger.output import combine as _combine
from gpuledger.output import sink as _sink
from gpuledger.output.combine import combine_dirs, combine_tables
from gpuledger.sketch import LatencySketch, merge_sketches, quantiles_of


def __getattr__(name: str) -> Any:
    """`gpuledger.allocate` and `gpuledger.report`, imported on first use: the CLI and the
    daemon start without loading billing or charting."""
    if name == "allocate":
        from gpuledger.billing import allocate

        return allocate
    if name == "report":
        import gpuledger.report

        return gpuledger.report
    raise AttributeError(f"module 'gpuledger' has no attribute {name!r}")


# Import paths documented before the package had rooms stay importable.
sys.modules["gpuledger.sink"] = _sink
sys.modules["gpuledger.combine"] = _combine

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
