"""Shared bench helpers: DCGM data generators, median timing, peak RSS of a child process,
worker processes (thread settings, Pair), the machine description, and the Markdown + JSON
results writer (to bench-results/)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
DAY0 = 1_795_824_000  # 2026-11-28T00:00:00Z, as in the tests

GR = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
FB = "DCGM_FI_DEV_FB_USED"
POWER = "DCGM_FI_DEV_POWER_USAGE"
ENERGY = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
USED_FIELDS = (GR, GPU_UTIL, FB, POWER, ENERGY)
IGNORED_FIELDS = (
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_MEMORY_TEMP",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
)
MODELS = ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA L40S")
PRICES = {"NVIDIA H100 80GB HBM3": 3.5, "NVIDIA A100-SXM4-80GB": 2.2, "default": 2.0}


# ---------------------------------------------------------------- data


def _dict(codes: np.ndarray, values: Sequence[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values))


def gpu_labels(n_gpus: int) -> dict[str, list[str]]:
    """Per-GPU labels: GPU n-1 is unallocated (empty namespace and pod)."""
    uuids = [f"GPU-{g:08x}-d9cf-fef3-62e9-{g * 7919:012x}" for g in range(n_gpus)]
    ns = [f"team-{g % 5}" for g in range(n_gpus)]
    pods = [f"job-{g // 2}-{g % 2}" for g in range(n_gpus)]
    ns[-1] = pods[-1] = ""
    return {
        "gpu": uuids,
        "namespace": ns,
        "pod": pods,
        "hostname": [f"node-{g // 8}" for g in range(n_gpus)],
        "model_name": [MODELS[(g // 8) % len(MODELS)] for g in range(n_gpus)],
    }


def utilization(n_gpus: int, seconds: np.ndarray, seed: int = 7) -> np.ndarray:
    """u in [0, 1], shape (len(seconds), n_gpus), rounded to 0.001 like DCGM's ratios."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.0, 0.9, n_gpus)
    t = seconds[:, None].astype(np.float64)
    wave = 0.25 * base * np.sin(t / 97.0 + np.arange(n_gpus))
    noise = rng.normal(0.0, 1.0, (len(seconds), n_gpus)) * (0.05 * base + 0.002)
    return np.round(np.clip(base + wave + noise, 0.0, 1.0), 3)


