"""Bench: prometheus-kafka-adapter JSON to per-GPU 60 s windows, gpuledger vs plain Python.

Issue target: >= 2M messages/s and >= 10x plain Python. All contenders get the same list of
message bytes (16 GPU series, GR_ENGINE_ACTIVE + POWER_USAGE each second); plain Python is
`json.loads` + dicts, the way a team would write it without gpuledger, and the same with
orjson.loads when orjson is installed. Outputs (per window and GPU: samples, busy_gpu_s)
are checked to agree before any time counts. Ratios come from medians of the same run.
Usage: python benches/bench_prom_json.py [--messages N] [--repeat R] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

import gpuledger
from gpuledger.fleet import Gpu, default_fleet, prom_json_messages

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

START = 1_795_867_200
Windows = dict[tuple[int, str, str, str], tuple[int, float]]


def python_windows(loads: Callable[[bytes], Any]) -> Callable[[list[bytes]], Windows]:
    def plain(messages: list[bytes]) -> Windows:
        acc: dict[tuple[int, str, str, str], dict[int, float]] = defaultdict(dict)
        for raw in messages:
            m = loads(raw)
            if m["name"] != "DCGM_FI_PROF_GR_ENGINE_ACTIVE":
                continue
            lab = m["labels"]
            ts = int(datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")).timestamp())
            key = (ts - ts % 60, lab["UUID"], lab.get("namespace", ""), lab.get("pod", ""))
            acc[key][ts] = float(m["value"])
        return {k: (len(v), sum(v.values())) for k, v in acc.items()}

    return plain


def with_gpuledger(messages: list[bytes]) -> pa.Table:
    e = gpuledger.Engine()
    e.push(messages)
    return e.poll().concat(e.finish()).gpu_windows


def as_windows(table: pa.Table) -> Windows:
    d = table.to_pydict()
    cols = ("window_start", "gpu_uuid", "namespace", "pod", "samples", "busy_gpu_s")
    return {
        (int(s.timestamp()), u, n, p): (c, b)
        for s, u, n, p, c, b in zip(*(d[c] for c in cols), strict=True)
    }


def agree(got: Windows, ref: Windows) -> bool:
    return got.keys() == ref.keys() and all(
        got[k][0] == ref[k][0] and abs(got[k][1] - ref[k][1]) < 1e-6 for k in ref
    )


def contenders() -> dict[str, Callable[[list[bytes]], object]]:
    out: dict[str, Callable[[list[bytes]], object]] = {
        "gpuledger": with_gpuledger,
        "json + dicts": python_windows(json.loads),
    }
    try:
        import orjson

        out["orjson + dicts"] = python_windows(orjson.loads)
    except ImportError:
        pass
    return out


def run(quick: bool, messages: int = 1_000_000, repeat: int = 5) -> dict[str, Any]:
    n, repeat = (100_000, 3) if quick else (messages, repeat)
    fleet: list[Gpu] = default_fleet() * 2  # 16 GPU series, as in the setup
    fleet = [Gpu(**{**g.__dict__, "uuid": g.uuid[:-2] + f"{i:02x}"}) for i, g in enumerate(fleet)]
    seconds = max(1, n // (2 * len(fleet)))
    msgs = list(prom_json_messages(fleet, START, seconds))
    fns = contenders()
    ref = as_windows(with_gpuledger(msgs))
    notes = []
    timed: dict[str, dict[str, Any]] = {}
    for name, fn in fns.items():
        out = fn(msgs)
        if not agree(as_windows(out) if isinstance(out, pa.Table) else out, ref):
            notes.append(f"{name} disagrees with gpuledger: not timed")
            continue
        # Python contenders are ~30x slower: fewer repeats keep the run short.
        reps = repeat if name == "gpuledger" else max(1, repeat // 2)
        timed[name] = C.median_time(lambda fn=fn: fn(msgs), reps, warmup=0)
    gl = timed["gpuledger"]["median_s"]
    rows = [
        {
            "contender": name,
            "median_s": r["median_s"],
            "msg/s": len(msgs) / r["median_s"],
            "gpuledger speedup": r["median_s"] / gl,
            "runs": len(r["times_s"]),
        }
        for name, r in timed.items()
    ]
    rate = len(msgs) / gl
    ratio = timed["json + dicts"]["median_s"] / gl if "json + dicts" in timed else 0.0
    return {
        "bench": "prom_json",
        "title": "prometheus-kafka-adapter JSON to 60 s windows",
        "params": {"messages": len(msgs), "gpus": len(fleet), "repeat": repeat},
        "rows": rows,
        "targets": [
            C.target("gpuledger >= 2M msg/s", rate >= 2e6, f"{rate / 1e6:.2f}M msg/s"),
            C.target(">= 10x plain Python (json + dicts)", ratio >= 10, f"{ratio:.1f}x"),
        ],
        "notes": [
            *notes,
            "gpuledger computes every gpu_windows and pool_windows column; the Python "
            "contenders only samples and busy_gpu_s (what is compared)",
            "in-process, one thread; gpuledger time includes building the Arrow tables",
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small run, for CI")
    a = ap.parse_args()
    result = run(a.quick, a.messages, a.repeat)
    print(C.markdown(result))
    print("written:", C.write_results([result], "prom_json"))


if __name__ == "__main__":
    main()
