"""`gpuledger replay`: recorded telemetry and request events from files through the engine,
closed windows out as files, deterministically (docs/replay.md).

>>> from gpuledger.replay import replay
>>> summary = replay(["dumps/"], "out", config=gpuledger.load_config("gpuledger.toml"))
>>> print(summary.render())

Files are streamed in bounded chunks (`gpuledger.replay.inputs`); every file is its own
input partition (its path is the `source`), and several files are merged by event time at
chunk granularity (`order="time"`) or read one after another (`order="given"`). After every
chunk the windows the watermark passed are written with `gpuledger.sink.ArrowSink`; the end
of input closes every window. Only the data drives the watermark: no wall clock.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Mapping, Sequence

from gpuledger.config import Config
from gpuledger.engine import Engine, WindowFunction, Windows
from gpuledger.errors import ReplayError, ReplayInputError
from gpuledger.output.object_store import is_uri, store_for
from gpuledger.output.sink import ArrowSink
from gpuledger.replay.chunk import Chunk, push_chunk
from gpuledger.replay.detect import FORMATS, expand_paths
from gpuledger.replay.inputs import CHUNK_BYTES, InputFile
from gpuledger.replay.progress import Progress
from gpuledger.replay.summary import ReplaySummary, Totals
from gpuledger.replay.workers import ShardedEngine, default_workers, why_one_worker
from gpuledger.tables import STANDARD_LABELS

__all__ = [
    "FLUSH_BYTES",
    "FLUSH_ROWS",
    "NO_FUTURE_CHECK_S",
    "ORDERS",
    "Progress",
    "ReplayError",
    "ReplayInputError",
    "ReplaySummary",
    "replay",
    "replay_config",
]

ORDERS = ("time", "given")
NO_FUTURE_CHECK_S = 1e10
"""`engine.max_future_s` during replay unless given: ~317 years, i.e. no future check (recorded
traces are judged by their own times, not by when they are replayed)."""
FLUSH_BYTES = 64 << 20
"""Closed windows are written every this much input (in whole chunks): fewer, larger files and
fewer fsyncs than a write per chunk."""
FLUSH_ROWS = 100_000
"""...or as soon as this many closed rows wait (bounds the memory they take)."""
TELEMETRY_JSON = ("prom_json", "wide_json")
"""Telemetry forms whose GPU is inside each message: split over workers, every worker decodes
every line, so without an explicit `workers` they run one engine."""
READER_CORE = (
    "columnar input is read and split by GPU on a core of its own (one engine + the reader)"
)
"""Why a default replay of columnar input (Parquet, CSV, Arrow IPC) runs one engine fewer than
the usable cores. Parquet's read-ahead thread decodes the next chunk on a core while the
engines work, and pyarrow's CSV reader parses on threads of its own, so one engine already
uses more than one core; Arrow IPC is not decoded, but the shard of every row is computed on
the main thread before the engines start. Measured on two cores (docs/benchmarks.md), two
engines were slower than one for all three: Parquet 0.83x, CSV 0.87x, Arrow IPC 0.71x;
`--workers N` still splits (docs/scale-out.md "All cores, one machine")."""
COLUMNAR_FORMATS = ("parquet", "csv", "arrow")
MERGE_FLUSHES = 8
"""With several workers, their rows are merged (and written) every this many flushes' worth of
input, or at FLUSH_ROWS rows: each merge has a fixed cost."""


def replay_config(config: Config | None, max_future_s: float | None = None) -> Config:
    """`config` as replay runs it: `engine.max_future_s` is `max_future_s`, by default
    `NO_FUTURE_CHECK_S` (the configured value is for live data and the wall clock)."""
    cfg = config if config is not None else Config()
    limit = NO_FUTURE_CHECK_S if max_future_s is None else float(max_future_s)
    return dataclasses.replace(cfg, engine=dataclasses.replace(cfg.engine, max_future_s=limit))


def _check_out_dir(out_dir: str) -> None:
    if is_uri(out_dir):
        if [e for e in store_for(out_dir).children() if e != ".staging"]:
            raise ReplayError(f"{out_dir}: output location is not empty (replay writes afresh)")
        return
    if os.path.isdir(out_dir):
        entries = [e for e in os.listdir(out_dir) if e != ".staging"]
        if entries:
            raise ReplayError(
                f"{out_dir}: output directory is not empty (replay writes a fresh directory)"
            )
    elif os.path.exists(out_dir):
        raise ReplayError(f"{out_dir}: exists and is not a directory")


def _extra_labels(config: Config) -> list[str]:
    return sorted({g for a in config.aggregations for g in a.group_by} - STANDARD_LABELS)


def replay(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    config: Config | None = None,
    format: str | None = None,
    form: str | None = None,
    output_format: str | None = None,
    order: str = "time",
    chunk_bytes: int = CHUNK_BYTES,
    flush_bytes: int = FLUSH_BYTES,
    max_future_s: float | None = None,
    writer_id: str = "replay",
    progress: Progress | None = None,
    window_functions: Mapping[str, WindowFunction] | None = None,
    fields: Sequence[str] = (),
    workers: int | None = None,
) -> ReplaySummary:
    """Replays the files at `paths` (directories: their files, sorted) into `out_dir`, which
    must be empty or absent. `format` forces the input format of every file (one of
    `replay_inputs.FORMATS`; default: detected per file); `form` the columnar form ("long",
    "wide", "requests"; default: detected). `output_format` is "arrow" or "parquet"
    (default: `config.output.format`). `order` is "time" (merge files by event time, each
    its own partition) or "given" (one file after another). Input is read `chunk_bytes` at a
    time; the windows closed are written every `flush_bytes` of input (in whole chunks) or
    as soon as `FLUSH_ROWS` rows wait, and at the end. `workers` engines share the work by
    GPU (None: one per usable core); the rows are one engine's (`replay.workers`). Raises
    ReplayError,
    ReplayInputError (a file that cannot be read) or the sink's errors."""
    if format is not None and format not in FORMATS:
        raise ReplayError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if order not in ORDERS:
        raise ReplayError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    if chunk_bytes < 1:
        raise ReplayError("chunk_bytes must be >= 1")
    if workers is not None and workers < 1:
        raise ReplayError(f"workers must be >= 1, not {workers}")
    cfg = replay_config(config, max_future_s)
    out = os.fspath(out_dir)
    _check_out_dir(out)
    text_columns = _extra_labels(cfg)
    inputs = [
        InputFile(
            p, i, format=format, form=form, chunk_bytes=chunk_bytes, text_columns=text_columns
        )
        for i, p in enumerate(expand_paths(paths))
    ]
    for f in inputs:
        f.peek()
    count = default_workers() if workers is None else workers
    reader_core = False  # a core left to reading the columnar input (READER_CORE)
    if workers is None and any(f.format in TELEMETRY_JSON for f in inputs):
        # Every worker would cut and decode every JSON line (the GPU is inside the message):
        # more CPU for little gain, so the default is one engine; --workers N splits anyway.
        count = 1
    elif workers is None and count > 1 and any(f.format in COLUMNAR_FORMATS for f in inputs):
        count, reader_core = count - 1, True
    one_only = why_one_worker(cfg, [f.format for f in inputs], bool(window_functions))
    if one_only is None and reader_core and count == 1:
        one_only = READER_CORE
    engine: Engine | ShardedEngine
    flush_every = max(1, flush_bytes // chunk_bytes)
    if count > 1 and one_only is None:
        # Merging the shards' rows has a cost per call: merge every MERGE_FLUSHES flushes'
        # worth of input, or sooner once FLUSH_ROWS rows wait (memory stays bounded).
        engine = ShardedEngine(
            cfg,
            count,
            fields=fields,
            merge_every=flush_every * MERGE_FLUSHES,
            merge_rows=FLUSH_ROWS,
        )
    else:
        count = 1
        engine = Engine(cfg, window_functions=window_functions, fields=fields)
    # Files become durable once, at the end (one syncfs), not one fsync each as written: a
    # replay that is interrupted is rerun into an empty directory anyway.
    sink = ArrowSink(
        out, format=output_format or cfg.output.format, writer_id=writer_id, durable="on_sync"
    )
    totals = Totals(min(cfg.engine.window_s) * 1000)
    lateness_ms = round(cfg.engine.allowed_lateness_s * 1000)
    total_bytes = sum(f.size for f in inputs)
    started = time.perf_counter()
    if progress is not None:
        progress.start(len(inputs), total_bytes)
    written = 0
    pending: list[Windows] = []
    pending_rows = 0

    def bytes_read() -> int:
        return sum(f.bytes_read for f in inputs)

    def write(key: str) -> None:
        nonlocal written, pending, pending_rows
        if pending:
            windows = Windows.concat_all(pending)
            totals.add(windows)
            written += len(sink.write(windows, batch_key=key))
        pending, pending_rows = [], 0

    try:
        for chunk_no, _ in enumerate(_schedule(inputs, engine, order, lateness_ms)):
            closed = engine.poll()
            rows = sum(t.num_rows for t in closed.tables.values())
            if rows:
                pending.append(closed)
                pending_rows += rows
            if pending and ((chunk_no + 1) % flush_every == 0 or pending_rows >= FLUSH_ROWS):
                write(f"c{chunk_no:07d}")
            if progress is not None:
                progress.update(engine.stats()["consumed"], bytes_read())
        closed = engine.finish()
    finally:
        if isinstance(engine, ShardedEngine):
            engine.close()
    if any(t.num_rows for t in closed.tables.values()):
        pending.append(closed)
    write("end")
    sink.sync()
    seconds = time.perf_counter() - started
    stats = engine.stats()
    if progress is not None:
        progress.finish(stats["consumed"], bytes_read())
    rejected = sum(f.rejected_count for f in inputs)
    examples = [f"{f.path} row {n}: {text}" for f in inputs for n, text in f.rejected_rows]
    return ReplaySummary(
        files=[f.path for f in inputs],
        out_dir=out,
        bytes_read=bytes_read(),
        seconds=seconds,
        stats=stats,
        rows=totals.rows,
        windows=totals.windows,
        files_written=written,
        top_idle=totals.top_idle(),
        top_headroom=totals.top_headroom(),
        rejected_csv_rows=rejected,
        rejected_examples=examples,
        workers=count,
        one_worker_because=one_only if workers != 1 else None,
    )


def _schedule(
    inputs: list[InputFile], engine: Engine | ShardedEngine, order: str, lateness_ms: int
) -> Iterator[InputFile]:
    """Pushes the chunks of every file into `engine` in replay order, yielding after each (the
    caller polls then); closes files and releases their partitions.

    "given": file after file; a finished file is marked idle, so the files act as one stream.
    "time": always the next chunk of the file that is furthest behind in event time (a file
    not started yet counts with the time of its first event), so the files are merged by
    event time, chunk by chunk, each file its own partition. Correctness does not rest on
    these estimates: after each chunk is pushed, and before the caller polls (windows close
    only then), every file not started yet whose first event is not after the largest event
    time seen is registered as a partition, so it holds the watermark until it starts."""
    lowest = -(2**63)
    unstarted = list(inputs)
    waiting: list[InputFile] = []  # registered, not started
    active: dict[int, Iterator[Chunk]] = {}  # file index -> its chunks
    now_ms: dict[int, int] = {}  # file index -> event time reached (estimated)

    def first(f: InputFile) -> int:
        return f.first_ms if f.first_ms is not None else lowest

    def next_file() -> InputFile:
        if order == "given":
            return next((f for f in inputs if f.index in active), None) or unstarted.pop(0)
        started = [f for f in inputs if f.index in active]
        cands = [(now_ms.get(f.index, lowest), f.index, f) for f in started]
        cands += [(first(f), f.index, f) for f in unstarted + waiting]
        f = min(cands, key=lambda c: (c[0], c[1]))[2]
        if f in unstarted:
            unstarted.remove(f)
        elif f in waiting:
            waiting.remove(f)
        return f

    try:
        while unstarted or waiting or active:
            f = next_file()
            chunks = active.setdefault(f.index, f.chunks())
            chunk = next(chunks, None)
            if chunk is None:
                del active[f.index]
                engine.mark_idle(0, f.source)
                continue
            # The file's modification time is when its messages were "received": dead
            # letters' received_at, so replaying the same file gives identical rows.
            engine.set_receive_time(os.stat(f.path).st_mtime_ns // 1_000_000 / 1000.0)
            if isinstance(engine, ShardedEngine):
                engine.push_chunk(chunk, f.source)
            else:
                push_chunk(engine, chunk, f.source)
            seen = engine.max_event_ms
            end = chunk.end_ms if chunk.end_ms is not None else seen
            if end is not None:
                now_ms[f.index] = max(now_ms.get(f.index, lowest), end)
            if order == "time" and seen is not None:
                for u in [u for u in unstarted if first(u) <= seen + lateness_ms]:
                    unstarted.remove(u)
                    engine.expect_partition(0, u.source)
                    waiting.append(u)
            yield f
    finally:
        for index, chunks in active.items():
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            inputs[index].close()
