"""Reads FOCUS bills (CSV, gzip/zstd CSV, Parquet) batch by batch in bounded memory: columns
found by name, every column kept, costs parsed to exact decimals, times to UTC timestamps, JSON
Tags checked. Bad rows are an error naming file, row and column, or (asked for) rejected and
listed. A caller's `classify` picks the rows to keep; the others only count in totals."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as _compute
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from gpuledger.billing.focus import (
    MONEY_COLUMNS,
    OPTIONAL_MONEY_COLUMNS,
    OPTIONAL_TIME_COLUMNS,
    REQUIRED_COLUMNS,
    ROW_FILE,
    ROW_NUMBER,
    TIME,
    TIME_COLUMNS,
)
from gpuledger.billing.money import MONEY, SCALE
from gpuledger.errors import BillError

# pyarrow-stubs type many compute functions too narrowly for Arrow's own behaviour (a
# ChunkedArray where an Array is listed, string scalars): the calls are typed Any here and
# checked by the tests instead.
pc: Any = _compute

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy.typing as npt

    Array: TypeAlias = pa.Array[Any]
    Mask: TypeAlias = npt.NDArray[np.bool_]
    Classify: TypeAlias = Callable[[pa.Table], npt.NDArray[np.int8]]

__all__ = ["KEEP", "MAPPED_OTHER", "NOT_MAPPED", "BillRead", "RejectedRow", "read_bills"]

NOT_MAPPED, KEEP, MAPPED_OTHER = 0, 1, 2
"""Row classes `classify` returns: not a mapped resource; split it; a mapped resource's
row that is not `Usage` (passes through, counted)."""
CLASS_NAMES = {NOT_MAPPED: "not mapped", KEEP: "split", MAPPED_OTHER: "mapped, not Usage"}

BATCH_ROWS = 65_536
CSV_BLOCK_BYTES = 4 << 20
NULL_TEXT = ["NULL", "null", ""]  # unquoted; a quoted "" stays an empty string
_ISO_ZONE = r"(Z|z|[+-]\d\d:?\d\d)$"


@dataclass(frozen=True)
class RejectedRow:
    """A bill row that could not be read. `row` is its data row number (1 = the first row
    under the header, Parquet: the first row), `column` the column at fault when one is."""

    file: str
    row: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}: row {self.row}"
        return (
            f"{where}: {self.column}: {self.reason}" if self.column else f"{where}: {self.reason}"
        )


@dataclass
class BillRead:
    """What `read_bills` found: the kept rows (every bill column, normalized, plus
    x_BillFile and x_BillRowNumber), totals of all rows by (currency, class), rejected rows."""

    rows: pa.Table
    columns: list[str]
    totals: pa.Table
    rejected: list[RejectedRow] = field(default_factory=list)
    rows_read: int = 0


def read_bills(
    paths: Sequence[str | os.PathLike[str]],
    classify: Classify,
    *,
    reject_bad_rows: bool = False,
) -> BillRead:
    """Streams every bill of `paths` in order. `classify(batch)` gets each normalized batch
    and returns a class per row (KEEP, MAPPED_OTHER or NOT_MAPPED); only KEEP rows stay in
    memory. Raises BillError on the first bad row unless `reject_bad_rows`."""
    columns: list[str] = []
    kept: list[pa.Table] = []
    totals: list[pa.Table] = []
    rejected: list[RejectedRow] = []
    rows_read = 0
    for path in paths:
        reader = _FileReader(Path(path), reject_bad_rows)
        for raw, numbers in reader.batches():
            batch, bad = _normalize(raw, reader, numbers, reject_bad_rows)
            rejected += bad
            rows_read += len(numbers)
            for c in raw.column_names:
                if c not in columns:
                    columns.append(c)
            if batch.num_rows == 0:
                continue
            classes = np.asarray(classify(batch), dtype=np.int8)
            totals.append(_totals(batch, classes))
            keep = classes == KEEP
            if keep.any():
                kept.append(batch.filter(pa.array(keep)))
        rejected += reader.rejected
    rows = _concat(kept, columns)
    total = _sum_totals(totals)
    rejected.sort(key=lambda r: (r.file, r.row))
    return BillRead(rows, columns, total, rejected, rows_read)


# --- files -------------------------------------------------------------------------------------


class _FileReader:
    """The raw batches of one bill file with the data row number of each row."""

    def __init__(self, path: Path, reject_bad_rows: bool) -> None:
        self.path = path
        self.name = str(path)
        self.reject_bad_rows = reject_bad_rows
        self.rejected: list[RejectedRow] = []
        try:
            with open(path, "rb") as f:
                magic = f.read(4)
        except OSError as e:
            raise BillError(f"{path}: cannot read the bill: {e.strerror or e}") from e
        self.kind = "parquet" if magic == b"PAR1" else "csv"
        self.compression: str | None = None
        if magic[:2] == b"\x1f\x8b":
            self.compression = "gzip"
        elif magic == b"\x28\xb5\x2f\xfd":
            self.compression = "zstd"

    def batches(self) -> Iterator[tuple[pa.Table, npt.NDArray[np.int64]]]:
        if self.kind == "parquet":
            yield from self._parquet()
        else:
            yield from self._csv()

    def _parquet(self) -> Iterator[tuple[pa.Table, npt.NDArray[np.int64]]]:
        try:
            f = pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as e:
            raise BillError(f"{self.path}: not a readable Parquet file: {e}") from e
        _check_columns(self.name, f.schema_arrow.names)
        row = 1
        for b in f.iter_batches(batch_size=BATCH_ROWS):
            n = b.num_rows
            yield pa.Table.from_batches([b]), np.arange(row, row + n, dtype=np.int64)
            row += n

    def _stream(self) -> pa.NativeFile:
        compression: Any = self.compression
        return pa.input_stream(str(self.path), compression=compression)

    def _header(self) -> list[str]:
        try:
            with self._stream() as s:
                head = s.read(1 << 20)
        except (pa.ArrowException, OSError) as e:
            raise BillError(f"{self.path}: cannot read the bill: {e}") from e
        text = head.decode("utf-8-sig", errors="replace")
        first = next(csv.reader(io.StringIO(text)), None)
        if not first:
            raise BillError(f"{self.path}: empty file, no header row")
        if len(set(first)) != len(first):
            dup = sorted({c for c in first if first.count(c) > 1})
            raise BillError(f"{self.path}: duplicate column names {dup}")
        _check_columns(self.name, first)
        return first

    def _csv(self) -> Iterator[tuple[pa.Table, npt.NDArray[np.int64]]]:
        names = self._header()
        skipped: list[int] = []  # data row numbers of rows with a wrong field count

        first_error: list[str] = []

        def invalid(row: pcsv.InvalidRow) -> Literal["skip", "error"]:
            # `number` counts rows from 1 = the header: the data row number is one less.
            number = int(row.number) - 1 if row.number is not None else -1
            reason = f"{row.actual_columns} fields, the header has {row.expected_columns}"
            if not self.reject_bad_rows:
                first_error.append(f"{self.path}: row {number}: {reason}: {row.text[:200]!r}")
                return "error"
            skipped.append(number)
            self.rejected.append(RejectedRow(self.name, number, None, reason))
            return "skip"

        read = pcsv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES)
        parse = pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid)
        convert = pcsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            null_values=NULL_TEXT,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        next_row = 1
        try:
            stream: Any = self._stream()
            reader = pcsv.open_csv(
                stream, read_options=read, parse_options=parse, convert_options=convert
            )
            for b in reader:
                n = b.num_rows
                numbers = _row_numbers(next_row, n, skipped)
                next_row = int(numbers[-1]) + 1 if n else next_row
                yield pa.Table.from_batches([b]), numbers
        except pa.ArrowInvalid as e:
            if first_error:
                raise BillError(first_error[0]) from None
            raise BillError(f"{self.path}: not a readable CSV bill: {e}") from e


def _row_numbers(first: int, n: int, skipped: list[int]) -> npt.NDArray[np.int64]:
    """The data row numbers of `n` rows read from row `first` on, leaving out `skipped`."""
    gaps = sorted(s for s in skipped if s >= first)
    span = np.arange(first, first + n + len(gaps), dtype=np.int64)
    if gaps:
        span = span[~np.isin(span, np.asarray(gaps, dtype=np.int64))]
    return span[:n]


def _check_columns(file: str, names: Sequence[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise BillError(
            f"{file}: not a FOCUS bill: missing required column(s) {', '.join(missing)} "
            f"(columns are found by name; FOCUS 1.0-1.2)"
        )


# --- rows --------------------------------------------------------------------------------------


class _Problems:
    """Bad rows of one batch: a mask and the first reason per row."""

    def __init__(self, n: int) -> None:
        self.bad: Mask = np.zeros(n, dtype=bool)
        self.reasons: dict[int, tuple[str, str]] = {}

    def add(self, mask: Mask, column: str, reason: Callable[[int], str]) -> None:
        for i in np.flatnonzero(mask & ~self.bad):
            self.reasons[int(i)] = (column, reason(int(i)))
        self.bad |= mask


def _normalize(
    raw: pa.Table, reader: _FileReader, numbers: npt.NDArray[np.int64], reject: bool
) -> tuple[pa.Table, list[RejectedRow]]:
    """Costs to MONEY, times to UTC, Tags checked, other columns as text; bad rows raise
    BillError or (with `reject`) are dropped and returned."""
    problems = _Problems(raw.num_rows)
    columns: dict[str, Array] = {}
    for name in raw.column_names:
        col = _one(raw.column(name))
        if name in MONEY_COLUMNS or name in OPTIONAL_MONEY_COLUMNS:
            columns[name] = _money(col, name, problems, required=name in MONEY_COLUMNS)
        elif name in TIME_COLUMNS or name in OPTIONAL_TIME_COLUMNS:
            columns[name] = _time(col, name, problems, required=name in TIME_COLUMNS)
        else:
            columns[name] = _text(col)
    for name in ("ChargeCategory", "BillingCurrency"):
        _required(columns[name], name, problems)
    _tags(columns["Tags"], problems)
    start, end = columns["ChargePeriodStart"], columns["ChargePeriodEnd"]
    ok = _np_bool(pc.fill_null(pc.greater(end, start), True))
    problems.add(~ok, "ChargePeriodEnd", lambda i: "not after ChargePeriodStart")
    file = reader.name
    # The file's name, not its path: the same bill allocated from elsewhere gives equal rows.
    columns[ROW_FILE] = pa.array([reader.path.name] * raw.num_rows, pa.string())
    columns[ROW_NUMBER] = pa.array(numbers, pa.int64())
    table = pa.table(columns)
    rejected = [
        RejectedRow(file, int(numbers[i]), c, reason) for i, (c, reason) in problems.reasons.items()
    ]
    if rejected and not reject:
        raise BillError(str(min(rejected, key=lambda r: r.row)))
    if problems.bad.any():
        table = table.filter(pa.array(~problems.bad))
    return table, rejected


def _one(col: pa.ChunkedArray[Any]) -> Array:
    out: Any = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return cast("Array", out)


def _np_bool(arr: Any) -> Mask:
    a = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    return np.asarray(a.to_numpy(zero_copy_only=False), dtype=bool)


def _required(col: Array, name: str, problems: _Problems) -> None:
    problems.add(_np_bool(col.is_null()), name, lambda i: "empty (NULL)")


def _text(col: Array) -> Array:
    """Any column as text: strings as they are; numbers and times through Arrow's cast;
    nested values (a Parquet map of Tags) as JSON."""
    kind = col.type
    if pa.types.is_string(kind):
        return col
    if pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        return col.cast(pa.string())
    if pa.types.is_nested(kind):
        out = []
        for v in col.to_pylist():
            out.append(None if v is None else json.dumps(_plain_json(v), ensure_ascii=False))
        return pa.array(out, pa.string())
    try:
        return col.cast(pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())


def _plain_json(v: Any) -> Any:
    """A Parquet map (list of key/value pairs) as a JSON object."""
    if isinstance(v, list) and all(isinstance(x, tuple) and len(x) == 2 for x in v):
        return {str(k): _plain_json(x) for k, x in v}
    if isinstance(v, dict):
        return {str(k): _plain_json(x) for k, x in v.items()}
    return v


def _cast_each(col: Array, to: pa.DataType) -> tuple[Array, Mask]:
    """`col` cast to `to`, and the mask of values that would not cast (made null)."""
    try:
        return col.cast(to), np.zeros(len(col), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values: list[Any] = []
    bad = np.zeros(len(col), dtype=bool)
    for i in range(len(col)):
        try:
            values.append(col.slice(i, 1).cast(to)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values.append(None)
            bad[i] = True
    return pa.array(values, to), bad


def _money(col: Array, name: str, problems: _Problems, *, required: bool) -> Array:
    kind = col.type
    if pa.types.is_floating(kind):  # through the shortest text, never the binary value
        col = col.cast(pa.string())
    elif not (pa.types.is_string(kind) or pa.types.is_decimal(kind) or pa.types.is_integer(kind)):
        col = _text(col)
    if pa.types.is_string(col.type):
        col = pc.utf8_trim_whitespace(col)
    out, bad = _cast_each(col, MONEY)
    text = col.cast(pa.string()) if bad.any() else None

    def why(i: int) -> str:
        v = text[i].as_py() if text is not None else None
        return f"not a decimal number with at most {SCALE} decimal places: {v!r}"

    problems.add(bad & _np_bool(col.is_valid()), name, why)
    if required:
        problems.add(_np_bool(col.is_null()), name, lambda i: "empty (NULL)")
    return out


def _time(col: Array, name: str, problems: _Problems, *, required: bool) -> Array:
    kind = col.type
    if pa.types.is_timestamp(kind):
        out = col if kind.tz is not None else pc.assume_timezone(col, "UTC")
        return out.cast(TIME)
    if pa.types.is_date(kind):
        return col.cast(pa.timestamp("ms")).cast(pa.timestamp("ms", tz="UTC"))
    text = pc.utf8_trim_whitespace(_text(col))
    zoned = _np_bool(pc.fill_null(pc.match_substring_regex(text, _ISO_ZONE), False))
    naive_text = pc.if_else(pa.array(zoned), pa.scalar(None, pa.string()), text)
    zoned_text = pc.if_else(pa.array(zoned), text, pa.scalar(None, pa.string()))
    # FOCUS times are UTC; a time without an offset (the 1.0 sample's "2024-09-18 22:00:00")
    # is read as UTC.
    naive, bad1 = _cast_each(naive_text, pa.timestamp("ms"))
    aware, bad2 = _cast_each(zoned_text, TIME)
    out = pc.if_else(pa.array(zoned), aware, pc.assume_timezone(naive, "UTC").cast(TIME))
    bad = (bad1 | bad2) & _np_bool(text.is_valid())
    problems.add(bad, name, lambda i: f"not a timestamp: {text[i].as_py()!r}")
    if required:
        problems.add(_np_bool(text.is_null()), name, lambda i: "empty (NULL)")
    return cast("Array", out)


def _tags(col: Array, problems: _Problems) -> None:
    """Tags must be a JSON object (or null). Each distinct text is parsed once."""
    uniq = pc.unique(col)
    bad_values = []
    for v in uniq.to_pylist():
        if v is None:
            continue
        try:
            ok = isinstance(json.loads(v), dict)
        except ValueError:
            ok = False
        if not ok:
            bad_values.append(v)
    if bad_values:
        mask = _np_bool(pc.fill_null(pc.is_in(col, pa.array(bad_values, pa.string())), False))
        problems.add(mask, "Tags", lambda i: f"not a JSON object: {col[i].as_py()[:100]!r}")


# --- totals and the kept table ------------------------------------------------------------------


def _totals(batch: pa.Table, classes: npt.NDArray[np.int8]) -> pa.Table:
    t = pa.table(
        {
            "BillingCurrency": batch.column("BillingCurrency"),
            "class": pa.array(classes, pa.int8()),
            **{c: batch.column(c) for c in MONEY_COLUMNS},
        }
    )
    aggs: list[Any] = [(c, "sum") for c in MONEY_COLUMNS] + [([], "count_all")]
    return t.group_by(["BillingCurrency", "class"], use_threads=False).aggregate(aggs)


def _sum_totals(parts: list[pa.Table]) -> pa.Table:
    if not parts:
        fields: list[Any] = [("BillingCurrency", pa.string()), ("class", pa.int8())]
        fields += [("rows", pa.int64())] + [(c, MONEY) for c in MONEY_COLUMNS]
        schema = pa.schema(fields)
        return schema.empty_table()
    t = pa.concat_tables(parts)
    aggs: list[Any] = [(f"{c}_sum", "sum") for c in MONEY_COLUMNS] + [("count_all", "sum")]
    s = t.group_by(["BillingCurrency", "class"], use_threads=False).aggregate(aggs)
    out = {"BillingCurrency": s["BillingCurrency"], "class": s["class"], "rows": s["count_all_sum"]}
    out |= {c: s[f"{c}_sum_sum"].cast(MONEY) for c in MONEY_COLUMNS}
    return pa.table(out).sort_by([("BillingCurrency", "ascending"), ("class", "ascending")])


def _concat(parts: list[pa.Table], columns: list[str]) -> pa.Table:
    """The kept rows of every file in one table: the union of the bills' columns in order of
    first appearance, then x_BillFile and x_BillRowNumber; missing columns are null."""
    order = [*columns, ROW_FILE, ROW_NUMBER]
    if not parts:
        return pa.table({c: pa.array([], _kind(c)) for c in order})
    t = pa.concat_tables(parts, promote_options="default")
    for c in order:
        if c not in t.column_names:
            kind: Any = _kind(c)
            nulls: Any = pa.nulls(t.num_rows, kind)
            t = t.append_column(c, nulls)
    return t.select(order)


def _kind(column: str) -> pa.DataType:
    if column in MONEY_COLUMNS or column in OPTIONAL_MONEY_COLUMNS:
        return MONEY
    if column in TIME_COLUMNS or column in OPTIONAL_TIME_COLUMNS:
        return TIME
    if column == ROW_NUMBER:
        return pa.int64()
    return pa.string()
