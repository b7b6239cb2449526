"""Aggregates `gpu_windows` hour by hour into small tables: per (GPU, team, model, bucket)
sums, the utilization histogram and the sample coverage histogram; then the headline sums,
idle cost by team over time, and the GPU x time utilization matrix of the heatmap."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pyarrow as pa

from gpuledger.report.arrow_util import bucket_ms, money, pc, scalar_decimal, scalar_float, sum_by

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
_SUMS = ("cost", "idle_cost", "unalloc_cost", "low_cost", "busy_s", "covered_s", "windows", "low")


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
        self._cells: list[pa.Table] = []
        self._hist: list[pa.Table] = []
        self._coverage: list[pa.Table] = []

    def add(self, t: pa.Table) -> None:
        """One hour of `gpu_windows` rows (COLUMNS)."""
        start = pc.cast(t.column("window_start"), pa.int64())
        window_s = pc.divide(
            pc.cast(pc.subtract(pc.cast(t.column("window_end"), pa.int64()), start), pa.float64()),
            1000.0,
        )
        covered = t.column("covered_s")
        share = pc.divide(covered, window_s)
        low = pc.less(share, LOW_COVERAGE)
        cost = money(t.column("cost_usd"))
        zero = pa.scalar(Decimal(0), cost.type)
        cells = pa.table(
            {
                "gpu_uuid": t.column("gpu_uuid"),
                "team": t.column("team"),
                "model_name": t.column("model_name"),
                "allocated": t.column("allocated"),
                "bucket": bucket_ms(t.column("window_start"), self.bucket_s),
                "cost": cost,
                "idle_cost": money(t.column("idle_cost_usd")),
                "unalloc_cost": money(t.column("unallocated_cost_usd")),
                "low_cost": pc.if_else(low, cost, zero),
                "busy_s": t.column("busy_gpu_s"),
                "covered_s": covered,
                "windows": pc.cast(pc.is_valid(start), pa.int64()),
                "low": pc.cast(low, pa.int64()),
            }
        )
        self._cells.append(
            sum_by(cells, ["gpu_uuid", "team", "model_name", "allocated", "bucket"], _SUMS)
        )
        util = t.column("util_mean")
        bins = pc.min_element_wise(
            pc.cast(pc.floor(pc.multiply(util, HIST_BINS)), pa.int64()), HIST_BINS - 1
        )
        hist = pa.table({"bin": bins, "covered_s": covered}).filter(pc.is_valid(bins))
        self._hist.append(sum_by(hist, ["bin"], ["covered_s"]))
        cov_bins = pc.min_element_wise(
            pc.cast(pc.floor(pc.multiply(share, COVERAGE_BINS)), pa.int64()), COVERAGE_BINS - 1
        )
        ones = pc.cast(pc.is_valid(start), pa.int64())
        self._coverage.append(
            sum_by(pa.table({"bin": cov_bins, "windows": ones}), ["bin"], ["windows"])
        )

    def empty(self) -> bool:
        return not self._cells

    def finish(self, first_bucket_ms: int, n_buckets: int) -> GpuResult:
        cells = pa.concat_tables(self._cells)
        cells = sum_by(cells, ["gpu_uuid", "team", "model_name", "allocated", "bucket"], _SUMS)
        totals = {c: pc.sum(cells.column(c)) for c in _SUMS}
        unalloc = cells.filter(pc.invert(cells.column("allocated")))
        by_team_time = sum_by(cells, ["team", "bucket"], ["idle_cost", "cost"])
        idle_by_team = pa.table(
            {
                "team": by_team_time.column("team"),
                "bucket": by_team_time.column("bucket"),
                "idle_cost": pc.cast(by_team_time.column("idle_cost"), pa.float64()),
                "cost": pc.cast(by_team_time.column("cost"), pa.float64()),
            }
        ).sort_by([("team", "ascending"), ("bucket", "ascending")])
        by_team = sum_by(cells, ["team"], ["cost", "idle_cost", "busy_s", "covered_s"])
        by_model = (
            cells.group_by(["model_name"], use_threads=False)
            .aggregate([("gpu_uuid", "count_distinct"), ("cost", "sum"), ("covered_s", "sum")])
            .rename_columns(["model_name", "gpus", "cost", "covered_s"])
        )
        return GpuResult(
            cost=scalar_decimal(totals["cost"]),
            idle_cost=scalar_decimal(totals["idle_cost"]),
            unallocated_cost=scalar_decimal(totals["unalloc_cost"]),
            low_coverage_cost=scalar_decimal(totals["low_cost"]),
            busy_s=scalar_float(totals["busy_s"]),
            covered_s=scalar_float(totals["covered_s"]),
            windows=int(scalar_float(totals["windows"])),
            low_coverage_windows=int(scalar_float(totals["low"])),
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
