"""Bench: gpuledger inside Spark vs the same windows in Spark SQL (issue 22, item 3).

One Spark session (`local[2]`), one DataFrame of the columnar bench's long-form trace (16 GPUs
x 10 DCGM fields at 1 s) read from its Parquet file with provenance columns, as a backfill
reads an archive (each run reads the file again, on both sides), two ways to get its
gpu_windows:

- gpuledger: `gpuledger.spark.compute_tables` (one shard: one engine in one `mapInArrow`
  task; several: one engine per shard in `applyInArrow`; every table computed, the tables
  collected as Arrow);
- Spark SQL: the columnar bench's gpu_windows query in Spark's dialect (`window()`,
  `percentile_approx`, `FILTER (WHERE ...)`, `lag` for the energy counter), collected with
  `toArrow()`.

Before timing, the two gpu_windows are compared (keys and samples exact, util_mean,
busy_gpu_s, cost_usd and the other floats within 1e-6 relative; the quantiles within 0.05,
as `percentile_approx` returns a nearby sample, not an interpolated one). Runs alternate
between the sides; prints each side's median time, every run, rows/s and the ratio.
`--handover` adds the floor under gpuledger's side: the same rows handed to a Python task
that only counts them (all columns, the label strings, the rest, one column).
Usage: python benches/bench_spark.py [--quick] [--seconds S] [--repeat R] [--shards N]
[--handover]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import bench_columnar as BC

SPARK_SQL = """
WITH r AS (
  SELECT window(ts, '60 seconds').start AS ws, ts, gpu, namespace, pod, model_name AS model,
         field, value
  FROM t WHERE field IN ('{GR}', '{GU}', '{FB}', '{PW}', '{EN}') AND value IS NOT NULL
), e AS (
  SELECT ws, gpu, namespace, pod,
         CASE WHEN lag(ts) OVER s >= ws - INTERVAL 60 SECONDS THEN
           CASE WHEN value >= lag(value) OVER s THEN value - lag(value) OVER s ELSE value END
         END AS d
  FROM r WHERE field = '{EN}'
  WINDOW s AS (PARTITION BY gpu, namespace, pod ORDER BY ts)
), ea AS (
  SELECT ws, gpu, namespace, pod, sum(d) AS inc, count(d) AS n FROM e
  GROUP BY ws, gpu, namespace, pod
), a AS (
  SELECT ws, gpu, namespace, pod, first(model) AS model,
    count(value) FILTER (WHERE field = '{GR}') AS gr_n,
    avg(value) FILTER (WHERE field = '{GR}') AS gr_mean,
    min(value) FILTER (WHERE field = '{GR}') AS gr_min,
    max(value) FILTER (WHERE field = '{GR}') AS gr_max,
    percentile_approx(value, 0.5) FILTER (WHERE field = '{GR}') AS gr_p50,
    percentile_approx(value, 0.95) FILTER (WHERE field = '{GR}') AS gr_p95,
    count(value) FILTER (WHERE field = '{GU}') AS gu_n,
    avg(value / 100) FILTER (WHERE field = '{GU}') AS gu_mean,
    min(value / 100) FILTER (WHERE field = '{GU}') AS gu_min,
    max(value / 100) FILTER (WHERE field = '{GU}') AS gu_max,
    percentile_approx(value / 100, 0.5) FILTER (WHERE field = '{GU}') AS gu_p50,
    percentile_approx(value / 100, 0.95) FILTER (WHERE field = '{GU}') AS gu_p95,
    max(value) FILTER (WHERE field = '{FB}') AS fb_used_max_mib,
    avg(value) FILTER (WHERE field = '{PW}') AS power_mean_w
  FROM r GROUP BY ws, gpu, namespace, pod
), u AS (
  SELECT a.*, ea.inc, ea.n AS e_n, gr_n > 0 AS g,
    CASE WHEN gr_n > 0 THEN gr_n ELSE gu_n END AS samples,
    least(CAST(CASE WHEN gr_n > 0 THEN gr_n ELSE gu_n END AS DOUBLE), 60.0D) AS covered,
    CASE WHEN gr_n > 0 THEN gr_mean ELSE gu_mean END AS util_mean
  FROM a LEFT JOIN ea
    ON a.ws = ea.ws AND a.gpu = ea.gpu AND a.namespace = ea.namespace AND a.pod = ea.pod
)
SELECT ws AS window_start, gpu AS gpu_uuid, namespace, pod, samples, util_mean,
  CASE WHEN g THEN gr_min ELSE gu_min END AS util_min,
  CASE WHEN g THEN gr_max ELSE gu_max END AS util_max,
  coalesce(util_mean, 0) * covered AS busy_gpu_s,
  covered - coalesce(util_mean, 0) * covered AS idle_gpu_s,
  fb_used_max_mib, power_mean_w,
  CASE WHEN e_n > 0 THEN inc / 1000 ELSE power_mean_w * covered END AS energy_j,
  covered / 3600.0D * CASE model {PRICE_CASES} ELSE {PRICE_DEFAULT} END AS cost_usd,
  CASE WHEN g THEN gr_p50 ELSE gu_p50 END AS util_p50,
  CASE WHEN g THEN gr_p95 ELSE gu_p95 END AS util_p95
