"""gpuledger: GPU utilization, idle headroom and tail-latency cost windows as Apache Arrow.

The engine is Rust (`gpuledger._engine`); this package is its Python face.
"""

from gpuledger._engine import (
    ArrowExportError,
    ConfigError,
    Engine,
    GpuledgerError,
    gpu_windows_schema,
)
from gpuledger._engine import __version__ as __version__

__all__ = [
    "ArrowExportError",
    "ConfigError",
    "Engine",
    "GpuledgerError",
    "__version__",
    "gpu_windows_schema",
]
