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
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.compute as pc

from gpuledger.config import Config
from gpuledger.engine import Engine, WindowFunction, Windows
from gpuledger.errors import ReplayError, ReplayInputError
from gpuledger.output.object_store import is_uri, store_for
from gpuledger.output.sink import ArrowSink
from gpuledger.replay.inputs import (
    CHUNK_BYTES,
    FORMATS,
    Chunk,
    InputFile,
    expand_paths,
)
from gpuledger.tables import EVENT_TABLES, STANDARD_LABELS

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
TOP = 5
FLUSH_BYTES = 64 << 20
"""Closed windows are written every this much input (in whole chunks): fewer, larger files and
fewer fsyncs than a write per chunk."""
FLUSH_ROWS = 100_000
"""...or as soon as this many closed rows wait (bounds the memory they take)."""


def replay_config(config: Config | None, max_future_s: float | None = None) -> Config:
    """`config` as replay runs it: `engine.max_future_s` is `max_future_s`, by default
    `NO_FUTURE_CHECK_S` (the configured value is for live data and the wall clock)."""
    cfg = config if config is not None else Config()
    limit = NO_FUTURE_CHECK_S if max_future_s is None else float(max_future_s)
    return dataclasses.replace(cfg, engine=dataclasses.replace(cfg.engine, max_future_s=limit))


