"""Writes closed windows as files: ``OUT/<table>/date=YYYY-MM-DD/hour=HH/part-<batch>-<writer>``.

Arrow IPC files (or Parquet), hive-partitioned by the UTC hour of each row's own time column,
readable as they are by pyarrow.dataset, DuckDB and Polars. Every file is written atomically
under a deterministic name: written and fsynced under a hidden temporary name in
``OUT/.staging/``, renamed into its partition, then the directory is fsynced. Partition
directories therefore only ever hold complete files (Polars' directory scans, unlike
pyarrow.dataset, do not skip hidden files). With ``durable="on_sync"`` (replay) the fsyncs
are left out and ``sync()`` makes everything written durable at once. Writing the same batch
again is a no-op; other rows under a taken name are an error, never an overwrite.
docs/output-files.md has the rules.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gpuledger.config import OutputConfig
from gpuledger.engine import Windows
from gpuledger.errors import OutputConflictError, SinkWriteError
from gpuledger.output.durable import O_CLOEXEC, fsync_dir, fsync_file, make_dirs, syncfs, write_all
from gpuledger.output.object_store import is_uri, local_path, object_files, read_object
from gpuledger.tables import DEFAULT_TIME_COLUMN, TABLES

__all__ = [
    "DURABILITY",
    "FORMATS",
    "TIME_COLUMNS",
    "ArrowSink",
    "OutputConflictError",
    "SinkWriteError",
    "list_files",
    "output_files",
    "read_file",
    "read_table",
]

log = logging.getLogger("gpuledger.output.sink")

FORMATS = {"arrow": "arrow", "parquet": "parquet"}  # format -> file extension
DURABILITY = ("each", "on_sync")
"""When written files are made durable: "each" before `write` returns (the daemon: it commits
offsets right after); "on_sync" only at `ArrowSink.sync()` (replay, which syncs once at the
end: an interrupted replay is rerun into an empty directory anyway). Readers see only
complete files either way (the rename is atomic)."""
TIME_COLUMNS: Mapping[str, str] = {n: t.time_column for n, t in TABLES.items()}
"""The column each known table is partitioned by (`gpuledger.tables`)."""
_FALLBACK_TIME_COLUMNS = tuple(dict.fromkeys((DEFAULT_TIME_COLUMN, *TIME_COLUMNS.values())))
"""Tried in order for a table that is not listed (a custom aggregation)."""

TABLE_NAME = re.compile(r"[a-z0-9_]{1,64}")
BATCH_KEY = re.compile(r"[A-Za-z0-9._]{1,128}")  # no "-": it ends the key in file names
WRITER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PART = re.compile(r"part-[A-Za-z0-9._]+-[A-Za-z0-9._-]+\.(?:arrow|parquet)")
_TEMP = re.compile(
    r"\.part-[A-Za-z0-9._]+-(?P<writer>[A-Za-z0-9._-]+)\.(?:arrow|parquet)\.tmp-\d+-[0-9a-f]+"
)
STAGING = ".staging"  # OUT/.staging: temporary files, on the file system of the output
_DATE_DIR = re.compile(r"date=\d{4}-\d{2}-\d{2}")
_HOUR_DIR = re.compile(r"hour=\d{2}")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


@dataclass(frozen=True)
class _Planned:
    path: Path
    data: bytes


class ArrowSink:
    """Writes the tables of closed windows under `out_dir`, one file per (table, UTC hour,
    batch): ``<out_dir>/<table>/date=YYYY-MM-DD/hour=HH/part-<batch_key>-<writer_id>.arrow``.

    `format` is "arrow" (Arrow IPC file format) or "parquet" (zstd). `writer_id` tells apart
    processes that write the same directory (e.g. the members of a consumer group); each
    must have its own. Starting a sink removes the temporary files its writer left behind.
    The whole tree under `out_dir` must be one file system (files are renamed into place).
    """

    def __new__(cls, out_dir: str | os.PathLike[str], **kwargs: Any) -> ArrowSink:
        # A URI (s3://bucket/prefix, gs://...) writes objects: gpuledger.output.object_sink.
        if cls is ArrowSink and is_uri(out_dir):
            from gpuledger.output.object_sink import ObjectStoreSink

            return super().__new__(ObjectStoreSink)
        return super().__new__(cls)

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        format: str = "arrow",
        writer_id: str = "0",
        durable: str = "each",
    ) -> None:
        out_dir = local_path(out_dir)  # file:///x is /x
        if format not in FORMATS:
            raise ValueError(f"format must be one of {sorted(FORMATS)}, not {format!r}")
        if durable not in DURABILITY:
            raise ValueError(f"durable must be one of {DURABILITY}, not {durable!r}")
        _check_token(writer_id, WRITER_ID, "writer_id")
        self.out_dir = Path(out_dir)
        self.format = format
        self.writer_id = writer_id
        self.durable = durable
        # With durable="on_sync": what `sync()` must make durable.
        self._unsynced_files: list[Path] = []
        self._unsynced_dirs: set[Path] = set()
        self.cleanup_temp()

    @classmethod
    def from_config(cls, output: OutputConfig, *, writer_id: str = "0") -> ArrowSink:
        """A sink for the `[output]` section of the configuration."""
        return cls(output.dir, format=output.format, writer_id=writer_id)

    @property
    def extension(self) -> str:
        return FORMATS[self.format]

    def file_name(self, batch_key: str) -> str:
        """The name of this writer's files for `batch_key`, in every partition."""
        _check_token(batch_key, BATCH_KEY, "batch_key")
        return f"part-{batch_key}-{self.writer_id}.{self.extension}"

    def write(self, windows: Mapping[str, pa.Table] | Windows, *, batch_key: str) -> list[Path]:
        """Writes every non-empty table of `windows`, each row into the partition of the UTC
        hour of its time column (`TIME_COLUMNS`, else `window_start`). Returns the files
        written, in table then hour order. A file that exists with the same rows (any order)
        is skipped and not returned; one with other rows raises OutputConflictError before
        anything is written. The same `batch_key` must always stand for the same input.

        Raises ValueError for a bad table name, batch key or time column, and
        SinkWriteError (an OSError) when the file system refuses: the call can then be
        retried as it is.
        """
        name = self.file_name(batch_key)
        tables = windows.tables if isinstance(windows, Windows) else windows
        parts: list[tuple[Path, pa.Table]] = []
        for table_name, table in tables.items():
            _check_token(table_name, TABLE_NAME, "table name")
            if table.num_rows == 0:
                continue
            for (date, hour), rows in _by_hour(table_name, table):
                directory = self.out_dir / table_name / f"date={date}" / f"hour={hour}"
                parts.append((directory / name, rows))
        planned = [p for path, rows in parts if (p := self._plan(path, rows)) is not None]
        for p in planned:
            self._write_atomic(p)
        return [p.path for p in planned]

    def sync(self) -> None:
        """Makes every file written so far durable, with the directory entries that name it
        (only needed with `durable="on_sync"`; otherwise each `write` already did). One
        `syncfs` of the output's file system where the OS has it, else an fsync of each file
        and directory written. Raises SinkWriteError; the same files are synced again by the
        next call then."""
        if not self._unsynced_files and not self._unsynced_dirs:
            return
        try:
            if not syncfs(self.out_dir):
                for f in self._unsynced_files:
                    fsync_file(f)
                for d in sorted(self._unsynced_dirs, key=lambda d: len(d.parts), reverse=True):
                    fsync_dir(d)
        except OSError as e:
            raise SinkWriteError.of(e, self.out_dir) from e
        self._unsynced_files.clear()
        self._unsynced_dirs.clear()

    @property
    def staging_dir(self) -> Path:
        return self.out_dir / STAGING

    def cleanup_temp(self) -> list[Path]:
        """Removes the temporary files this writer (`writer_id`) left in `OUT/.staging` when
        it died mid-write; returns them. Touches nothing else (other writers' files are
        theirs). Best effort: a file that cannot be removed stays, invisible to readers."""
        removed = []
        for entry in _entries(self.staging_dir, best_effort=True):
            m = _TEMP.fullmatch(entry.name)
            if m is None or m["writer"] != self.writer_id:
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except OSError as e:
                log.warning("cannot remove temporary file %s: %s", entry.path, e)
        return removed

    def _plan(self, path: Path, rows: pa.Table) -> _Planned | None:
        """The bytes to write at `path`, or None when an identical file is already there."""
        data = _serialize(rows, self.format)
        other = "parquet" if self.format == "arrow" else "arrow"
        # The sibling of the other format counts too: a restart after switching formats must
        # not write the same batch twice.
        for fmt, existing in ((self.format, path), (other, path.with_suffix("." + other))):
            try:
                old = self._read_existing(existing)
            except FileNotFoundError:
                continue
            except OSError as e:
                raise SinkWriteError.of(e, existing) from e
            if fmt == self.format and old == data:
                return None
            try:
                old_rows = _deserialize(old, fmt)
            except (pa.ArrowException, ValueError) as e:
                raise OutputConflictError(existing, f"exists and is unreadable ({e})") from e
            if not _same_rows(old_rows, _deserialize(data, self.format)):
                raise OutputConflictError(
                    existing,
                    "exists with different rows for the same batch key; not overwritten "
                    "(was the batch key reused for other input, or the configuration changed?)",
                )
            return None
        return _Planned(path, data)

    def _read_existing(self, path: Path) -> bytes:
        """The bytes of the file at `path`; FileNotFoundError when there is none."""
        return path.read_bytes()

    def _write_atomic(self, planned: _Planned) -> None:
        path = planned.path
        tmp = self.staging_dir / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        now = self.durable == "each"
        later = None if now else self._unsynced_dirs
        try:
            make_dirs(self.staging_dir, later)
            make_dirs(path.parent, later)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_CLOEXEC, 0o644)
            try:
                write_all(fd, planned.data)
                if now:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            if now:
                fsync_dir(path.parent)
            else:
                self._unsynced_files.append(path)
                self._unsynced_dirs.add(path.parent)
        except BaseException as e:
            with contextlib.suppress(OSError):  # must not hide the failure
                os.unlink(tmp)
            if isinstance(e, OSError):
                raise SinkWriteError.of(e, path) from e
            raise


