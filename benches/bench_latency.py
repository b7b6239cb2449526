"""Bench: request latency JSON events to latency_windows, gpuledger vs plain Python.

Issue target: latency JSON decode + aggregate at >= 2M events/s on one core. Events are
gpuledger's request form (4 services, 16 pods, lognormal latencies, token counts). Plain
Python (`json.loads` + dicts, exact quantiles by sorting) is timed alongside for scale;
outputs (requests per window and service, p99 within 1 %) agree before any time counts.
Usage: python benches/bench_latency.py [--events N] [--repeat R] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import gpuledger

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

START = 1_795_867_200
SERVICES = ("chat-llm", "code-llm", "embed", "rerank")


def events(n: int, seed: int = 11) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        s = i % len(SERVICES)
        out.append(
            json.dumps(
                {
                    "ts": round(START + i * 0.001, 3),
                    "service": SERVICES[s],
                    "namespace": "team-" + SERVICES[s],
                    "pod": f"{SERVICES[s]}-{i % 4}",
                    "latency_ms": round(math.exp(rng.gauss(4.5, 0.8)), 3),
                    "ttft_ms": round(math.exp(rng.gauss(3.0, 0.5)), 3),
                    "status": 500 if rng.random() < 0.01 else 200,
                    "tokens_in": rng.randint(10, 2000),
                    "tokens_out": rng.randint(1, 500),
                    "request_id": f"r-{i:x}",
                },
                separators=(",", ":"),
            ).encode()
        )
    return out


def plain_python(msgs: list[bytes]) -> dict[tuple[int, str], tuple[int, float]]:
    acc: dict[tuple[int, str], list[float]] = defaultdict(list)
    for raw in msgs:
        m = json.loads(raw)
        ts = int(m["ts"])
        acc[(ts - ts % 60, m["service"])].append(m["latency_ms"])
    out = {}
    for k, v in acc.items():
        v.sort()
        out[k] = (len(v), v[min(len(v) - 1, int(0.99 * (len(v) - 1)))])
    return out


def with_gpuledger(msgs: list[bytes]) -> dict[tuple[int, str], tuple[int, float]]:
    e = gpuledger.Engine()
    e.push(msgs, format="latency_json")
    t = e.poll().concat(e.finish()).latency_windows.to_pydict()
    return {
        (int(s.timestamp()), svc): (n, p99)
        for s, svc, n, p99 in zip(
            t["window_start"], t["service"], t["requests"], t["latency_p99_ms"], strict=True
        )
    }


def run(quick: bool, n: int = 1_000_000, repeat: int = 3) -> dict[str, Any]:
    n, repeat = (50_000, 1) if quick else (n, repeat)
    msgs = events(n)
    ours, ref = with_gpuledger(msgs), plain_python(msgs)
    agree = ours.keys() == ref.keys() and all(
        ours[k][0] == ref[k][0] and abs(ours[k][1] - ref[k][1]) <= 0.01 * ref[k][1] for k in ref
    )
    if not agree:
        raise SystemExit("gpuledger and plain Python disagree: not timing")
    gl = C.median_time(lambda: with_gpuledger(msgs), repeat, warmup=0)
    py = C.median_time(lambda: plain_python(msgs), max(1, repeat // 2), warmup=0)
    rate = n / gl["median_s"]
    return {
        "bench": "latency_json",
        "title": "Request latency JSON to latency_windows (60 s)",
        "params": {"events": n, "services": len(SERVICES), "repeat": repeat},
        "rows": [
            {"contender": "gpuledger", "median_s": gl["median_s"], "events/s": rate},
            {
                "contender": "json + dicts (exact p99)",
                "median_s": py["median_s"],
                "events/s": n / py["median_s"],
                "gpuledger speedup": py["median_s"] / gl["median_s"],
            },
        ],
        "targets": [C.target("gpuledger >= 2M events/s", rate >= 2e6, f"{rate / 1e6:.2f}M/s")],
        "notes": [
            "gpuledger computes every latency_windows column (sketch quantiles, TTFT, SLO, "
            "burstiness) and service_cost_windows; plain Python only requests and p99",
            "in-process, one thread; p99 agreement checked within 1 % before timing",
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    result = run(a.quick, a.events, a.repeat)
    print(C.markdown(result))
    print("written:", C.write_results([result], "latency_json"))


if __name__ == "__main__":
    main()
