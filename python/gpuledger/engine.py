"""The library engine: a `Config` in, batches of raw messages in, Arrow tables of closed
windows out. The same engine backs `gpuledger run` and `gpuledger replay`.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gpuledger import _engine
from gpuledger._engine import ParquetBatches
from gpuledger.config import Config
from gpuledger.config.validate import AGGREGATION_NAME
from gpuledger.errors import ConfigError, WindowFunctionError
from gpuledger.tables import BUILTIN_TABLES

PARQUET_BATCH_ROWS = 65_536
"""Rows per batch read from Parquet by `Engine.push_parquet_file` (and by replay)."""

WindowFunction = Callable[[pa.Table], "pa.Table | pa.RecordBatch"]
"""A vectorized Python aggregation: gets one closed window's points (the `window_points`
schema) and returns a table of results for that window."""


@dataclass(frozen=True)
class Windows:
    """Tables of the windows closed by one call: built-in tables, custom aggregations and
    window-function results, by name."""

    tables: Mapping[str, pa.Table]

    def __getitem__(self, name: str) -> pa.Table:
        return self.tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tables)

    @property
    def gpu_windows(self) -> pa.Table:
        return self.tables["gpu_windows"]

    @property
    def pool_windows(self) -> pa.Table:
        return self.tables["pool_windows"]

    @property
    def latency_windows(self) -> pa.Table:
        return self.tables["latency_windows"]

    @property
    def service_cost_windows(self) -> pa.Table:
        return self.tables["service_cost_windows"]

    @property
    def idle_streaks(self) -> pa.Table:
        return self.tables["idle_streaks"]

    @property
    def late_events(self) -> pa.Table:
        return self.tables["late_events"]

    @property
    def dead_letters(self) -> pa.Table:
        return self.tables["dead_letters"]

    def concat(self, other: Windows) -> Windows:
        """These windows followed by `other`'s, table by table."""
        return Windows.concat_all([self, other])

    @staticmethod
    def concat_all(parts: Sequence[Windows]) -> Windows:
        """The windows of `parts`, in order, table by table (one concatenation per table, so
        n parts cost one pass, not n - 1)."""
        names = list(dict.fromkeys(n for w in parts for n in w.tables))
        out = {}
        for n in names:
            tables = [w.tables[n] for w in parts if n in w.tables and w.tables[n].num_columns]
            out[n] = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
        return Windows(out)


def _check_function_names(fns: Mapping[str, WindowFunction], taken: Sequence[str]) -> None:
    """Window functions name output tables: same rule as aggregation names."""
    for name in fns:
        if not AGGREGATION_NAME.fullmatch(name):
            raise ConfigError(f"window_functions.{name}", "name must match [a-z0-9_]{1,64}")
        if name in taken or name in BUILTIN_TABLES or name == "window_points":
            raise ConfigError(f"window_functions.{name}", "name is already a table")


