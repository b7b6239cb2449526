"""Aggregates `gpu_windows` hour by hour into small tables: per (GPU, team, model, bucket)
sums, the utilization histogram and the sample coverage histogram; then the headline sums,
idle cost by team over time, and the GPU x time utilization matrix of the heatmap."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from gpuledger.report.arrow_util import (
    CompositeKey,
    as_numpy,
    dense_sums,
    local_buckets,
    money_units,
    pc,
    sum_by,
    units_decimal_column,
    units_float_column,
    units_usd,
)

__all__ = ["COLUMNS", "LOW_COVERAGE", "GpuAccumulator", "GpuResult", "Heatmap"]

COLUMNS = (
    "window_start",
    "window_end",
    "gpu_uuid",
    "namespace",
    "pod",
    "team",
    "model_name",
    "allocated",
    "covered_s",
    "util_mean",
    "busy_gpu_s",
    "idle_gpu_s",
    "cost_usd",
    "idle_cost_usd",
    "unallocated_cost_usd",
)
LOW_COVERAGE = 0.9
"""A GPU window whose samples cover less than this share of it has low coverage."""
HIST_BINS = 20  # utilization histogram: 5 % bins
COVERAGE_BINS = 10  # coverage histogram: 10 % bins
HEATMAP_ROWS = 200  # at most this many GPUs in the heatmap: the busiest and idlest halves


@dataclass(frozen=True)
class Heatmap:
    """Utilization (0-1, NaN where no data) of `gpus` (rows) over `buckets_ms` (columns)."""

    gpus: list[str]
    teams: list[str]
    z: np.ndarray
    buckets_ms: np.ndarray
    others: int


@dataclass(frozen=True)
class GpuResult:
    cost: Decimal
    idle_cost: Decimal
    unallocated_cost: Decimal
    low_coverage_cost: Decimal
    busy_s: float
    covered_s: float
    windows: int
    low_coverage_windows: int
    gpus: int
    unallocated_gpus: int
    idle_by_team: pa.Table  # team, bucket (ms), idle_cost, cost (float USD)
    by_team: pa.Table  # team, cost, idle_cost (decimal), busy_s, covered_s
    by_model: pa.Table  # model_name, gpus, cost (decimal), covered_s
    util_hist: pa.Table  # bin (0..19), covered_s
    coverage_hist: pa.Table  # bin (0..9), windows
    heatmap: Heatmap


class GpuAccumulator:
    def __init__(self, bucket_s: int) -> None:
        self.bucket_s = bucket_s
        self._cells: list[pa.Table] = []  # gpu_uuid, bucket, busy_s, covered_s, model, team
        self._teams: list[pa.Table] = []  # team, bucket, idle_cost, cost
        self._models: list[pa.Table] = []  # model_name, cost, covered_s
        self._totals: list[dict[str, Any]] = []  # the hour's scalar sums
        self._hist: list[pa.Table] = []
        self._coverage: list[pa.Table] = []

    def add(self, t: pa.Table) -> None:
        """One hour of `gpu_windows` rows (COLUMNS). Grouped by one integer key per
        (GPU, bucket) and (team, bucket) (see CompositeKey): the hour's sums, not its rows,
        are kept. Money in exact integer units (money_units)."""
        start = pc.cast(t.column("window_start"), pa.int64())
        window_s = pc.divide(
            pc.cast(pc.subtract(pc.cast(t.column("window_end"), pa.int64()), start), pa.float64()),
            1000.0,
        )
        covered = t.column("covered_s")
        share = pc.divide(covered, window_s)
        low = pc.less(share, LOW_COVERAGE)
        cost = money_units(t.column("cost_usd"))
        idle_cost = money_units(t.column("idle_cost_usd"))
        index, n_buckets, first_ms = local_buckets(start, self.bucket_s)
        step = self.bucket_s * 1000
        no_bucket = pc.multiply(index, 0)

        by_gpu = CompositeKey([t.column("gpu_uuid")], index, n_buckets)
        model = CompositeKey([t.column("model_name")], no_bucket, 1)
        team = CompositeKey([t.column("team")], no_bucket, 1)
        keys, v = dense_sums(
            by_gpu.key,
            by_gpu.size,
            {"busy_s": t.column("busy_gpu_s"), "covered_s": covered},
            {
                "model": model.key,
                "team": team.key,
                "unallocated": pc.invert(t.column("allocated")),
            },
        )
        (gpu,), bucket = by_gpu.decode(pa.array(keys))
        self._cells.append(
            pa.table(
                {
                    "gpu_uuid": gpu,
                    "bucket": pc.add(pc.multiply(bucket, step), first_ms),
                    "busy_s": v["busy_s"],
                    "covered_s": v["covered_s"],
                    "model_name": pc.take(model.dictionaries[0], pa.array(v["model"])),
                    "team": pc.take(team.dictionaries[0], pa.array(v["team"])),
                    "unallocated": v["unallocated"],
                }
            )
        )
        # (team, bucket) reuses the team codes: key = team code * buckets + bucket index.
        team_key = pc.add(pc.multiply(team.key, n_buckets), index)
        keys, v = dense_sums(
            team_key, team.size * n_buckets, {"idle_cost": idle_cost, "cost": cost}
        )
        self._teams.append(
            pa.table(
                {
                    "team": pc.take(team.dictionaries[0], pa.array(keys // n_buckets)),
                    "bucket": (keys % n_buckets) * step + first_ms,
                    "idle_cost": v["idle_cost"],
                    "cost": v["cost"],
                }
            )
        )
        keys, v = dense_sums(model.key, model.size, {"cost": cost, "covered_s": covered})
        self._models.append(
            pa.table(
                {
                    "model_name": pc.take(model.dictionaries[0], pa.array(keys)),
                    "cost": v["cost"],
                    "covered_s": v["covered_s"],
                }
            )
        )
        zero = pa.scalar(0, pa.int64())
        self._totals.append(
            {
                "cost": pc.sum(cost),
                "idle_cost": pc.sum(idle_cost),
                "unalloc_cost": pc.sum(money_units(t.column("unallocated_cost_usd"))),
                "low_cost": pc.sum(pc.if_else(low, cost, zero)),
                "busy_s": pc.sum(t.column("busy_gpu_s")),
                "covered_s": pc.sum(covered),
                "windows": pa.scalar(t.num_rows, pa.int64()),
                "low": pc.sum(pc.cast(low, pa.int64())),
            }
        )
        util = t.column("util_mean")
        bins = pc.min_element_wise(
            pc.cast(pc.floor(pc.multiply(util, HIST_BINS)), pa.int64()), HIST_BINS - 1
        )
        valid = pc.is_valid(bins)
        keys, v = dense_sums(
            pc.filter(bins, valid), HIST_BINS, {"covered_s": pc.filter(covered, valid)}
        )
        self._hist.append(pa.table({"bin": keys, "covered_s": v["covered_s"]}))
        cov_bins = pc.min_element_wise(
            pc.cast(pc.floor(pc.multiply(share, COVERAGE_BINS)), pa.int64()), COVERAGE_BINS - 1
        )
        counts = np.bincount(as_numpy(cov_bins), minlength=COVERAGE_BINS)
        self._coverage.append(
            pa.table({"bin": np.arange(COVERAGE_BINS), "windows": counts.astype(np.int64)})
        )

    def empty(self) -> bool:
        return not self._cells

    def finish(self, first_bucket_ms: int, n_buckets: int) -> GpuResult:
        cells = pa.concat_tables(self._cells)
        totals: dict[str, Any] = {
            k: sum(h[k].as_py() or 0 for h in self._totals) for k in self._totals[0]
        }
        teams = pa.concat_tables(self._teams)
        by_team_time = sum_by(teams, ["team", "bucket"], ["idle_cost", "cost"])
        idle_by_team = pa.table(
            {
                "team": by_team_time.column("team"),
                "bucket": by_team_time.column("bucket"),
                "idle_cost": units_float_column(by_team_time.column("idle_cost")),
                "cost": units_float_column(by_team_time.column("cost")),
            }
        ).sort_by([("team", "ascending"), ("bucket", "ascending")])
        team_busy = (
            cells.group_by(["team"], use_threads=False)
            .aggregate([("busy_s", "sum"), ("covered_s", "sum")])
            .rename_columns(["team", "busy_s", "covered_s"])
        )
        by_team = sum_by(teams, ["team"], ["cost", "idle_cost"]).join(team_busy, keys=["team"])
        by_team = _units_to_decimal(by_team, ["cost", "idle_cost"])
        models = sum_by(pa.concat_tables(self._models), ["model_name"], ["cost", "covered_s"])
        models = _units_to_decimal(models, ["cost"])
        gpus_per_model = (
            cells.group_by(["model_name"], use_threads=False)
            .aggregate([("gpu_uuid", "count_distinct")])
            .rename_columns(["model_name", "gpus"])
        )
        by_model = models.join(gpus_per_model, keys=["model_name"])
        unalloc = cells.filter(pc.greater(cells.column("unallocated"), 0))
        return GpuResult(
            cost=units_usd(totals["cost"]),
            idle_cost=units_usd(totals["idle_cost"]),
            unallocated_cost=units_usd(totals["unalloc_cost"]),
            low_coverage_cost=units_usd(totals["low_cost"]),
            busy_s=float(totals["busy_s"]),
            covered_s=float(totals["covered_s"]),
            windows=int(totals["windows"]),
            low_coverage_windows=int(totals["low"]),
            gpus=len(pc.unique(cells.column("gpu_uuid"))),
            unallocated_gpus=len(pc.unique(unalloc.column("gpu_uuid"))),
            idle_by_team=idle_by_team,
            by_team=by_team,
            by_model=by_model,
            util_hist=sum_by(pa.concat_tables(self._hist), ["bin"], ["covered_s"]).sort_by("bin"),
            coverage_hist=sum_by(pa.concat_tables(self._coverage), ["bin"], ["windows"]).sort_by(
                "bin"
            ),
            heatmap=_heatmap(cells, first_bucket_ms, self.bucket_s * 1000, n_buckets),
        )


def _units_to_decimal(table: pa.Table, columns: list[str]) -> pa.Table:
    """Money columns of a small aggregated table from integer units to exact decimals."""
    for name in columns:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, units_decimal_column(table.column(name)))
    return table


def _heatmap(cells: pa.Table, first_ms: int, step_ms: int, n_buckets: int) -> Heatmap:
    """The busiest and idlest GPUs (HEATMAP_ROWS at most, busiest first) and one row
    averaging the others, by bucket."""
    per_gpu = (
        cells.group_by(["gpu_uuid"], use_threads=False)
        .aggregate([("busy_s", "sum"), ("covered_s", "sum"), ("team", "max")])
        .rename_columns(["gpu_uuid", "busy_s", "covered_s", "team"])
    )
    util = pc.divide(
        per_gpu.column("busy_s"), pc.max_element_wise(per_gpu.column("covered_s"), 1e-9)
    )
    per_gpu = per_gpu.append_column("util", util).sort_by(
        [("util", "descending"), ("gpu_uuid", "ascending")]
    )
    n = per_gpu.num_rows
    if n > HEATMAP_ROWS:
        half = HEATMAP_ROWS // 2
        shown = pa.concat_tables([per_gpu.slice(0, half), per_gpu.slice(n - half)])
    else:
        shown = per_gpu
    gpus = shown.column("gpu_uuid")
    row = pc.index_in(cells.column("gpu_uuid"), value_set=gpus)
    col = pc.divide(pc.subtract(cells.column("bucket"), first_ms), step_ms)
    rows = shown.num_rows + (1 if n > shown.num_rows else 0)
    busy = np.zeros((rows, n_buckets))
    covered = np.zeros((rows, n_buckets))
    r = row.to_numpy(zero_copy_only=False)
    r = np.where(np.isnan(r.astype(np.float64)), rows - 1, r).astype(np.int64)
    c = np.clip(col.to_numpy(zero_copy_only=False).astype(np.int64), 0, n_buckets - 1)
    np.add.at(busy, (r, c), cells.column("busy_s").to_numpy(zero_copy_only=False))
    np.add.at(covered, (r, c), cells.column("covered_s").to_numpy(zero_copy_only=False))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(covered > 0, busy / covered, np.nan)
    teams = [str(x) for x in shown.column("team").to_pylist()]
    return Heatmap(
        gpus=[str(g) for g in gpus.to_pylist()],
        teams=teams,
        z=z,
        buckets_ms=first_ms + step_ms * np.arange(n_buckets, dtype=np.int64),
        others=n - shown.num_rows,
    )


def models_without_price(by_model: pa.Table, prices: Mapping[str, float]) -> list[str]:
    """GPU models priced at the default price (no `[prices]` entry of their own)."""
    return sorted(str(m) for m in by_model.column("model_name").to_pylist() if m not in prices)
