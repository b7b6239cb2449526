"""Bench: `gpuledger replay FILE --out DIR` of prometheus-kafka-adapter JSON lines, as a user
runs it: the whole process, on one core, against DuckDB's `read_json` + `time_bucket` (issue 22,
"JSON replay end to end").

Target: the whole `gpuledger replay` process at least 2x DuckDB single-threaded on the same file,
on one core. The file is the issue's: `gpuledger.simulate`'s mixed fleet of 256 GPUs for 20
minutes, three DCGM fields per GPU-second (GR_ENGINE_ACTIVE, GPU_UTIL, POWER_USAGE), one
prometheus-kafka-adapter message per line as the simulator encodes them: 921,600 lines, about
330 MiB, cached in bench-results/cache/.

Each contender is a fresh process started with `taskset -c CPU` (one CPU, every thread of the
process on it) and timed from its start to its exit, so interpreter start, imports, reading
the file (from the page cache: every run reads it once untimed first), parsing, windows and
writing the output all count:

- gpuledger: the `gpuledger` command of this Python (`python -m gpuledger.cli replay FILE
  --out DIR --no-progress`): every table, Arrow IPC files, the summary printed;
- DuckDB: `python -c` of a script that imports duckdb, sets `threads = 1`, runs `read_json`
  + `time_bucket` to the same per-minute, per-GPU windows (samples of each field and their
  means) and writes them with `COPY ... TO parquet` (DuckDB has no Arrow IPC writer; Parquet
  is its native one).

Before timing, DuckDB's GR_ENGINE_ACTIVE samples and sums per (minute, GPU, namespace, pod)
are compared with gpuledger's `gpu_windows` `samples` and `busy_gpu_s`. Runs alternate between
the contenders (this VM's speed swings within minutes); medians of `--repeat` runs.
Usage: python benches/bench_replay_json_cli.py [--quick] [--gpus N] [--seconds S] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

START = 1_795_824_000  # 2026-11-28T00:00:00Z
FIELDS = (
    b'"DCGM_FI_PROF_GR_ENGINE_ACTIVE"',
    b'"DCGM_FI_DEV_GPU_UTIL"',
    b'"DCGM_FI_DEV_POWER_USAGE"',
)

DUCKDB_SCRIPT = """
import sys
import duckdb

path, out = sys.argv[1], sys.argv[2]
con = duckdb.connect(config={"threads": 1})
con.sql(f'''
copy (
  select time_bucket(interval '60 seconds', ts) as window_start, gpu, namespace, pod,
         count(*) filter (where name = 'DCGM_FI_PROF_GR_ENGINE_ACTIVE') as samples,
         sum(u) filter (where name = 'DCGM_FI_PROF_GR_ENGINE_ACTIVE') as busy,
         avg(u) filter (where name = 'DCGM_FI_PROF_GR_ENGINE_ACTIVE') as util_mean,
         avg(u) filter (where name = 'DCGM_FI_DEV_GPU_UTIL') as gpu_util_mean,
         avg(u) filter (where name = 'DCGM_FI_DEV_POWER_USAGE') as power_w_mean
  from (select timestamp::timestamptz as ts, name, labels.UUID as gpu,
               labels.namespace as namespace, labels.pod as pod, value::double as u
        from read_json('{path}', format = 'newline_delimited'))
  group by all
) to '{out}' (format parquet)
''')
con.close()
"""

# The floor under the CLI: what the engine alone costs as a whole process. Only the extension
# is loaded (a bare `gpuledger` package object stands in for its __init__, so no CLI, config,
# numpy or output code is imported; `gpuledger.errors`, which the extension raises, is); the
# file is read with `LineFile` and pushed with `push_buffer` exactly as replay does, windows are
# polled and finished (pyarrow is imported there: the extension hands rows over as Arrow), and
# nothing is written. Phase CPU seconds go to stderr as JSON.
FLOOR_SCRIPT = """
import time
t0 = time.process_time()
import ast, importlib.util, json, sys, types
path, engine_kwargs, package_dir, extension = sys.argv[1:5]
pkg = types.ModuleType("gpuledger")
pkg.__path__ = [package_dir]
sys.modules["gpuledger"] = pkg
spec = importlib.util.spec_from_file_location("gpuledger._engine", extension)
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
t1 = time.process_time()
e = m.Engine(**ast.literal_eval(engine_kwargs), keep_points=False, extra_fields=[], shard=None)
f = m.LineFile(path, 8 << 20, 32 << 20)
read = push = out = 0.0
while True:
    a = time.process_time(); c = f.next_chunk(); b = time.process_time(); read += b - a
    if c is None:
        break
    e.push_buffer(c, None, "prom_json", "", 0, c.first_line)
    a = time.process_time(); push += a - b
    e.poll()
    out += time.process_time() - a
