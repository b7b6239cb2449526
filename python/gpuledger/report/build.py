"""Reads and aggregates everything the report shows: the window tables hour by hour (combined
first), then the small tables; returns a ReportData of small Arrow tables and exact sums.
Raises ReportError when there is nothing to show."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from gpuledger.config import Config
from gpuledger.errors import ReportError
from gpuledger.report import agg_gpu, agg_latency, agg_pools
from gpuledger.report.agg_events import (
    EventResult,
    StreakResult,
    no_streaks,
    read_events,
    read_streaks,
)
from gpuledger.report.agg_gpu import GpuAccumulator, GpuResult
from gpuledger.report.agg_latency import LatencyAccumulator, LatencyResult
from gpuledger.report.agg_pools import PoolAccumulator, PoolResult
from gpuledger.report.arrow_util import pc
from gpuledger.report.billing import BillingResult, read_billing
from gpuledger.report.inputs import find_inputs
from gpuledger.report.period import Period, choose_bucket_s, fmt_ms
from gpuledger.report.windows import WINDOW_TABLES, WindowStats, window_hours

__all__ = ["KNOWN_TABLES", "ReportData", "build"]

KNOWN_TABLES = (*WINDOW_TABLES, "idle_streaks", "late_events", "dead_letters", "allocated_costs")
_COLUMNS = {
    "gpu_windows": agg_gpu.COLUMNS,
    "pool_windows": agg_pools.COLUMNS,
    "latency_windows": agg_latency.LATENCY_COLUMNS,
    "service_cost_windows": agg_latency.COST_COLUMNS,
}


@dataclass
class ReportData:
    dirs: list[str]
    period: Period
    start_ms: int
    end_ms: int
    bucket_s: int
    config: Config
    tables: list[str]
    gpu: GpuResult | None
    pools: PoolResult | None
    latency: LatencyResult | None
    streaks: StreakResult | None
    events: EventResult
    billing: BillingResult | None
    stats: WindowStats
    problems: list[str] = field(default_factory=list)


def build(dirs: Sequence[str | os.PathLike[str]], period: Period, config: Config) -> ReportData:
    inputs = find_inputs(dirs)
    known = [t for t in inputs.tables() if t in KNOWN_TABLES]
    if not known:
        raise ReportError(
            f"no gpuledger table under {', '.join(os.fspath(d) for d in dirs)} (found only "
            f"{', '.join(inputs.tables())})"
        )
    window_tables = [t for t in WINDOW_TABLES if t in inputs.files]
    hours = [h for h in inputs.hours(window_tables) if period.overlaps_hour(h)]
    all_hours = inputs.hours(known)
    lo = hours[0] if hours else (all_hours[0] if all_hours else 0)
    hi = (hours[-1] if hours else (all_hours[-1] if all_hours else 0)) + 3_600_000
    if period.since_ms is not None:
        lo = max(lo, period.since_ms)
    if period.until_ms is not None:
        hi = min(hi, period.until_ms)
    bucket_s = choose_bucket_s(max(hi - lo, 1) / 1000)
    step = bucket_s * 1000
    first_bucket = lo // step * step
    n_buckets = max(1, -(-(hi - first_bucket) // step))

    gpu_acc = GpuAccumulator(bucket_s)
    pool_acc = PoolAccumulator(bucket_s)
    lat_acc = LatencyAccumulator(bucket_s)
    stats = WindowStats()
    start_ms: int | None = None
    end_ms: int | None = None
    columns = {n: _COLUMNS[n] for n in window_tables}
    for _hour, tables in window_hours(inputs, columns, period, stats):
        for t in tables.values():
            s = pc.min(t.column("window_start")).value
            e = pc.max(t.column("window_end")).value
            start_ms = s if start_ms is None else min(start_ms, s)
            end_ms = e if end_ms is None else max(end_ms, e)
        if "gpu_windows" in tables:
            gpu_acc.add(tables["gpu_windows"])
        if "pool_windows" in tables:
            pool_acc.add(tables["pool_windows"])
        if "latency_windows" in tables:
            lat_acc.add_latency(tables["latency_windows"])
        if "service_cost_windows" in tables:
            lat_acc.add_cost(tables["service_cost_windows"])

    streaks = read_streaks(inputs, period, config.idle.ttl_s)
    if streaks is None and "gpu_windows" in inputs.files:
        streaks = no_streaks(config.idle.ttl_s)
    events = read_events(inputs, period)
    billing = read_billing(inputs, period)
    has_rows = start_ms is not None or (streaks is not None and streaks.table.num_rows > 0)
    if not has_rows:
        covered = (
            f"the output covers {fmt_ms(all_hours[0])} to {fmt_ms(all_hours[-1] + 3_600_000)}"
            if all_hours
            else "no file could be read"
        )
        problems = "; ".join(inputs.problems[:5])
        raise ReportError(
            f"no rows to report {period.describe()}: {covered}"
            + (f" (problems: {problems})" if problems else "")
        )
    return ReportData(
        dirs=[os.fspath(d) for d in dirs],
        period=period,
        start_ms=start_ms if start_ms is not None else lo,
        end_ms=end_ms if end_ms is not None else hi,
        bucket_s=bucket_s,
        config=config,
        tables=inputs.tables(),
        gpu=None if gpu_acc.empty() else gpu_acc.finish(first_bucket, n_buckets),
        pools=None if pool_acc.empty() else pool_acc.finish(),
        latency=None if lat_acc.empty() else lat_acc.finish(),
        streaks=streaks,
        events=events,
        billing=billing,
        stats=stats,
        problems=inputs.problems,
    )
