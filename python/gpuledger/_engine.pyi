"""Type stubs for the Rust extension module `gpuledger._engine` (use `gpuledger.Engine`)."""

import sys
from collections.abc import Mapping, Sequence
from typing import Any, final

import pyarrow as pa
from typing_extensions import Self

# The module's exception classes are those of gpuledger.errors, re-exported (the engine's
# typed errors are raised as them: rust/pyext/src/errors.rs).
from gpuledger.errors import ArrowExportError as ArrowExportError
from gpuledger.errors import ConfigError as ConfigError
from gpuledger.errors import GpuledgerError as GpuledgerError
from gpuledger.errors import InputError as InputError

__all__ = [
    "ArrowExportError",
    "ConfigError",
    "Engine",
    "ExpositionState",
    "GpuledgerError",
    "InputError",
    "LatencySketch",
    "LineChunk",
    "LineFile",
    "ParquetBatches",
    "ParquetChunk",
    "__version__",
    "merge_pool_windows",
    "merge_sketches",
    "pool_demand_figures",
    "schemas",
    "shard_of_rows",
]

__version__: str

# Classes defined in Rust (#[pyclass]) cannot be subclassed (@final); their constructor is
# `__new__` (#[new]).

@final
class ExpositionState:
    def __new__(cls, default_ts_ms: int | None = ...) -> Self: ...
    @property
    def lines_read(self) -> int: ...

@final
class ParquetBatches:
    def __new__(cls, path: str, batch_size: int = ..., read_ahead: int = ...) -> Self: ...
    @property
    def rows(self) -> int: ...
    def next_chunk(self, max_bytes: int) -> ParquetChunk | None: ...
    def __iter__(self) -> ParquetBatches: ...
    def __next__(self) -> pa.RecordBatch: ...

@final
class ParquetChunk:
    @property
    def rows(self) -> int: ...
    @property
    def end_ms(self) -> int | None: ...
    def assign_shards(self, count: int, form: str | None = ...) -> None: ...

@final
class LineFile:
    def __new__(cls, path: str, chunk_bytes: int, max_line: int) -> Self: ...
    def next_chunk(self) -> LineChunk | None: ...
    @property
    def position(self) -> int: ...
    def close(self) -> None: ...

@final
class LineChunk:
    @property
    def first_line(self) -> int: ...
    @property
    def lines(self) -> int: ...
    def __len__(self) -> int: ...
    def tail(self, n: int) -> bytes: ...
    # The buffer protocol (PyO3 __getbuffer__) shows as __buffer__ from Python 3.12 on.
    if sys.version_info >= (3, 12):
        def __buffer__(self, flags: int, /) -> memoryview: ...

