"""Output directories for the report tests, made once per session by the daemon's own main
loop on the simulated fleet (`gpuledger.cli.demo`): the whole fleet, and the same input split
between two instances (so pool and service rows are partial), plus a Parquet copy."""

from __future__ import annotations

import io
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest

from gpuledger.cli.demo import LATENCY, TELEMETRY, demo_config, run_demo
from gpuledger.daemon.log import EventLog
from gpuledger.output.sink import ArrowSink, read_table
from gpuledger.simulate.topics import simulated_topics

START_S = 1_795_824_000  # 2026-11-28T00:00:00Z
MINUTES = 90
TTL_S = 1800.0
TABLES = ("gpu_windows", "pool_windows", "latency_windows", "service_cost_windows", "idle_streaks")

_CACHE: dict[str, Path] = {}


def config():  # type: ignore[no-untyped-def]
    return demo_config(60, TTL_S)


def outputs(factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"full", "part_a", "part_b", "parquet"}: output directories, made on first use."""
    if _CACHE:
        return _CACHE
    base = factory.mktemp("report-data")
    topics = simulated_topics(START_S, MINUTES * 60, telemetry=TELEMETRY, latency=LATENCY)
    log = EventLog("json", stream=io.StringIO())
    runs = {
        "full": topics,
        "part_a": {t: parts[:1] for t, parts in topics.items()},
        "part_b": {t: parts[1:] for t, parts in topics.items()},
    }
    for name, t in runs.items():
        out = base / name
        code, _ = run_demo(config(), t, out, log)
        assert code == 0, name
        _CACHE[name] = out
    parquet = base / "parquet"
    sink = ArrowSink(parquet, format="parquet", writer_id="copy")
    sink.write({n: read_table(_CACHE["full"], n) for n in TABLES}, batch_key="copy")
    _CACHE["parquet"] = parquet
    return _CACHE


def _dataset(out: Path, table: str) -> ds.Dataset:
    fmt = "parquet" if any(out.glob(f"{table}/*/*/*.parquet")) else "ipc"
    return ds.dataset(out / table, format=fmt, partitioning="hive")


def cents(v: object) -> Decimal:
    return Decimal(str(v)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def independent_sums(out: Path, where: str = "TRUE") -> dict[str, Decimal]:
    """The headline's money, summed by DuckDB straight from the output tables (not with
    the report's code): exact decimal sums of the float USD columns, to the cent."""
    con = duckdb.connect()
    con.execute("SET threads TO 1")
    for name in TABLES:
        con.register(name, _dataset(out, name).to_table())

    def one(sql: str) -> Decimal:
        value = con.execute(sql).fetchone()
        assert value is not None
        return cents(value[0] or 0)

    def total(table: str, column: str, time: str = "window_start") -> Decimal:
        w = where.format(t=time)
        return one(f"SELECT SUM(CAST({column} AS DECIMAL(38, 10))) FROM {table} WHERE {w}")

    streaks = where.format(t="as_of")
    forgotten = one(
        "SELECT SUM(c) FROM (SELECT MAX(CAST(idle_cost_usd AS DECIMAL(38, 10))) AS c "
        f"FROM idle_streaks WHERE {streaks} "
        "GROUP BY namespace, pod, gpu_uuid, streak_start)"
    )
    return {
        "gpu_spend_usd": total("gpu_windows", "cost_usd"),
        "idle_spend_usd": total("gpu_windows", "idle_cost_usd"),
        "buffer_cost_usd": total("pool_windows", "buffer_cost_usd"),
        "headroom_cost_usd": total("service_cost_windows", "headroom_cost_usd"),
        "forgotten_cost_usd": forgotten,
    }
