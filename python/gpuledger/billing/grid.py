"""The time grid of the bill: per resource, every charge period boundary. Telemetry windows
are cut at the boundaries into cells (one cell lies in one or more charge periods, or in
none: then it is priced at list), and summed per (cell, GPU, pod) in Arrow, never per row in
Python."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy.typing as npt

    Ints: TypeAlias = npt.NDArray[np.int64]
    Bools: TypeAlias = npt.NDArray[np.bool_]

__all__ = ["HOUR_MS", "Grid", "Pieces", "build_grid", "cut_windows"]

SHIFT = 42  # keys are resource << SHIFT | time in ms (times up to year 2109)
TIME_MASK = (1 << SHIFT) - 1
MAX_RESOURCES = 1 << 20
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Grid:
    """Boundaries of every resource's charge periods, the distinct periods and which cells
    each covers. Cell j is [keys[j-1], keys[j]) when both keys are of one resource."""

    keys: Ints
    covered: Bools
    period_resource: Ints
    period_start: Ints
    period_end: Ints
    pair_period: Ints
    pair_cell: Ints

    @property
    def periods(self) -> int:
        return len(self.period_start)


def build_grid(resource: Ints, start_ms: Ints, end_ms: Ints) -> tuple[Grid, Ints]:
    """The grid of bill rows (resource index, charge period start/end in ms), and the
    distinct period of each row."""
    if len(resource) and int(resource.max()) >= MAX_RESOURCES:
        raise ValueError(f"more than {MAX_RESOURCES} resources")
    if len(resource):
        stacked = np.stack([resource, start_ms, end_ms], axis=1)
        uniq, inverse = np.unique(stacked, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
    else:
        uniq, inverse = np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64)
    p_res, p_start, p_end = (np.ascontiguousarray(uniq[:, i]) for i in range(3))
    base = p_res << SHIFT
    keys = np.unique(np.concatenate([base | p_start, base | p_end]))
    lo = np.searchsorted(keys, base | p_start)
    hi = np.searchsorted(keys, base | p_end)
    diff = np.zeros(len(keys) + 1, dtype=np.int64)
    np.add.at(diff, lo + 1, 1)
    np.add.at(diff, hi + 1, -1)
    covered = np.cumsum(diff)[: len(keys)] > 0
    counts = hi - lo
    pair_period = np.repeat(np.arange(len(p_start), dtype=np.int64), counts)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    pair_cell = np.repeat(lo + 1, counts) + (np.arange(len(pair_period)) - offsets)
    grid = Grid(keys, covered, p_res, p_start, p_end, pair_period, pair_cell.astype(np.int64))
    return grid, inverse.astype(np.int64)


@dataclass(frozen=True)
class Pieces:
    """Windows cut at the grid: row of the window, cell (-1: in no charge period) and the
    piece's [start, end) in ms."""

    row: Ints
    cell: Ints
    start: Ints
    end: Ints


def cut_windows(grid: Grid, resource: Ints, start: Ints, end: Ints) -> Pieces:
    """Cuts each window [start, end) of a resource (-1: not mapped) at the grid's boundaries.
    A window inside one cell stays whole (the usual case: windows of a minute, periods of an
    hour or a day)."""
    keys = grid.keys
    n = len(start)
    rows = np.arange(n, dtype=np.int64)
    mapped = resource >= 0
    out_row = [rows[~mapped]]
    out_cell = [np.full(int((~mapped).sum()), -1, dtype=np.int64)]
    out_start = [start[~mapped]]
    out_end = [end[~mapped]]
    cur_row, cur_res = rows[mapped], resource[mapped]
    cur_s, cur_e = start[mapped], end[mapped]
    if len(keys) == 0:
        cur_cell = np.full(len(cur_row), -1, dtype=np.int64)
        out_row.append(cur_row)
        out_cell.append(cur_cell)
        out_start.append(cur_s)
        out_end.append(cur_e)
        cur_row = cur_row[:0]
    last = len(keys) - 1
    while len(cur_row):
        base = cur_res << SHIFT
        j = np.searchsorted(keys, base | cur_s, side="right")
        nxt = keys[np.minimum(j, last)]
        prv = keys[np.maximum(j - 1, 0)]
        has_next = (j <= last) & ((nxt >> SHIFT) == cur_res)
        has_prev = (j > 0) & ((prv >> SHIFT) == cur_res)
        cell = np.where(has_prev & has_next, j, -1)
        cell = np.where(cell >= 0, np.where(grid.covered[np.maximum(cell, 0)], cell, -1), -1)
        nxt_t = nxt & TIME_MASK
        cut = np.where(has_next & (nxt_t < cur_e), nxt_t, cur_e)
        out_row.append(cur_row)
        out_cell.append(cell)
        out_start.append(cur_s)
        out_end.append(cut)
        more = cut < cur_e
        cur_row, cur_res, cur_s, cur_e = cur_row[more], cur_res[more], cut[more], cur_e[more]
    return Pieces(
        np.concatenate(out_row),
        np.concatenate(out_cell),
        np.concatenate(out_start),
        np.concatenate(out_end),
    )


def cell_resource(grid: Grid, cells: Ints) -> Ints:
    return np.asarray(grid.keys[cells] >> SHIFT, dtype=np.int64)


def piece_table(windows: pa.Table, pieces: Pieces, columns: list[str], sums: list[str]) -> pa.Table:
    """The pieces with `columns` of their window, and `sums` scaled by the piece's share
    of the window."""
    n = windows.num_rows
    whole = len(pieces.row) == n and bool(np.all(pieces.row == np.arange(n)))
    start = np.asarray(windows["window_start"].cast(pa.int64()).to_numpy(), dtype=np.int64)
    end = np.asarray(windows["window_end"].cast(pa.int64()).to_numpy(), dtype=np.int64)
    out: dict[str, Any] = {}
    if whole:
        for c in columns:
            out[c] = windows[c]
        frac = (pieces.end - pieces.start) / (end - start)
    else:
        idx: Any = pa.array(pieces.row)
        for c in columns:
            out[c] = windows[c].take(idx)
        frac = (pieces.end - pieces.start) / (end - start)[pieces.row]
    exact = bool(np.all(frac == 1.0))
    for c in sums:
        v = np.asarray(windows[c].to_numpy(), dtype=np.float64)
        v = v if whole else v[pieces.row]
        out[c] = pa.array(v if exact else v * frac)
    out["cell"] = pa.array(pieces.cell)
    out["piece_start"] = pa.array(pieces.start)
    return pa.table(out)
