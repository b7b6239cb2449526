"""Helpers for the bill allocation tests: gpu_windows rows in the exact schema, FOCUS bills in
the shape of the real FinOps sample (tests/data/focus-sample-1.0), and an independent check
that every bill row's allocated parts add up to it, in Decimal from the bill's own text."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from gpuledger import schemas
from gpuledger.sink import ArrowSink

SAMPLE = Path(__file__).resolve().parent / "data" / "focus-sample-1.0" / "focus_sample.csv"
H100 = "NVIDIA H100 80GB HBM3"
T0 = 1_795_824_000  # 2026-11-28T00:00:00Z
MONEY = ("BilledCost", "EffectiveCost", "ListCost")


def sample_rows() -> list[dict[str, str]]:
    with open(SAMPLE, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def header() -> list[str]:
    with open(SAMPLE, newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


def ts(s: int) -> str:
    return datetime.fromtimestamp(s, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def gpu_bill_row(
    resource: str, start_s: int, end_s: int, cost: str, **extra: str
) -> dict[str, str]:
    """A GPU instance row shaped like the sample's EC2 instance-hour rows."""
    base = next(r for r in sample_rows() if "c5.2xlarge Instance Hour" in r["ChargeDescription"])
    row = dict(base)
    row |= {
        "ResourceId": resource,
        "ChargePeriodStart": ts(start_s),
        "ChargePeriodEnd": ts(end_s),
        "BilledCost": cost,
        "EffectiveCost": cost,
        "ListCost": cost,
        "ChargeDescription": "$98.32 per On Demand Linux p5.48xlarge Instance Hour",
    }
    row |= extra
    return row


def write_bill(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    cols = columns or header()
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(f'"{c}"' for c in cols) + "\n")
        for r in rows:
            vals = []
            for c in cols:
                v = r.get(c, "NULL")
                vals.append("NULL" if v == "NULL" else '"' + v.replace('"', '""') + '"')
            f.write(",".join(vals) + "\n")
    return path


def window(
    host: str,
    gpu: str,
    start_s: int,
    *,
    ns: str = "team-a",
    pod: str = "p1",
    length: int = 60,
    covered: float | None = None,
    busy: float = 30.0,
    model: str = H100,
    price: float = 4.0,
) -> dict[str, Any]:
    cov = float(length) if covered is None else covered
    cost = cov / 3600 * price
    return {
        "window_start": (start_s) * 1000,
        "window_end": (start_s + length) * 1000,
        "gpu_uuid": gpu,
        "namespace": ns,
        "pod": pod,
        "hostname": host,
        "gpu_index": 0,
        "model_name": model,
        "container": "main" if pod else "",
        "team": ns,
        "samples": int(cov),
        "covered_s": cov,
        "util_mean": busy / cov if cov else None,
        "busy_gpu_s": busy,
        "idle_gpu_s": cov - busy,
        "allocated": bool(pod),
        "price_usd_per_gpu_hour": price,
        "cost_usd": cost,
        "idle_cost_usd": (cov - busy) / 3600 * price,
        "unallocated_cost_usd": 0.0 if pod else cost,
    }


def windows_table(rows: list[dict[str, Any]]) -> pa.Table:
    schema = schemas()["gpu_windows"]
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)


def write_windows(
    out: Path, rows: list[dict[str, Any]], *, writer: str = "0", key: str = "b"
) -> Path:
    ArrowSink(out, writer_id=writer).write({"gpu_windows": windows_table(rows)}, batch_key=key)
    return out


def check_every_row(bill_path: Path, allocated: pa.Table) -> int:
    """Every allocated bill row's parts sum exactly to the bill row's text value, for every
    cost column (Decimal arithmetic on the CSV text: independent of the code under test).
    Returns how many bill rows were checked."""
    with open(bill_path, newline="", encoding="utf-8") as f:
        bill = list(csv.DictReader(f))
    parts: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    mine = allocated.filter(pa.compute.equal(allocated["x_BillFile"], bill_path.name))
    for r in mine.select(["x_BillRowNumber", *MONEY]).to_pylist():
        for c in MONEY:
            parts[r["x_BillRowNumber"], c] += r[c]
    rows = {n for n, _ in parts}
    for n in rows:
        for c in MONEY:
            assert parts[n, c] == Decimal(bill[n - 1][c]), (n, c, parts[n, c], bill[n - 1][c])
    return len(rows)
