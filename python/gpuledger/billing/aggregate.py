"""Telemetry to cells, in Arrow: each hour of gpu_windows is cut at the bill's period
boundaries and summed per (cell, GPU, pod); windows outside every charge period are summed
per (node, UTC hour, pod) for list pricing. Python sees only the sums."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as _compute

from gpuledger.billing.grid import HOUR_MS, Grid, cut_windows, piece_table
from gpuledger.billing.telemetry import TelemetryFiles, hours

# pyarrow-stubs type many compute functions too narrowly for Arrow's own behaviour (a
# ChunkedArray where an Array is listed, string scalars): the calls are typed Any here and
# checked by the tests instead.
pc: Any = _compute

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["Telemetry", "aggregate_telemetry"]

_SUMS = ["covered_s", "busy_gpu_s", "cost_usd"]
CHUNK_ROWS = 1 << 16
"""Rows cut and held before one summing pass: an hour of 1,000 GPUs' minute windows, or
several hours of a small fleet (bounded memory; larger chunks measured no faster)."""
_CELL_KEYS = ["cell", "gpu_uuid", "namespace", "pod"]
_LIST_KEYS = ["hostname", "hour", "namespace", "pod"]
_FIRSTS = ["hostname", "team", "model_name"]


@dataclass(frozen=True)
class Telemetry:
    cells: pa.Table
    """cell, gpu_uuid, namespace, pod, covered_s, busy_gpu_s, cost_usd, hostname, team,
    model_name: GPU time inside charge periods."""
    unbilled: pa.Table
    """hostname, hour, namespace, pod, covered_s, busy_gpu_s, cost_usd, team, model_name:
    GPU time in no charge period of its node."""
    rows: int
    combined_keys: int


def aggregate_telemetry(
    files: TelemetryFiles,
    grid: Grid,
    node_column: str,
    node_values: Sequence[str],
    node_resource: npt.NDArray[np.int64],
) -> Telemetry:
    """Sums every hour of `files`. `node_values[i]` (values of `node_column`) is resource
    `node_resource[i]` (-1: not mapped)."""
    value_set = pa.array(list(node_values), pa.string())
    lookup = np.r_[node_resource, -1].astype(np.int64)
    cells: list[pa.Table] = []
    unbilled: list[pa.Table] = []
    pending: list[pa.Table] = []  # hours cut but not summed yet: one group_by per chunk
    pending_rows = 0
    rows = combined = 0
    extra = [node_column] if node_column not in ("hostname",) else []
    for table, n_combined in hours(files, extra):
        rows += table.num_rows
        combined += n_combined
        idx = pc.index_in(table[node_column], value_set=value_set)
        node = np.asarray(pc.fill_null(idx, len(node_values)).to_numpy(), dtype=np.int64)
        resource = lookup[node]
        start = np.asarray(table["window_start"].cast(pa.int64()).to_numpy(), dtype=np.int64)
        end = np.asarray(table["window_end"].cast(pa.int64()).to_numpy(), dtype=np.int64)
        pieces = cut_windows(grid, resource, start, end)
        columns = ["gpu_uuid", "namespace", "pod", "hostname", "team", "model_name"]
        t = piece_table(table, pieces, columns, _SUMS)
        billed = pieces.cell >= 0
        if not billed.all():
            rest = t.filter(pa.array(~billed))
            hour = (np.asarray(rest["piece_start"].to_numpy(), dtype=np.int64) // HOUR_MS) * HOUR_MS
            unbilled.append(_sum_list(rest.append_column("hour", pa.array(hour))))
            t = t.filter(pa.array(billed))
        if t.num_rows:
            pending.append(t.drop_columns(["piece_start"]))
            pending_rows += t.num_rows
        if pending_rows >= CHUNK_ROWS:
            cells.append(_sum_cells(pa.concat_tables(pending)))
            pending, pending_rows = [], 0
    if pending:
        cells.append(_sum_cells(pa.concat_tables(pending)))
    return Telemetry(_final(cells, _CELL_KEYS), _final(unbilled, _LIST_KEYS), rows, combined)


def _aggs() -> list[Any]:
    return [(c, "sum") for c in _SUMS] + [(c, "first") for c in _FIRSTS]


def _sum_cells(t: pa.Table) -> pa.Table:
    """Sums per (cell, GPU, namespace, pod). The three strings are encoded to small ints
    and packed with the cell into one int64 key: one integer hash instead of four keys."""
    cell = np.asarray(t["cell"].to_numpy(), dtype=np.int64)
    key = cell.copy()
    bound = int(cell.max(initial=0)) + 1
    for c in ("gpu_uuid", "namespace", "pod"):
        enc = pc.dictionary_encode(t[c]).combine_chunks()
        n = max(len(enc.dictionary), 1)
        bound *= n
        if bound >= 1 << 62:  # too many distinct values to pack: hash the four keys
            return _strip(t.group_by(_CELL_KEYS, use_threads=False).aggregate(_aggs()))
        key = key * n + np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    packed = pa.table(
        {
            "k": pa.array(key),
            "i": pa.array(np.arange(t.num_rows, dtype=np.int64)),
            **{c: t[c] for c in _SUMS},
        }
    )
    aggs = [(c, "sum") for c in _SUMS] + [("i", "min")]
    g = packed.group_by("k", use_threads=False).aggregate(aggs)  # type: ignore[arg-type]
    first = g["i_min"]
    out = {c: t[c].take(first) for c in _CELL_KEYS}
    out |= {c: g[f"{c}_sum"] for c in _SUMS}
    out |= {c: t[c].take(first) for c in _FIRSTS}
    return pa.table(out)


def _sum_list(t: pa.Table) -> pa.Table:
    aggs: list[Any] = [a for a in _aggs() if a[0] != "hostname"]
    return _strip(t.group_by(_LIST_KEYS, use_threads=False).aggregate(aggs))


def _strip(t: pa.Table) -> pa.Table:
    return t.rename_columns([c.removesuffix("_sum").removesuffix("_first") for c in t.column_names])


def _final(parts: list[pa.Table], keys: list[str]) -> pa.Table:
    """Sums of the hours' sums (a cell or hour can span several hour partitions)."""
    empty = {
        "cell": pa.int64(),
        "hour": pa.int64(),
        "gpu_uuid": pa.string(),
        "namespace": pa.string(),
        "pod": pa.string(),
        "hostname": pa.string(),
        "team": pa.string(),
        "model_name": pa.string(),
    }
    if not parts:
        names = [*keys, *_SUMS, *[f for f in _FIRSTS if f not in keys]]
        return pa.table({n: pa.array([], empty.get(n, pa.float64())) for n in names})
    t = pa.concat_tables(parts)
    aggs: list[Any] = [a for a in _aggs() if a[0] not in keys]
    out = _strip(t.group_by(keys, use_threads=False).aggregate(aggs))
    return out.sort_by([(k, "ascending") for k in keys])