# --- progress ------------------------------------------------------------------------------


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _duration(s: float) -> str:
    s = max(0, round(s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}"


class Progress:
    """Progress of a replay on `stream` (default stderr). On a terminal: one line, redrawn at
    most every `interval` seconds, with events, events/s, bytes read of the total and the
    ETA. Elsewhere: a line at the start and one at the end, nothing in between."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
        width: int = 24,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if tty is None and isatty is not None else bool(tty)
        self.width = width
        self.total_bytes = 0
        self._start = 0.0
        self._last_draw = float("-inf")
        self._drawn = 0  # length of the line on screen

    def start(self, files: int, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self._start = self.clock()
        if not self.tty:
            self._print(f"replay: {files} file(s), {_human_bytes(total_bytes)}")

    def line(self, events: int, bytes_read: int) -> str:
        """The progress line for this moment."""
        elapsed = max(self.clock() - self._start, 1e-9)
        rate = events / elapsed
        total = max(self.total_bytes, 1)
        frac = min(1.0, bytes_read / total)
        filled = int(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        eta = _duration(elapsed * (1 - frac) / frac) if frac > 0 else "?"
        return (
            f"[{bar}] {frac:4.0%} {events:,} events {rate:,.0f}/s "
            f"{_human_bytes(bytes_read)}/{_human_bytes(self.total_bytes)} ETA {eta}"
        )

    def update(self, events: int, bytes_read: int, *, force: bool = False) -> None:
        if not self.tty:
            return
        now = self.clock()
        if not force and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        text = self.line(events, bytes_read)
        pad = " " * max(0, self._drawn - len(text))
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self._drawn = len(text)

    def finish(self, events: int, bytes_read: int) -> None:
        elapsed = self.clock() - self._start
        rate = events / elapsed if elapsed > 0 else 0.0
        end = (
            f"replay: {events:,} events, {_human_bytes(bytes_read)} in {elapsed:.1f} s "
            f"({rate:,.0f} events/s)"
        )
        if self.tty:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self._drawn = 0
        self._print(end)

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


# --- summary ------------------------------------------------------------------------------


@dataclass
class ReplaySummary:
    """What a replay did. `events` counts input messages/rows/lines the engine consumed;
    `stats` are the engine's counters (consumed = aggregated + skipped + late + dead);
    `rows` the rows written per table; `windows` the distinct windows closed; `top_idle` the
    largest idle costs by (team, namespace, pod) and `top_headroom` the largest headroom
    costs by service, both summed over the smallest tumbling window size."""

    files: list[str]
    out_dir: str
    bytes_read: int
    seconds: float
    stats: dict[str, int]
    rows: dict[str, int]
    windows: int
    files_written: int
    top_idle: list[dict[str, Any]]
    top_headroom: list[dict[str, Any]]
    rejected_csv_rows: int = 0
    rejected_examples: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return self.stats.get("consumed", 0)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def skipped(self) -> int:
        return sum(v for k, v in self.stats.items() if k.startswith("skipped_"))

    @property
    def late(self) -> int:
        return self.stats.get("late", 0)

    @property
    def dead(self) -> int:
        return self.stats.get("dead", 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "out_dir": self.out_dir,
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
            "events": self.events,
            "events_per_s": round(self.events_per_s, 1),
            "windows": self.windows,
            "aggregated": self.stats.get("aggregated", 0),
            "skipped": self.skipped,
            "late": self.late,
            "dead_letters": self.dead,
            "rejected_csv_rows": self.rejected_csv_rows,
            "stats": dict(self.stats),
            "rows": dict(self.rows),
            "files_written": self.files_written,
            "top_idle": self.top_idle,
            "top_headroom": self.top_headroom,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def render(self) -> str:
        """A short text summary: counts, then the top idle and headroom costs as tables."""
        out = [
            f"replayed {len(self.files)} file(s), {_human_bytes(self.bytes_read)} in "
            f"{self.seconds:.1f} s: {self.events:,} events ({self.events_per_s:,.0f}/s)",
            f"windows {self.windows:,}  aggregated {self.stats.get('aggregated', 0):,}  "
            f"skipped {self.skipped:,}  late {self.late:,}  dead letters {self.dead:,}"
            + (f"  rejected CSV rows {self.rejected_csv_rows:,}" if self.rejected_csv_rows else ""),
            f"{self.files_written:,} files written under {self.out_dir}: "
            + (", ".join(f"{k} {v:,}" for k, v in self.rows.items() if v) or "no rows"),
        ]
        out += [f"  rejected: {e}" for e in self.rejected_examples[:5]]
        out += _table(
            "top idle cost (gpu_windows.idle_cost_usd)",
            ["team", "namespace", "pod", "idle_gpu_h", "idle_cost_usd"],
            self.top_idle,
        )
        out += _table(
            "top headroom cost (service_cost_windows.headroom_cost_usd)",
            ["service", "headroom_gpu_h", "headroom_cost_usd"],
            self.top_headroom,
        )
        return "\n".join(out)


def _table(title: str, cols: list[str], rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["", f"{title}: none"]
    cells = [[_cell(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["", title + ":"]
    lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in cells:
        parts = []
        for i, (v, w) in enumerate(zip(row, widths, strict=True)):
            numeric = isinstance(rows[0][cols[i]], (int, float))
            parts.append(v.rjust(w) if numeric else v.ljust(w))
        lines.append("  ".join(parts).rstrip())
    return lines


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}"
    return "(none)" if v == "" else str(v)


class _Totals:
    """Running sums for the summary, over rows of the smallest tumbling window size."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.rows: dict[str, int] = {}
        self.windows = 0
        self.idle: dict[tuple[str, str, str], list[float]] = {}
        self.headroom: dict[str, list[float]] = {}

    def add(self, windows: Windows) -> None:
        # A window closes once, for every table at the same time: counting the distinct
        # windows of each batch and adding up counts each once (no set of every window).
        spans: list[pa.Table] = []
        for name, t in windows.tables.items():
            self.rows[name] = self.rows.get(name, 0) + t.num_rows
            if name in EVENT_TABLES or not t.num_rows:
                continue
            if "window_start" in t.column_names and "window_end" in t.column_names:
                spans.append(
                    pa.table(
                        {
                            "s": t.column("window_start").cast(pa.int64()),
                            "e": t.column("window_end").cast(pa.int64()),
                        }
                    )
                )
        if spans:
            self.windows += pa.concat_tables(spans).group_by(["s", "e"]).aggregate([]).num_rows
        gpu = self._smallest(windows.tables.get("gpu_windows"))
        if gpu is not None and gpu.num_rows:
            agg = gpu.group_by(["team", "namespace", "pod"]).aggregate(
                [("idle_gpu_s", "sum"), ("idle_cost_usd", "sum")]
            )
            for r in agg.to_pylist():
                key = (r["team"] or "", r["namespace"] or "", r["pod"] or "")
                acc = self.idle.setdefault(key, [0.0, 0.0])
                acc[0] += r["idle_gpu_s_sum"] or 0.0
                acc[1] += r["idle_cost_usd_sum"] or 0.0
        svc = self._smallest(windows.tables.get("service_cost_windows"))
        if svc is not None and svc.num_rows:
            agg = svc.group_by(["service"]).aggregate(
                [("headroom_gpus", "sum"), ("headroom_cost_usd", "sum")]
            )
            for r in agg.to_pylist():
                acc = self.headroom.setdefault(r["service"] or "", [0.0, 0.0])
                acc[0] += (r["headroom_gpus_sum"] or 0.0) * self.window_ms / 3_600_000
                acc[1] += r["headroom_cost_usd_sum"] or 0.0

    def _smallest(self, t: pa.Table | None) -> pa.Table | None:
        if t is None or t.num_rows == 0 or "window_start" not in t.column_names:
            return None
        span = pc.subtract(
            t.column("window_end").cast(pa.int64()), t.column("window_start").cast(pa.int64())
        )
        return t.filter(pc.equal(span, pa.scalar(self.window_ms, pa.int64())))

    def top_idle(self, n: int = TOP) -> list[dict[str, Any]]:
        ranked = sorted(self.idle.items(), key=lambda kv: (-kv[1][1], kv[0]))[:n]
        return [
            {
                "team": k[0],
                "namespace": k[1],
                "pod": k[2],
                "idle_gpu_h": v[0] / 3600,
                "idle_cost_usd": v[1],
            }
            for k, v in ranked
        ]

    def top_headroom(self, n: int = TOP) -> list[dict[str, Any]]:
        ranked = sorted(self.headroom.items(), key=lambda kv: (-kv[1][1], kv[0]))[:n]
        return [
            {"service": k, "headroom_gpu_h": v[0], "headroom_cost_usd": v[1]} for k, v in ranked
        ]


# --- replay -------------------------------------------------------------------------------


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
) -> ReplaySummary:
    """Replays the files at `paths` (directories: their files, sorted) into `out_dir`, which
    must be empty or absent. `format` forces the input format of every file (one of
    `replay_inputs.FORMATS`; default: detected per file); `form` the columnar form ("long",
    "wide", "requests"; default: detected). `output_format` is "arrow" or "parquet"
    (default: `config.output.format`). `order` is "time" (merge files by event time, each
    its own partition) or "given" (one file after another). Input is read `chunk_bytes` at a
    time; the windows closed are written every `flush_bytes` of input (in whole chunks) or
    as soon as `FLUSH_ROWS` rows wait, and at the end. Raises ReplayError,
    ReplayInputError (a file that cannot be read) or the sink's errors."""
    if format is not None and format not in FORMATS:
        raise ReplayError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if order not in ORDERS:
        raise ReplayError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    if chunk_bytes < 1:
        raise ReplayError("chunk_bytes must be >= 1")
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
    engine = Engine(cfg, window_functions=window_functions, fields=fields)
    # Files become durable once, at the end (one syncfs), not one fsync each as written: a
    # replay that is interrupted is rerun into an empty directory anyway.
    sink = ArrowSink(
        out, format=output_format or cfg.output.format, writer_id=writer_id, durable="on_sync"
    )
    totals = _Totals(min(cfg.engine.window_s) * 1000)
    lateness_ms = round(cfg.engine.allowed_lateness_s * 1000)
    total_bytes = sum(f.size for f in inputs)
    started = time.perf_counter()
    if progress is not None:
        progress.start(len(inputs), total_bytes)
    written = 0
    pending: list[Windows] = []
    pending_rows = 0
    flush_every = max(1, flush_bytes // chunk_bytes)

    def bytes_read() -> int:
        return sum(f.bytes_read for f in inputs)

    def write(key: str) -> None:
        nonlocal written, pending, pending_rows
        if pending:
            windows = Windows.concat_all(pending)
            totals.add(windows)
            written += len(sink.write(windows, batch_key=key))
        pending, pending_rows = [], 0

    for chunk_no, chunk in enumerate(_schedule(inputs, engine, order, lateness_ms)):
        chunk.push(engine)
        closed = engine.poll()
        rows = sum(t.num_rows for t in closed.tables.values())
        if rows:
            pending.append(closed)
            pending_rows += rows
        if pending and ((chunk_no + 1) % flush_every == 0 or pending_rows >= FLUSH_ROWS):
            write(f"c{chunk_no:07d}")
        if progress is not None:
            progress.update(engine.stats()["consumed"], bytes_read())
        del chunk
    closed = engine.finish()
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
    )