class Engine:
    """Event-time window engine over DCGM telemetry.

    >>> engine = Engine(Config())
    >>> engine.push(messages, partition=0)        # list of prometheus-kafka-adapter JSON bytes
    >>> engine.poll().gpu_windows                  # windows the watermark has passed
    >>> engine.finish()                            # end of input: close everything
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        window_functions: Mapping[str, WindowFunction] | None = None,
        fields: Sequence[str] = (),
        shard: tuple[int, int, bool] | None = None,
    ) -> None:
        """`window_functions` name extra output tables computed in Python per closed window;
        `fields` lists DCGM fields to keep for them beyond the built-in ones and those
        `[[aggregations]]` use (other fields are counted as unknown and dropped). `shard`
        (index, count, filter) makes this engine one of `count` sharing the input by GPU
        (`gpuledger.shards`; filter: it is handed every GPU's telemetry and keeps its own)."""
        self.config = config if config is not None else Config()
        self._functions = dict(window_functions or {})
        taken = [a.name for a in self.config.aggregations]
        _check_function_names(self._functions, taken)
        # A bad setting raises gpuledger.errors.ConfigError(key, problem) from Rust itself.
        self._core = _engine.Engine(
            **self.config.to_engine_kwargs(),
            **_service_kwargs(self.config),
            keep_points=bool(self._functions),
            extra_fields=list(fields),
            shard=shard,
        )

    def push(
        self,
        messages: Sequence[bytes],
        *,
        format: str = "prom_json",
        source: str = "",
        partition: int = 0,
        first_offset: int = 0,
        offsets: Sequence[int] | None = None,
        timestamps: Sequence[int] | None = None,
    ) -> None:
        """Ingests raw messages from one partition: `format` is "prom_json"
        (prometheus-kafka-adapter), "wide_json" (gpuledger's wide form) or "latency_json"
        (request latency events, gpuledger's or vLLM's form). Bad messages
        become dead letters; `offsets` (else `first_offset`, `first_offset + 1`, ...) are
        their provenance. `timestamps` (epoch ms, one per message, e.g. Kafka message
        timestamps) say when each was received: the dead letters' `received_at` and the "now"
        of the future-timestamp check; without them, the wall clock."""
        batch = messages if isinstance(messages, list) else list(messages)
        offs = None if offsets is None else list(offsets)
        stamps = None if timestamps is None else list(timestamps)
        self._core.push(batch, format, source, partition, first_offset, offs, stamps)

    def push_buffer(
        self,
        data: object,
        offsets: object | None = None,
        *,
        format: str = "prom_json",
        source: str = "",
        partition: int = 0,
        first_offset: int = 0,
    ) -> None:
        """Ingests many messages handed over as one object, cut apart in Rust: a bytes-like
        `data` (bytes, bytearray, memoryview, mmap, a uint8 array) cut by `offsets` (n + 1
        byte positions as an int64 or int32 buffer or a list: Arrow's binary layout), or,
        without offsets, cut into lines (JSON lines: blank lines are not messages but keep
        their numbers); or an Arrow binary or string column (any PyCapsule producer), one
        message per row. Offsets (line or row numbers) start at `first_offset`. Same
        formats and dead-letter rules as `push`."""
        self._core.push_buffer(data, offsets, format, source, partition, first_offset)

    def push_arrow(
        self,
        data: object,
        *,
        form: str | None = None,
        source: str = "",
        partition: int = 0,
        first_row: int = 0,
        row_shards: pa.Array[Any] | None = None,
    ) -> None:
        """Ingests columnar data from any Arrow PyCapsule producer (a pyarrow Table or
        RecordBatch, a Polars DataFrame, a DuckDB result...) without copying: GPU telemetry in
        the long form (`ts, gpu, field, value` + labels) or the wide form (`ts, gpu,
        gr_engine_active, ...`), or request events (`ts, service, pod, latency_ms, ...`);
        `form` is "long", "wide", "requests" or None to detect (a `latency_ms` column means
        requests). Row numbers are the offsets. `row_shards` (`gpuledger.shards.shard_of_rows`
        of `data`): an engine made with `shard=` reads only its own rows of it."""
        self._core.push_arrow(data, form, source, partition, first_row, row_shards)

    def push_parquet(
        self,
        reader: ParquetBatches,
        max_bytes: int,
        *,
        form: str | None = None,
        source: str = "",
        partition: int = 0,
        first_row: int = 0,
    ) -> tuple[int, int | None]:
        """Pushes the next batches of a Parquet file read in Rust (`reader`, a
        `gpuledger._engine.ParquetBatches`) until they hold `max_bytes` of Arrow data or the
        file ends: what `push_arrow` does with each batch, without a pyarrow object per
        batch. Returns the rows pushed (0 once the file has ended) and their largest event
        time in epoch ms (None: none readable). Raises `InputError`."""
        return self._core.push_parquet(reader, max_bytes, form, source, partition, first_row)

    def push_parquet_file(
        self,
        path: str | os.PathLike[str],
        *,
        form: str | None = None,
        source: str | None = None,
        partition: int = 0,
        batch_rows: int = PARQUET_BATCH_ROWS,
        read_ahead: int = 0,
    ) -> int:
        """Ingests a whole Parquet file, read and decoded in Rust with the GIL released (no
        pyarrow object per batch; string label columns straight from the dictionary pages),
        `batch_rows` rows at a time: the same result as `push_arrow` of the file's table.
        `read_ahead` > 0 decodes that many batches ahead on a thread of its own (worth it
        when a second core is free). `source` defaults to the path; row numbers are the
        offsets. Returns the rows read. Raises `InputError` (a file that cannot be read, a
        batch whose columns cannot be read: the batches before it stay pushed); stops at
        Ctrl-C between batches."""
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, not {batch_rows}")
        if read_ahead < 0:
            raise ValueError(f"read_ahead must be >= 0, not {read_ahead}")
        name = os.fspath(path)
        reader = _engine.ParquetBatches(name, batch_rows, read_ahead=read_ahead)
        rows, _ = self._core.push_parquet(
            reader, sys.maxsize, form, name if source is None else source, partition, 0
        )
        return rows

    def push_exposition(
        self,
        text: bytes,
        *,
        source: str = "",
        partition: int = 0,
        default_ts: datetime | float | None = None,
    ) -> None:
        """Ingests dcgm-exporter exposition text (one scrape after another). Samples without
        their own timestamp take the time of the last `# scrape_ts <unix seconds>` line, else
        `default_ts`. Every sample line is a message whose offset is its line number. For
        files in chunks, use `gpuledger.replay` (it carries the state between chunks)."""
        state = _engine.ExpositionState(_to_ms(default_ts))
        self._core.push_exposition(state, text, True, source, partition)

    def mark_idle(self, partition: int, source: str = "") -> None:
        """Stops (`source`, `partition`) from holding the watermark back until it sends data
        again (the daemon calls this for partitions silent for `idle_timeout_s`)."""
        self._core.mark_idle(partition, source)

    def push_kafka(
        self,
        messages: list[Any] | _engine.KafkaBatch,
        formats: Mapping[str, str],
        assigned: Sequence[tuple[str, int]] | None = None,
    ) -> tuple[list[tuple[str, int, int, int]], list[tuple[int, Any]]]:
        """Ingests a consumer's batch, grouped by partition in Rust: the native consumer's
        `KafkaBatch`, or confluent-kafka `Message` objects as `Consumer.consume()` returns
        them. `formats` maps each topic to its message format. Kafka
        timestamps are the receive times. Returns the partitions fed, as (topic, partition,
        first offset, index of its last message in the batch), and the (index, message) of
        every error message (end of partition, broker errors) for the caller to handle.
        With `assigned`, messages of other partitions are skipped (not read)."""
        parts = None if assigned is None else list(assigned)
        if isinstance(messages, _engine.KafkaBatch):  # the native consumer's batch
            return self._core.push_kafka_batch(messages, list(formats.items()), parts)
        return self._core.push_kafka(messages, list(formats.items()), parts)

    def set_receive_time(self, at: datetime | float | None) -> None:
        """A fixed receive time for the following batches that bring none of their own
        (`push_arrow`, `push_exposition`, `push` without `timestamps`): the dead letters'
        `received_at` and the "now" of the future-timestamp check. `gpuledger replay` sets
        each file's modification time, so replaying it again gives identical rows. None:
        the wall clock (the default)."""
        self._core.set_receive_time(_to_ms(at))

    def expect_partition(self, partition: int, source: str = "") -> None:
        """Makes (`source`, `partition`) hold the watermark back before its first event (a
        partition just assigned), until it sends data or is marked idle."""
        self._core.expect_partition(partition, source)

    def resume(self, partitions: Sequence[tuple[str, int, int, int | None]]) -> None:
        """Restarts from a checkpoint, before any data. `partitions` lists (source,
        partition, replay_until, written_through_ms): events below offset `replay_until` are
        re-reads whose late and dead rows were written already (counted as
        `skipped_replayed`); windows ending at or before `written_through_ms` (None: none)
        were written already with this partition's events, which are not aggregated into
        them again. The watermark starts at the lowest `written_through_ms`. Give partitions
        with different `written_through_ms` to separate engines (as the daemon does): in one
        engine, the counter reading kept from just before a window for its energy increase is
        not restored for the partitions with the later checkpoint, so that window's `energy_j`
        can fall back to power x time."""
        self._core.resume([(s, p, o, w) for s, p, o, w in partitions])

    def seed_idle_streaks(self, gpu_windows: object) -> int:
        """Rebuilds the `idle_streaks` state from `gpu_windows` rows this configuration wrote
        earlier (any Arrow PyCapsule producer: a pyarrow Table, a Polars DataFrame...; rows
        in any order), for a restart that re-reads only the open windows. Call it before any
        data. The rows are taken window by window, oldest first, without producing rows, so
        the next windows continue the streaks exactly as an uninterrupted run would. Pass
        every row of every window written since the oldest streak still open began
        (unallocated GPUs too); rows of other window sizes are ignored, rows written twice
        count once. Returns the number of windows taken."""
        return self._core.seed_idle_streaks(gpu_windows)

    @property
    def max_event_ms(self) -> int | None:
        """The largest event time seen in any partition (epoch ms), None before any data."""
        return self._core.max_event_ms

    def positions(self) -> list[tuple[str, int, int, int]]:
        """(source, partition, commit_offset, next_offset) per partition seen or resumed: a
        restart re-reads from `commit_offset`, the oldest event that a window not yet emitted
        still needs; `next_offset` is one past the last offset consumed. A partition
        resumed (`resume`) and not read since is reported at its `replay_until` for both:
        keep that partition's own committed offset instead (the daemon does), or the re-reads
        below `replay_until` that open windows need would be skipped."""
        return self._core.positions()

    def poll(self) -> Windows:
        """Closes the windows the watermark has passed."""
        return self._wrap(self._core.poll())

    def advance_to(self, ts: datetime | float) -> Windows:
        """Moves the watermark to at least `ts` (a datetime or Unix seconds; allowed lateness
        is not subtracted) and closes every window ending by then: the explicit clock for
        idle sources."""
        ms = _to_ms(ts)
        assert ms is not None
        return self._wrap(self._core.advance_to(ms))

    @property
    def quiet_close_ms(self) -> int | None:
        """How far the data seen covers event time (epoch ms): the newest reading's time
        plus `sample_interval_s`, or the newest request's end time, whichever is later."""
        return self._core.quiet_close_ms

    def close_quiet(self) -> Windows:
        """Every partition has gone quiet (the daemon: no data for `idle_timeout_s` plus
        `allowed_lateness_s`): closes every window ending at or before `quiet_close_ms`, so
        a stream that stops gets its last windows written; data arriving for them later is
        late (docs/daemon.md, "Windows close on a quiet stream")."""
        return self._wrap(self._core.close_quiet())

    def finish(self) -> Windows:
        """End of input: closes every window holding data."""
        return self._wrap(self._core.finish())

    def stats(self) -> dict[str, int]:
        """Counters: consumed = aggregated + skipped_* + late + dead."""
        return self._core.stats()

    def state_bytes(self) -> int:
        """Approximate bytes of window state held."""
        return self._core.state_bytes()

    @property
    def watermark_ms(self) -> int | None:
        return self._core.watermark_ms

    def _wrap(self, batches: Mapping[str, pa.RecordBatch]) -> Windows:
        tables = {name: pa.Table.from_batches([b]) for name, b in batches.items()}
        points = tables.pop("window_points", None)
        for name, fn in self._functions.items():
            tables[name] = _apply(name, fn, points)
        return Windows(tables)


def _service_kwargs(config: Config) -> dict[str, Any]:
    s = config.services
    return {
        "default_slo": (s.default.slo_latency_ms, s.default.slo_target),
        "slos": {k: (v.slo_latency_ms, v.slo_target) for k, v in s.slos.items()},
        "pod_rules": [(r.namespace or "", r.pattern, r.service) for r in s.pods],
    }


def _to_ms(ts: datetime | float | None) -> int | None:
    if ts is None:
        return None
    seconds = ts.timestamp() if isinstance(ts, datetime) else float(ts)
    return round(seconds * 1000)


def _window_runs(points: pa.Table) -> Iterator[tuple[int, int]]:
    """(offset, length) of each closed window's rows; points come grouped by window."""
    n = points.num_rows
    if n == 0:
        return
    start = points.column("window_start").cast(pa.int64())
    end = points.column("window_end").cast(pa.int64())
    changed = pc.or_(
        pc.not_equal(start.slice(1), start.slice(0, n - 1)),
        pc.not_equal(end.slice(1), end.slice(0, n - 1)),
    )
    inner = [int(i) for i in pc.indices_nonzero(changed).to_pylist() if i is not None]
    cuts = [0, *(i + 1 for i in inner), n]
    for a, b in itertools.pairwise(cuts):
        yield a, b - a


def _apply(name: str, fn: WindowFunction, points: pa.Table | None) -> pa.Table:
    if points is None:
        return pa.table({})
    results = []
    for offset, length in _window_runs(points):
        window = points.slice(offset, length)
        try:
            out = fn(window)
        except Exception as e:
            raise WindowFunctionError(
                f"window function {name!r} failed on window starting "
                f"{window.column('window_start')[0]}: {e!r}"
            ) from e
        if isinstance(out, pa.RecordBatch):
            out = pa.Table.from_batches([out])
        if not isinstance(out, pa.Table):
            raise WindowFunctionError(
                f"window function {name!r} returned {type(out).__name__}, not a pyarrow Table"
            )
        if "window_start" not in out.column_names:
            rows = out.num_rows
            out = out.add_column(0, "window_end", pa.repeat(window.column("window_end")[0], rows))
            out = out.add_column(
                0, "window_start", pa.repeat(window.column("window_start")[0], rows)
            )
        results.append(out)
    if not results:
        return pa.table({})
    return pa.concat_tables(results, promote_options="default")
