"""Bench: the cost of handing messages from Python to Rust (issue 7, case 4).

Three ways in, each timed as ns per message (or row) and as a fixed cost per call:

- `Engine.push(list[bytes])`: one Python `bytes` object per message.
- One buffer with offsets: `Engine.push_buffer(buf, offsets)` (n + 1 int64 byte positions,
  Arrow's binary layout), the same buffer cut into lines in Rust (`push_buffer(buf)`: what
  `gpuledger replay` does with JSON lines), a binary Arrow column of the raw messages
  (`push_buffer(pa.array(msgs))`), and, for comparison, `buf.split(b"\\n")` + `push` and
  `push_exposition(bytes)` (dcgm-exporter text, one sample per line).
- `Engine.push_arrow(RecordBatch)`: long-form telemetry rows, no copy (Arrow PyCapsule).

To separate the boundary from decoding and aggregating, each way is also fed messages the
engine drops right after reading them (a metric name or field that is not a DCGM field:
counted as `skipped_unknown`), and empty calls (`push([])`, a 0-row batch). The rows are the
same events in every way (16 GPUs, GR_ENGINE_ACTIVE + POWER_USAGE at 1 s); each run checks
that the engine aggregated the same number of samples whatever way they came in.
In-process, one thread; median of repeated runs. Usage: python benches/bench_boundary.py
[--quick] [--messages N] [--repeat R]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import gpuledger
from gpuledger.simulate.small_fleet import Gpu, default_fleet, prom_json_messages

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

START = 1_795_867_200
UNKNOWN = b"DCGM_FI_NOT_A_FIELD"


def long_batch(msgs: list[bytes], fleet: list[Gpu], seconds: int) -> pa.RecordBatch:
    """The same samples as the prom_json messages, as one long-form Arrow batch."""
    import json

    ts, gpu, field, value, ns, pod = [], [], [], [], [], []
    for raw in msgs:
        m = json.loads(raw)
        lab = m["labels"]
        ts.append(m["timestamp"].rstrip("Z"))
        gpu.append(lab["UUID"])
        field.append(m["name"])
        value.append(float(m["value"]))
        ns.append(lab.get("namespace", ""))
        pod.append(lab.get("pod", ""))
    stamps = pa.array(np.array(ts, dtype="datetime64[ms]").astype(np.int64), pa.int64())
    return pa.record_batch(
        {
            "ts": stamps.cast(pa.timestamp("ms", tz="UTC")),
            "gpu": pa.array(gpu).dictionary_encode(),
            "field": pa.array(field).dictionary_encode(),
            "value": pa.array(value, pa.float64()),
            "namespace": pa.array(ns).dictionary_encode(),
            "pod": pa.array(pod).dictionary_encode(),
        }
    )


def exposition(msgs: list[bytes]) -> bytes:
    """The same samples as dcgm-exporter text with own timestamps (one line per sample)."""
    import json

    lines = []
    for raw in msgs:
        m = json.loads(raw)
        lab = m["labels"]
        ms = int(np.datetime64(m["timestamp"].rstrip("Z"), "ms").astype(np.int64))
        labels = ",".join(f'{k}="{lab.get(k, "")}"' for k in ("UUID", "namespace", "pod"))
        lines.append(f"{m['name']}{{{labels}}} {m['value']} {ms}")
    return ("\n".join(lines) + "\n").encode()


def engine() -> gpuledger.Engine:
    return gpuledger.Engine(gpuledger.Config.from_dict({"engine": {"max_future_s": 1e10}}))


def timed(label: str, fn: Any, per: int, repeat: int, expect: int | None) -> dict[str, Any]:
    """Runs fn(engine) on a fresh engine per run; checks the aggregated count when given."""
    times = []
    for i in range(repeat + 1):  # the first run warms up
        e = engine()
        t0 = time.perf_counter()
        fn(e)
        dt = time.perf_counter() - t0
        if i:
            times.append(dt)
        if expect is not None:
            got = e.stats().get("aggregated", 0)
            if got != expect:
                raise SystemExit(f"{label}: aggregated {got}, expected {expect}: not timing")
    med = float(np.median(times))
    return {"way": label, "per": per, "median_s": med, "ns/msg": med / per * 1e9}


def run(quick: bool, messages: int = 1_000_000, repeat: int = 3) -> dict[str, Any]:
    if quick:
        messages, repeat = 100_000, 3
    fleet = default_fleet() * 2  # 16 GPU series
    seconds = max(1, messages // (2 * len(fleet)))
    msgs = list(prom_json_messages(fleet, START, seconds))
    n = len(msgs)
    buf = b"\n".join(msgs)
    packed = b"".join(msgs)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(m) for m in msgs], out=offsets[1:])
    column = pa.array(msgs, pa.binary())
    junk = [m.replace(b"DCGM_FI_PROF_GR_ENGINE_ACTIVE", UNKNOWN) for m in msgs]
    junk = [m.replace(b"DCGM_FI_DEV_POWER_USAGE", UNKNOWN) for m in junk]
    batch = long_batch(msgs, fleet, seconds)
    unknown_batch = batch.set_column(
        2, "field", pa.array([UNKNOWN.decode()] * n).dictionary_encode()
    )
    text = exposition(msgs)
    small = 64  # messages per call for the per-call overhead rows
    calls = max(1, min(20_000, n // small))
    empty_batch = batch.slice(0, 0)
    probe = engine()
    probe.push(msgs)
    expect = probe.stats()["aggregated"]  # what every way must aggregate

    def push_list(e: gpuledger.Engine) -> None:
        e.push(msgs)

    def split_push(e: gpuledger.Engine) -> None:
        e.push(buf.split(b"\n"))

    def push_offsets(e: gpuledger.Engine) -> None:
        e.push_buffer(packed, offsets)

    def push_lines(e: gpuledger.Engine) -> None:
        e.push_buffer(buf)

    def push_column(e: gpuledger.Engine) -> None:
        e.push_buffer(column)

    def split_only(_: gpuledger.Engine) -> None:
        buf.split(b"\n")

    def push_expo(e: gpuledger.Engine) -> None:
        e.push_exposition(text)

    def push_arrow(e: gpuledger.Engine) -> None:
        e.push_arrow(batch, form="long")

    def push_small(e: gpuledger.Engine) -> None:
        for i in range(calls):
            e.push(msgs[i * small : (i + 1) * small])

    def arrow_small(e: gpuledger.Engine) -> None:
        for i in range(calls):
            e.push_arrow(batch.slice(i * small, small), form="long")

    def push_empty(e: gpuledger.Engine) -> None:
        for _ in range(calls):
            e.push([])

    def arrow_empty(e: gpuledger.Engine) -> None:
        for _ in range(calls):
            e.push_arrow(empty_batch, form="long")

    def push_junk(e: gpuledger.Engine) -> None:
        e.push(junk)

    def arrow_junk(e: gpuledger.Engine) -> None:
        e.push_arrow(unknown_batch, form="long")

    rows = [
        timed("push(list[bytes]), prom_json, one call", push_list, n, repeat, expect),
        timed(
            "one buffer + offsets: push_buffer(buf, int64 offsets)", push_offsets, n, repeat, expect
        ),
        timed("one buffer of lines: push_buffer(buf), cut in Rust", push_lines, n, repeat, expect),
        timed("Arrow binary column: push_buffer(pa.array(msgs))", push_column, n, repeat, expect),
        timed("one buffer: buf.split(b'\\n') + push(list)", split_push, n, repeat, expect),
        timed("  of which buf.split(b'\\n') alone (Python)", split_only, n, repeat, None),
        timed("one buffer: push_exposition(text)", push_expo, n, repeat, expect),
        timed("push_arrow(RecordBatch), long form, one call", push_arrow, n, repeat, expect),
        timed(f"push(list) in calls of {small} msgs", push_small, calls * small, repeat, None),
        timed(f"push_arrow in batches of {small} rows", arrow_small, calls * small, repeat, None),
        timed("push(list) of unknown-metric msgs (read, dropped)", push_junk, n, repeat, 0),
        timed("push_arrow of unknown-field rows (read, dropped)", arrow_junk, n, repeat, 0),
        timed("push([]) : per call", push_empty, calls, repeat, 0),
        timed("push_arrow(0-row batch) : per call", arrow_empty, calls, repeat, 0),
    ]
    for r in rows:
        r["Mmsg/s"] = r["per"] / r["median_s"] / 1e6
        if "per call" in r["way"]:
            r["ns/call"] = r.pop("ns/msg")
            del r["Mmsg/s"]
    by = {r["way"]: r for r in rows}
    split_ns = by["  of which buf.split(b'\\n') alone (Python)"]["ns/msg"]
    list_ns = by["push(list[bytes]), prom_json, one call"]["ns/msg"]
    offs_ns = by["one buffer + offsets: push_buffer(buf, int64 offsets)"]["ns/msg"]
    return {
        "bench": "boundary",
        "title": "Boundary cost: Python to Rust, ns per message",
        "params": {
            "messages": n,
            "bytes_per_msg": round(len(buf) / n),
            "calls_small": calls,
            "repeat": repeat,
        },
        "rows": rows,
        "targets": [],
        "notes": [
            "every way feeds the same samples (16 GPUs x GR_ENGINE_ACTIVE + POWER_USAGE at 1 s) "
            f"and was checked to give the same stats()['aggregated'] ({expect:,}) before timing",
            "ns/msg includes the engine's decode and window work; the 'unknown' rows show the "
            "cost of reading a message and dropping it (boundary + scan up to the name)",
            "one buffer instead of one bytes object per message: push_buffer(buf, offsets) "
            f"costs {offs_ns:.0f} ns/msg against {list_ns:.0f} for push(list) of bytes that "
            f"already exist; a caller holding one buffer would otherwise pay buf.split "
            f"({split_ns:.0f} ns/msg here) on top",
            "in-process, one thread, fresh engine per run; the machine has 2 shared cores, so "
            "absolute ns are noisy",
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    result = run(a.quick, a.messages, a.repeat)
    print(C.markdown(result))
    print("written:", C.write_results([result], "boundary"))


if __name__ == "__main__":
    main()
