"""Bench: columnar replay of long-form Arrow DCGM telemetry into gpu_windows (60 s).

Issue target: 16 GPUs x 10 fields x 1 day of 1 s samples (13.8M rows) at >= 50M samples/s
on one core, faster than Polars group_by_dynamic and DuckDB time_bucket computing the same
gpu_windows columns on the same data with one thread each.

Each contender runs in a fresh process that reads the same Arrow IPC file into memory, so
peak RSS is its own. gpuledger replays it as `gpuledger replay` does: push_arrow in chunks
of 256k rows, poll() after each, then finish(). Every peer's output is first checked
against gpuledger's (keys and counts exact, floats within 1e-6 relative, quantiles within
0.01); a peer that disagrees is reported and not timed. Times include pl.from_arrow /
DuckDB's Arrow scan and building the result table.
Usage: python benches/bench_columnar.py [--quick] [--gpus N] [--seconds S] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

KEYS = ["window_start", "gpu_uuid", "namespace", "pod"]
EXACT = ["samples"]
QUANTILES = ["util_p50", "util_p95"]
FLOATS = ["util_mean", "util_min", "util_max", "busy_gpu_s", "idle_gpu_s", "fb_used_max_mib"]
FLOATS += ["power_mean_w", "energy_j", "cost_usd"]
COLUMNS = KEYS + EXACT + FLOATS + QUANTILES
CONTENDERS = ("gpuledger", "polars", "duckdb")
ONE_THREAD = {"POLARS_MAX_THREADS": "1", "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def run_gpuledger(table: pa.Table, chunk_rows: int) -> pa.Table:
    import gpuledger

    e = gpuledger.Engine(gpuledger.Config.from_dict({"prices": C.PRICES}))
    parts = []
    for batch in table.to_batches(max_chunksize=chunk_rows):
        e.push_arrow(batch, form="long")
        parts.append(e.poll().gpu_windows)
    parts.append(e.finish().gpu_windows)
    return pa.concat_tables(parts)


def run_polars(table: pa.Table, _chunk: int) -> pa.Table:
    import polars as pl

    v, f = pl.col("value"), pl.col("field")

    def util(name: str, scale: float) -> list[pl.Expr]:
        u = v.filter(f == name) / scale
        p = "gr" if scale == 1 else "gu"
        return [
            u.count().alias(f"{p}_n"),
            u.mean().alias(f"{p}_mean"),
            u.min().alias(f"{p}_min"),
            u.max().alias(f"{p}_max"),
            u.quantile(0.5, "linear").alias(f"{p}_p50"),
            u.quantile(0.95, "linear").alias(f"{p}_p95"),
        ]

    e = v.filter(f == C.ENERGY)
    d = e.diff()
    keys = ["gpu", "namespace", "pod"]
    w = (
        pl.from_arrow(table)
        .lazy()
        .filter(f.is_in(C.USED_FIELDS) & v.is_not_null())
        .group_by_dynamic("ts", every="60s", group_by=keys)
        .agg(
            *util(C.GR, 1.0),
            *util(C.GPU_UTIL, 100.0),
            v.filter(f == C.FB).max().alias("fb_used_max_mib"),
            v.filter(f == C.POWER).mean().alias("power_mean_w"),
            # counter increase inside the window, a decrease being a reset
            pl.when(d < 0).then(e).otherwise(d).sum().alias("e_inc"),
            e.count().alias("e_n"),
            e.first().alias("e_first"),
            e.last().alias("e_last"),
            pl.col("model_name").first(),
        )
        .sort([*keys, "ts"])
    )
    # boundary: from the series' last reading in the window just before, when there is one
    prev = pl.col("e_last").shift().over(keys)
    adjacent = pl.col("ts").shift().over(keys) == pl.col("ts") - pl.duration(seconds=60)
    edge = (adjacent & prev.is_not_null() & pl.col("e_first").is_not_null()).fill_null(False)
    step = pl.when(pl.col("e_first") >= prev).then(pl.col("e_first") - prev)
    step = step.otherwise(pl.col("e_first"))
    gr = pl.col("gr_n") > 0

    def pick(x: str) -> pl.Expr:
        return pl.when(gr).then(pl.col(f"gr_{x}")).otherwise(pl.col(f"gu_{x}"))

    price = (
        pl.col("model_name")
        .cast(pl.String)
        .replace_strict(C.PRICES, default=C.PRICES["default"], return_dtype=pl.Float64)
    )
    out = (
        w.with_columns(
            samples=pick("n").cast(pl.Int64),
            e_inc=pl.col("e_inc") + pl.when(edge).then(step).otherwise(0.0),
            e_deltas=(pl.col("e_n") - 1).clip(0) + edge.cast(pl.Int64),
            **{f"util_{x}": pick(x) for x in ("mean", "min", "max", "p50", "p95")},
        )
        .with_columns(covered=pl.min_horizontal(pl.col("samples") * 1.0, pl.lit(60.0)))
        .with_columns(busy_gpu_s=pl.col("util_mean").fill_null(0.0) * pl.col("covered"))
        .select(
            pl.col("ts").alias("window_start"),
            pl.col("gpu").cast(pl.String).alias("gpu_uuid"),
            pl.col("namespace").cast(pl.String),
            pl.col("pod").cast(pl.String),
            "samples",
            "util_mean",
            "util_min",
            "util_max",
            "busy_gpu_s",
            (pl.col("covered") - pl.col("busy_gpu_s")).alias("idle_gpu_s"),
            "fb_used_max_mib",
            "power_mean_w",
            pl.when(pl.col("e_deltas") > 0)
            .then(pl.col("e_inc") / 1000.0)
            .otherwise(pl.col("power_mean_w") * pl.col("covered"))
            .alias("energy_j"),
            (pl.col("covered") / 3600.0 * price).alias("cost_usd"),
            "util_p50",
            "util_p95",
        )
        .collect()
    )
    return out.to_arrow()


DUCKDB_SQL = """
WITH r AS (
  SELECT time_bucket(INTERVAL '60 seconds', ts::TIMESTAMP) AS ws, ts::TIMESTAMP AS ts,
         gpu::VARCHAR AS gpu,
         namespace::VARCHAR AS namespace, pod::VARCHAR AS pod, model_name::VARCHAR AS model,
         field::VARCHAR AS field, value
  FROM t WHERE field IN ('{GR}', '{GU}', '{FB}', '{PW}', '{EN}') AND value IS NOT NULL
), e AS (  -- counter increase: from the previous reading when it is in this or the last window
  SELECT ws, gpu, namespace, pod,
         CASE WHEN lag(ts) OVER s >= ws - INTERVAL '60 seconds' THEN
           CASE WHEN value >= lag(value) OVER s THEN value - lag(value) OVER s ELSE value END
         END AS d
  FROM r WHERE field = '{EN}'
  WINDOW s AS (PARTITION BY gpu, namespace, pod ORDER BY ts)
), ea AS (
  SELECT ws, gpu, namespace, pod, sum(d) AS inc, count(d) AS n FROM e GROUP BY ALL
), a AS (
  SELECT ws, gpu, namespace, pod, any_value(model) AS model,
    count(value) FILTER (field = '{GR}') AS gr_n,
    avg(value) FILTER (field = '{GR}') AS gr_mean,
    min(value) FILTER (field = '{GR}') AS gr_min,
    max(value) FILTER (field = '{GR}') AS gr_max,
    quantile_cont(value, 0.5) FILTER (field = '{GR}') AS gr_p50,
    quantile_cont(value, 0.95) FILTER (field = '{GR}') AS gr_p95,
    count(value) FILTER (field = '{GU}') AS gu_n,
    avg(value / 100) FILTER (field = '{GU}') AS gu_mean,
    min(value / 100) FILTER (field = '{GU}') AS gu_min,
    max(value / 100) FILTER (field = '{GU}') AS gu_max,
    quantile_cont(value / 100, 0.5) FILTER (field = '{GU}') AS gu_p50,
    quantile_cont(value / 100, 0.95) FILTER (field = '{GU}') AS gu_p95,
    max(value) FILTER (field = '{FB}') AS fb_used_max_mib,
    avg(value) FILTER (field = '{PW}') AS power_mean_w
  FROM r GROUP BY ALL
), u AS (
  SELECT a.*, ea.inc, ea.n AS e_n, gr_n > 0 AS g,
    CASE WHEN g THEN gr_n ELSE gu_n END AS samples,
    least(samples * 1.0, 60.0) AS covered,
    CASE WHEN g THEN gr_mean ELSE gu_mean END AS util_mean
  FROM a LEFT JOIN ea USING (ws, gpu, namespace, pod)
)
SELECT ws AS window_start, gpu AS gpu_uuid, namespace, pod, samples, util_mean,
  CASE WHEN g THEN gr_min ELSE gu_min END AS util_min,
  CASE WHEN g THEN gr_max ELSE gu_max END AS util_max,
  coalesce(util_mean, 0) * covered AS busy_gpu_s,
  covered - coalesce(util_mean, 0) * covered AS idle_gpu_s,
  fb_used_max_mib, power_mean_w,
  CASE WHEN e_n > 0 THEN inc / 1000 ELSE power_mean_w * covered END AS energy_j,
  covered / 3600 * CASE model {PRICE_CASES} ELSE {PRICE_DEFAULT} END AS cost_usd,
  CASE WHEN g THEN gr_p50 ELSE gu_p50 END AS util_p50,
  CASE WHEN g THEN gr_p95 ELSE gu_p95 END AS util_p95
