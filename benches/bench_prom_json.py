"""Bench: prometheus-kafka-adapter JSON to per-GPU 60 s windows, gpuledger vs its peers.

Issue targets: >= 2M messages/s and >= 10x plain Python. Contenders get the same list of
message bytes (16 GPU series, GR_ENGINE_ACTIVE + POWER_USAGE each second): plain Python
(`json.loads` + dicts, the way a team would write it without gpuledger), the same with
orjson, Polars (`read_ndjson` + `group_by_dynamic`) and DuckDB (`read_json` +
`time_bucket`), one thread each (issue 7, case 1). Outputs (per window and GPU: samples,
busy_gpu_s) are checked to agree before any time counts; ratios are medians of one run.
Usage: python benches/bench_prom_json.py [--messages N] [--repeat R] [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
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

# Peers get one thread, like gpuledger; Polars reads this when first imported.
os.environ.setdefault("POLARS_MAX_THREADS", "1")

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


def polars_windows(msgs: list[bytes]) -> Windows:
    """Polars: `read_ndjson` + `group_by_dynamic` (one thread when the bench sets it)."""
    import polars as pl

    df = pl.read_ndjson(io.BytesIO(b"\n".join(msgs)))
    lab = pl.col("labels").struct
    out = (
        df.filter(pl.col("name") == "DCGM_FI_PROF_GR_ENGINE_ACTIVE")
        .select(
            pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC").alias("ts"),
            lab.field("UUID").alias("gpu"),
            lab.field("namespace").alias("namespace"),
            lab.field("pod").alias("pod"),
            pl.col("value").cast(pl.Float64).alias("u"),
        )
        .sort("ts")
        .group_by_dynamic("ts", every="60s", group_by=["gpu", "namespace", "pod"])
        .agg(pl.len().alias("n"), pl.col("u").sum().alias("busy"))
    )
    return {
        (int(t.timestamp()), g, ns, p): (n, b)
        for t, g, ns, p, n, b in out.select("ts", "gpu", "namespace", "pod", "n", "busy").rows()
    }


def duckdb_windows(msgs: list[bytes]) -> Windows:
    """DuckDB: `read_json` (from a file: its reader needs one) + `time_bucket`, 1 thread."""
    import duckdb

    with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
        f.write(b"\n".join(msgs))
        f.flush()
        con = duckdb.connect(config={"threads": 1})
        rows = con.sql(
            f"""
            select epoch(time_bucket(interval '60 seconds', ts))::bigint as w,
                   gpu, namespace, pod, count(*) as n, sum(u) as busy
            from (select timestamp::timestamptz as ts,
                         labels.UUID as gpu, labels.namespace as namespace,
                         labels.pod as pod, value::double as u
                  from read_json('{f.name}', format = 'newline_delimited')
                  where name = 'DCGM_FI_PROF_GR_ENGINE_ACTIVE')
            group by all
            """
        ).fetchall()
    return {(w, g, ns, p): (n, b) for w, g, ns, p, n, b in rows}


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
    out["polars (read_ndjson + group_by_dynamic)"] = polars_windows
    out["duckdb (read_json + time_bucket)"] = duckdb_windows
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
