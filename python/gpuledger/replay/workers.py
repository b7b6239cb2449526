"""`replay --workers N`: N engines, one per GPU shard, each handed every chunk in its own thread
(the engine releases the GIL), their closed windows merged into one engine's rows
(`gpuledger.shards`) when they are written.

Columnar chunks (Parquet, Arrow, CSV) are decoded once; the shard of every row is computed
once (in Rust) and each engine reads only its own rows. JSON lines are cut into messages by
every engine, which keeps its own GPUs' readings. Either way every request reaches every
engine, and after each chunk the engines exchange their watermark clocks, so all hold the
watermark one engine would (docs/scale-out.md "All cores, one machine")."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from gpuledger.config import Config
from gpuledger.engine import Engine, Windows
from gpuledger.errors import InputError
from gpuledger.replay.chunk import ArrowRows, Chunk, ParquetRows, push_chunk
from gpuledger.shards import merge_shards, shard_of_rows

__all__ = ["ShardedEngine", "default_workers", "why_one_worker"]

T = TypeVar("T")


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def why_one_worker(config: Config, formats: Sequence[str | None], functions: bool) -> str | None:
    """Why this replay cannot be split over workers (None: it can). Custom aggregations and
    window functions group GPUs of several shards into one row; exposition text carries one
    open scrape from chunk to chunk, which one reader state cannot share between engines."""
    if config.aggregations:
        return "custom [[aggregations]] group GPUs of several shards"
    if functions:
        return "window functions see every GPU of a window"
    if "exposition" in formats:
        return "exposition text is read with one scrape state"
    return None


class ShardedEngine:
    """The replay-facing part of `Engine`'s interface over `count` shard engines."""

    def __init__(
        self,
        config: Config,
        count: int,
        *,
        fields: Sequence[str] = (),
        merge_every: int = 1,
        merge_rows: int = 100_000,
    ) -> None:
        """`merge_every` polls, or once `merge_rows` closed rows wait, the shards' rows are
        merged and returned (merging has a cost per call; between merges `poll` returns
        nothing)."""
        self.engines = [Engine(config, fields=fields, shard=(k, count, True)) for k in range(count)]
        self._pool = ThreadPoolExecutor(count, thread_name_prefix="gpuledger-shard")
        self._windows: set[tuple[int, int]] = set()
        self._merge_every, self._merge_rows = max(1, merge_every), merge_rows
        self._held: list[list[Windows]] = []  # per poll: each shard's closed windows
        self._held_rows = 0

    def _each(self, call: Callable[[Engine], T]) -> list[T]:
        """`call` on every engine at once; the first error is raised after all have ended,
        so no engine is left half way through a chunk."""
        futures = [self._pool.submit(call, e) for e in self.engines]
        errors = [f.exception() for f in futures]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first
        return [f.result() for f in futures]

    def push_chunk(self, chunk: Chunk, source: str) -> None:
        p, count = chunk.payload, len(self.engines)
        row_shards: list[pa.Array[Any]] | None = None
        try:
            if isinstance(p, ParquetRows):
                p.chunk.assign_shards(count, p.form)
            elif isinstance(p, ArrowRows):
                row_shards = [shard_of_rows(b, count, p.form) for b in p.batches]
        except InputError:
            row_shards = None  # unreadable columns: each engine reads the batch and says so
        self._each(lambda e: push_chunk(e, chunk, source, row_shards))
        clocks = [c for e in self.engines for c in e._core.watermark_clocks()]
        for e in self.engines:
            e._core.merge_watermark_clocks(clocks)

    def mark_idle(self, partition: int, source: str = "") -> None:
        for e in self.engines:
            e.mark_idle(partition, source)

    def expect_partition(self, partition: int, source: str = "") -> None:
        for e in self.engines:
            e.expect_partition(partition, source)

    def set_receive_time(self, at: float | None) -> None:
        for e in self.engines:
            e.set_receive_time(at)

    @property
    def max_event_ms(self) -> int | None:
        """Every engine reads every event, so they agree."""
        return self.engines[0].max_event_ms

    def poll(self) -> Windows:
        self._hold(self._each(lambda e: e.poll()))
        due = len(self._held) >= self._merge_every or self._held_rows >= self._merge_rows
        return self._merged() if due else Windows({})

    def finish(self) -> Windows:
        self._hold(self._each(lambda e: e.finish()))
        return self._merged()

    def _hold(self, parts: list[Windows]) -> None:
        self._held.append(parts)
        self._held_rows += sum(t.num_rows for p in parts for t in p.tables.values())

    def _merged(self) -> Windows:
        by_shard = [
            Windows.concat_all([polled[k] for polled in self._held]).tables
            for k in range(len(self.engines))
        ]
        self._held, self._held_rows = [], 0
        tables = merge_shards(by_shard)
        self._note_windows(tables)
        return Windows(tables)

    def _note_windows(self, tables: dict[str, pa.Table]) -> None:
        """Windows with data, as one engine counts them: every such window has gpu_windows
        rows (telemetry) or latency_windows rows (requests)."""
        for name in ("gpu_windows", "latency_windows"):
            t = tables.get(name)
            if t is None or t.num_rows == 0:
                continue
            pairs = t.group_by(["window_start", "window_end"], use_threads=False).aggregate([])
            starts = pc.cast(pairs["window_start"], pa.int64()).to_pylist()
            ends = pc.cast(pairs["window_end"], pa.int64()).to_pylist()
            self._windows.update((s, e) for s, e in zip(starts, ends, strict=True) if s and e)

    def stats(self) -> dict[str, int]:
        """One engine's counters: each event's outcome is counted by exactly one shard."""
        total: dict[str, int] = {}
        for e in self.engines:
            for k, v in e.stats().items():
                total[k] = total.get(k, 0) + v
        total["windows_emitted"] = len(self._windows)
        return total

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
