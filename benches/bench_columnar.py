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
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

KEYS = ["window_start", "gpu_uuid", "namespace", "pod"]
EXACT = ["samples"]
QUANTILES = ["util_p50", "util_p95"]
FLOATS = ["util_mean", "util_min", "util_max", "busy_gpu_s", "idle_gpu_s", "fb_used_max_mib"]
FLOATS += ["power_mean_w", "energy_j", "cost_usd"]
COLUMNS = KEYS + EXACT + FLOATS + QUANTILES
CONTENDERS = ("gpuledger", "polars", "duckdb", "datafusion")


def run_gpuledger(src: pa.Table | str, chunk_rows: int, table: str = "gpu_windows") -> pa.Table:
    import gpuledger

    e = gpuledger.Engine(gpuledger.Config.from_dict({"prices": C.PRICES}))
    form = "long" if table == "gpu_windows" else "requests"
    if isinstance(src, str):
        # A library user's Parquet path: the engine's own Rust reader, in this thread only
        # (no read-ahead thread: the peers run one thread too).
        e.push_parquet_file(src, form=form, batch_rows=chunk_rows)
        return pa.concat_tables([e.poll()[table], e.finish()[table]])
    parts = []
    for batch in src.to_batches(max_chunksize=chunk_rows):
        e.push_arrow(batch, form=form)
        parts.append(e.poll()[table])
    parts.append(e.finish()[table])
    return pa.concat_tables(parts)


def polars_frame(src: pa.Table | str) -> Any:
    import polars as pl

    return pl.from_arrow(src).lazy() if isinstance(src, pa.Table) else pl.scan_parquet(src)


def run_polars(src: pa.Table | str, _chunk: int) -> pa.Table:
    return polars_plan(polars_frame(src)).collect().to_arrow()


def polars_plan(frame: Any) -> Any:
    """gpu_windows as a Polars LazyFrame over the long-form frame."""
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
        frame.filter(f.is_in(C.USED_FIELDS) & v.is_not_null())
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
    )
    return out


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


# DataFusion's dialect of the same query: date_bin, FILTER (WHERE ...), percentile_cont,
# first_value, no GROUP BY ALL and no reuse of a select alias in the same select.
DATAFUSION_SQL = """
WITH r AS (
  SELECT date_bin(INTERVAL '60 seconds', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS ws, ts,
         arrow_cast(gpu, 'Utf8') AS gpu, arrow_cast(namespace, 'Utf8') AS namespace,
         arrow_cast(pod, 'Utf8') AS pod, arrow_cast(model_name, 'Utf8') AS model,
         arrow_cast(field, 'Utf8') AS field, value
  FROM t WHERE field IN ('{GR}', '{GU}', '{FB}', '{PW}', '{EN}') AND value IS NOT NULL
), e AS (
  SELECT ws, gpu, namespace, pod,
         CASE WHEN lag(ts) OVER s >= ws - INTERVAL '60 seconds' THEN
           CASE WHEN value >= lag(value) OVER s THEN value - lag(value) OVER s ELSE value END
         END AS d
  FROM r WHERE field = '{EN}'
  WINDOW s AS (PARTITION BY gpu, namespace, pod ORDER BY ts)
), ea AS (
  SELECT ws, gpu, namespace, pod, sum(d) AS inc, count(d) AS n FROM e
  GROUP BY ws, gpu, namespace, pod
), a AS (
  SELECT ws, gpu, namespace, pod, first_value(model) AS model,
    count(value) FILTER (WHERE field = '{GR}') AS gr_n,
    avg(value) FILTER (WHERE field = '{GR}') AS gr_mean,
    min(value) FILTER (WHERE field = '{GR}') AS gr_min,
    max(value) FILTER (WHERE field = '{GR}') AS gr_max,
    percentile_cont(value, 0.5) FILTER (WHERE field = '{GR}') AS gr_p50,
    percentile_cont(value, 0.95) FILTER (WHERE field = '{GR}') AS gr_p95,
    count(value) FILTER (WHERE field = '{GU}') AS gu_n,
    avg(value / 100) FILTER (WHERE field = '{GU}') AS gu_mean,
    min(value / 100) FILTER (WHERE field = '{GU}') AS gu_min,
    max(value / 100) FILTER (WHERE field = '{GU}') AS gu_max,
    percentile_cont(value / 100, 0.5) FILTER (WHERE field = '{GU}') AS gu_p50,
    percentile_cont(value / 100, 0.95) FILTER (WHERE field = '{GU}') AS gu_p95,
    max(value) FILTER (WHERE field = '{FB}') AS fb_used_max_mib,
    avg(value) FILTER (WHERE field = '{PW}') AS power_mean_w
  FROM r GROUP BY ws, gpu, namespace, pod
), u AS (
  SELECT a.*, ea.inc, ea.n AS e_n, gr_n > 0 AS g,
    CASE WHEN gr_n > 0 THEN gr_n ELSE gu_n END AS samples,
    least(CASE WHEN gr_n > 0 THEN gr_n ELSE gu_n END * 1.0, 60.0) AS covered,
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
  covered / 3600 * CASE model {PRICE_CASES} ELSE {PRICE_DEFAULT} END AS cost_usd,
  CASE WHEN g THEN gr_p50 ELSE gu_p50 END AS util_p50,
  CASE WHEN g THEN gr_p95 ELSE gu_p95 END AS util_p95
FROM u
"""


