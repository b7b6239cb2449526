"""`gpuledger demo`: the daemon's own main loop on the embedded default source (a simulated
fleet, in process, no Kafka), writing the Arrow tables, then a short cost summary read back
from the files it wrote."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gpuledger.config import Config
from gpuledger.daemon.log import EventLog
from gpuledger.daemon.loop import Daemon
from gpuledger.daemon.memory_source import MemoryConsumer
from gpuledger.output.sink import read_table
from gpuledger.tables import KEYED_TABLES

TELEMETRY, LATENCY = "gpu-telemetry", "request-latency"
Topics = dict[str, list[list[tuple[bytes, int]]]]


SUMMARY_TABLES = (*(n for n in KEYED_TABLES if n != "latency_windows"), "idle_streaks")
"""What the summary reads back: every table it prints from."""
DEMO_PRICES = {
    "NVIDIA H100 80GB HBM3": 4.5,
    "NVIDIA A100-SXM4-80GB": 3.0,
    "NVIDIA L40S": 1.2,
}


def demo_config(window_s: int = 60, idle_ttl_s: float = 1800.0) -> Config:
    """The demo's settings: list prices per model, SLOs of the simulated services."""
    return Config.from_dict(
        {
            "engine": {"window_s": [window_s], "max_future_s": 10 * 365 * 86400.0},
            "idle": {"ttl_s": idle_ttl_s},
            "prices": DEMO_PRICES,
            "services": {
                "chat-llm": {"slo_latency_ms": 200.0, "slo_target": 0.95},
                "assist-llm": {"slo_latency_ms": 200.0, "slo_target": 0.95},
            },
        }
    )


def run_demo(
    cfg: Config, topics: Topics, out_dir: Path, log: EventLog
) -> tuple[int, dict[str, pa.Table]]:
    """Runs the daemon loop until the embedded source is drained; returns its exit code and
    the tables it wrote."""
    cfg = replace(
        cfg,
        topics=replace(cfg.topics, telemetry=TELEMETRY, latency=LATENCY, dead_letter=""),
        output=replace(cfg.output, dir=str(out_dir)),
        observability=replace(cfg.observability, metrics_port=0, status_interval_s=3600.0),
    )
    factory: Callable[[dict[str, Any]], Any] = lambda _settings: MemoryConsumer(topics)  # noqa: E731
    code = Daemon(cfg, until_eof=True, log=log, consumer_factory=factory).run()
    tables = {}
    for name in SUMMARY_TABLES:
        if (out_dir / name).exists():
            tables[name] = read_table(out_dir, name)
    return code, tables


def _sum_by(table: pa.Table, keys: list[str], values: list[str]) -> list[dict[str, Any]]:
    grouped = table.group_by(keys).aggregate([(v, "sum") for v in values])
    rows = grouped.to_pylist()
    return sorted(rows, key=lambda r: -float(r[f"{values[0]}_sum"] or 0.0))