a = time.process_time(); e.finish(); out += time.process_time() - a
assert e.stats()["aggregated"] > 0
phases = {"start": t1 - t0, "read": read, "push": push, "poll_finish": out}
print(json.dumps(phases), file=sys.stderr)
"""


def write_file(gpus: int, seconds: int) -> tuple[Path, int]:
    """The simulator's prometheus-kafka-adapter lines, three fields kept (cached)."""
    path = C.RESULTS / "cache" / f"replay-json-{gpus}gpus-{seconds}s.jsonl"
    count = gpus * seconds * len(FIELDS)
    if path.exists():
        return path, count
    from gpuledger.simulate import Simulation
    from gpuledger.simulate.encode import Encoder

    sim = Simulation("mixed", seed=1, start_s=START, duration_s=seconds, gpus=gpus)
    assert len(sim.gpus) == gpus, f"the mixed fleet has {len(sim.gpus)} GPUs, not {gpus}"
    enc = Encoder()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    written = 0
    with open(tmp, "wb") as f:
        for tick in sim.ticks():
            lines = "\n".join(enc.prom_json(tick.ts, tick.rows)).encode().split(b"\n")
            kept = [ln for ln in lines if any(k in ln[:120] for k in FIELDS)]
            written += len(kept)
            f.write(b"\n".join(kept) + b"\n")
    assert written == count, (written, count)
    tmp.rename(path)
    return path, count


def floor_args() -> list[str]:
    """The engine settings replay's default configuration gives, and where the extension is."""
    import gpuledger
    from gpuledger import _engine
    from gpuledger.engine import _service_kwargs

    cfg = gpuledger.Config()
    kwargs = {**cfg.to_engine_kwargs(), **_service_kwargs(cfg)}
    return [repr(kwargs), str(Path(gpuledger.__file__).parent), str(_engine.__file__)]


def commands(path: Path, out: Path) -> dict[str, list[str]]:
    cpu = str(max(os.sched_getaffinity(0)))
    pin = ["taskset", "-c", cpu]
    return {
        "gpuledger": [
            *pin,
            sys.executable,
            "-m",
            "gpuledger.cli",
            "replay",
            str(path),
            "--out",
            str(out / "gpuledger"),
            "--no-progress",
        ],
        "duckdb": [
            *pin,
            sys.executable,
            "-c",
            DUCKDB_SCRIPT,
            str(path),
            str(out / "duckdb.parquet"),
        ],
        "engine floor": [*pin, sys.executable, "-c", FLOOR_SCRIPT, str(path), *floor_args()],
    }


