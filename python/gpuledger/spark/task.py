"""Inside a Spark task: one engine runs one shard's rows file by file, chunk by chunk, in the
order `gpuledger replay` reads the same files (its `_schedule`: merged by event time, or one
after another), polling after every chunk, and hands the closed windows back as Arrow IPC
blobs, one row per table per poll (`RESULT_SCHEMA`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from gpuledger.config import Config
from gpuledger.engine import Engine, Windows
from gpuledger.errors import InputError, ReplayInputError
from gpuledger.spark.plan import Idle, Step
from gpuledger.spark.rows import FileChunk, FileInfo, FileRows, split_files

RESULT_DDL = "shard int, seq int, name string, data binary"
"""The Spark schema of a task's result: the shard, the poll's number, the table and its rows
as an Arrow IPC stream."""
_RESULT_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("shard", pa.int32()),
    ("seq", pa.int32()),
    ("name", pa.string()),
    ("data", pa.binary()),
]
RESULT_SCHEMA = pa.schema(_RESULT_COLUMNS)


@dataclass(frozen=True)
class TaskSpec:
    """What every task needs, shipped to the executors with the function (picklable)."""

    config: Config
    files: Mapping[int, FileInfo] = field(default_factory=dict)
    telemetry_form: str | None = None
    order: str = "time"
    chunk_rows: int = 65_536
    shards: int = 1


def _shard_files(
    spec: TaskSpec, telemetry: pa.Table | None, requests: pa.Table | None
) -> list[FileRows]:
    files: list[FileRows] = []
    if telemetry is not None:
        files += split_files(telemetry, spec.files, spec.telemetry_form, spec.chunk_rows)
    if requests is not None:
        files += split_files(requests, spec.files, "requests", spec.chunk_rows)
    return sorted(files, key=lambda f: (f.info.index, f.info.source))


def run_shard(
    spec: TaskSpec, shard: int, telemetry: pa.Table | None, requests: pa.Table | None
) -> Iterator[Windows]:
    """One engine over all the rows (`spec.shards` 1), their files run as replay would run
    them; yields the windows closed after each chunk and at the end."""
    files = _shard_files(spec, telemetry, requests)
    engine = Engine(spec.config)
    lateness_ms = round(spec.config.engine.allowed_lateness_s * 1000)
    for _ in _schedule(files, engine, spec.order, lateness_ms):
        yield engine.poll()
    yield engine.finish()


def run_planned_shard(
    spec: TaskSpec,
    shard: int,
    telemetry: pa.Table | None,
    requests: pa.Table | None,
    steps: Sequence[Step],
) -> Iterator[Windows]:
    """Shard `shard` of `spec.shards`: its own GPUs' rows and every request through an engine
    in shard mode, chunk by chunk in the plan's order; after each chunk the engine takes the
    watermark clock one engine reading every row would hold (`plan.Push`), so it closes
    windows, and judges rows late, as that engine would. Yields as `run_shard`."""
    files = {f.file_id: f for f in _shard_files(spec, telemetry, requests)}
    chunks = {(f.file_id, c.number): c for f in files.values() for c in f.chunks}
    engine = Engine(spec.config, shard=(shard, spec.shards, False))
    for step in steps:
        source = spec.files[step.file_id].source
        if isinstance(step, Idle):
            engine.mark_idle(0, source)
            continue
        f = files.get(step.file_id)
        chunk = chunks.get((step.file_id, step.chunk))
        if f is not None and chunk is not None:
            _push(engine, f, chunk)
        if step.newest_ms is not None or step.covered_ms is not None:
            clock = (source, 0, _or_none(step.newest_ms), _or_none(step.covered_ms), False)
            engine._core.merge_watermark_clocks([clock])
        for file_id in step.expect:
            engine.expect_partition(0, spec.files[file_id].source)
        yield engine.poll()
    yield engine.finish()


def _or_none(ms: int | None) -> int:
    """A clock value: `EpochMs::MIN` for none."""
    return -(2**63) if ms is None else ms


def _push(engine: Engine, f: FileRows, chunk: FileChunk) -> None:
    engine.set_receive_time(f.modified_s)
    for run in chunk.runs:
        try:
            engine.push_arrow(run.rows, form=f.form, source=f.info.source, first_row=run.first_row)
        except InputError as e:
            raise ReplayInputError(f"{f.info.source}: rows from {run.first_row}: {e}") from e


def _schedule(
    files: list[FileRows], engine: Engine, order: str, lateness_ms: int
) -> Iterator[FileRows]:
    """`gpuledger.replay.run._schedule` over rows in memory: pushes every chunk in replay's
    order, yielding after each (the caller polls then). "given": file after file, a finished
    file marked idle; "time": always the next chunk of the file furthest behind in event
    time, files not started yet registered once the data seen reaches their first event."""
    lowest = -(2**63)
    unstarted = list(files)
    waiting: list[FileRows] = []
    active: dict[int, Iterator[FileChunk]] = {}
    now_ms: dict[int, int] = {}

    def first(f: FileRows) -> int:
        return f.first_ms if f.first_ms is not None else lowest

    def next_file() -> FileRows:
        if order == "given":
            return next((f for f in files if f.info.index in active), None) or unstarted.pop(0)
        started = [f for f in files if f.info.index in active]
        cands = [(now_ms.get(f.info.index, lowest), f.info.index, f) for f in started]
        cands += [(first(f), f.info.index, f) for f in unstarted + waiting]
        f = min(cands, key=lambda c: (c[0], c[1]))[2]
        if f in unstarted:
            unstarted.remove(f)
        elif f in waiting:
            waiting.remove(f)
        return f

    while unstarted or waiting or active:
        f = next_file()
        chunks = active.setdefault(f.info.index, iter(f.chunks))
        chunk = next(chunks, None)
        if chunk is None:
            del active[f.info.index]
            engine.mark_idle(0, f.info.source)
            continue
        _push(engine, f, chunk)
        seen = engine.max_event_ms
        end = chunk.end_ms if chunk.end_ms is not None else seen
        if end is not None:
            now_ms[f.info.index] = max(now_ms.get(f.info.index, lowest), end)
        if order == "time" and seen is not None:
            for u in [u for u in unstarted if first(u) <= seen + lateness_ms]:
                unstarted.remove(u)
                engine.expect_partition(0, u.info.source)
                waiting.append(u)
        yield f


def encode(shard: int, results: Iterator[Windows]) -> pa.Table:
    """The windows of one shard as `RESULT_SCHEMA` rows (empty tables only from the first
    call, so every table's name and schema arrive once)."""
    shards, seqs, names, blobs = [], [], [], []
    for seq, windows in enumerate(results):
        for name, table in windows.tables.items():
            if table.num_rows == 0 and seq > 0:
                continue
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            shards.append(shard)
            seqs.append(seq)
            names.append(name)
            blobs.append(sink.getvalue().to_pybytes())
    return pa.Table.from_arrays(
        [
            pa.array(shards, pa.int32()),
            pa.array(seqs, pa.int32()),
            pa.array(names, pa.string()),
            pa.array(blobs, pa.binary()),
        ],
        schema=RESULT_SCHEMA,
    )


def decode(data: bytes) -> pa.Table:
    """One blob of `encode` back as a table."""
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return reader.read_all()