def summary_lines(tables: dict[str, pa.Table]) -> list[str]:
    """The cost summary: idle by team, buffer by pool, headroom and SLOs by service,
    forgotten experiments."""
    out: list[str] = []
    gpu = tables.get("gpu_windows")
    if gpu is not None and gpu.num_rows:
        cost = pc.sum(gpu["cost_usd"]).as_py() or 0.0
        idle = pc.sum(gpu["idle_cost_usd"]).as_py() or 0.0
        out.append(
            f"GPU spend ${cost:,.2f}, of which idle ${idle:,.2f} ({idle / max(cost, 1e-9):.0%})"
        )
        out.append("Idle cost by team:")
        for r in _sum_by(gpu, ["team"], ["idle_cost_usd", "cost_usd"]):
            share = r["idle_cost_usd_sum"] / max(r["cost_usd_sum"], 1e-9)
            out.append(
                f"  {r['team'] or '(unallocated)':<24} ${r['idle_cost_usd_sum']:>9,.2f} idle "
                f"of ${r['cost_usd_sum']:,.2f} ({share:.0%})"
            )
    pool = tables.get("pool_windows")
    if pool is not None and pool.num_rows:
        out.append("Buffer cost by pool (capacity above P95 demand):")
        for r in _sum_by(pool, ["team", "model_name"], ["buffer_cost_usd"]):
            out.append(
                f"  {r['team'] or '(unallocated)':<24} {r['model_name']:<24} "
                f"${r['buffer_cost_usd_sum']:>9,.2f}"
            )
    svc = tables.get("service_cost_windows")
    if svc is not None and svc.num_rows:
        out.append("Headroom cost and SLO by service:")
        met = svc.group_by(["service"]).aggregate(
            [("headroom_cost_usd", "sum"), ("slo_met", "mean"), ("cost_usd", "sum")]
        )
        for r in sorted(met.to_pylist(), key=lambda r: -(r["headroom_cost_usd_sum"] or 0.0)):
            slo = r["slo_met_mean"]
            slo_text = "no data" if slo is None else f"SLO met in {slo:.0%} of windows"
            out.append(
                f"  {r['service']:<24} headroom ${r['headroom_cost_usd_sum'] or 0:>9,.2f} "
                f"of ${r['cost_usd_sum'] or 0:,.2f}; {slo_text}"
            )
    streaks = tables.get("idle_streaks")
    out.append("Forgotten experiments (idle beyond the TTL):")
    if streaks is None or not streaks.num_rows:
        out.append("  none")
    else:
        latest = streaks.group_by(["namespace", "pod", "gpu_uuid"]).aggregate(
            [("streak_s", "max"), ("idle_cost_usd", "max")]
        )
        for r in sorted(latest.to_pylist(), key=lambda r: -r["idle_cost_usd_max"]):
            out.append(
                f"  {r['namespace']}/{r['pod']} on {r['gpu_uuid'][:20]}: idle "
                f"{r['streak_s_max'] / 3600:.1f} h, burned ${r['idle_cost_usd_max']:,.2f}"
            )
    return out


def allocate_demo_bill(cfg: Config, out_dir: Path, start_s: int, seconds: int) -> list[str]:
    """The simulated fleet's FOCUS bill (a savings plan on part of it) split among its pods
    by `gpuledger allocate`, written as `allocated_costs` next to the other tables; returns
    the summary lines: billed (EffectiveCost) next to list price, by team."""
    from gpuledger.billing import allocate
    from gpuledger.billing.command import WRITER_ID, batch_key
    from gpuledger.billing.reconcile import reconciliation_lines
    from gpuledger.output.sink import ArrowSink
    from gpuledger.simulate import Simulation
    from gpuledger.simulate.bill import write_bill

    sim = Simulation("mixed", seed=1, start_s=start_s, duration_s=seconds)
    bill, resources = write_bill(sim.gpus, start_s, seconds, out_dir / "bill")
    result = allocate([bill], [out_dir], resources=resources, config=cfg)
    table = result.allocated_costs
    ArrowSink(out_dir, writer_id=WRITER_ID).write(
        {"allocated_costs": table}, batch_key=batch_key(table)
    )
    out = [f"Billed GPU spend from the simulated FOCUS bill ({bill.name}), split by use:"]
    if seconds % 3600:
        out.append("  (the bill has hourly rows: time of those hours outside the demo is idle)")
    billed = table.filter(pc.equal(table["x_PriceSource"], pa.scalar("bill")))
    by_team = billed.group_by(["x_Team"]).aggregate([("EffectiveCost", "sum"), ("ListCost", "sum")])
    rows = sorted(by_team.to_pylist(), key=lambda r: -(r["EffectiveCost_sum"] or 0))
    for r in rows:
        team = r["x_Team"] or "(idle or unmonitored)"
        out.append(
            f"  {team:<24} billed ${r['EffectiveCost_sum']:>9,.2f} (list ${r['ListCost_sum']:,.2f})"
        )
    return out + reconciliation_lines(result.reconciliation)


def report_lines(out_dir: Path, cfg: Config) -> list[str]:
    """Writes the HTML cost report of the demo's output (`gpuledger report`) to
    `out_dir/report.html` and says where it is."""
    try:
        from gpuledger.report import ReportError, report
    except ImportError as e:  # plotly comes with the `report` extra
        return [f"No HTML report: {e.name} is missing (pip install 'gpuledger[report]')."]
    path = out_dir / "report.html"
    try:
        result = report([out_dir], out=path, config=cfg)
    except ReportError as e:
        return [f"No HTML report: {e}"]
    return [
        f"\nCost report: {result.path} ({result.html_bytes / 1e6:.1f} MB, open it in a browser)"
    ]