FROM u
"""


def run_duckdb(table: pa.Table, _chunk: int) -> pa.Table:
    import duckdb

    cases = " ".join(f"WHEN '{m}' THEN {p}" for m, p in C.PRICES.items() if m != "default")
    sql = DUCKDB_SQL.format(
        GR=C.GR,
        GU=C.GPU_UTIL,
        FB=C.FB,
        PW=C.POWER,
        EN=C.ENERGY,
        PRICE_CASES=cases,
        PRICE_DEFAULT=C.PRICES["default"],
    )
    con = duckdb.connect(config={"threads": 1})  # ts is read as UTC: no ICU time zones
    con.register("t", table)
    out = con.sql(sql).to_arrow_table()
    con.close()
    return out


RUNNERS = {"gpuledger": run_gpuledger, "polars": run_polars, "duckdb": run_duckdb}


def normalize(t: pa.Table) -> pa.Table:
    """The compared columns in one schema, sorted by key."""
    types = {"window_start": pa.timestamp("ms", tz="UTC"), "samples": pa.int64()}
    cols = [
        t.column(c).cast(types.get(c, pa.string() if c in KEYS else pa.float64())) for c in COLUMNS
    ]
    return pa.table(cols, names=COLUMNS).sort_by([(k, "ascending") for k in KEYS])


def compare(ref: pa.Table, got: pa.Table) -> list[str]:
    """Disagreements of `got` with `ref` (both normalized); empty when they agree."""
    if ref.num_rows != got.num_rows:
        return [f"{got.num_rows} rows, gpuledger has {ref.num_rows}"]
    bad = [f"key column {k} differs" for k in KEYS if not ref.column(k).equals(got.column(k))]
    bad += [f"{c} differs" for c in EXACT if not ref.column(c).equals(got.column(c))]
    for c in FLOATS + QUANTILES:
        a = ref.column(c).to_numpy(zero_copy_only=False).astype(float)
        b = got.column(c).to_numpy(zero_copy_only=False).astype(float)
        rtol, atol = (0.0, 0.01) if c in QUANTILES else (1e-6, 1e-9)
        ok = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        if not ok.all():
            i = int(np.argmin(ok))
            bad.append(f"{c}: {int((~ok).sum())} rows differ, e.g. {a[i]!r} vs {b[i]!r}")
    return bad


def data_file(gpus: int, seconds: int) -> Path:
    """The long-form table as an Arrow IPC file, generated once and cached."""
    path = C.RESULTS / "cache" / f"long-{gpus}gpu-{seconds}s-v1.arrow"  # v: C.long_table
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        table = C.long_table(gpus, seconds)
        tmp = path.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
            w.write_table(table, max_chunksize=1 << 22)
        tmp.rename(path)
    return path


def worker(name: str, path: str, repeat: int, out: str, chunk: int) -> None:
    """In a fresh process: one run written to `out` (repeat 0), or timed runs."""
    with pa.OSFile(path) as f:
        table = pa.ipc.open_file(f).read_all()
    fn = RUNNERS[name]
    base = C.rss_mib()
    C.reset_peak_rss()
    res: dict[str, Any] = {"rows": table.num_rows, "data_rss_mib": base}
    if repeat == 0:
        result = fn(table, chunk)
        with pa.OSFile(out, "wb") as f, pa.ipc.new_file(f, result.schema) as w:
            w.write_table(result)
    else:
        res |= C.median_time(lambda: fn(table, chunk), repeat)
    res["peak_rss_mib"] = C.peak_rss_mib()
    print(json.dumps(res))


def run(quick: bool, gpus: int = 16, seconds: int = 86_400, repeat: int = 5) -> dict[str, Any]:
    if quick:
        seconds, repeat = 3_600, 3
    chunk = 262_144
    path = data_file(gpus, seconds)
    n_rows = gpus * 10 * seconds

    def child(name: str, repeat: int, out: str = "") -> dict[str, Any]:
        args = ["--worker", name, "--data", str(path), "--repeat", str(repeat), "--out", out]
        return C.run_child([__file__, *args, "--chunk", str(chunk)], ONE_THREAD)

    outputs: dict[str, pa.Table] = {}
    for name in CONTENDERS:  # correctness first: one run each, outputs compared
        out = str(C.RESULTS / "cache" / f"out-{name}.arrow")
        child(name, 0, out)
        with pa.OSFile(out) as f:
            outputs[name] = normalize(pa.ipc.open_file(f).read_all())
    ref = outputs["gpuledger"]
    rows: list[dict[str, Any]] = []
    notes = [
        f"output: {ref.num_rows:,} gpu_windows rows; compared columns: {', '.join(COLUMNS[4:])}",
        "1 thread each (POLARS_MAX_THREADS=1, DuckDB threads=1); cores = CPU time / wall time",
        "peak RSS is the process's whole peak (data included); 'over data' is the peak after "
        "the input table was loaded, minus the RSS with only the table loaded",
        "peers implement the same energy rule (increase from the series' last reading in the "
        "previous window; a decrease is a reset) and the GR-else-GPU_UTIL/100 rule",
    ]
    timed: dict[str, dict[str, Any]] = {}
    for name in CONTENDERS:
        problems = [] if name == "gpuledger" else compare(ref, outputs[name])
        if problems:
            rows.append({"contender": name, "agrees": False})
            notes.append(f"{name} disagrees, not timed: {'; '.join(problems[:4])}")
        else:
            timed[name] = child(name, repeat)
    gl = timed["gpuledger"]["median_s"]
    for name, r in timed.items():
        rows.append(
            {
                "contender": name,
                "agrees": True,
                "median_s": r["median_s"],
                "min_s": r["min_s"],
                "Msamples/s": n_rows / r["median_s"] / 1e6,
                "gpuledger speedup": r["median_s"] / gl,
                "cores": r["cores"],
                "peak RSS MiB": r["peak_rss_mib"],
                "over data MiB": r["peak_rss_mib"] - r["data_rss_mib"],
            }
        )
    rate = n_rows / gl
    targets = [
        C.target(
            "gpuledger >= 50M samples/s on one core", rate >= 50e6, f"{rate / 1e6:.1f}M samples/s"
        )
    ]
    for peer in ("polars", "duckdb"):
        speed = timed[peer]["median_s"] / gl if peer in timed else None
        shown = "not timed (disagrees)" if speed is None else f"{speed:.2f}x"
        targets.append(
            C.target(
                f"gpuledger faster than {peer} (1 thread)", speed is not None and speed > 1.0, shown
            )
        )
    return {
        "bench": "columnar",
        "title": "Columnar replay: long-form Arrow to gpu_windows (60 s), one thread",
        "params": dict(
            gpus=gpus, fields=10, seconds=seconds, rows=n_rows, chunk_rows=chunk, repeat=repeat
        ),
        "rows": rows,
        "targets": targets,
        "notes": notes,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1 hour of data, for CI")
    ap.add_argument("--gpus", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=86_400)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    ap.add_argument("--chunk", type=int, default=262_144, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.data, a.repeat, a.out, a.chunk)
        return
    result = run(a.quick, a.gpus, a.seconds, a.repeat)
    print(C.markdown(result))
    print("written:", C.write_results([result], "columnar"))


if __name__ == "__main__":
    main()