def _check_token(value: str, pattern: re.Pattern[str], what: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} must match {pattern.pattern}")


def _time_column(table_name: str, table: pa.Table) -> str:
    names = table.column_names
    wanted = TIME_COLUMNS.get(table_name)
    if wanted is not None:
        if wanted not in names:
            raise ValueError(f"table {table_name!r} has no {wanted!r} column to partition by")
        return wanted
    for name in _FALLBACK_TIME_COLUMNS:
        if name in names:
            return name
    raise ValueError(
        f"table {table_name!r} has none of the time columns "
        f"{', '.join(_FALLBACK_TIME_COLUMNS)} to partition by"
    )


def _by_hour(table_name: str, table: pa.Table) -> Iterator[tuple[tuple[str, str], pa.Table]]:
    """The rows of `table` by the UTC (date, hour) of their time column, hours ascending."""
    column = _time_column(table_name, table)
    times = table.column(column)
    kind = times.type
    if not pa.types.is_timestamp(kind):
        raise ValueError(f"table {table_name!r}: {column!r} is {kind}, not a timestamp")
    if times.null_count:
        raise ValueError(f"table {table_name!r}: {column!r} has nulls; rows cannot be placed")
    unit = kind.unit
    # Storage values are UTC whatever the time zone; dropping it makes the flooring UTC too.
    utc = times.cast(pa.timestamp(unit))
    # (pyarrow-stubs mistype the column's scalars: TimestampType for TimestampScalar.)
    hours = pc.floor_temporal(utc, unit="hour").cast(pa.int64())  # type: ignore[call-overload]

    def partition(value: int) -> tuple[str, str]:
        start = _EPOCH + timedelta(seconds=value // _PER_SECOND[unit])
        return start.strftime("%Y-%m-%d"), start.strftime("%H")

    # Closed windows come in time order: the hours are then runs, cut as zero-copy slices
    # (one filter per hour cost most of a write).
    # (In pyarrow since 13; pyarrow-stubs do not list it yet.)
    runs = pc.run_end_encode(hours.combine_chunks())  # type: ignore[attr-defined]
    values, ends = runs.values.to_pylist(), runs.run_ends.to_pylist()
    if all(a < b for a, b in itertools.pairwise(values)):
        start = 0
        for value, end in zip(values, ends, strict=True):
            yield partition(value), table.slice(start, end - start)
            start = end
        return
    for value in sorted(set(values)):
        yield partition(value), table.filter(pc.equal(hours, value))


def _serialize(table: pa.Table, format: str) -> bytes:
    sink = pa.BufferOutputStream()
    if format == "arrow":
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    else:
        import pyarrow.parquet as pq  # only for Parquet output: its import takes ~15 ms

        pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue())


