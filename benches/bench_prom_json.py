"""Bench: prometheus-kafka-adapter JSON to per-GPU 60 s windows, gpuledger vs its peers.

Issue 7, case 1. Targets: >= 2M messages/s and >= 10x plain Python, from the 1-thread rows.
The parent generates the messages once (16 GPU series, GR_ENGINE_ACTIVE + POWER_USAGE each
second, `gpuledger.fleet.prom_json_messages`) and writes them, one per line, to
bench-results/cache/ (the whole set and its two halves by GPU UUID, GPUs 0-7 / 8-15). Every
contender then runs in its own fresh process, at 1 and at 2 threads, and reads its file
before anything is timed:

- gpuledger: `Engine.push(list of bytes)`, `poll()`, `finish()`, gpu_windows. 2 threads:
  two engines on two Python threads, one per half (push releases the GIL), outputs
  concatenated.
- plain Python (`json.loads` + dicts, the way a team would write it without gpuledger) and
  the same with orjson: a loop over the list of bytes. The GIL keeps them on one thread, so
  their 2-thread row is 2 processes x half the GPUs, started together.
- Polars: `read_ndjson` over the file's bytes (in memory) + `group_by_dynamic`;
  POLARS_MAX_THREADS set before import.
- DuckDB: `read_json` of the file (its reader takes a path) + `time_bucket`; `threads`
  config.

Each process first runs once and writes its windows (window, GPU, namespace, pod: samples,
busy_gpu_s), which are compared with gpuledger's 1-thread output; one that disagrees is
noted and not timed. Then the median wall time of `--repeat` runs (2 processes: until both
are done), cores used (CPU / wall time) and peak RSS from after its input was loaded (2
processes: the sum). gpuledger speedup compares with gpuledger at the same thread count.
Usage: python benches/bench_prom_json.py [--messages N] [--repeat R] [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import json
import sys
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

START = 1_795_867_200
GPUS = 16  # series, as in the setup
Windows = dict[tuple[int, str, str, str], tuple[int, float]]


# ---------------------------------------------------------------- contenders


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
    import gpuledger

    e = gpuledger.Engine()
    e.push(messages)
    return e.poll().concat(e.finish()).gpu_windows


def gpuledger_parts(parts: list[list[bytes]]) -> pa.Table:
    """One engine per part; two parts: two engines on two threads (push releases the GIL)."""
    if len(parts) == 1:
        return with_gpuledger(parts[0])
    with ThreadPoolExecutor(len(parts)) as pool:
        return pa.concat_tables(pool.map(with_gpuledger, parts))


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


def polars_windows(data: bytes) -> Windows:
    """Polars: `read_ndjson` + `group_by_dynamic` (POLARS_MAX_THREADS from the parent)."""
    import polars as pl

    df = pl.read_ndjson(io.BytesIO(data))
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


def duckdb_windows(path: str) -> Windows:
    """DuckDB: `read_json` (of the file: its reader takes a path) + `time_bucket`."""
    import duckdb

    con = duckdb.connect(config={"threads": C.threads()})
    rows = con.sql(
        f"""
        select epoch(time_bucket(interval '60 seconds', ts))::bigint as w,
               gpu, namespace, pod, count(*) as n, sum(u) as busy
        from (select timestamp::timestamptz as ts,
                     labels.UUID as gpu, labels.namespace as namespace,
                     labels.pod as pod, value::double as u
              from read_json('{path}', format = 'newline_delimited')
              where name = 'DCGM_FI_PROF_GR_ENGINE_ACTIVE')
        group by all
        """
    ).fetchall()
    con.close()
    return {(w, g, ns, p): (n, b) for w, g, ns, p, n, b in rows}


def lines(path: str) -> list[bytes]:
    return Path(path).read_bytes().split(b"\n")


Contender = tuple[str, Callable[[list[str]], Any], Callable[[Any], Callable[[Any], Any]], str]
# name: (library imported first, its input from the data file(s), run(library), row label)
CONTENDERS: dict[str, Contender] = {
    "gpuledger": (
        "gpuledger",
        lambda ps: [lines(p) for p in ps],
        lambda _: gpuledger_parts,
        "gpuledger",
    ),
    "json": ("json", lambda ps: lines(ps[0]), lambda m: python_windows(m.loads), "json + dicts"),
    "orjson": (
        "orjson",
        lambda ps: lines(ps[0]),
        lambda m: python_windows(m.loads),
        "orjson + dicts",
    ),
    "polars": (
        "polars",
        lambda ps: Path(ps[0]).read_bytes(),
        lambda _: polars_windows,
        "polars (read_ndjson + group_by_dynamic)",
    ),
    "duckdb": (
        "duckdb",
        lambda ps: ps[0],
        lambda _: duckdb_windows,
        "duckdb (read_json + time_bucket)",
    ),
}


def worker(a: argparse.Namespace) -> None:
    """In a fresh process: imports the contender's library, loads its input (not timed),
    then serves runs (C.serve) and prints its peak RSS from after loading."""
    module, load, make, _ = CONTENDERS[a.worker]
    lib = importlib.import_module(module)
    fn = make(lib)
    if a.worker == "polars":
        assert lib.thread_pool_size() == C.threads(), "POLARS_MAX_THREADS not applied"
    data = load(a.data)
    base = C.rss_mib()
    C.reset_peak_rss()

    def save(out: Any, path: str) -> None:
        w = as_windows(out) if isinstance(out, pa.Table) else out
        Path(path).write_text(json.dumps([[*k, *v] for k, v in w.items()]))

    C.serve(lambda: fn(data), save, warmup=False)  # the `out` run comes first
    print(json.dumps({"input_rss_mib": base, "peak_rss_mib": C.peak_rss_mib()}), flush=True)


# ---------------------------------------------------------------- the parent


def write_inputs(n: int) -> tuple[dict[Any, Path], int]:
    """The messages, generated once, one per line: the whole set (key None) and the halves
    by GPU UUID (0: GPUs 0-7, 1: GPUs 8-15; each (window, GPU) row is in one half)."""
    from gpuledger.simulate.small_fleet import Gpu, default_fleet, prom_json_messages

    fleet: list[Gpu] = default_fleet() * 2
    fleet = [Gpu(**{**g.__dict__, "uuid": g.uuid[:-2] + f"{i:02x}"}) for i, g in enumerate(fleet)]
    assert len(fleet) == GPUS and len({g.uuid for g in fleet}) == GPUS
    seconds = max(1, n // (2 * GPUS))
    msgs = list(prom_json_messages(fleet, START, seconds))
    first = {g.uuid.encode() for g in fleet[: GPUS // 2]}
    tag = b'"UUID":"'
    halves: list[list[bytes]] = [[], []]
    for m in msgs:
        i = m.index(tag) + len(tag)
        halves[m[i : m.index(b'"', i)] not in first].append(m)
    assert all(halves) and sum(map(len, halves)) == len(msgs)
    cache = C.RESULTS / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    files: dict[Any, Path] = {}
    for key, part in ((None, msgs), (0, halves[0]), (1, halves[1])):
        path = cache / f"prom-json-{len(msgs)}{'' if key is None else f'-half{key}'}.ndjson"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"\n".join(part))
        tmp.rename(path)
        files[key] = path
    return files, len(msgs)


def read_windows(paths: list[str]) -> Windows:
    out: Windows = {}
    for p in paths:
        for w, g, ns, pod, n, b in json.loads(Path(p).read_text()):
            out[(w, g, ns, pod)] = (n, b)
    return out


def processes(name: str, threads: int, files: dict[Any, Path]) -> tuple[list[list[str]], str]:
    """The worker processes (their arguments) for one case, and its row label."""
    label = CONTENDERS[name][3]

    def args(*keys: Any) -> list[str]:
        return ["--worker", name, *(x for k in keys for x in ("--data", str(files[k])))]

    if threads == 1:
        return [args(None)], label
    if name == "gpuledger":
        return [args(0, 1)], f"{label}, 2 engines on 2 threads, halves of the GPUs"
    if name in ("json", "orjson"):
        return [args(0), args(1)], f"{label}, 2 processes x half the GPUs"
    return [args(None)], label


def run(quick: bool, messages: int = 1_000_000, repeat: int = 3) -> dict[str, Any]:
    n, repeat = (20_000, 3) if quick else (messages, repeat)
    files, n_msgs = write_inputs(n)
    names = [k for k in CONTENDERS if importlib.util.find_spec(k) is not None]
    cache = C.RESULTS / "cache"
    ref: Windows = {}
    notes: list[str] = []
    timed: dict[tuple[str, int], dict[str, Any]] = {}
    labels: dict[tuple[str, int], str] = {}
    for threads in (1, 2):
        for name in names:
            procs, label = processes(name, threads, files)
            pair = C.Pair(__file__, procs, C.env_for(1 if len(procs) > 1 else threads))
            outs = [str(cache / f"prom-json-out-{name}-{threads}-{i}.json") for i in range(2)]
            pair.out(outs[: len(procs)])
            got = read_windows(outs[: len(procs)])
            if (name, threads) == ("gpuledger", 1):
                ref = got
            if not agree(got, ref):
                notes.append(
                    f"{label} ({threads} threads) disagrees with gpuledger ({len(got):,} rows, "
                    f"gpuledger {len(ref):,}): not timed"
                )
                pair.close()
                continue
            r = pair.time(repeat)
            peaks = pair.close()
            r["peak_rss_mib"] = sum(p["peak_rss_mib"] for p in peaks)
            r["input_rss_mib"] = sum(p["input_rss_mib"] for p in peaks)
            timed[(name, threads)] = r
            labels[(name, threads)] = label
    rows = []
    for (name, threads), r in timed.items():
        gl = timed.get(("gpuledger", threads), {}).get("median_s")
        rows.append(
            {
                "contender": labels[(name, threads)],
                "threads": threads,
                "median_s": r["median_s"],
                "msg/s": n_msgs / r["median_s"],
                "gpuledger speedup": None if gl is None else r["median_s"] / gl,
                "cores": r["cores"],
                "peak RSS MiB": r["peak_rss_mib"],
                "over input MiB": r["peak_rss_mib"] - r["input_rss_mib"],
                "runs": len(r["times_s"]),
            }
        )
    gl1 = timed[("gpuledger", 1)]["median_s"]
    rate = n_msgs / gl1
    ratio = timed[("json", 1)]["median_s"] / gl1 if ("json", 1) in timed else 0.0
    return {
        "bench": "prom_json",
        "title": "prometheus-kafka-adapter JSON to 60 s windows, 1 and 2 threads",
        "params": {"messages": n_msgs, "gpus": GPUS, "repeat": repeat},
        "rows": rows,
        "targets": [
            C.target("gpuledger >= 2M msg/s (1 thread)", rate >= 2e6, f"{rate / 1e6:.2f}M msg/s"),
            C.target(">= 10x plain Python (json + dicts, 1 thread)", ratio >= 10, f"{ratio:.1f}x"),
        ],
        "notes": [
            *notes,
            f"compared: {len(ref):,} (window, GPU, namespace, pod) rows, samples exact and "
            "busy_gpu_s within 1e-6, each case against gpuledger's 1-thread output",
            "input: the same messages, one per line in a cache file read by each process before "
            "timing: gpuledger and the Python loops get a list of bytes (one per message, as a "
            "Kafka consumer hands them over), Polars the file's bytes (read_ndjson parses them "
            "inside the timed run), DuckDB the file's path (read_json reads it, from the page "
            "cache, inside the timed run)",
            "timed: from that input to the windows, as an Arrow table (gpuledger: Engine "
            "created, every gpu_windows and pool_windows column built) or Python objects (the "
            "others compute only samples and busy_gpu_s); DuckDB's connect() is inside, imports "
            "and reading the cache file into memory are not",
            "threads: POLARS_MAX_THREADS (process env, before import), DuckDB threads config; "
            "cores = CPU time / wall time of the timed runs (2 processes: both); "
            "gpuledger and the Python loops are single-threaded per engine or process, so their "
            "2-thread rows split the GPUs in two halves (see labels); gpuledger speedup is "
            "against gpuledger at the same thread count",
            "peak RSS: VmHWM after the input was loaded, so it includes the input held (list of "
            "bytes, the file's bytes, or nothing for DuckDB); over input = peak - RSS once "
            "loaded; 2-process rows: the sum of both",
            "the machine has 2 cores shared with other work: numbers are noisy",
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small run, for CI")
    ap.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    ap.add_argument("--data", action="append", help=argparse.SUPPRESS)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a)
        return
    result = run(a.quick, a.messages, a.repeat)
    print(C.markdown(result))
    print("written:", C.write_results([result], "prom_json"))


if __name__ == "__main__":
    main()
