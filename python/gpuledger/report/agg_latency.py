"""Aggregates `latency_windows` and `service_cost_windows` hour by hour: per service and
bucket the latency quantiles from the merged sketches (exact merges, not averages of
percentiles), requests and SLO violations, and the headroom's GPUs and dollars."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from gpuledger.report.arrow_util import bucket_ms, money, pc, scalar_decimal, sum_by
from gpuledger.sketch import LatencySketch, merge_sketches

__all__ = ["COST_COLUMNS", "LATENCY_COLUMNS", "LatencyAccumulator", "LatencyResult"]

LATENCY_COLUMNS = (
    "window_start",
    "window_end",
    "service",
    "requests",
    "slo_violations",
    "slo_latency_ms",
    "slo_target",
    "latency_sketch",
)
COST_COLUMNS = (
    "window_start",
    "window_end",
    "service",
    "cost_usd",
    "headroom_gpus",
    "headroom_cost_usd",
    "provisioned_gpus",
    "slo_met",
)
QUANTILES = (0.5, 0.95, 0.99)
_LAT_SUMS = ["requests", "violations"]
_COST_SUMS = ["cost", "headroom_cost", "headroom_gpus", "provisioned", "windows", "met", "judged"]


@dataclass(frozen=True)
class LatencyResult:
    headroom_cost: Decimal
    over_time: pa.Table | None  # service, bucket, p50, p95, p99 (ms), slo_ms, requests, violations
    services: pa.Table | None  # service, requests, violations, slo_ms, slo_target, p50/p95/p99,
    # cost, headroom_cost (decimal), headroom_gpus, provisioned (mean GPUs), met_share


def _merged_by_group(t: pa.Table, keys: list[str]) -> pa.Table:
    """One merged sketch (bytes) per group of `keys`: rows sorted, one merge per group."""
    t = t.sort_by([(k, "ascending") for k in keys])
    groups = t.select(keys).group_by(keys, use_threads=False).aggregate([([], "count_all")])
    groups = groups.sort_by([(k, "ascending") for k in keys])
    counts = groups.column("count_all").to_numpy()
    offsets = np.concatenate([[0], np.cumsum(counts)])
    sketches = t.column("sketch")
    merged = [
        merge_sketches(sketches.slice(int(offsets[i]), int(counts[i]))).to_bytes()
        for i in range(len(counts))  # one merge per (service, bucket), never per row
    ]
    return groups.drop_columns(["count_all"]).append_column("sketch", pa.array(merged, pa.binary()))


class LatencyAccumulator:
    def __init__(self, bucket_s: int) -> None:
        self.bucket_s = bucket_s
        self._lat: list[pa.Table] = []
        self._cost: list[pa.Table] = []

    def add_latency(self, t: pa.Table) -> None:
        cells = pa.table(
            {
                "service": t.column("service"),
                "bucket": bucket_ms(t.column("window_start"), self.bucket_s),
                "requests": t.column("requests"),
                "violations": t.column("slo_violations"),
                "slo_ms": t.column("slo_latency_ms"),
                "slo_target": t.column("slo_target"),
                "sketch": t.column("latency_sketch"),
            }
        )
        keys = ["service", "bucket"]
        sums = cells.group_by(keys, use_threads=False).aggregate(
            [("requests", "sum"), ("violations", "sum"), ("slo_ms", "max"), ("slo_target", "max")]
        )
        sums = sums.rename_columns(
            [n.removesuffix("_sum").removesuffix("_max") for n in sums.column_names]
        )
        merged = _merged_by_group(cells.select([*keys, "sketch"]), keys)
        self._lat.append(sums.join(merged, keys=keys))

    def add_cost(self, t: pa.Table) -> None:
        met = t.column("slo_met")
        start = t.column("window_start")
        cells = pa.table(
            {
                "service": t.column("service"),
                "bucket": bucket_ms(start, self.bucket_s),
                "cost": money(t.column("cost_usd")),
                "headroom_cost": money(t.column("headroom_cost_usd")),
                "headroom_gpus": t.column("headroom_gpus"),
                "provisioned": t.column("provisioned_gpus"),
                "windows": pc.cast(pc.is_valid(start), pa.int64()),
                "met": pc.cast(pc.fill_null(met, False), pa.int64()),
                "judged": pc.cast(pc.is_valid(met), pa.int64()),
            }
        )
        self._cost.append(sum_by(cells, ["service", "bucket"], _COST_SUMS))

    def empty(self) -> bool:
        return not self._lat and not self._cost

    def finish(self) -> LatencyResult:
        over_time, lat_services = _latency_tables(self._lat)
        cost_services = _cost_table(self._cost)
        services = _join_services(lat_services, cost_services)
        headroom = (
            scalar_decimal(pc.sum(cost_services.column("headroom_cost")))
            if cost_services is not None
            else Decimal(0)
        )
        return LatencyResult(headroom_cost=headroom, over_time=over_time, services=services)


def _quantile_columns(sketches: Any) -> dict[str, Any]:
    values = [
        LatencySketch.from_bytes(bytes(s)).quantiles(list(QUANTILES)) for s in sketches.to_pylist()
    ]
    return {
        name: pa.array([v[i] for v in values], pa.float64())
        for i, name in enumerate(("p50", "p95", "p99"))
    }


def _latency_tables(parts: list[pa.Table]) -> tuple[pa.Table | None, pa.Table | None]:
    if not parts:
        return None, None
    keys = ["service", "bucket"]
    t = pa.concat_tables(parts)
    sums = t.group_by(keys, use_threads=False).aggregate(
        [("requests", "sum"), ("violations", "sum"), ("slo_ms", "max"), ("slo_target", "max")]
    )
    sums = sums.rename_columns(
        [n.removesuffix("_sum").removesuffix("_max") for n in sums.column_names]
    )
    merged = _merged_by_group(t.select([*keys, "sketch"]), keys)
    per_bucket = sums.join(merged, keys=keys).sort_by(
        [("service", "ascending"), ("bucket", "ascending")]
    )
    over_time = per_bucket.drop_columns(["sketch"])
    for name, col in _quantile_columns(per_bucket.column("sketch")).items():
        over_time = over_time.append_column(name, col)
    svc_sums = per_bucket.group_by(["service"], use_threads=False).aggregate(
        [("requests", "sum"), ("violations", "sum"), ("slo_ms", "max"), ("slo_target", "max")]
    )
    svc_sums = svc_sums.rename_columns(
        [n.removesuffix("_sum").removesuffix("_max") for n in svc_sums.column_names]
    )
    svc_merged = _merged_by_group(per_bucket.select(["service", "sketch"]), ["service"])
    services = svc_sums.join(svc_merged, keys=["service"]).sort_by("service")
    quant = _quantile_columns(services.column("sketch"))
    services = services.drop_columns(["sketch"])
    for name, col in quant.items():
        services = services.append_column(name, col)
    return over_time, services


def _cost_table(parts: list[pa.Table]) -> pa.Table | None:
    if not parts:
        return None
    t = sum_by(pa.concat_tables(parts), ["service"], _COST_SUMS)
    n = pc.cast(t.column("windows"), pa.float64())
    judged = pc.cast(t.column("judged"), pa.float64())
    return pa.table(
        {
            "service": t.column("service"),
            "cost": t.column("cost"),
            "headroom_cost": t.column("headroom_cost"),
            "headroom_gpus": pc.divide(t.column("headroom_gpus"), n),
            "provisioned": pc.divide(t.column("provisioned"), n),
            "met_share": pc.if_else(
                pc.greater(judged, 0.0),
                pc.divide(pc.cast(t.column("met"), pa.float64()), pc.max_element_wise(judged, 1.0)),
                pa.scalar(None, pa.float64()),
            ),
        }
    )


def _join_services(lat: pa.Table | None, cost: pa.Table | None) -> pa.Table | None:
    if lat is None:
        return cost
    if cost is None:
        return lat
    return lat.join(cost, keys=["service"], join_type="full outer").sort_by(
        [("headroom_cost", "descending"), ("service", "ascending")]
    )
