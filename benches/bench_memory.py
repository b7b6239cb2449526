"""Bench: window state memory of a large fleet streamed live.

Issue target: report bytes per open (GPU, window); 10,000 GPUs with 60 s windows and 30 s
lateness stay under 500 MB resident. A fresh process feeds 10,000 GPUs x 5 fields
(GR_ENGINE_ACTIVE, GPU_UTIL, FB_USED, POWER_USAGE, TOTAL_ENERGY) at 1 s for 5 minutes of
event time through push_arrow, one chunk per second (or --chunk-s) with poll() after each,
and records RSS, Engine.state_bytes() and the open (pane, GPU) entries after every poll.
bytes per open (GPU, window) = state_bytes / open (pane, GPU) entries (60 s windows: one
pane per window). Usage: python benches/bench_memory.py [--quick] [--gpus N] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

CEILING_MIB = 500e6 / 2**20  # 500 MB


def chunks(gpus: int, seconds: int, chunk_s: int) -> Any:
    """Long-form chunks of `chunk_s` seconds, time-major, 5 fields per GPU per second."""
    labels = {k: pa.array(v) for k, v in C.gpu_labels(gpus).items()}
    fields = pa.array(C.USED_FIELDS)
    for c0 in range(0, seconds, chunk_s):
        secs = np.arange(C.DAY0 + c0, C.DAY0 + min(seconds, c0 + chunk_s), dtype=np.int64)
        u = C.utilization(gpus, secs, seed=c0)
        power = np.round(80.0 + 600.0 * u, 1)
        energy = 1e9 + (secs[:, None] - C.DAY0) * 400_000.0 + np.zeros_like(u)
        value = np.stack([u, np.round(u * 100), np.round(20_000 + 60_000 * u), power, energy], 2)
        n = len(secs)
        g = pa.array(np.tile(np.repeat(np.arange(gpus, dtype=np.int32), 5), n))
        d = {k: pa.DictionaryArray.from_arrays(g, v) for k, v in labels.items()}
        f = pa.array(np.tile(np.arange(5, dtype=np.int32), n * gpus))
        yield pa.record_batch(
            {
                "ts": pa.array(np.repeat(secs * 1000, gpus * 5), pa.timestamp("ms", tz="UTC")),
                "field": pa.DictionaryArray.from_arrays(f, fields),
                "value": pa.array(value.reshape(-1)),
                **d,
            }
        )


def worker(gpus: int, seconds: int, chunk_s: int) -> None:
    import gpuledger

    config = {"engine": {"window_s": [60], "allowed_lateness_s": 30}}
    base = C.rss_mib()
    e = gpuledger.Engine(gpuledger.Config.from_dict(config))
    peak_state = (0, 1)
    samples, emitted, busy = [], 0, 0.0
    for batch in chunks(gpus, seconds, chunk_s):
        t0 = time.perf_counter()
        e.push_arrow(batch, form="long")
        emitted += e.poll().gpu_windows.num_rows
        busy += time.perf_counter() - t0
        state, open_ = e.state_bytes(), e._core.open_series_panes()
        samples.append((state, open_))
        peak_state = max(peak_state, (state, open_))
    steady = [s / o for s, o in samples[len(samples) // 3 :] if o]
    res = {
        "base_rss_mib": base,
        "peak_rss_mib": C.peak_rss_mib(),
        "state_mib": peak_state[0] / 2**20,
        "open": peak_state[1],
        "bytes_per_open": peak_state[0] / peak_state[1],
        "bytes_per_open_steady": float(np.median(steady)) if steady else None,
        "rows": gpus * 5 * seconds,
        "ingest_s": busy,
        "windows_emitted": emitted,
        "stats": e.stats(),
    }
    print(json.dumps(res))


def run(quick: bool, gpus: int = 10_000, seconds: int = 300, chunk_s: int = 1) -> dict[str, Any]:
    if quick:
        gpus, seconds = 1_000, 150
    r = C.run_child(
        [
            __file__,
            "--worker",
            "--gpus",
            str(gpus),
            "--seconds",
            str(seconds),
            "--chunk-s",
            str(chunk_s),
        ]
    )
    peak = r["peak_rss_mib"]
    row = {
        "GPUs": gpus,
        "peak RSS MiB": peak,
        "RSS before engine MiB": r["base_rss_mib"],
        "peak state MiB": r["state_mib"],
        "open (pane, GPU)": r["open"],
        "bytes per open (GPU, window)": r["bytes_per_open"],
        "steady bytes/open": r["bytes_per_open_steady"],
        "Msamples/s": r["rows"] / r["ingest_s"] / 1e6,
    }
    return {
        "bench": "memory",
        "title": "State memory: live stream, 60 s windows, 30 s allowed lateness",
        "params": {"gpus": gpus, "fields": 5, "seconds": seconds, "chunk_s": chunk_s},
        "rows": [row],
        "targets": [
            C.target(
                f"{gpus:,} GPUs stay under 500 MB resident (peak RSS)",
                peak < CEILING_MIB,
                f"{peak * 2**20 / 1e6:,.0f} MB peak RSS ({peak / CEILING_MIB:.0%})",
            )
        ],
        "notes": [
            "peak RSS is the whole process's (Python, pyarrow, the current input chunk "
            "included); state is Engine.state_bytes() at its largest",
            "open (pane, GPU): engine._core.open_series_panes() at that moment (the current "
            "pane is partly filled); steady: median over the last two thirds of the polls",
            f"windows emitted: {r['windows_emitted']:,} gpu_windows rows; peak RSS is the "
            "child's VmHWM (wait4's ru_maxrss also counts the parent's RSS at fork)",
        ]
        + ([f"{gpus:,} GPUs is not the target's 10,000"] if gpus != 10_000 else []),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1,000 GPUs, 150 s, for CI")
    ap.add_argument("--gpus", type=int, default=10_000)
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--chunk-s", type=int, default=1)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.gpus, a.seconds, a.chunk_s)
        return
    result = run(a.quick, a.gpus, a.seconds, a.chunk_s)
    print(C.markdown(result))
    print("written:", C.write_results([result], "memory"))


if __name__ == "__main__":
    main()