def _deserialize(data: bytes, format: str) -> pa.Table:
    source = pa.BufferReader(data)
    if format == "arrow":
        return pa.ipc.open_file(source).read_all()
    import pyarrow.parquet as pq

    return pq.ParquetFile(source).read()


def _sortable(kind: pa.DataType) -> bool:
    t = pa.types
    return (
        t.is_integer(kind)
        or t.is_floating(kind)
        or t.is_boolean(kind)
        or t.is_temporal(kind)
        or t.is_decimal(kind)
        or t.is_string(kind)
        or t.is_large_string(kind)
        or t.is_binary(kind)
        or t.is_large_binary(kind)
        or t.is_fixed_size_binary(kind)
        or getattr(t, "is_string_view", lambda _: False)(kind)
        or getattr(t, "is_binary_view", lambda _: False)(kind)
    )


def _sorted(table: pa.Table) -> pa.Table:
    """`table` sorted by every sortable column, left to right (dictionaries by value)."""
    keys: dict[str, pa.ChunkedArray[Any]] = {}
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = field.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
            column = column.cast(kind)
        if _sortable(kind):
            keys[f"k{len(keys)}"] = column
    if not keys or table.num_rows < 2:
        return table
    # Nulls go last (the default; pyarrow 25+ deprecates setting it for all keys at once).
    order = pc.sort_indices(pa.table(keys), sort_keys=[(k, "ascending") for k in keys])
    return table.take(order)


