"""Type stubs for the Rust extension module `gpuledger._engine` (use `gpuledger.Engine`)."""

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

__version__: str

class GpuledgerError(Exception):
    """Base class of gpuledger errors."""

class ConfigError(GpuledgerError):
    """Invalid configuration; the message starts with the offending key."""

class InputError(GpuledgerError):
    """An input batch is malformed as a whole (single bad messages are dead letters)."""

class ArrowExportError(GpuledgerError):
    """Building Arrow output failed."""

class ExpositionState:
    def __init__(self, default_ts_ms: int | None = ...) -> None: ...
    @property
    def lines_read(self) -> int: ...

class Engine:
    def __init__(
        self,
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
    ) -> None: ...
    def push(
        self,
        messages: list[bytes],
        format: str = ...,
        source: str = ...,
        partition: int = ...,
        first_offset: int = ...,
        offsets: list[int] | None = ...,
    ) -> None: ...
    def push_arrow(
        self,
        data: object,
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
    def poll(self) -> dict[str, pa.RecordBatch]: ...
    def advance_to(self, ts_ms: int) -> dict[str, pa.RecordBatch]: ...
    def finish(self) -> dict[str, pa.RecordBatch]: ...
    def stats(self) -> dict[str, int]: ...
    def state_bytes(self) -> int: ...
    def open_series_panes(self) -> int: ...
    @property
    def watermark_ms(self) -> int | None: ...
    @property
    def aggregation_names(self) -> list[str]: ...

def schemas() -> dict[str, pa.Schema]: ...