def gpu_sql(template: str) -> str:
    cases = " ".join(f"WHEN '{m}' THEN {p}" for m, p in C.PRICES.items() if m != "default")
    return template.format(
        GR=C.GR,
        GU=C.GPU_UTIL,
        FB=C.FB,
        PW=C.POWER,
        EN=C.ENERGY,
        PRICE_CASES=cases,
        PRICE_DEFAULT=C.PRICES["default"],
    )


# ---------------------------------------------------------------- latency_windows

LAT_KEYS = ["window_start", "service"]
LAT_EXACT = ["requests", "errors", "slo_violations", "tokens_in", "tokens_out"]
LAT_FLOATS = ["latency_mean_ms", "latency_max_ms"]
LAT_QUANTILES = ["latency_p50_ms", "latency_p95_ms", "latency_p99_ms"]
LAT_COLUMNS = LAT_KEYS + LAT_EXACT + LAT_FLOATS + LAT_QUANTILES
SLO_MS = 200.0  # the engine's default slo_latency_ms: a violation is latency_ms > SLO_MS
SERVICES = ("chat-llm", "code-llm", "embed", "rerank")


def latency_table(n: int, seconds: int, start_s: int = C.DAY0, seed: int = 11) -> pa.Table:
    """Request events in time order (gpuledger's columnar request form, no request_id):
    4 services, 16 pods, lognormal latencies and TTFT, 1 % status 500, token counts."""
    rng = np.random.default_rng(seed)
    ts_ms = np.sort(rng.integers(start_s * 1000, (start_s + seconds) * 1000, n))
    svc = rng.integers(0, len(SERVICES), n).astype(np.int32)
    pod = (svc * 4 + rng.integers(0, 4, n)).astype(np.int32)
    pods = [f"{s}-{i}" for s in SERVICES for i in range(4)]
    return pa.table(
        {
            "ts": pa.array(ts_ms, pa.timestamp("ms", tz="UTC")),
            "service": C._dict(svc, SERVICES),
            "namespace": C._dict(svc, [f"team-{s}" for s in SERVICES]),
            "pod": C._dict(pod, pods),
            "latency_ms": np.round(np.exp(rng.normal(4.5 + 0.3 * svc, 0.8)), 3),
            "ttft_ms": np.round(np.exp(rng.normal(3.0, 0.5, n)), 3),
            "status": pa.array(np.where(rng.random(n) < 0.01, 500, 200), pa.int32()),
            "tokens_in": pa.array(rng.integers(10, 2000, n), pa.int64()),
            "tokens_out": pa.array(rng.integers(1, 500, n), pa.int64()),
        }
    )


def run_polars_latency(src: pa.Table | str, _chunk: int) -> pa.Table:
    import polars as pl

    lat = pl.col("latency_ms")
    out = (
        polars_frame(src)
        .group_by_dynamic("ts", every="60s", group_by="service")
        .agg(
            pl.len().cast(pl.Int64).alias("requests"),
            (pl.col("status") >= 500).sum().cast(pl.Int64).alias("errors"),
            (lat > SLO_MS).sum().cast(pl.Int64).alias("slo_violations"),
            pl.col("tokens_in").sum().cast(pl.Float64),
            pl.col("tokens_out").sum().cast(pl.Float64),
            lat.mean().alias("latency_mean_ms"),
            lat.max().alias("latency_max_ms"),
            lat.quantile(0.5, "linear").alias("latency_p50_ms"),
            lat.quantile(0.95, "linear").alias("latency_p95_ms"),
            lat.quantile(0.99, "linear").alias("latency_p99_ms"),
        )
        .rename({"ts": "window_start"})
        .with_columns(pl.col("service").cast(pl.String))
        .collect()
    )
    return out.to_arrow()


