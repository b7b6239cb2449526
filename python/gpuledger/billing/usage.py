"""GPU-seconds per charge period and pod: cells summed into the periods they lie in, MIG
instances weighted by their profile's compute share, time-sliced or overlapping rows capped
at what the GPU can give, and the node's GPU-seconds (GPUs seen x period length)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as _compute

from gpuledger.billing.grid import Grid, cell_resource
from gpuledger.billing.telemetry import split_uuid

# pyarrow-stubs type many compute functions too narrowly for Arrow's own behaviour (a
# ChunkedArray where an Array is listed, string scalars): the calls are typed Any here and
# checked by the tests instead.
pc: Any = _compute

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy.typing as npt

    Floats: TypeAlias = npt.NDArray[np.float64]
    Ints: TypeAlias = npt.NDArray[np.int64]

__all__ = ["PeriodUsage", "period_usage"]


@dataclass(frozen=True)
class PeriodUsage:
    """Per distinct charge period (arrays indexed by period) and its pods (`pods` rows)."""

    pods: pa.Table
    """period, namespace, pod, team, model_name, hostname, held_s, busy_s (pod != "")."""
    gpus: Ints
    capacity_s: Floats
    unallocated_held_s: Floats
    unallocated_busy_s: Floats
    monitored: npt.NDArray[np.bool_]


def _group_sum(ids: Ints, values: Floats, size: int) -> Floats:
    return np.bincount(ids, weights=values, minlength=size).astype(np.float64)


def _cap(group_ids: Ints, held: Floats, busy: Floats, cap_of: Callable[[Ints], Floats]) -> None:
    """Scales held and busy (in place) where a group's held GPU-seconds exceed
    `cap_of(the group ids)`: time-sliced pods or duplicated readings on one GPU."""
    uniq, inverse = np.unique(group_ids, return_inverse=True)
    inverse = inverse.reshape(-1)
    total = _group_sum(inverse, held, len(uniq))
    limit = cap_of(uniq)
    over = total > limit
    if not over.any():
        return
    factor = np.where(over, limit / np.where(total > 0, total, 1.0), 1.0)
    f = factor[inverse]
    held *= f
    busy *= f


def period_usage(
    cells: pa.Table,
    grid: Grid,
    share_of: Mapping[str, float],
) -> PeriodUsage:
    """Sums `cells` (cell, gpu_uuid, namespace, pod, hostname, team, model_name, covered_s,
    busy_gpu_s) into the grid's periods. `share_of` gives the GPU share of MIG instances
    (gpu_uuid -> share); other GPUs count whole."""
    n_periods = grid.periods
    rows = _in_periods(cells, grid)
    period = np.asarray(rows["period"].to_numpy(), dtype=np.int64)
    period_s = (grid.period_end - grid.period_start) / 1000.0
    gpu_codes = pc.dictionary_encode(rows["gpu_uuid"]).combine_chunks()
    names = gpu_codes.dictionary
    code = np.asarray(gpu_codes.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    physical, _ = split_uuid(names)
    share = np.array([share_of.get(u, 1.0) for u in names.to_pylist()], dtype=np.float64)
    phys_uniq, phys_code = np.unique(physical.astype(str), return_inverse=True)
    phys_code = phys_code.reshape(-1)
    covered = np.asarray(rows["covered_s"].to_numpy(), dtype=np.float64)
    busy_raw = np.asarray(rows["busy_gpu_s"].to_numpy(), dtype=np.float64)
    held = covered * share[code]
    busy = np.minimum(busy_raw, covered) * share[code]
    n_gpu = max(len(names), 1)
    # A GPU (or MIG instance) gives at most its share of the period...
    inst = period * n_gpu + code
    _cap(inst, held, busy, lambda u: period_s[u // n_gpu] * share[u % n_gpu])
    # ... and a physical GPU at most the period, whatever its instances' profiles say.
    n_phys = max(len(phys_uniq), 1)
    phys = period * n_phys + phys_code[code]
    if bool((share != 1.0).any()):  # whole GPUs were capped above already
        _cap(phys, held, busy, lambda u: period_s[u // n_phys])
    # GPUs per node: the physical GPUs its telemetry ever showed (in any charge period).
    res = cell_resource(grid, np.asarray(cells["cell"].to_numpy(), dtype=np.int64))
    all_codes = pc.dictionary_encode(cells["gpu_uuid"]).combine_chunks()
    all_phys, _ = split_uuid(all_codes.dictionary)
    pu, pinv = np.unique(all_phys.astype(str), return_inverse=True)
    cell_phys = pinv.reshape(-1)[
        np.asarray(all_codes.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    ]
    pairs = np.unique(res * max(len(pu), 1) + cell_phys)
    gpus_of_res = np.bincount(
        pairs // max(len(pu), 1), minlength=int(grid.period_resource.max(initial=-1)) + 1
    )
    gpus = gpus_of_res[grid.period_resource] if n_periods else np.zeros(0, dtype=np.int64)
    pod = rows["pod"]
    allocated = np.asarray(pc.not_equal(pod, "").to_numpy(), dtype=bool)
    unalloc_held = _group_sum(period[~allocated], held[~allocated], n_periods)
    unalloc_busy = _group_sum(period[~allocated], busy[~allocated], n_periods)
    monitored = np.bincount(period, minlength=n_periods) > 0
    pods = pa.table(
        {
            "period": rows["period"],
            "namespace": rows["namespace"],
            "pod": pod,
            "team": rows["team"],
            "model_name": rows["model_name"],
            "hostname": rows["hostname"],
            "held_s": pa.array(held),
            "busy_s": pa.array(busy),
        }
    ).filter(pa.array(allocated))
    grouped = pods.group_by(["period", "namespace", "pod"], use_threads=False).aggregate(
        [
            ("held_s", "sum"),
            ("busy_s", "sum"),
            ("team", "first"),
            ("model_name", "first"),
            ("hostname", "first"),
        ]
    )
    grouped = grouped.rename_columns(
        [c.removesuffix("_sum").removesuffix("_first") for c in grouped.column_names]
    ).sort_by([("period", "ascending"), ("namespace", "ascending"), ("pod", "ascending")])
    return PeriodUsage(
        grouped,
        np.asarray(gpus, dtype=np.int64),
        np.asarray(gpus, dtype=np.float64) * period_s,
        unalloc_held,
        unalloc_busy,
        monitored,
    )


def _in_periods(cells: pa.Table, grid: Grid) -> pa.Table:
    """`cells` with the period each lies in (a cell in several overlapping periods is
    repeated once per period; cells in none are gone)."""
    cell = np.asarray(cells["cell"].to_numpy(), dtype=np.int64)
    counts = np.bincount(grid.pair_cell, minlength=len(grid.keys) + 1)
    if counts.max(initial=0) <= 1:
        period_of_cell = np.full(len(grid.keys) + 1, -1, dtype=np.int64)
        period_of_cell[grid.pair_cell] = grid.pair_period
        period = period_of_cell[cell]
        keep = period >= 0
        out = cells.filter(pa.array(keep)) if not keep.all() else cells
        return out.append_column("period", pa.array(period[keep]))
    pairs = pa.table({"cell": pa.array(grid.pair_cell), "period": pa.array(grid.pair_period)})
    return cells.join(pairs, keys="cell", join_type="inner")
