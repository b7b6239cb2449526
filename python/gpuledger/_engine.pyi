"""Type stubs for the Rust extension module `gpuledger._engine`."""

import pyarrow as pa

__version__: str

class GpuledgerError(Exception):
    """Base class of gpuledger errors."""

class ConfigError(GpuledgerError):
    """Invalid engine configuration; the message names the setting."""

class ArrowExportError(GpuledgerError):
    """Building Arrow output failed."""

class Engine:
    """Event-time window engine over DCGM telemetry."""

    def __init__(
        self,
        window_s: list[int] = ...,
        allowed_lateness_s: float = 30.0,
        sample_interval_s: float = 1.0,
    ) -> None: ...
    def push_prom_json(
        self, messages: list[bytes], partition: int = 0, first_offset: int = 0
    ) -> None:
        """Ingests prometheus-kafka-adapter JSON messages from one partition."""
    def mark_idle(self, partition: int) -> None:
        """Stops `partition` from holding the watermark back until it sends data again."""
    def poll(self) -> pa.RecordBatch:
        """Closes the windows the watermark has passed (`gpu_windows` rows)."""
    def finish(self) -> pa.RecordBatch:
        """End of input: closes every open window."""
    def take_dead_letters(self) -> list[tuple[int, int, str]]:
        """Dead letters since the last call: (partition, offset, reason)."""
    def stats(self) -> dict[str, int]:
        """Counters: consumed = aggregated + skipped_* + late + dead."""
    @property
    def watermark_ms(self) -> int | None: ...

def gpu_windows_schema() -> pa.Schema:
    """Schema of the `gpu_windows` table."""