def long_table(n_gpus: int, seconds: int, start_s: int = DAY0, seed: int = 7) -> pa.Table:
    """Long-form Arrow table, time-major (second, GPU, field), 10 fields per GPU per second.

    To exercise the rules the peers must copy: GPU n-1's GR_ENGINE_ACTIVE is always null and
    GPU n-2's is null in odd hours (utilization falls back to GPU_UTIL / 100 there); GPU 3
    moves to another pod at 12:00:30 (two rows in that window); GPU 5's energy counter resets
    at 13:53:20."""
    secs = np.arange(start_s, start_s + seconds, dtype=np.int64)
    u = utilization(n_gpus, secs, seed)  # (T, G)
    power = np.round(80.0 + 600.0 * u, 1)
    energy = np.round(1e9 + np.cumsum(power * 1000.0, axis=0))  # mJ counter
    reset = secs >= start_s + 50_000
    if n_gpus > 5 and reset.any():
        energy[reset, 5] -= energy[reset, 5][0] - 1000.0
    gr = u.copy()
    gr[:, -1] = np.nan
    if n_gpus > 1:
        gr[((secs - start_s) // 3600) % 2 == 1, -2] = np.nan
    fields = [
        gr,
        np.round(u * 100.0),  # GPU_UTIL percent
        np.round(20_000 + 60_000 * u),  # FB MiB
        power,
        energy,
        np.full_like(u, 1410.0),
        np.full_like(u, 1593.0),
        np.round(35 + 40 * u),
        np.round(40 + 30 * u),
        np.zeros_like(u),
    ]
    n_f = len(fields)
    value = np.stack(fields, axis=2).reshape(-1)  # (T, G, F) flattened, time-major
    t_idx = np.repeat(np.arange(seconds), n_gpus * n_f)
    g_idx = np.tile(np.repeat(np.arange(n_gpus), n_f), seconds)
    f_idx = np.tile(np.arange(n_f, dtype=np.int32), seconds * n_gpus)
    labels = gpu_labels(n_gpus)
    pods = labels["pod"] + ["job-moved"]
    pod_idx = g_idx.copy()
    if n_gpus > 3:
        pod_idx[(g_idx == 3) & (secs[t_idx] >= start_s + 43_230)] = n_gpus
    del t_idx
    ts_ms = np.repeat(secs * 1000, n_gpus * n_f)
    return pa.table(
        {
            "ts": pa.array(ts_ms, pa.timestamp("ms", tz="UTC")),
            "gpu": _dict(g_idx, labels["gpu"]),
            "field": _dict(f_idx, USED_FIELDS + IGNORED_FIELDS),
            "value": pa.array(value, pa.float64(), from_pandas=True),  # NaN -> null
            "namespace": _dict(g_idx, labels["namespace"]),
            "pod": _dict(pod_idx, pods),
            "model_name": _dict(g_idx, labels["model_name"]),
            "hostname": _dict(g_idx, labels["hostname"]),
        }
    )


# ---------------------------------------------------------------- timing and memory


def median_time(fn: Callable[[], object], repeat: int, warmup: int = 1) -> dict[str, Any]:
    """Median wall time of `repeat` calls after `warmup`, with CPU time (cores used)."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    med = statistics.median(walls)
    return {"median_s": med, "min_s": min(walls), "times_s": walls, "cores": sum(cpus) / sum(walls)}


def rss_mib() -> float:
    """Current resident set of this process, MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak_rss() -> bool:
    """Resets this process's peak RSS (VmHWM) so it measures from now; False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak RSS of this process (VmHWM, honours reset_peak_rss), MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(args: Sequence[str], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Runs `python args...` in a fresh process; returns the JSON object on its last stdout
    line, plus `child_maxrss_mib` (wait4's ru_maxrss: on Linux it includes the parent's
    RSS at fork, so children report their own peak with peak_rss_mib() instead)."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed with {proc.returncode}:\n{out[-2000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["child_maxrss_mib"] = usage.ru_maxrss / 1024
    return result


def env_for(threads: int) -> dict[str, str]:
    """A child's environment for `threads` threads: Polars, Rayon and OpenMP read theirs at
    import; BENCH_THREADS is for the rest (see threads())."""
    n = str(threads)
    return {"POLARS_MAX_THREADS": n, "RAYON_NUM_THREADS": n, "OMP_NUM_THREADS": n} | {
        "BENCH_THREADS": n
    }


def threads() -> int:
    """The thread count this worker runs with (set by the parent, like POLARS_MAX_THREADS)."""
    return int(os.environ.get("BENCH_THREADS", "1"))


def serve(run: Callable[[], T], save: Callable[[T, str], None], warmup: bool = True) -> None:
    """The child side of Pair: after an optional warm-up run, prints `ready`, then per stdin
    line: `go` runs once and answers with its wall and CPU time (all threads, seconds),
    `out PATH` runs once and saves the
    output to PATH (answers `done`); anything else, or end of input, returns."""
    if warmup:
        run()
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd and cmd[0] == "go":
            c0, t0 = time.process_time(), time.perf_counter()
            run()
            print(time.perf_counter() - t0, time.process_time() - c0, flush=True)
        elif cmd and cmd[0] == "out":
            save(run(), cmd[1])
            print("done", flush=True)
        else:
            break


class Pair:
    """Worker processes of `script` (`python script *args --serve`, see serve()) started
    together, each on its own part of the input; usually two, one per half of the input
    partitions: how a user scales a single-threaded program to 2 cores. Each prints one JSON
    line when it quits (close())."""

    def __init__(
        self, script: str | Path, args: Sequence[Sequence[str]], env: Mapping[str, str]
    ) -> None:
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(script), *a, "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, **env},
                cwd=ROOT,
            )
            for a in args
        ]
        for p in self.procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"

    def ask(self, line: str) -> list[str]:
        return self.tell([line] * len(self.procs))

    def tell(self, lines: Sequence[str]) -> list[str]:
        """One line to each process (in order), then their answers."""
        for p, line in zip(self.procs, lines, strict=True):
            assert p.stdin is not None
            p.stdin.write(line + "\n")
            p.stdin.flush()
        return [p.stdout.readline().strip() for p in self.procs if p.stdout is not None]

    def out(self, paths: Sequence[str]) -> None:
        """Each process runs once and saves its output to its own path."""
        answers = self.tell([f"out {p}" for p in paths])
        if answers != ["done"] * len(self.procs):
            raise RuntimeError(f"a worker failed to write its output: {answers}")

    def time(self, repeat: int) -> dict[str, Any]:
        """Runs all processes side by side `repeat` times: wall time until every one is done,
        and cores (the processes' CPU time / wall time)."""
        walls, cpu = [], 0.0
        for _ in range(repeat):
            t0 = time.perf_counter()
            answers = self.ask("go")
            walls.append(time.perf_counter() - t0)
            cpu += sum(float(a.split()[1]) for a in answers)
        return {
            "median_s": statistics.median(walls),
            "min_s": min(walls),
            "times_s": walls,
            "cores": cpu / sum(walls),
        }

    def close(self) -> list[dict[str, Any]]:
        out = self.ask("quit")
        for p in self.procs:
            p.wait()
        return [json.loads(o) for o in out]


# ---------------------------------------------------------------- machine and results


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def machine() -> dict[str, Any]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / 2**20
    so = sorted((ROOT / "python" / "gpuledger").glob("_engine*.so"))
    engine_so = "missing"
    if so:  # which build was measured: the tree may be dirty
        digest = hashlib.sha256(so[0].read_bytes()).hexdigest()[:12]
        built = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(so[0].stat().st_mtime))
        engine_so = f"{digest} built {built} UTC"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "gpuledger": _version("gpuledger"),
        "git": git,
        "engine_so": engine_so,
        **{
            p: _version(p) for p in ("pyarrow", "polars", "duckdb", "datafusion", "numpy", "orjson")
        },
    }


def fmt(v: object) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else ("yes" if v else "no")
    if isinstance(v, float):
        if abs(v) >= 1e5:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def target(text: str, met: bool, measured: str) -> dict[str, Any]:
    """An issue target and whether this run met it."""
    return {"target": text, "met": bool(met), "measured": measured}


def markdown(result: Mapping[str, Any]) -> str:
    """One bench's result as Markdown: title, parameters, table, targets, notes."""
    lines = [f"## {result['title']}", ""]
    if result.get("params"):
        lines += [", ".join(f"{k}={fmt(v)}" for k, v in result["params"].items()), ""]
    rows: list[dict[str, Any]] = result.get("rows", [])
    if rows:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
        lines.append("")
    for t in result.get("targets", []):
        mark = "PASS" if t["met"] else "FAIL"
        lines.append(f"- **{mark}** {t['target']}: measured {t['measured']}")
    if result.get("targets"):
        lines.append("")
    lines += [f"- {n}" for n in result.get("notes", [])]
    return "\n".join(lines).rstrip() + "\n"


def write_results(results: Sequence[Mapping[str, Any]], stem: str) -> Path:
    """Writes bench-results/<stem>.md and .json (machine description included)."""
    RESULTS.mkdir(exist_ok=True)
    m = machine()
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    head = [f"# gpuledger benches ({when})", "", ", ".join(f"{k}: {v}" for k, v in m.items()), ""]
    md = "\n".join(head) + "\n" + "\n".join(markdown(r) for r in results)
    (RESULTS / f"{stem}.md").write_text(md)
    doc = {"when": when, "machine": m, "results": list(results)}
    (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return RESULTS / f"{stem}.md"