def _same_rows(a: pa.Table, b: pa.Table) -> bool:
    """Same schema and the same rows in any order (NaN equals NaN)."""
    if not a.schema.equals(b.schema) or a.num_rows != b.num_rows:
        return False
    if a.equals(b) or _sorted(a).equals(_sorted(b)):
        return True
    # NaN never equals itself in Table.equals, and rows that tie on every sortable column can
    # come out in either order: compare the multisets of rows' reprs.
    return sorted(map(repr, a.to_pylist())) == sorted(map(repr, b.to_pylist()))


def _hour_dirs(table_dir: Path) -> Iterator[Path]:
    """The `date=*/hour=*` directories of a table, sorted (no symlinks followed)."""
    for date in _entries(table_dir):
        if not (_DATE_DIR.fullmatch(date.name) and date.is_dir(follow_symlinks=False)):
            continue
        for hour in _entries(Path(date.path)):
            if _HOUR_DIR.fullmatch(hour.name) and hour.is_dir(follow_symlinks=False):
                yield Path(hour.path)


def _entries(directory: Path, *, best_effort: bool = False) -> list[os.DirEntry[str]]:
    """The entries of `directory` by name; none when it does not exist. Other errors raise,
    or with `best_effort` are logged and give none."""
    try:
        with os.scandir(directory) as it:
            return sorted(it, key=lambda e: e.name)
    except FileNotFoundError:
        return []
    except OSError as e:
        if not best_effort:
            raise
        log.warning("cannot list %s: %s", directory, e)
        return []


def list_files(out_dir: str | os.PathLike[str], table: str) -> list[Path]:
    """The output files (Arrow and Parquet, no temporary files) of `table`, sorted by path.
    Under a URI: use `output_files`, which returns URIs."""
    _check_token(table, TABLE_NAME, "table name")
    if is_uri(out_dir):
        raise ValueError(f"{out_dir}: a URI; list its files with output_files()")
    out_dir = local_path(out_dir)
    files = []
    for directory in _hour_dirs(Path(out_dir) / table):
        for entry in _entries(directory):
            if _PART.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                files.append(Path(entry.path))
    return sorted(files)


def output_files(out_dir: str | os.PathLike[str], table: str) -> list[str]:
    """The output files of `table` as local paths, or URIs under a URI, sorted."""
    if is_uri(out_dir):
        _check_token(table, TABLE_NAME, "table name")
        return object_files(str(out_dir), table, _PART)
    return [str(p) for p in list_files(out_dir, table)]


def read_file(path: str | os.PathLike[str]) -> pa.Table:
    """The rows of one output file (Arrow IPC or Parquet, by its extension); a URI too."""
    if is_uri(path):
        uri = str(path)
        return _deserialize(read_object(uri), uri.rsplit(".", 1)[-1])
    p = Path(local_path(path))
    return _deserialize(p.read_bytes(), p.suffix[1:])


def read_table(out_dir: str | os.PathLike[str], table: str) -> pa.Table:
    """All rows of `table` under `out_dir` in one table, without partition columns, sorted by
    every sortable column (left to right) so equal contents compare equal. Files written by
    older versions with fewer columns get nulls in the new ones. A table without files is an
    empty table without columns."""
    files = output_files(out_dir, table)
    if not files:
        return pa.table({})
    parts = [read_file(f) for f in files]
    return _sorted(pa.concat_tables(parts, promote_options="default").combine_chunks())