LATENCY_SQL = """
SELECT {BUCKET} AS window_start, {SERVICE} AS service,
  count(*) AS requests, count(*) FILTER (WHERE status >= 500) AS errors,
  count(*) FILTER (WHERE latency_ms > {SLO}) AS slo_violations,
  CAST(sum(tokens_in) AS DOUBLE) AS tokens_in, CAST(sum(tokens_out) AS DOUBLE) AS tokens_out,
  avg(latency_ms) AS latency_mean_ms, max(latency_ms) AS latency_max_ms,
  {Q50} AS latency_p50_ms, {Q95} AS latency_p95_ms, {Q99} AS latency_p99_ms
FROM t GROUP BY 1, 2
"""


def latency_sql(engine: str) -> str:
    if engine == "duckdb":
        bucket = "time_bucket(INTERVAL '60 seconds', ts::TIMESTAMP)"
        service, q = "service::VARCHAR", "quantile_cont(latency_ms, {})"
    else:
        bucket = "date_bin(INTERVAL '60 seconds', ts, TIMESTAMP '1970-01-01T00:00:00Z')"
        service, q = "arrow_cast(service, 'Utf8')", "percentile_cont(latency_ms, {})"
    return LATENCY_SQL.format(
        BUCKET=bucket,
        SERVICE=service,
        SLO=SLO_MS,
        Q50=q.format(0.5),
        Q95=q.format(0.95),
        Q99=q.format(0.99),
    )


# ---------------------------------------------------------------- peers: DuckDB, DataFusion


def duckdb_query(src: pa.Table | str, sql: str) -> pa.Table:
    import duckdb

    con = duckdb.connect(config={"threads": C.threads()})  # ts read as UTC: no ICU time zones
    if isinstance(src, pa.Table):
        con.register("t", src)
    else:
        con.sql(f"CREATE VIEW t AS SELECT * FROM read_parquet('{src}')")
    out = con.sql(sql).to_arrow_table()
    con.close()
    return out


