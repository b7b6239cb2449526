"""Reads `gpu_windows` from gpuledger output directories one UTC hour at a time (bounded
memory), keeps one tumbling window size, and combines the partial rows that several
instances wrote for one key with `gpuledger.combine` before anything is summed."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as _compute
import pyarrow.parquet as pq

from gpuledger.errors import BillingError
from gpuledger.output.combine import KEYS, combine_tables
from gpuledger.output.sink import list_files

# pyarrow-stubs type many compute functions too narrowly for Arrow's own behaviour (a
# ChunkedArray where an Array is listed, string scalars): the calls are typed Any here and
# checked by the tests instead.
pc: Any = _compute

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["WINDOW_COLUMNS", "TelemetryFiles", "find_files", "hours"]

TABLE = "gpu_windows"
WINDOW_COLUMNS = (
    "window_start",
    "window_end",
    "gpu_uuid",
    "namespace",
    "pod",
    "hostname",
    "model_name",
    "team",
    "covered_s",
    "busy_gpu_s",
    "cost_usd",
)
"""The gpu_windows columns allocation reads (docs/schema.md)."""
_PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")


@dataclass(frozen=True)
class TelemetryFiles:
    """The gpu_windows files of the input directories, by UTC hour partition."""

    by_hour: dict[str, list[Path]]
    window_ms: int
    """The one tumbling window length used (ms): the smallest present, or as asked."""
    labels: dict[str, list[str]]
    """Distinct values of the label columns asked for, over every file."""

    @property
    def files(self) -> int:
        return sum(len(v) for v in self.by_hour.values())


def find_files(
    dirs: Sequence[str | os.PathLike[str]],
    *,
    label_columns: Sequence[str] = ("hostname",),
    window_s: int | None = None,
) -> TelemetryFiles:
    """Lists the gpu_windows files of `dirs` and reads, cheaply, the window lengths present
    and the distinct values of `label_columns` (to map nodes to bill resources)."""
    by_hour: dict[str, list[Path]] = defaultdict(list)
    for d in dirs:
        if not Path(d).is_dir():
            raise FileNotFoundError(f"no output directory {d}")
        for f in list_files(d, TABLE):
            m = _PARTITION.search(f.parent.as_posix())
            key = f"{m.group(1)}T{m.group(2)}" if m else f.parent.as_posix()
            by_hour[key].append(f)
    lengths: set[int] = set()
    labels: dict[str, set[str]] = {c: set() for c in label_columns}
    for files in by_hour.values():
        for f in files:
            t = read_columns(f, ["window_start", "window_end", *label_columns])
            if t.num_rows == 0:
                continue
            length = pc.subtract(
                t["window_end"].cast(pa.int64()), t["window_start"].cast(pa.int64())
            )
            lengths.update(pc.unique(length).to_pylist())
            for c in label_columns:
                labels[c].update(v for v in pc.unique(t[c]).to_pylist() if v is not None)
    if window_s is not None:
        window_ms = window_s * 1000
        if lengths and window_ms not in lengths:
            have = ", ".join(str(x // 1000) for x in sorted(lengths))
            raise BillingError(f"no {window_s} s windows in gpu_windows (sizes present: {have} s)")
    else:
        window_ms = min(lengths) if lengths else 0
    return TelemetryFiles(
        dict(sorted(by_hour.items())), window_ms, {c: sorted(v) for c, v in labels.items()}
    )


def read_columns(path: Path, columns: Sequence[str]) -> pa.Table:
    """Some columns of one output file: Arrow IPC memory-mapped (no copy), or Parquet."""
    cols = list(dict.fromkeys(columns))
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path, columns=cols)
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
        return table.select(cols)
    except KeyError as e:
        raise BillingError(f"{path}: gpu_windows file without column {e}") from e
    except (pa.ArrowException, OSError) as e:
        raise BillingError(f"{path}: cannot read gpu_windows: {e}") from e


def _read_full(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def hours(files: TelemetryFiles, columns: Sequence[str]) -> Iterator[tuple[pa.Table, int]]:
    """For each UTC hour partition: its gpu_windows rows of the chosen window length (only
    epoch-aligned windows, so hopping windows of that length do not overlap), with partial
    rows of one key combined, as `columns`; and how many keys were combined."""
    cols = list(dict.fromkeys([*WINDOW_COLUMNS, *columns]))
    for paths in files.by_hour.values():
        parts = []
        for p in paths:
            t = _usable(read_columns(p, cols), files.window_ms)
            if t.num_rows:
                parts.append((p, t))
        if not parts:
            continue
        combined = 0
        if len(parts) > 1:
            parts, combined = _combine_partials(parts, cols, files.window_ms)
        table = pa.concat_tables([t for _, t in parts]) if len(parts) > 1 else parts[0][1]
        yield table, combined


def _usable(t: pa.Table, window_ms: int) -> pa.Table:
    start = _ms(t["window_start"])
    end = _ms(t["window_end"])
    ok = (end - start == window_ms) & (start % max(window_ms, 1) == 0)
    return t if ok.all() else t.filter(pa.array(ok))


def _ms(column: pa.ChunkedArray[Any]) -> npt.NDArray[np.int64]:
    return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)


def _combine_partials(
    parts: list[tuple[Path, pa.Table]], cols: list[str], window_ms: int
) -> tuple[list[tuple[Path, pa.Table]], int]:
    """Partial rows of one key can only be in different files (an engine emits a key once
    per batch) and share its window_start. Windows present in one file only are left as they
    are; the rows of windows in several files are checked by key, and keys with several rows
    are combined by gpuledger.combine (the whole rows, then cut back to `cols`)."""
    seen: dict[int, int] = defaultdict(int)
    for _, t in parts:
        starts = pc.unique(t["window_start"].cast(pa.int64())).to_numpy()
        for s in starts.tolist():
            seen[s] += 1
    shared = np.array([s for s, n in seen.items() if n > 1], dtype=np.int64)
    if not len(shared):
        return parts, 0
    shared_set = pa.array(shared)
    suspects = []
    for _, t in parts:
        m = pc.is_in(t["window_start"].cast(pa.int64()), value_set=shared_set)
        suspects.append(t.filter(m))
    keys = list(KEYS[TABLE])
    rows = pa.concat_tables(suspects)
    counts = rows.group_by(keys, use_threads=False).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts["count_all"], 1))
    if dup.num_rows == 0:
        return parts, 0
    # Keys with partial rows: combine them from the full rows of the files holding them.
    dup_keys = dup.select(keys)
    full = []
    kept = []
    marker = "__dup"
    dup_marked = dup_keys.append_column(marker, pa.array(np.ones(dup_keys.num_rows, dtype=bool)))
    for p, _ in parts:
        whole = _usable(_read_full(p), window_ms)
        joined = whole.join(dup_marked, keys=keys, join_type="left outer")
        is_dup = pc.fill_null(joined[marker], False)
        full.append(joined.filter(is_dup).drop_columns([marker]))
        kept.append((p, joined.filter(pc.invert(is_dup)).select(cols)))
    schema = full[0].schema
    partial_rows = pa.concat_tables([f.select(schema.names) for f in full])
    merged = combine_tables({TABLE: partial_rows})[TABLE].select(cols)
    return [*kept, (Path("<combined>"), merged)], dup.num_rows


def split_uuid(
    values: pa.Array[Any] | pa.ChunkedArray[Any],
) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """(the physical GPU of each gpu_uuid, whether it is a MIG instance `UUID/GPU_I_ID`)."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    parts = pc.split_pattern(arr, "/", max_splits=1)
    physical = pc.list_element(parts, 0)
    mig = pc.greater(pc.list_value_length(parts), 1)
    return (
        np.asarray(physical.to_numpy(zero_copy_only=False), dtype=object),
        np.asarray(mig.to_numpy(zero_copy_only=False), dtype=bool),
    )
