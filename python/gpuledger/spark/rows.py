"""Inside a Spark task: one shard's input rows (Arrow, as Spark hands them over) cut back into
the files they came from and into replay's chunks, each chunk into runs of consecutive row
numbers, so the engine numbers rows (dead letters' offsets) as `gpuledger replay` does."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gpuledger.errors import ReplayInputError
from gpuledger.replay.event_times import batch_time_ms

FILE_ID = "_gl_file"
"""The row's file: Spark's `xxhash64` of `_metadata.file_path` (a number shuffles in a
quarter of the time a path does)."""
FILE_PATH = "_gl_path"
"""The row's file as Spark names it (`_metadata.file_path`); read once per file to list the
files, dropped before rows are shuffled."""
ROW_INDEX = "_gl_row"
"""The row's 0-based number among the file's rows (`_metadata.row_index`)."""
MODIFIED_MS = "_gl_mtime_ms"
"""The file's modification time, epoch ms (`_metadata.file_modification_time`)."""
SHARD = "_gl_shard"
"""The engine (shard) the row goes to."""
META_COLUMNS = (FILE_ID, FILE_PATH, ROW_INDEX, MODIFIED_MS, SHARD)


@dataclass(frozen=True)
class FileInfo:
    """A file of the archive as replay sees it: its `source` (the path as replay names it)
    and its place in replay's file order."""

    source: str
    index: int


@dataclass(frozen=True)
class RowRun:
    """Rows `first_row`, `first_row + 1`, ... of a file, as data columns only."""

    first_row: int
    rows: pa.Table


@dataclass(frozen=True)
class FileChunk:
    """The rows of one replay chunk of a file (rows `[k * chunk_rows, (k + 1) * chunk_rows)`,
    `number` k) that this shard holds; `end_ms` its largest event time (None: none
    readable)."""

    number: int
    runs: tuple[RowRun, ...]
    end_ms: int | None


@dataclass(frozen=True)
class FileRows:
    """One input file's rows in this shard, in replay's chunks."""

    file_id: int
    info: FileInfo
    form: str | None
    modified_s: float
    first_ms: int | None
    chunks: tuple[FileChunk, ...]


def table_time_ms(table: pa.Table, *, largest: bool = True) -> int | None:
    """The largest (smallest) event time of `table`, as replay estimates a chunk's
    (`batch_time_ms`, batch by batch)."""
    times = [t for b in table.to_batches() if (t := batch_time_ms(b, largest=largest)) is not None]
    if not times:
        return None
    return max(times) if largest else min(times)


def _run_starts(values: pa.Array[Any], consecutive: bool) -> list[int]:
    """Indexes where a new run starts: where the value changes (`consecutive` False) or stops
    counting up by one (True). Always starts with 0."""
    n = len(values)
    if n == 0:
        return []
    head, tail = values.slice(0, n - 1), values.slice(1)
    if consecutive:
        brk = pc.not_equal(tail, pc.add(head, pa.scalar(1, values.type)))
    else:
        brk = pc.not_equal(tail, head)
    return [0, *(int(i) + 1 for i in pc.indices_nonzero(brk).to_pylist() if i is not None)]


def _spans(starts: list[int], n: int) -> Iterator[tuple[int, int]]:
    for i, a in enumerate(starts):
        yield a, (starts[i + 1] if i + 1 < len(starts) else n) - a


def _in_file_order(table: pa.Table) -> bool:
    """Rows already sorted by (file id, row number): sorting them again is a copy of every
    column for nothing."""
    n = table.num_rows
    if n < 2:
        return True
    ids = table.column(FILE_ID).combine_chunks()
    rows = table.column(ROW_INDEX).combine_chunks()
    id_a, id_b = ids.slice(0, n - 1), ids.slice(1)
    later_file = pc.greater(id_b, id_a)
    same_file_later_row = pc.and_(
        pc.equal(id_b, id_a), pc.greater(rows.slice(1), rows.slice(0, n - 1))
    )
    return bool(pc.all(pc.or_(later_file, same_file_later_row)).as_py())


def split_files(
    table: pa.Table,
    files: Mapping[int, FileInfo],
    form: str | None,
    chunk_rows: int,
) -> list[FileRows]:
    """`table` (data columns plus `META_COLUMNS`, any row order) as the files it came from,
    each in chunks of `chunk_rows` row numbers, rows sorted by row number. `files` maps
    `FILE_ID`s to the files' replay names and order. Raises ReplayInputError for a row of a
    file missing from `files` (the archive changed after it was listed)."""
    if table.num_rows == 0:
        return []
    if not _in_file_order(table):  # Spark's shuffle keeps each map output's order
        table = table.sort_by([(FILE_ID, "ascending"), (ROW_INDEX, "ascending")])
    data_columns = [c for c in table.column_names if c not in META_COLUMNS]
    ids = table.column(FILE_ID).combine_chunks()
    out: list[FileRows] = []
    for a, n in _spans(_run_starts(ids, consecutive=False), table.num_rows):
        file_id = ids[a].as_py()
        info = files.get(int(file_id)) if file_id is not None else None
        if info is None:
            raise ReplayInputError(
                f"rows of a file that was not in the input's listing (file id {file_id}): "
                "did the archive change while the backfill ran?"
            )
        part = table.slice(a, n)
        out.append(_file_rows(part, int(file_id), info, form, data_columns, chunk_rows))
    return out


def _file_rows(
    part: pa.Table,
    file_id: int,
    info: FileInfo,
    form: str | None,
    data_columns: list[str],
    chunk_rows: int,
) -> FileRows:
    rows = part.column(ROW_INDEX).combine_chunks()
    chunk_of = pc.divide(rows, pa.scalar(chunk_rows, pa.int64()))
    data = part.select(data_columns)
    chunks = []
    for a, n in _spans(_run_starts(chunk_of, consecutive=False), part.num_rows):
        in_chunk = rows.slice(a, n)
        runs = tuple(
            RowRun(int(in_chunk[b].as_py()), data.slice(a + b, m))
            for b, m in _spans(_run_starts(in_chunk, consecutive=True), n)
        )
        number = int(str(chunk_of[a].as_py()))
        chunks.append(FileChunk(number, runs, table_time_ms(data.slice(a, n))))
    modified_ms = part.column(MODIFIED_MS)[0].as_py()
    return FileRows(
        file_id=file_id,
        info=info,
        form=form,
        modified_s=int(modified_ms) / 1000.0,
        first_ms=table_time_ms(data.slice(0, 1), largest=False),
        chunks=tuple(chunks),
    )
