"""Finds and reads the output files of the report's input directories (local paths or
`scheme://` URIs through pyarrow.fs), table by table and UTC hour by hour, reading only the
columns the report uses and setting aside, with a clear problem, any file that cannot be
read or whose columns are not the ones expected."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from gpuledger.errors import ReportError
from gpuledger.report.arrow_util import pc

__all__ = ["FileRef", "Inputs", "find_inputs"]

# OUT/<table>/date=YYYY-MM-DD/hour=HH/part-<batch_key>-<writer_id>.<ext> (docs/output-files.md)
_PART = re.compile(
    r"(?P<table>[a-z0-9_]{1,64})/date=(?P<date>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/"
    r"part-[A-Za-z0-9._]{1,128}-(?P<writer>[A-Za-z0-9._-]{1,64})\.(?P<ext>arrow|parquet)"
)


@dataclass(frozen=True)
class FileRef:
    """One output file: where it is, its table, its partition hour and format."""

    fs: pafs.FileSystem
    path: str
    table: str
    hour_ms: int
    ext: str
    local: bool
    source: tuple[str, str]  # (input directory, writer id): one writer's rows never repeat a key

    def __str__(self) -> str:
        return self.path


@dataclass
class Inputs:
    """Every output file under the input directories, by table then by partition hour, and
    the problems met while reading (each one a sentence naming the file)."""

    dirs: list[str]
    files: dict[str, dict[int, list[FileRef]]]
    problems: list[str] = field(default_factory=list)

    def tables(self) -> list[str]:
        return sorted(self.files)

    def hours(self, tables: Iterable[str]) -> list[int]:
        return sorted({h for t in tables for h in self.files.get(t, {})})

    def writers(self, hour_ms: int, tables: Iterable[str]) -> int:
        """How many (directory, writer id) pairs wrote files of `tables` in that hour."""
        return len({r.source for t in tables for r in self.files.get(t, {}).get(hour_ms, [])})

    def read_hour(
        self, table: str, hour_ms: int, columns: Sequence[str], expected: pa.Schema
    ) -> pa.Table | None:
        """The rows of `table` in one partition hour, over every directory: the `columns`
        that exist in `expected` (missing optional ones are nulls), None when no file of
        that hour could be used."""
        return self.read_files(self.files.get(table, {}).get(hour_ms, []), columns, expected)

    def read_all(self, table: str, columns: Sequence[str], expected: pa.Schema) -> pa.Table | None:
        """Every row of `table` (for the small tables: streaks, events, costs)."""
        refs = [r for hour in sorted(self.files.get(table, {})) for r in self.files[table][hour]]
        return self.read_files(refs, columns, expected)

    def read_files(
        self, refs: Sequence[FileRef], columns: Sequence[str], expected: pa.Schema
    ) -> pa.Table | None:
        parts = []
        for ref in refs:
            t = self._read_one(ref, columns, expected)
            if t is not None:
                parts.append(t)
        if not parts:
            return None
        return pa.concat_tables(parts, promote_options="permissive")

    def _read_one(
        self, ref: FileRef, columns: Sequence[str], expected: pa.Schema
    ) -> pa.Table | None:
        try:
            table = _read_columns(ref, columns)
        except (OSError, pa.ArrowException) as e:
            self.problems.append(
                f"{ref.path}: cannot be read as {ref.ext} ({_short(e)}); its rows are left out"
            )
            return None
        wrong = []
        for name in columns:
            want = expected.field(name).type
            i = table.schema.get_field_index(name)
            if i < 0:
                wrong.append(f"no column {name!r}")
            elif not table.schema.field(i).type.equals(want):
                have = table.schema.field(i).type
                if _castable(have, want):
                    table = table.set_column(i, name, pc.cast(table.column(i), want))
                else:
                    wrong.append(f"column {name!r} is {have}, expected {want}")
        if wrong:
            self.problems.append(
                f"{ref.path}: {ref.table} written by another gpuledger version? "
                + "; ".join(wrong)
                + "; its rows are left out"
            )
            return None
        return table.select(list(columns))


def _castable(have: pa.DataType, want: pa.DataType) -> bool:
    """Types that hold the same values in another unit: any timestamp, any decimal."""
    both_ts = pa.types.is_timestamp(have) and pa.types.is_timestamp(want)
    both_dec = pa.types.is_decimal(have) and pa.types.is_decimal(want)
    return both_ts or both_dec


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _read_columns(ref: FileRef, columns: Sequence[str]) -> pa.Table:
    """The `columns` of one file that it has (checked by the caller)."""
    if ref.ext == "parquet":
        have = pq.read_schema(ref.path, filesystem=ref.fs).names
        return pq.read_table(ref.path, columns=[c for c in columns if c in have], filesystem=ref.fs)
    # Arrow IPC: a memory map locally, so only the pages of the columns used are read.
    source = pa.memory_map(ref.path) if ref.local else ref.fs.open_input_file(ref.path)
    table = pa.ipc.open_file(source).read_all()
    return table.select([c for c in columns if c in table.schema.names])


def find_inputs(dirs: Sequence[str | os.PathLike[str]]) -> Inputs:
    """Lists the output files under every directory of `dirs` (a directory given twice is
    read once). Raises ReportError for a directory that does not exist or holds no
    gpuledger output."""
    if not dirs:
        raise ReportError("no input directory given")
    seen: list[str] = []
    files: dict[str, dict[int, list[FileRef]]] = {}
    for d in dirs:
        fs, base, local = _filesystem(os.fspath(d))
        if base in seen:
            continue
        seen.append(base)
        info = fs.get_file_info(base)
        if info.type != pafs.FileType.Directory:
            raise ReportError(f"no output directory {os.fspath(d)}")
        found = 0
        selector = pafs.FileSelector(base, recursive=True)
        for entry in fs.get_file_info(selector):
            if entry.type != pafs.FileType.File:
                continue
            rel = entry.path[len(base) :].lstrip("/")
            m = _PART.fullmatch(rel)
            if m is None:
                continue
            hour_ms = _hour_ms(m.group("date"), m.group("hour"))
            if hour_ms is None:
                continue
            writer = m.group("writer")
            ref = FileRef(
                fs, entry.path, m.group("table"), hour_ms, m.group("ext"), local, (base, writer)
            )
            files.setdefault(ref.table, {}).setdefault(hour_ms, []).append(ref)
            found += 1
        if not found:
            raise ReportError(
                f"no gpuledger output under {os.fspath(d)}: expected table directories "
                "like gpu_windows/date=YYYY-MM-DD/hour=HH/part-*.arrow (or .parquet)"
            )
    for by_hour in files.values():
        for refs in by_hour.values():
            refs.sort(key=lambda r: r.path)
    return Inputs(dirs=[os.fspath(d) for d in dirs], files=files)


def _filesystem(d: str) -> tuple[pafs.FileSystem, str, bool]:
    """(file system, path in it, whether it is local) of a directory or `scheme://` URI."""
    if "://" in d:
        try:
            fs, path = pafs.FileSystem.from_uri(d)
        except (pa.ArrowException, ValueError, OSError) as e:
            raise ReportError(f"cannot open {d}: {_short(e)}") from None
        return fs, path.rstrip("/"), isinstance(fs, pafs.LocalFileSystem)
    return pafs.LocalFileSystem(), os.path.abspath(d), True


def _hour_ms(date: str, hour: str) -> int | None:
    try:
        dt = datetime.strptime(f"{date} {hour}", "%Y-%m-%d %H").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return int(dt.timestamp()) * 1000


def expected_schemas() -> Mapping[str, pa.Schema]:
    """gpuledger's schemas of the built-in tables (the engine's own)."""
    from gpuledger._engine import schemas

    return schemas()
