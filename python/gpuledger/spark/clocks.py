"""The first pass of a sharded backfill, run by `mapInArrow` on the input as Spark reads it (no
shuffle): for every chunk of every file, the event times one engine reading all of it would
note (the newest reading and how far the data covers, the engine's own watermark clock, from
a throwaway engine per batch) and replay's estimates (the chunk's newest event time, the file's
first), as partial rows merged by a `groupBy(file, chunk).max`. From them the driver plans the
order of chunks and the watermark every shard must hold after each (`gpuledger.spark.plan`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from gpuledger.engine import Engine
from gpuledger.errors import InputError
from gpuledger.spark.rows import FILE_ID, META_COLUMNS, ROW_INDEX, table_time_ms
from gpuledger.spark.task import TaskSpec

STATS_DDL = (
    "file_id long, chunk long, newest_ms long, covered_ms long, end_ms long, first_ms long, "
    "has_first boolean"
)
"""Per (file, chunk), partial: the newest event time the engine notes and how far the data
covers (epoch ms, null: none), the newest event time replay estimates, and the file's first
event time (only from the part holding row 0: `has_first`)."""
_NONE = -(2**63)


def _stats_schema() -> pa.Schema:
    columns: list[tuple[str, pa.DataType]] = [
        (name, pa.int64())
        for name in ("file_id", "chunk", "newest_ms", "covered_ms", "end_ms", "first_ms")
    ]
    return pa.schema([*columns, ("has_first", pa.bool_())])


def chunk_stats(
    spec: TaskSpec, form: str | None, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """`mapInArrow`'s function: partial stats of each (file, chunk) in every batch."""
    for batch in batches:
        if batch.num_rows:
            yield _batch_stats(spec, form, pa.Table.from_batches([batch]))


def _batch_stats(spec: TaskSpec, form: str | None, table: pa.Table) -> pa.RecordBatch:
    chunk = pc.divide(table.column(ROW_INDEX), pa.scalar(spec.chunk_rows, pa.int64()))
    table = table.append_column("_gl_chunk", chunk)
    keys = table.group_by([FILE_ID, "_gl_chunk"], use_threads=False).aggregate([])
    data_columns = [c for c in table.column_names if c not in (*META_COLUMNS, "_gl_chunk")]
    # Each (file, chunk) is its own input partition of one engine that never closes a window,
    # so its clock is that part's newest event time, and nothing is late.
    engine = Engine(spec.config)
    rows: dict[str, list[object]] = {f.name: [] for f in _stats_schema()}
    names: list[str] = []
    for file_id, number in zip(
        keys.column(FILE_ID).to_pylist(), keys.column("_gl_chunk").to_pylist(), strict=True
    ):
        mask = pc.and_(
            pc.equal(table.column(FILE_ID), pa.scalar(file_id, pa.int64())),
            pc.equal(table.column("_gl_chunk"), pa.scalar(number, pa.int64())),
        )
        part = table.filter(mask)
        data = part.select(data_columns)
        name = f"{file_id}/{number}"
        # Unreadable columns: the second pass raises that, naming the file.
        with contextlib.suppress(InputError):
            engine.push_arrow(data, form=form, source=name)
        first = pc.equal(part.column(ROW_INDEX), pa.scalar(0, pa.int64()))
        has_first = bool(pc.any(first).as_py())
        names.append(name)
        rows["file_id"].append(file_id)
        rows["chunk"].append(number)
        rows["end_ms"].append(table_time_ms(data))
        rows["first_ms"].append(
            table_time_ms(data.filter(first), largest=False) if has_first else None
        )
        rows["has_first"].append(has_first)
    clocks = {name: (newest, covered) for name, _, newest, covered, _ in _clocks(engine)}
    for name in names:
        newest, covered = clocks.get(name, (_NONE, _NONE))
        rows["newest_ms"].append(None if newest == _NONE else newest)
        rows["covered_ms"].append(None if covered == _NONE else covered)
    return pa.RecordBatch.from_pydict(rows, schema=_stats_schema())


def _clocks(engine: Engine) -> list[tuple[str, int, int, int, bool]]:
    clocks: list[tuple[str, int, int, int, bool]] = engine._core.watermark_clocks()
    return clocks
