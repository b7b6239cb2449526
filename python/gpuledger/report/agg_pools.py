"""Aggregates `pool_windows` hour by hour: per pool (team, GPU model) and bucket, the mean
capacity, mean P95 demand and the buffer's dollars; then per pool for the whole period."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa

from gpuledger.report.arrow_util import (
    CompositeKey,
    dense_sums,
    local_buckets,
    money_units,
    pc,
    scalar_decimal,
    sum_by,
    units_decimal_column,
)

__all__ = ["COLUMNS", "PoolAccumulator", "PoolResult"]

COLUMNS = (
    "window_start",
    "window_end",
    "team",
    "model_name",
    "gpu_s",
    "busy_gpu_s",
    "cost_usd",
    "provisioned_mean_gpus",
    "demand_p95_gpus",
    "buffer_gpus",
    "buffer_cost_usd",
)
_KEYS = ["team", "model_name", "bucket"]
_SUMS = ["capacity", "demand_p95", "buffer", "windows", "buffer_cost", "cost", "gpu_s", "busy_s"]


@dataclass(frozen=True)
class PoolResult:
    buffer_cost: Decimal
    over_time: pa.Table  # team, model_name, bucket, capacity, demand_p95, buffer (mean GPUs)
    totals: pa.Table  # team, model_name, buffer_cost, cost (decimal), capacity, demand_p95,
    # buffer (mean GPUs), utilization; sorted by buffer_cost descending


class PoolAccumulator:
    def __init__(self, bucket_s: int) -> None:
        self.bucket_s = bucket_s
        self._cells: list[pa.Table] = []

    def add(self, t: pa.Table) -> None:
        start = t.column("window_start")
        index, n_buckets, first_ms = local_buckets(start, self.bucket_s)
        key = CompositeKey([t.column("team"), t.column("model_name")], index, n_buckets)
        keys, v = dense_sums(
            key.key,
            key.size,
            {
                "capacity": t.column("provisioned_mean_gpus"),
                "demand_p95": t.column("demand_p95_gpus"),
                "buffer": pc.max_element_wise(t.column("buffer_gpus"), 0.0),
                "windows": pc.cast(pc.is_valid(start), pa.int64()),
                "buffer_cost": money_units(t.column("buffer_cost_usd")),
                "cost": money_units(t.column("cost_usd")),
                "gpu_s": t.column("gpu_s"),
                "busy_s": t.column("busy_gpu_s"),
            },
        )
        (team, model), bucket = key.decode(pa.array(keys))
        pool = pa.table(
            {
                "team": team,
                "model_name": model,
                "bucket": pc.add(pc.multiply(bucket, self.bucket_s * 1000), first_ms),
            }
        )
        for name in _SUMS:
            pool = pool.append_column(name, pa.array(v[name]))
        self._cells.append(pool)

    def empty(self) -> bool:
        return not self._cells

    def finish(self) -> PoolResult:
        cells = sum_by(pa.concat_tables(self._cells), _KEYS, _SUMS)
        n = pc.cast(cells.column("windows"), pa.float64())
        over_time = pa.table(
            {
                "team": cells.column("team"),
                "model_name": cells.column("model_name"),
                "bucket": cells.column("bucket"),
                "capacity": pc.divide(cells.column("capacity"), n),
                "demand_p95": pc.divide(cells.column("demand_p95"), n),
                "buffer": pc.divide(cells.column("buffer"), n),
            }
        ).sort_by([("team", "ascending"), ("model_name", "ascending"), ("bucket", "ascending")])
        t = sum_by(cells, ["team", "model_name"], _SUMS)
        n = pc.cast(t.column("windows"), pa.float64())
        totals = pa.table(
            {
                "team": t.column("team"),
                "model_name": t.column("model_name"),
                "buffer_cost": units_decimal_column(t.column("buffer_cost")),
                "cost": units_decimal_column(t.column("cost")),
                "capacity": pc.divide(t.column("capacity"), n),
                "demand_p95": pc.divide(t.column("demand_p95"), n),
                "buffer": pc.divide(t.column("buffer"), n),
                "utilization": pc.divide(
                    t.column("busy_s"), pc.max_element_wise(t.column("gpu_s"), 1e-9)
                ),
            }
        ).sort_by([("buffer_cost", "descending"), ("team", "ascending")])
        return PoolResult(
            buffer_cost=scalar_decimal(pc.sum(totals.column("buffer_cost"))),
            over_time=over_time,
            totals=totals,
        )