@final
class Engine:
    def __new__(
        cls,
        *,
        window_s: Sequence[int] = ...,
        hopping: Sequence[tuple[int, int]] = ...,
        allowed_lateness_s: float = ...,
        sample_interval_s: float = ...,
        max_message_bytes: int = ...,
        max_future_s: float = ...,
        dead_letter_max_bytes: int = ...,
        units: Mapping[str, str] = ...,
        prices: Mapping[str, float] = ...,
        default_price: float = ...,
        teams: Mapping[str, str] = ...,
        aggregations: Sequence[Mapping[str, Any]] = ...,
        keep_points: bool = ...,
        extra_fields: Sequence[str] = ...,
        default_slo: tuple[float, float] = ...,
        slos: Mapping[str, tuple[float, float]] = ...,
        pod_rules: Sequence[tuple[str, str, str]] = ...,
        idle_threshold: float = ...,
        idle_ttl_s: float = ...,
        shard: tuple[int, int, bool] | None = ...,
    ) -> Self: ...
    def push(
        self,
        messages: list[bytes],
        format: str = ...,
        source: str = ...,
        partition: int = ...,
        first_offset: int = ...,
        offsets: list[int] | None = ...,
        timestamps: list[int] | None = ...,
    ) -> None: ...
    def push_buffer(
        self,
        data: object,
        offsets: object | None = ...,
        format: str = ...,
        source: str = ...,
        partition: int = ...,
        first_offset: int = ...,
    ) -> None: ...
    def push_arrow(
        self,
        data: object,
        form: str | None = ...,
        source: str = ...,
        partition: int = ...,
        first_row: int = ...,
        row_shards: pa.Array[Any] | None = ...,
    ) -> None: ...
    def push_parquet(
        self,
        reader: ParquetBatches,
        max_bytes: int,
        form: str | None = ...,
        source: str = ...,
        partition: int = ...,
        first_row: int = ...,
    ) -> tuple[int, int | None]: ...
    def push_parquet_chunk(
        self,
        chunk: ParquetChunk,
        form: str | None = ...,
        source: str = ...,
        partition: int = ...,
        first_row: int = ...,
    ) -> None: ...
    def push_exposition(
        self,
        state: ExpositionState,
        text: bytes,
        last: bool = ...,
        source: str = ...,
        partition: int = ...,
    ) -> int: ...
    def mark_idle(self, partition: int, source: str = ...) -> None: ...
    def push_kafka(
        self,
        messages: list[Any],
        formats: list[tuple[str, str]],
        assigned: list[tuple[str, int]] | None,
    ) -> tuple[list[tuple[str, int, int, int]], list[tuple[int, Any]]]: ...
    def set_receive_time(self, at_ms: int | None) -> None: ...
    def expect_partition(self, partition: int, source: str = ...) -> None: ...
    def resume(self, partitions: list[tuple[str, int, int, int | None]]) -> None: ...
    def seed_idle_streaks(self, gpu_windows: object) -> int: ...
    @property
    def idle_streaks_open(self) -> int: ...
    @property
    def max_event_ms(self) -> int | None: ...
    def positions(self) -> list[tuple[str, int, int, int]]: ...
    def poll(self) -> dict[str, pa.RecordBatch]: ...
    def advance_to(self, ts_ms: int) -> dict[str, pa.RecordBatch]: ...
    def close_quiet(self) -> dict[str, pa.RecordBatch]: ...
    @property
    def quiet_close_ms(self) -> int | None: ...
    def finish(self) -> dict[str, pa.RecordBatch]: ...
    def stats(self) -> dict[str, int]: ...
    def state_bytes(self) -> int: ...
    def open_series_panes(self) -> int: ...
    @property
    def watermark_ms(self) -> int | None: ...
    def watermark_clocks(self) -> list[tuple[str, int, int, int, bool]]: ...
    def merge_watermark_clocks(self, clocks: list[tuple[str, int, int, int, bool]]) -> None: ...
    @property
    def aggregation_names(self) -> list[str]: ...

def schemas() -> dict[str, pa.Schema]: ...
def pool_demand_figures(
    demand: pa.Array[Any], provisioned: pa.Array[Any]
) -> pa.RecordBatch: ...  # rust/pyext/src/pools.rs
def merge_pool_windows(
    parts: Any, gpu_windows: Any
) -> pa.RecordBatch: ...  # rust/pyext/src/pool_merge.rs
def shard_of_rows(
    data: Any, count: int, form: str | None = None
) -> pa.Array[Any]: ...  # rust/pyext/src/shards.rs

# --- latency sketches (rust/pyext/src/sketch.rs; public API in gpuledger.sketch) ---

@final
class LatencySketch:
    """Mergeable relative-error quantile sketch of latencies in ms (DDSketch family)."""

    def __new__(cls, relative_accuracy: float = ..., max_buckets: int = ...) -> Self: ...
    @staticmethod
    def from_bytes(data: bytes | bytearray | memoryview) -> LatencySketch: ...
    def to_bytes(self) -> bytes: ...
    def __bytes__(self) -> bytes: ...
    def add(self, values: object, *, skip_invalid: bool = ...) -> int: ...
    def merge(self, other: LatencySketch | bytes | bytearray | memoryview) -> None: ...
    def quantile(self, q: float) -> float | None: ...
    def quantiles(self, qs: Sequence[float]) -> list[float | None]: ...
    def buckets(self) -> list[tuple[float, float, int]]: ...
    def copy(self) -> LatencySketch: ...
    def __copy__(self) -> LatencySketch: ...
    def __deepcopy__(self, memo: object) -> LatencySketch: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes]]: ...
    def __eq__(self, other: object, /) -> bool: ...
    @property
    def count(self) -> int: ...
    @property
    def sum(self) -> float: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...
    @property
    def mean(self) -> float | None: ...
    @property
    def zero_count(self) -> int: ...
    @property
    def relative_accuracy(self) -> float: ...
    @property
    def max_buckets(self) -> int: ...
    @property
    def heap_bytes(self) -> int: ...
    @property
    def bucket_span(self) -> int: ...

def merge_sketches(sketches: object) -> LatencySketch: ...
