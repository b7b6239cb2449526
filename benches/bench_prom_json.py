"""Bench: prometheus-kafka-adapter JSON to per-GPU 60 s windows, gpuledger vs plain Python.

Both contenders get the same list of message bytes; plain Python is `json.loads` + dicts,
the way a team would write it without gpuledger. Outputs are checked to agree before any
time counts. Usage: python benches/bench_prom_json.py [--messages N] [--repeat R] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from datetime import datetime

import pyarrow as pa

import gpuledger
from gpuledger.fleet import Gpu, default_fleet, prom_json_messages

START = 1_795_867_200


def plain_python(messages: list[bytes]) -> dict[tuple[int, str, str, str], tuple[int, float]]:
    acc: dict[tuple[int, str, str, str], dict[int, float]] = defaultdict(dict)
    for raw in messages:
        m = json.loads(raw)
        if m["name"] != "DCGM_FI_PROF_GR_ENGINE_ACTIVE":
            continue
        lab = m["labels"]
        ts = int(datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")).timestamp())
        key = (ts - ts % 60, lab["UUID"], lab.get("namespace", ""), lab.get("pod", ""))
        acc[key][ts] = float(m["value"])
    return {k: (len(v), sum(v.values())) for k, v in acc.items()}


def with_gpuledger(messages: list[bytes]) -> pa.Table:
    e = gpuledger.Engine()
    e.push(messages)
    return e.poll().concat(e.finish()).gpu_windows


def agree(table: pa.Table, ref: dict[tuple[int, str, str, str], tuple[int, float]]) -> bool:
    d = table.to_pydict()
    got = {
        (int(s.timestamp()), u, n, p): (c, b)
        for s, u, n, p, c, b in zip(
            d["window_start"],
            d["gpu_uuid"],
            d["namespace"],
            d["pod"],
            d["samples"],
            d["busy_gpu_s"],
            strict=True,
        )
    }
    return got.keys() == ref.keys() and all(
        got[k][0] == ref[k][0] and abs(got[k][1] - ref[k][1]) < 1e-6 for k in ref
    )


def timed(fn: object, arg: list[bytes], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(arg)  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small run, for CI")
    a = ap.parse_args()
    n, repeat = (20_000, 1) if a.quick else (a.messages, a.repeat)
    fleet: list[Gpu] = default_fleet() * 2  # 16 GPU series, as in the setup
    fleet = [Gpu(**{**g.__dict__, "uuid": g.uuid[:-2] + f"{i:02x}"}) for i, g in enumerate(fleet)]
    seconds = max(1, n // (2 * len(fleet)))
    msgs = list(prom_json_messages(fleet, START, seconds))
    if not agree(with_gpuledger(msgs), plain_python(msgs)):
        raise SystemExit("gpuledger and plain Python disagree: not timing")
    t_gl = timed(with_gpuledger, msgs, repeat)
    t_py = timed(plain_python, msgs, max(1, repeat // 2))
    rate_gl, rate_py = len(msgs) / t_gl, len(msgs) / t_py
    print(f"messages: {len(msgs):,} (median of {repeat})")
    print(f"gpuledger     {rate_gl:>14,.0f} msg/s")
    print(f"plain Python  {rate_py:>14,.0f} msg/s")
    print(f"ratio gpuledger / plain Python: {rate_gl / rate_py:.1f}x")


if __name__ == "__main__":
    main()