FROM u
"""

APPROX_QUANTILE_ATOL = 0.05


def session() -> Any:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("gpuledger-bench-spark")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.files.maxPartitionBytes", str(4 << 20))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def disagreements(ref: pa.Table, got: pa.Table) -> list[str]:
    """Where Spark SQL's gpu_windows (`got`) differ from gpuledger's (`ref`), both normalized;
    quantiles within APPROX_QUANTILE_ATOL (percentile_approx)."""
    keys, exact, floats, quants, _ = BC.SPEC["gpu_windows"]
    if ref.num_rows != got.num_rows:
        return [f"{got.num_rows} rows, gpuledger has {ref.num_rows}"]
    bad = [f"{c} differs" for c in keys + exact if not ref.column(c).equals(got.column(c))]
    for c in floats + quants:
        a = ref.column(c).to_numpy(zero_copy_only=False).astype(float)
        b = got.column(c).to_numpy(zero_copy_only=False).astype(float)
        rtol, atol = (0.0, APPROX_QUANTILE_ATOL) if c in quants else (1e-6, 1e-9)
        ok = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        if not ok.all():
            i = int(np.argmin(ok))
            bad.append(f"{c}: {int((~ok).sum())} rows differ, e.g. {a[i]!r} vs {b[i]!r}")
    return bad


LABELS = ["gpu", "field", "namespace", "pod", "model_name", "hostname"]


def _count_rows(batches: Any) -> Any:
    """A `mapInArrow` task that only counts the rows it is handed."""
    n = 0
    for b in batches:
        n += b.num_rows
    yield pa.record_batch([pa.array([n], pa.int64())], names=["n"])


def handover_contenders(df: Any) -> list[tuple[str, Any]]:
    """The floor under gpuledger inside Spark: the same rows handed to one Python task (as the
    backfill's one-shard job hands them, `coalesce(1).mapInArrow`) that only counts them, for
    every column the backfill sends and for groups of them."""
    from gpuledger.spark.rows import FILE_PATH

    sent = df.drop(FILE_PATH)
    groups = {
        "hand-over only, all columns": sent.columns,
        "hand-over only, label strings": LABELS,
        "hand-over only, the other columns": [c for c in sent.columns if c not in LABELS],
        "hand-over only, one column": ["value"],
    }

    def hand_over(columns: list[str]) -> Any:
        return lambda: sent.select(*columns).coalesce(1).mapInArrow(_count_rows, "n long").toArrow()

    return [(name, hand_over(columns)) for name, columns in groups.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 minutes of data, one timed run")
    ap.add_argument("--seconds", type=int, default=None, help="seconds of telemetry [7200]")
    ap.add_argument("--gpus", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per side [3]")
    ap.add_argument("--shards", type=int, default=1, help="gpuledger engines (Spark tasks) [1]")
    ap.add_argument(
        "--handover",
        action="store_true",
        help="also time handing the rows to a Python task that only counts them, per column "
        "group: the floor under gpuledger inside Spark",
    )
    a = ap.parse_args()
    seconds = a.seconds or (600 if a.quick else 7_200)
    repeat = a.repeat or (1 if a.quick else 3)

    import gpuledger
    from gpuledger.spark import compute_tables, read_parquet

    path = BC.to_parquet(BC.data_file(a.gpus, seconds))
    spark = session()
    df = read_parquet(spark, [str(path)])
    rows = df.count()
    print(
        f"{rows:,} rows ({a.gpus} GPUs x {seconds} s x 10 fields); Spark {spark.version}, local[2]"
    )
    df.createOrReplaceTempView("t")
    sql = BC.gpu_sql(SPARK_SQL)
    cfg = gpuledger.Config.from_dict({"prices": C.PRICES})

    def run_gpuledger() -> pa.Table:
        return compute_tables(spark, df, None, config=cfg, shards=a.shards)["gpu_windows"]

    def run_spark_sql() -> pa.Table:
        return spark.sql(sql).toArrow()

    ref, got = BC.normalize(run_gpuledger()), BC.normalize(run_spark_sql())
    bad = disagreements(ref, got)
    if bad:
        print("gpu_windows disagree: " + "; ".join(bad))
        raise SystemExit(1)
    print(f"gpu_windows agree: {ref.num_rows:,} rows")
    contenders = [("gpuledger in Spark", run_gpuledger), ("Spark SQL", run_spark_sql)]
    if a.handover:
        contenders += handover_contenders(df)
    # Runs alternate between the contenders: this VM's speed (and other jobs' load) swings
    # within minutes, and one contender's runs all in one stretch would carry it.
    runs: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(repeat):
        for name, fn in contenders:
            started = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - started)
    times = {name: statistics.median(ts) for name, ts in runs.items()}
    for name, s in times.items():
        each = ", ".join(f"{t:.2f}" for t in runs[name])
        print(f"{name:36s} {s:7.2f} s  {rows / s / 1e6:6.2f} M rows/s  (runs: {each})")
    ratio = times["Spark SQL"] / times["gpuledger in Spark"]
    print(
        f"gpuledger in Spark / Spark SQL speed: {ratio:.2f}x (shards {a.shards}, "
        f"median of {repeat})"
    )
    spark.stop()


if __name__ == "__main__":
    main()
