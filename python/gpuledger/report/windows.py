"""The window tables (`gpu_windows`, `pool_windows`, `latency_windows`,
`service_cost_windows`) hour by hour: partial rows of several instances combined with
gpuledger.combine, one window size kept (the smallest, non-overlapping), rows outside the
period dropped. One hour at a time keeps memory bounded at any period length: a window's
rows all sit in the partition of its start, so every partial row of a key is in one hour."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from gpuledger.errors import CombineError, ReportError
from gpuledger.output.combine import KEYS, combine_tables
from gpuledger.report.arrow_util import CompositeKey, as_numpy, pc
from gpuledger.report.inputs import Inputs, expected_schemas
from gpuledger.report.period import Period, fmt_ms

__all__ = ["WINDOW_TABLES", "WindowStats", "window_hours"]

WINDOW_TABLES = ("gpu_windows", "pool_windows", "latency_windows", "service_cost_windows")


@dataclass
class WindowStats:
    """What reading the window tables found, for the data-quality section."""

    partial_rows: int = 0
    combined_rows: int = 0
    window_sizes_s: set[float] = field(default_factory=set)
    used_window_s: set[float] = field(default_factory=set)
    rows: dict[str, int] = field(default_factory=dict)


def window_hours(
    inputs: Inputs,
    columns: Mapping[str, Sequence[str]],
    period: Period,
    stats: WindowStats,
) -> Iterator[tuple[int, dict[str, pa.Table]]]:
    """(hour start ms, {table: its rows of that hour}) for every partition hour of the
    period; each table has the `columns` asked for (its key columns must be among them)."""
    schemas = expected_schemas()
    names = [n for n in columns if n in inputs.files]
    for hour in inputs.hours(names):
        if not period.overlaps_hour(hour):
            continue
        tables: dict[str, pa.Table] = {}
        for name in names:
            t = inputs.read_hour(name, hour, columns[name], schemas[name])
            if t is not None and t.num_rows:
                tables[name] = t
        # One writer (a replay, a single daemon, a combined directory) never writes two
        # rows of one key; several (the members of a consumer group, several directories)
        # may, and then the hour is combined if any key repeats.
        several = inputs.writers(hour, names) > 1
        if several and any(_has_partial_rows(t, KEYS[n]) for n, t in tables.items()):
            tables = _combined_hour(inputs, hour, names, columns, stats)
        out: dict[str, pa.Table] = {}
        for name, t in tables.items():
            kept = _one_window_size(t, stats)
            kept = _in_period(kept, period)
            if kept.num_rows:
                stats.rows[name] = stats.rows.get(name, 0) + kept.num_rows
                out[name] = kept
        if out:
            yield hour, out


def _has_partial_rows(table: pa.Table, keys: Sequence[str]) -> bool:
    """Whether a key has several rows: the key columns as one integer (CompositeKey), then
    numpy's sort-based unique; a hash group-by where the codes could overflow int64."""
    columns = [table.column(k) for k in keys]
    encoded = CompositeKey(columns, pc.multiply(_length_ms(table), 0), 1)
    if encoded.size >= 2**62:  # the codes could have overflowed
        distinct = table.select(list(keys)).group_by(list(keys), use_threads=False).aggregate([])
        return bool(distinct.num_rows < table.num_rows)
    codes = as_numpy(encoded.key)
    return bool(len(np.unique(codes)) < len(codes))


def _combined_hour(
    inputs: Inputs,
    hour: int,
    names: Sequence[str],
    columns: Mapping[str, Sequence[str]],
    stats: WindowStats,
) -> dict[str, pa.Table]:
    """The hour's tables read whole and combined (combine needs every column)."""
    schemas = expected_schemas()
    full: dict[str, pa.Table] = {}
    for name in names:
        t = inputs.read_hour(name, hour, schemas[name].names, schemas[name])
        if t is not None and t.num_rows:
            full[name] = t
    try:
        combined = combine_tables(full)
    except CombineError as e:
        raise ReportError(
            f"the partial rows of hour {fmt_ms(hour)} cannot be combined: {e}"
        ) from None
    before = sum(t.num_rows for t in full.values())
    after = sum(t.num_rows for t in combined.values())
    stats.partial_rows += before - after
    stats.combined_rows += after
    return {n: t.select(list(columns[n])) for n, t in combined.items() if t.num_rows}


def _length_ms(table: pa.Table) -> Any:
    start = pc.cast(table.column("window_start"), pa.int64())
    end = pc.cast(table.column("window_end"), pa.int64())
    return pc.subtract(end, start)


def _one_window_size(table: pa.Table, stats: WindowStats) -> pa.Table:
    """Rows of the smallest window size, non-overlapping (starts on a multiple of the
    size): several sizes (or hopping windows) would count a GPU-second more than once."""
    length = _length_ms(table)
    sizes = pc.unique(length).to_pylist()
    stats.window_sizes_s.update(s / 1000 for s in sizes if s is not None)
    smallest = min(s for s in sizes if s is not None)
    stats.used_window_s.add(smallest / 1000)
    start = pc.cast(table.column("window_start"), pa.int64())
    offset = pc.subtract(start, pc.multiply(pc.divide(start, smallest), smallest))
    keep = pc.and_(pc.equal(length, smallest), pc.equal(offset, 0))
    if pc.all(keep).as_py():
        return table
    return table.filter(keep)


def _in_period(table: pa.Table, period: Period) -> pa.Table:
    if period.since_ms is None and period.until_ms is None:
        return table
    start = pc.cast(table.column("window_start"), pa.int64())
    bounds = pc.min_max(start)
    lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
    after_since = period.since_ms is None or lo >= period.since_ms
    before_until = period.until_ms is None or hi < period.until_ms
    if after_since and before_until:
        return table  # the whole hour is in the period: no copy
    return period.filter(table, "window_start")