# As an installed package runs: pip writes the bytecode of every module at install time, so the
# first (untimed) run of each contender writes what an editable install lacks, and no timed run
# compiles gpuledger's ~40 modules from source (0.03-0.05 s of CPU) where DuckDB's come compiled.
INSTALLED_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(name: str, cmd: list[str], out: Path) -> tuple[float, float, str]:
    """(wall s, CPU s, stderr) of one whole process; its output in `out` is removed first."""
    if name == "gpuledger":
        shutil.rmtree(out / "gpuledger", ignore_errors=True)
    if name == "duckdb":
        (out / "duckdb.parquet").unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=INSTALLED_ENV)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[3:6]} failed: {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stderr


def agree(out: Path) -> str | None:
    """None when DuckDB's GR samples and sums equal gpuledger's gpu_windows; else why not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((out / "gpuledger" / "gpu_windows").rglob("*.arrow"))
    gl = pa.concat_tables(pa.ipc.open_file(pa.memory_map(str(f))).read_all() for f in files)
    mine = {
        (int(s.timestamp()), g, n, p): (c, b)
        for s, g, n, p, c, b in zip(
            *(
                gl.column(c).to_pylist()
                for c in ("window_start", "gpu_uuid", "namespace", "pod", "samples", "busy_gpu_s")
            ),
            strict=True,
        )
    }
    dk = pq.read_table(out / "duckdb.parquet")
    theirs = {
        (int(s.timestamp()), g, n, p): (c, b)
        for s, g, n, p, c, b in zip(
            *(
                dk.column(c).to_pylist()
                for c in ("window_start", "gpu", "namespace", "pod", "samples", "busy")
            ),
            strict=True,
        )
    }
    if mine.keys() != theirs.keys():
        return f"windows differ: gpuledger {len(mine):,}, DuckDB {len(theirs):,}"
    for k, (c, b) in mine.items():
        tc, tb = theirs[k]
        if c != tc or abs(b - tb) > 1e-6 * max(1.0, abs(b)):
            return f"window {k}: gpuledger {c} samples, {b} busy; DuckDB {tc}, {tb}"
    return None


def run(quick: bool, gpus: int = 256, seconds: int = 1200, repeat: int = 3) -> dict[str, Any]:
    if quick:
        gpus, seconds, repeat = 256, 60, 1
    path, messages = write_file(gpus, seconds)
    path.read_bytes()  # into the page cache: every contender reads it from memory
    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-json-"))
    cmds = commands(path, tmp)
    notes: list[str] = []
    try:
        for name, cmd in cmds.items():  # untimed: the outputs to compare, warm caches
            run_once(name, cmd, tmp)
        differ = agree(tmp)
        if differ:
            notes.append(f"DuckDB disagrees with gpuledger: {differ}")
        walls: dict[str, list[float]] = {k: [] for k in cmds}
        cpus: dict[str, list[float]] = {k: [] for k in cmds}
        phases: list[dict[str, float]] = []
        for _ in range(repeat):
            for name, cmd in cmds.items():
                w, c, err = run_once(name, cmd, tmp)
                walls[name].append(w)
                cpus[name].append(c)
                if name == "engine floor":
                    phases.append(json.loads(err.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    rows = [
        {
            "contender": name,
            "median wall s": med[name],
            "msg/s": messages / med[name],
            "median CPU s": statistics.median(cpus[name]),
            "gpuledger speedup": med[name] / med["gpuledger"],
            "walls s": ", ".join(f"{w:.3f}" for w in walls[name]),
        }
        for name in cmds
    ]
    ratio = med["duckdb"] / med["gpuledger"]
    floor_ratio = med["duckdb"] / med["engine floor"]
    phase = {k: statistics.median(p[k] for p in phases) for k in phases[0]}
    notes.append(
        f"engine floor: {floor_ratio:.2f}x DuckDB, against the 2x target; its CPU s (medians): "
        f"interpreter to extension loaded {phase['start']:.3f}, reading {phase['read']:.3f}, "
        f"push_buffer {phase['push']:.3f}, poll + finish {phase['poll_finish']:.3f} (pyarrow's "
        "import included: the extension hands rows over as Arrow); 2x DuckDB is "
        f"{med['duckdb'] / 2:.3f} s for the whole process"
    )
    return {
        "bench": "replay_json_cli",
        "title": "`gpuledger replay` of prometheus-kafka-adapter JSON lines, whole process, "
        "one core",
        "params": {
            "messages": messages,
            "gpus": gpus,
            "seconds": seconds,
            "file MiB": round(path.stat().st_size / 2**20, 1),
            "repeat": repeat,
        },
        "rows": rows,
        "targets": [
            C.target(
                "gpuledger replay >= 2x DuckDB 1 thread (whole processes, one core)",
                ratio >= 2 and not differ,
                f"{ratio:.2f}x ({messages / med['gpuledger'] / 1e6:.2f}M vs "
                f"{messages / med['duckdb'] / 1e6:.2f}M msg/s)",
            )
        ],
        "notes": [
            *notes,
            "each contender a fresh process under `taskset -c` one CPU, timed from start to "
            "exit (interpreter, imports, read, parse, windows, output files); the file is in "
            "the page cache; Python may write bytecode (as pip does at install), so no timed "
            "run compiles modules from source",
            "gpuledger: `python -m gpuledger.cli replay FILE --out DIR --no-progress` (every "
            "table, Arrow IPC, the summary); DuckDB: `read_json` + `time_bucket`, 1 thread, "
            "three fields' per-minute samples and means per GPU, `COPY ... TO` Parquet",
            "checked before timing: DuckDB's GR_ENGINE_ACTIVE samples and sums per (minute, "
            "GPU, namespace, pod) equal gpuledger's gpu_windows samples and busy_gpu_s",
            "engine floor: a process that loads only the extension, reads the file with "
            "`LineFile`, pushes every chunk with `push_buffer`, polls and finishes, and writes "
            "nothing: no CLI, configuration, output files or summary. What the engine alone "
            "costs; the CLI cannot be faster than it",
            "runs alternate between the contenders; the machine has 2 cores shared with "
            "other work: numbers are noisy",
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpus", type=int, default=256)
    ap.add_argument("--seconds", type=int, default=1200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small run (1 minute of data), for CI")
    a = ap.parse_args()
    result = run(a.quick, a.gpus, a.seconds, a.repeat)
    print(C.markdown(result))
    print("written:", C.write_results([result], "replay_json_cli"))


if __name__ == "__main__":
    main()