def _schedule(
    inputs: list[InputFile], engine: Engine, order: str, lateness_ms: int
) -> Iterator[Chunk]:
    """The chunks of every file, in replay order; closes files and releases their partitions.

    "given": file after file; a finished file is marked idle, so the files act as one stream.
    "time": always the next chunk of the file that is furthest behind in event time (a file
    not started yet counts with the time of its first event), so the files are merged by
    event time, chunk by chunk, each file its own partition. Correctness does not rest on
    these estimates: after each chunk is pushed, and before the caller polls (windows close
    only then), every file not started yet whose first event is not after the largest event
    time seen is registered as a partition, so it holds the watermark until it starts."""
    lowest = -(2**63)
    unstarted = list(inputs)
    active: list[tuple[InputFile, Iterator[Chunk]]] = []
    now_ms: dict[int, int] = {}  # file index -> event time reached (estimated)

    def first(f: InputFile) -> int:
        return f.first_ms if f.first_ms is not None else lowest

    def pushed(f: InputFile, chunk: Chunk) -> None:
        seen = engine.max_event_ms
        end = chunk.end_ms if chunk.end_ms is not None else seen
        if end is not None:
            now_ms[f.index] = max(now_ms.get(f.index, lowest), end)
        if order == "time" and seen is not None:
            for u in [u for u in unstarted if first(u) <= seen + lateness_ms]:
                unstarted.remove(u)
                engine.expect_partition(0, u.source)
                waiting.append(u)

    waiting: list[InputFile] = []  # registered, not started
    try:
        while unstarted or waiting or active:
            if order == "given":
                if not active:
                    f = unstarted.pop(0)
                    active.append((f, f.chunks()))
                f, it = active[0]
            else:
                cands = [(now_ms.get(f.index, lowest), f.index, f) for f, _ in active]
                cands += [(first(f), f.index, f) for f in unstarted + waiting]
                _, _, f = min(cands, key=lambda c: (c[0], c[1]))
                if f in unstarted or f in waiting:
                    (unstarted if f in unstarted else waiting).remove(f)
                    active.append((f, f.chunks()))
                it = next(i for g, i in active if g is f)
            chunk = next(it, None)
            if chunk is None:
                active = [(g, i) for g, i in active if g is not f]
                engine.mark_idle(0, f.source)
                continue

            def push(e: Any, f: InputFile = f, chunk: Chunk = chunk) -> None:
                # The file's modification time is when its messages were "received": dead
                # letters' received_at, so replaying the same file gives identical rows.
                e.set_receive_time(os.stat(f.path).st_mtime_ns // 1_000_000 / 1000.0)
                chunk.push(e)
                pushed(f, chunk)

            yield Chunk(push, chunk.end_ms, chunk.records)
    finally:
        for f, it in active:
            close = getattr(it, "close", None)
            if close is not None:
                close()
            f.close()