def datafusion_query(src: pa.Table | str, sql: str) -> pa.Table:
    from datafusion import SessionConfig, SessionContext

    ctx = SessionContext(SessionConfig().with_target_partitions(C.threads()))
    if isinstance(src, pa.Table):
        # one partition per thread, as the DataFusion docs do for in-memory tables
        n = C.threads()
        step = -(-src.num_rows // n)
        parts = [src.slice(i * step, step).to_batches() for i in range(n)]
        ctx.register_record_batches("t", [p for p in parts if p])
    else:
        ctx.register_parquet("t", src)
    return ctx.sql(sql).to_arrow_table()


def run_duckdb(src: pa.Table | str, _chunk: int) -> pa.Table:
    return duckdb_query(src, gpu_sql(DUCKDB_SQL))


def run_datafusion(src: pa.Table | str, _chunk: int) -> pa.Table:
    return datafusion_query(src, gpu_sql(DATAFUSION_SQL))


RUNNERS: dict[str, dict[str, Any]] = {
    "gpu_windows": {
        "gpuledger": run_gpuledger,
        "polars": run_polars,
        "duckdb": run_duckdb,
        "datafusion": run_datafusion,
    },
    "latency_windows": {
        "gpuledger": lambda s, c: run_gpuledger(s, c, "latency_windows"),
        "polars": run_polars_latency,
        "duckdb": lambda s, _c: duckdb_query(s, latency_sql("duckdb")),
        "datafusion": lambda s, _c: datafusion_query(s, latency_sql("datafusion")),
    },
}
SPEC = {  # keys, exact, floats (1e-6 relative), quantiles (absolute or relative bound)
    "gpu_windows": (KEYS, EXACT, FLOATS, QUANTILES, (0.0, 0.01)),
    # the engine's latency quantiles come from a sketch with 0.5 % relative accuracy
    "latency_windows": (LAT_KEYS, LAT_EXACT, LAT_FLOATS, LAT_QUANTILES, (0.01, 0.0)),
}


def normalize(t: pa.Table, table: str = "gpu_windows") -> pa.Table:
    """The compared columns in one schema, sorted by key."""
    keys, exact, floats, quants, _ = SPEC[table]
    types = {"window_start": pa.timestamp("ms", tz="UTC")}
    types |= {c: pa.int64() for c in exact if c not in ("tokens_in", "tokens_out")}
    cols = keys + exact + floats + quants
    arrays = [
        t.column(c).cast(types.get(c, pa.string() if c in keys else pa.float64())) for c in cols
    ]
    return pa.table(arrays, names=cols).sort_by([(k, "ascending") for k in keys])


def compare(
    ref: pa.Table,
    got: pa.Table,
    table: str = "gpu_windows",
    bands: pa.Table | None = None,
    exact_peer: bool = True,
) -> list[str]:
    """Disagreements of `got` with `ref` (both normalized); empty when they agree. With
    `bands` (latency_windows), each quantile is checked against the data instead: the peer's
    exact value must lie between the order statistics around rank q (n - 1), gpuledger's
    (from its sketch) within the sketch's relative accuracy of them (`exact_peer` False:
    `got` is gpuledger's too)."""
    keys, exact, floats, quants, (q_rtol, q_atol) = SPEC[table]
    if ref.num_rows != got.num_rows:
        return [f"{got.num_rows} rows, gpuledger has {ref.num_rows}"]
    bad = [f"key column {k} differs" for k in keys if not ref.column(k).equals(got.column(k))]
    bad += [f"{c} differs" for c in exact if not ref.column(c).equals(got.column(c))]
    for c in floats + quants:
        a = ref.column(c).to_numpy(zero_copy_only=False).astype(float)
        b = got.column(c).to_numpy(zero_copy_only=False).astype(float)
        if c in quants and bands is not None:
            lo = bands.column(f"{c}_lo").to_numpy()
            hi = bands.column(f"{c}_hi").to_numpy()
            tol = 1e-9 * np.abs(hi)
            s_lo, s_hi = lo * (1 - SKETCH_ALPHA) - tol, hi * (1 + SKETCH_ALPHA) + tol
            ok = (s_lo <= a) & (a <= s_hi)
            if exact_peer:  # the peer: exact, between the two ranks
                ok &= (lo - tol <= b) & (b <= hi + tol)
            else:
                ok &= (s_lo <= b) & (b <= s_hi)
        else:
            rtol, atol = (q_rtol, q_atol) if c in quants else (1e-6, 1e-9)
            ok = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        if not ok.all():
            i = int(np.argmin(ok))
            bad.append(f"{c}: {int((~ok).sum())} rows differ, e.g. {a[i]!r} vs {b[i]!r}")
    return bad


SKETCH_ALPHA = 0.005  # the engine's latency sketch: relative accuracy


def latency_bands(path: Path) -> pa.Table:
    """Per (60 s window, service), sorted like normalize(): the order statistics at
    floor(q (n - 1)) and ceil(q (n - 1)) for each compared quantile, from the raw events."""
    t = read_ipc(path)
    ws = t.column("ts").cast(pa.int64()).to_numpy() // 60_000 * 60_000
    svc = t.column("service").combine_chunks()
    codes = svc.indices.to_numpy().astype(np.int64)
    lat = t.column("latency_ms").to_numpy()
    key = (ws - ws.min()) // 60_000 * 64 + codes
    order = np.lexsort((lat, key))
    k, v = key[order], lat[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    counts = np.diff(np.r_[starts, len(k)])
    cols: dict[str, Any] = {
        "window_start": pa.array(ws[order][starts], pa.timestamp("ms", tz="UTC")),
        "service": pa.array(np.asarray(svc.dictionary.to_pylist(), object)[codes[order][starts]]),
    }
    for c, q in zip(LAT_QUANTILES, (0.5, 0.95, 0.99), strict=True):
        pos = q * (counts - 1)
        cols[f"{c}_lo"] = v[starts + np.floor(pos).astype(np.int64)]
        cols[f"{c}_hi"] = v[starts + np.ceil(pos).astype(np.int64)]
    return pa.table(cols).sort_by([(k, "ascending") for k in LAT_KEYS])


def data_file(gpus: int, seconds: int, half: int | None = None) -> Path:
    """The long-form table as an Arrow IPC file, generated once and cached; `half` 0 or 1:
    only the first or the second half of the GPUs (a partition of the input)."""
    name = f"long-{gpus}gpu-{seconds}s-v1"  # v: C.long_table
    path = C.RESULTS / "cache" / (name + ("" if half is None else f"-half{half}") + ".arrow")
    if not path.exists():
        if half is None:
            table = C.long_table(gpus, seconds)
        else:
            with pa.OSFile(str(data_file(gpus, seconds))) as f:
                table = pa.ipc.open_file(f).read_all()
            codes = pc.dictionary_encode(table.column("gpu")).combine_chunks().indices
            first = pc.less(codes, gpus // 2)  # the dictionary lists GPUs in order
            table = table.filter(first if half == 0 else pc.invert(first))
        write_ipc(table, path)
    return path


def latency_file(n: int, seconds: int, half: int | None = None) -> Path:
    """Request events as an Arrow IPC file, cached; `half`: two services of the four."""
    path = C.RESULTS / "cache" / f"requests-{n}-{seconds}s-v1{'' if half is None else half}.arrow"
    if not path.exists():
        table = latency_table(n, seconds)
        if half is not None:
            codes = table.column("service").combine_chunks().indices
            first = pc.less(codes, len(SERVICES) // 2)
            table = table.filter(first if half == 0 else pc.invert(first))
        write_ipc(table, path)
    return path


def write_ipc(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with pa.OSFile(str(tmp), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table, max_chunksize=1 << 22)
    tmp.rename(path)


def read_ipc(path: str | Path) -> pa.Table:
    with pa.OSFile(str(path)) as f:
        return pa.ipc.open_file(f).read_all()


def worker(a: argparse.Namespace) -> None:
    """In a fresh process: one run written to `out` (repeat 0), timed runs, or (--serve) one
    run per `go` line on stdin, answering with its wall time (two such workers run side by
    side on the two halves of the input)."""
    src: pa.Table | str = read_ipc(a.data) if a.input == "arrow" else a.data
    fn = RUNNERS[a.table][a.worker]
    base = C.rss_mib()
    C.reset_peak_rss()
    res: dict[str, Any] = {"data_rss_mib": base}
    if a.serve:
        C.serve(lambda: fn(src, a.chunk), lambda t, path: write_ipc(t, Path(path)))
    elif a.repeat == 0:
        write_ipc(fn(src, a.chunk), Path(a.out))
    else:
        res |= C.median_time(lambda: fn(src, a.chunk), a.repeat)
    res["peak_rss_mib"] = C.peak_rss_mib()
    print(json.dumps(res), flush=True)


def run_table(
    table: str, n_rows: int, files: dict[Any, Path], repeat: int, chunk: int, input_: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Correctness first (one run each, compared), then timed runs, 1 and 2 threads."""

    def args(name: str, path: Path, threads: int, repeat: int, out: str = "") -> list[str]:
        return [
            *("--worker", name, "--table", table, "--data", str(path), "--input", input_),
            *("--repeat", str(repeat), "--out", out, "--chunk", str(chunk)),
            *("--threads", str(threads)),
        ]

    cache = C.RESULTS / "cache"
    outputs: dict[str, pa.Table] = {}
    for name in CONTENDERS:
        out = str(cache / f"out-{table}-{name}.arrow")
        C.run_child([__file__, *args(name, files[None], 1, 0, out)], C.env_for(1))
        outputs[name] = normalize(read_ipc(out), table)
    ref = outputs["gpuledger"]
    notes: list[str] = [f"{table}: {ref.num_rows:,} rows compared"]
    bands = None
    if table == "latency_windows":
        bands = latency_bands(files["ipc"])
        problems = compare(
            ref, ref, table, bands, exact_peer=False
        )  # gpuledger's own quantiles vs the data
        notes.append(
            f"{table}: gpuledger's quantiles within the rank band and sketch accuracy: "
            + ("yes" if not problems else "; ".join(problems))
        )
    agree = {"gpuledger": True}
    for name in CONTENDERS[1:]:
        problems = compare(ref, outputs[name], table, bands)
        agree[name] = not problems
        if problems:
            notes.append(f"{table}: {name} disagrees, not timed: {'; '.join(problems[:4])}")
    rows: list[dict[str, Any]] = []
    timed: dict[tuple[str, int], dict[str, Any]] = {}
    for threads in (1, 2):
        for name in CONTENDERS:
            if not agree[name]:
                if threads == 1:
                    rows.append({"table": table, "contender": name, "agrees": False})
                continue
            if name == "gpuledger" and threads == 2:
                halves = [args(name, files[h], 1, 0) for h in (0, 1)]
                pair = C.Pair(__file__, halves, C.env_for(1))
                outs = [str(cache / f"out-{table}-pair{h}.arrow") for h in (0, 1)]
                pair.out(outs)
                both = normalize(pa.concat_tables([read_ipc(o) for o in outs]), table)
                problems = compare(ref, both, table, bands, exact_peer=False)
                if problems:
                    notes.append(f"{table}: 2 processes disagree: {'; '.join(problems[:3])}")
                r = pair.time(repeat)
                peaks = pair.close()
                r["peak_rss_mib"] = sum(p["peak_rss_mib"] for p in peaks)
                r["data_rss_mib"] = sum(p["data_rss_mib"] for p in peaks)
                r["cores"] = None
                timed[(name, 2)] = r
                continue
            timed[(name, threads)] = C.run_child(
                [__file__, *args(name, files[None], threads, repeat)], C.env_for(threads)
            )
    for (name, threads), r in timed.items():
        gl = timed[("gpuledger", threads)]["median_s"]
        label = name
        if name == "gpuledger" and threads == 2:
            label = "gpuledger, 2 processes x 1 engine (halves of the partitions)"
        rows.append(
            {
                "table": table,
                "contender": label,
                "threads": threads,
                "agrees": True,
                "median_s": r["median_s"],
                "min_s": r["min_s"],
                "M rows/s": n_rows / r["median_s"] / 1e6,
                "gpuledger speedup": r["median_s"] / gl,
                "cores": r.get("cores"),
                "peak RSS MiB": r["peak_rss_mib"],
                "over data MiB": r["peak_rss_mib"] - r["data_rss_mib"],
            }
        )
    return rows, [{"key": k, **v} for k, v in timed.items()], notes


def run(
    quick: bool,
    gpus: int = 16,
    seconds: int = 86_400,
    repeat: int = 3,
    requests: int = 4_000_000,
    input_: str = "arrow",
) -> dict[str, Any]:
    if quick:
        seconds, repeat, requests = 3_600, 2, 200_000
    chunk = 262_144
    gpu_files: dict[Any, Path] = {h: data_file(gpus, seconds, h) for h in (None, 0, 1)}
    lat_files: dict[Any, Path] = {h: latency_file(requests, 3_600, h) for h in (None, 0, 1)}
    gpu_files["ipc"], lat_files["ipc"] = gpu_files[None], lat_files[None]
    if input_ == "parquet":
        gpu_files = {h: p if h == "ipc" else to_parquet(p) for h, p in gpu_files.items()}
        lat_files = {h: p if h == "ipc" else to_parquet(p) for h, p in lat_files.items()}
    n_rows = gpus * 10 * seconds
    rows, timed, notes = run_table("gpu_windows", n_rows, gpu_files, repeat, chunk, input_)
    lrows, ltimed, lnotes = run_table("latency_windows", requests, lat_files, repeat, chunk, input_)
    rows += lrows
    notes += lnotes
    t = {(*r["key"], tab): r for tab, rs in (("g", timed), ("l", ltimed)) for r in rs}
    gl = t[("gpuledger", 1, "g")]["median_s"]
    rate = n_rows / gl
    # The 50M/s target is for Arrow already in memory; from Parquet the rate is reported
    # (the decode is inside the timed run) and the end-to-end target is bench_replay_parquet's.
    targets = (
        [
            C.target(
                "gpuledger >= 50M samples/s on one core (gpu_windows)",
                rate >= 50e6,
                f"{rate / 1e6:.1f}M samples/s",
            )
        ]
        if input_ == "arrow"
        else []
    )
    for tab, name in (("g", "gpu_windows"), ("l", "latency_windows")):
        for peer in CONTENDERS[1:]:
            for th in (1, 2):
                if ("gpuledger", th, tab) not in t:
                    continue
                r = t.get((peer, th, tab))
                speed = None if r is None else r["median_s"] / t[("gpuledger", th, tab)]["median_s"]
                shown = "not timed (disagrees)" if speed is None else f"{speed:.2f}x"
                targets.append(
                    C.target(
                        f"gpuledger faster than {peer}, {name}, {th} thread(s)",
                        speed is not None and speed > 1.0,
                        shown,
                    )
                )
    notes += [
        f"input: {input_}: "
        + (
            "each contender reads the Parquet file inside the timed run"
            if input_ == "parquet"
            else "the same in-memory Arrow table, read from a cached IPC file before timing"
        ),
        "compared gpu_windows columns: "
        + ", ".join(COLUMNS[4:])
        + "; latency_windows: "
        + ", ".join(LAT_COLUMNS[2:])
        + " (counts and token sums exact, means/max 1e-6 "
        "relative; quantiles checked against the raw events: a peer's exact linear quantile "
        "between the order statistics at floor/ceil of q (n - 1), gpuledger's (0.5 % "
        "sketch, rank floor(q (n - 1))) within 0.5 % of them)",
        "threads: Polars POLARS_MAX_THREADS (subprocess env), DuckDB SET threads, DataFusion "
        "SessionConfig target_partitions (in-memory input split into that many partitions); "
        "cores = CPU time / wall time",
        "gpuledger is single-threaded per engine: its 2-thread row is 2 processes, each one "
        "engine on half of the partitions (GPUs 0-7 / 8-15; services 2 + 2), started side by "
        "side, wall time until both finish; their concatenated output was compared too; "
        "peak RSS is the sum of both",
        "peers implement the same energy rule (increase from the series' last reading in the "
        "previous window; a decrease is a reset) and the GR-else-GPU_UTIL/100 rule; they do "
        "not deduplicate (the data has no duplicates) and compute only the compared columns, "
        "gpuledger every column of every table",
        "the machine has 2 cores shared with other work: numbers are noisy; the 2-thread "
        "rows only get 2 cores when nothing else runs (see cores)",
    ]
    if input_ == "parquet":
        notes.append(
            f"gpuledger from Parquet: {rate / 1e6:.1f}M samples/s on one core "
            "(`Engine.push_parquet_file`: the engine's own Rust reader, labels straight from "
            "the dictionary pages, no read-ahead thread; `gpuledger replay` reads the same "
            "way, see replay_parquet)"
        )
    return {
        "bench": "columnar" if input_ == "arrow" else "columnar_parquet",
        "title": "Columnar replay: long-form telemetry to gpu_windows, requests to "
        "latency_windows (60 s), 1 and 2 threads",
        "params": dict(
            gpus=gpus,
            fields=10,
            seconds=seconds,
            rows=n_rows,
            requests=requests,
            chunk_rows=chunk,
            repeat=repeat,
            input=input_,
        ),
        "rows": rows,
        "targets": targets,
        "notes": notes,
    }


def to_parquet(path: Path) -> Path:
    """The cached IPC file as Parquet, cached too: label columns dictionary-encoded, as
    pyarrow, Polars or Spark write low-cardinality strings. The IPC file's record batches
    each carry their own dictionary (with repeated values), and a column chunk whose
    dictionary changes falls back to PLAIN strings in Parquet; so the dictionaries are
    unified first (an earlier cache, without this, had 3 of the 6 label columns PLAIN,
    which tripled every reader's Parquet decode time)."""
    import pyarrow.parquet as pq

    out = path.with_name(path.stem + "-dict.parquet")
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        table = read_ipc(path)
        labels = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
        plain = table.cast(
            pa.schema(
                pa.field(f.name, pa.string()) if f.name in labels else f for f in table.schema
            )
        )
        # Written from plain strings: the Parquet writer builds one dictionary per chunk.
        pq.write_table(plain, tmp, row_group_size=1 << 20)
        f = pq.ParquetFile(tmp)
        for i in range(f.metadata.num_columns):
            col = f.metadata.row_group(0).column(i)
            if col.path_in_schema in labels and "RLE_DICTIONARY" not in col.encodings:
                raise SystemExit(f"{tmp}: {col.path_in_schema} is not dictionary-encoded")
        tmp.rename(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1 hour of data, for CI")
    ap.add_argument("--gpus", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=86_400)
    ap.add_argument("--requests", type=int, default=4_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--input", default="arrow", choices=("arrow", "parquet"))
    ap.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    ap.add_argument("--table", default="gpu_windows", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    ap.add_argument("--chunk", type=int, default=262_144, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a)
        return
    result = run(a.quick, a.gpus, a.seconds, a.repeat, a.requests, a.input)
    print(C.markdown(result))
    print("written:", C.write_results([result], "columnar"))


if __name__ == "__main__":
    main()
