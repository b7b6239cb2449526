"""gpuledger: GPU utilization, idle headroom and tail-latency cost windows as Apache Arrow.

The engine is Rust (`gpuledger._engine`); this package is its Python face.
"""

from gpuledger._engine import __version__ as __version__
from gpuledger._engine import schemas
from gpuledger.combine import combine_dirs, combine_tables
from gpuledger.config import Config, load_config
from gpuledger.engine import Engine, WindowFunction, Windows
from gpuledger.errors import (
    ArrowExportError,
    ConfigError,
    GpuledgerError,
    InputError,
    WindowFunctionError,
)
from gpuledger.sketch import LatencySketch, merge_sketches, quantiles_of

__all__ = [
    "ArrowExportError",
    "Config",
    "ConfigError",
    "Engine",
    "GpuledgerError",
    "InputError",
    "LatencySketch",
    "WindowFunction",
    "WindowFunctionError",
    "Windows",
    "__version__",
    "combine_dirs",
    "combine_tables",
    "load_config",
    "merge_sketches",
    "quantiles_of",
    "schemas",
]
