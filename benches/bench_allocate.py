"""Bench: `gpuledger allocate` of a month of 1,000 GPUs with hourly bill rows, one core.

Issue 21's target: under 30 s on one core. Input: 125 hosts x 8 GPUs, 60 s gpu_windows for
30 days (43.2M rows, one Arrow IPC file per UTC hour in the sink's layout, the exact
`gpuledger.schemas()["gpu_windows"]` schema) and a FOCUS bill (the sample's shape, written
by `gpuledger.simulate.bill`) with one row per host-hour (90,000 rows) plus 10 % of hosts
unmonitored half the month. The windows are generated with numpy: one hour of 60 GPU
windows per GPU is built once per pod layout and re-stamped per hour (pods change every 6
hours), which is how a month is made in seconds (benches/README.md). Before timing, the
result is checked: every bill row's parts sum to it exactly, totals reconcile. Timed: one
`allocate()` call (reading, combining, cutting, summing, splitting, building the table) with
pyarrow limited to one thread. Usage: python benches/bench_allocate.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

from gpuledger import schemas
from gpuledger.billing import allocate
from gpuledger.simulate.bill import write_bill
from gpuledger.simulate.fleet import H100, SimGpu

GPUS_PER_HOST = 8
WINDOW_S = 60
LAYOUT_HOURS = 6  # pods change every 6 hours


def _gpus(n: int) -> list[SimGpu]:
    return [
        SimGpu(
            uuid=f"GPU-{g:08x}-aaaa-bbbb-cccc-{g * 7919:012x}",
            index=g % GPUS_PER_HOST,
            host=f"gpu-node-{g // GPUS_PER_HOST:04d}",
            model=H100,
            pci_bus_id="00000000:18:00.0",
            boot_energy_mj=0,
        )
        for g in range(n)
    ]


def _hour_template(gpus: list[SimGpu], layout: int, rng: np.random.Generator) -> dict[str, Any]:
    """Column values of one hour (60 windows x GPUs), window times relative to the hour."""
    n = len(gpus)
    w = np.repeat(np.arange(3600 // WINDOW_S), n)
    g = np.tile(np.arange(n), 3600 // WINDOW_S)
    pods = np.array([f"job-{(i // 4 + layout) % (n // 4 + 3)}-{i % 4}" for i in range(n)])
    ns = np.array([f"team-{(i // 16 + layout) % 7}" for i in range(n)])
    free = (np.arange(n) + layout) % 10 == 0  # a tenth of the GPUs unallocated
    pods[free] = ""
    ns[free] = ""
    u = np.clip(rng.uniform(0.0, 1.0, n)[g] + rng.normal(0, 0.05, len(g)), 0, 1)
    covered = np.full(len(g), float(WINDOW_S))
    busy = u * covered
    price = 4.5
    cost = covered / 3600 * price
    return {
        "offset_ms": w.astype(np.int64) * WINDOW_S * 1000,
        "gpu_uuid": pa.array(np.array([x.uuid for x in gpus])[g]),
        "namespace": pa.array(ns[g]),
        "pod": pa.array(pods[g]),
        "hostname": pa.array(np.array([x.host for x in gpus])[g]),
        "gpu_index": pa.array((g % GPUS_PER_HOST).astype(np.int32)),
        "model_name": pa.array(np.full(len(g), H100.name)),
        "container": pa.array(np.where(free[g], "", "main")),
        "team": pa.array(ns[g]),
        "samples": pa.array(np.full(len(g), WINDOW_S, dtype=np.int64)),
        "covered_s": pa.array(covered),
        "util_mean": pa.array(u),
        "busy_gpu_s": pa.array(busy),
        "idle_gpu_s": pa.array(covered - busy),
        "allocated": pa.array(~free[g]),
        "price_usd_per_gpu_hour": pa.array(np.full(len(g), price)),
        "cost_usd": pa.array(cost),
        "idle_cost_usd": pa.array((covered - busy) / 3600 * price),
        "unallocated_cost_usd": pa.array(np.where(free[g], cost, 0.0)),
    }


def make_input(out: Path, n_gpus: int, hours: int) -> tuple[Path, Path, Path, int]:
    """Writes OUT/windows/gpu_windows/... and OUT/bill.focus.csv + resources.csv."""
    schema = schemas()["gpu_windows"]
    rng = np.random.default_rng(21)
    gpus = _gpus(n_gpus)
    templates = [_hour_template(gpus, k, rng) for k in range(4)]
    windows = out / "windows"
    rows = 0
    unmonitored = {g.host for g in gpus[: max(n_gpus // 10, GPUS_PER_HOST)]}
    variants: dict[tuple[int, bool], pa.Table] = {}
    for h in range(hours):
        k = ((h // LAYOUT_HOURS) % len(templates), h >= hours // 2)
        if k not in variants:  # build each (layout, hosts reporting) table once
            t = templates[k[0]]
            cols: dict[str, Any] = {}
            for f in schema:
                if f.name in ("window_start", "window_end"):
                    cols[f.name] = pa.array(t["offset_ms"], pa.timestamp("ms", tz="UTC"))
                elif f.name in t:
                    cols[f.name] = t[f.name]
                else:
                    cols[f.name] = pa.nulls(len(t["offset_ms"]), f.type)
            table = pa.Table.from_pydict(cols, schema=schema)
            if k[1]:  # some hosts stop reporting: their bill rows stay unmonitored
                hosts = np.asarray(table["hostname"].to_numpy(zero_copy_only=False))
                table = table.filter(pa.array(~np.isin(hosts, list(unmonitored))))
            variants[k] = table
        table = variants[k]
        offset = np.asarray(table["window_start"].cast(pa.int64()).to_numpy())
        start_ms = (C.DAY0 + h * 3600) * 1000 + offset
        utc = pa.timestamp("ms", tz="UTC")
        times = [pa.array(start_ms, utc), pa.array(start_ms + WINDOW_S * 1000, utc)]
        table = pa.Table.from_arrays(times + table.columns[2:], schema=schema)
        stamp = time.gmtime(C.DAY0 + h * 3600)
        d = windows / "gpu_windows" / time.strftime("date=%Y-%m-%d/hour=%H", stamp)
        d.mkdir(parents=True, exist_ok=True)
        with pa.OSFile(str(d / "part-bench-0.arrow"), "wb") as f, pa.ipc.new_file(f, schema) as w:
            w.write_table(table)
        rows += table.num_rows
    bill, resources = write_bill(gpus, C.DAY0, hours * 3600, out, committed_share=0.3)
    return windows, bill, resources, rows


def run(quick: bool = False) -> dict[str, Any]:
    n_gpus, hours = (32, 24) if quick else (1000, 30 * 24)
    work = C.RESULTS / "cache" / ("allocate-quick" if quick else "allocate")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    windows, bill, resources, rows = make_input(work, n_gpus, hours)
    gen_s = time.perf_counter() - t0
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    c0, t0 = time.process_time(), time.perf_counter()
    result = allocate([bill], [windows], resources=resources)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    table = result.allocated_costs
    ok = result.balanced and bool(result.reconciliation["bill_rows_unbalanced"].to_pylist() == [0])
    bill_rows = int(result.reconciliation["bill_rows_split"][0].as_py())
    shutil.rmtree(work, ignore_errors=True)
    limit = 30.0
    return {
        "title": "allocate: a month of 1,000 GPUs, hourly bill rows (issue 21)",
        "params": {
            "gpus": n_gpus,
            "hours": hours,
            "gpu_windows_rows": rows,
            "bill_rows": bill_rows,
            "allocated_rows": table.num_rows,
            "generate_s": round(gen_s, 1),
            "load_avg_1min": round(os.getloadavg()[0], 1),
            "quick": quick,
        },
        "rows": [
            {
                "contender": "gpuledger allocate (1 thread)",
                "wall_s": wall,
                "cpu_s": cpu,
                "rows_per_s": rows / wall,
                "reconciled": ok,
            }
        ],
        "targets": [
            C.target(
                "a month of 1,000 GPUs with hourly bill rows in < 30 s on one core",
                (wall < limit or quick) and ok,
                f"{wall:.1f} s{' (quick size)' if quick else ''}, reconciled: {ok}",
            ),
            C.target(
                "the same in < 30 s of CPU time (one core's work, whatever else runs)",
                (cpu < limit or quick) and ok,
                f"{cpu:.1f} s CPU",
            ),
        ],
        "notes": [
            "gpu_windows generated with numpy in the exact schema (one hour per pod layout, "
            "re-stamped); the bill by gpuledger.simulate.bill (FOCUS sample shape)",
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="32 GPUs for a day (CI)")
    a = ap.parse_args()
    result = run(a.quick)
    print(C.markdown(result))
    C.write_results([result], "bench_allocate_quick" if a.quick else "bench_allocate")
    if not all(t["met"] for t in result["targets"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
