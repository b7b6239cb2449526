"""Spark backfill (`gpuledger.spark`, `gpuledger spark-backfill`) in Spark local mode: every
table equals `gpuledger replay` of the same Parquet files, bad rows, late rows and several
overlapping files included; the wide form through the CLI; bad input gets a clear error.
One SparkSession (`local[2]`) serves the whole test session."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from pyspark.sql import SparkSession
from s3_server import S3Location

import gpuledger
from gpuledger.cli import main as cli_main
from gpuledger.errors import ReplayError, ReplayInputError
from gpuledger.output.sink import _sorted, read_table
from gpuledger.replay import replay
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages
from gpuledger.spark import backfill, compute_tables, read_parquet

START = 1_795_867_200  # 2026-11-28T12:00:00Z
SECONDS = 4_800  # 76,800 telemetry rows: two chunks of 65,536 rows
TABLES = (
    *("gpu_windows", "pool_windows", "latency_windows", "service_cost_windows"),
    *("idle_streaks", "late_events", "dead_letters"),
)
CONFIG = gpuledger.Config.from_dict({"idle": {"threshold": 0.05, "ttl_s": 120}})


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("gpuledger-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def long_rows(seconds: int, start: int = START) -> dict[str, list[object]]:
    cols: dict[str, list[object]] = {
        k: [] for k in ("ts", "gpu", "field", "value", "hostname", "model_name", "namespace", "pod")
    }
    for raw in prom_json_messages(default_fleet(), start, seconds):
        m = json.loads(raw)
        lab = m["labels"]
        cols["ts"].append(datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")))
        cols["gpu"].append(lab["UUID"])
        cols["field"].append(m["name"])
        cols["value"].append(float(m["value"]))
        cols["hostname"].append(lab["Hostname"])
        cols["model_name"].append(lab["modelName"])
        cols["namespace"].append(lab["namespace"])
        cols["pod"].append(lab["pod"])
    return cols


def insert(cols: dict[str, list[object]], at: int, **row: object) -> None:
    """A row at position `at`; columns not given copy row `at`'s."""
    for k, v in cols.items():
        v.insert(at, row.get(k, v[at]))


LONG_SCHEMA = pa.schema(
    [pa.field("ts", pa.timestamp("ms", tz="UTC"))]
    + [pa.field(k, pa.string()) for k in ("gpu", "field")]
    + [pa.field("value", pa.float64())]
    + [pa.field(k, pa.string()) for k in ("hostname", "model_name", "namespace", "pod")]
)


def requests_table(seconds: int) -> pa.Table:
    rows: dict[str, list[object]] = {
        k: [] for k in ("ts", "service", "namespace", "pod", "latency_ms", "status")
    }
    for t in range(START, START + seconds, 2):
        pod = ("vllm-chat-0", "vllm-chat-1", "ranker-0")[t % 3]
        chat = pod.startswith("vllm")
        rows["ts"].append(float(t) + 0.5)
        rows["service"].append("chat" if chat else "rank")
        rows["namespace"].append("team-chat" if chat else "team-search")
        rows["pod"].append(pod)
        rows["latency_ms"].append(50.0 + (t * 7) % 400)
        rows["status"].append(500 if t % 97 == 0 else 200)
    bad = {"ts": float(START + 100), "latency_ms": -5.0}  # negative latency: a dead letter
    old = {"ts": float(START + 3), "latency_ms": 80.0}  # out of order
    for at, row in ((10, bad), (len(rows["ts"]) - 5, old)):
        for k, v in rows.items():
            v.insert(at, row.get(k, v[at]))
    return pa.table(rows)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """telemetry/a.parquet: 80 min of the small fleet (two chunks) with bad rows (no time,
    NaN, a time before 2000) in both chunks and a row 75 min late in the second;
    telemetry/b.parquet: one more GPU over the same hour, read side by side with a.parquet;
    requests/r.parquet: requests with a negative latency and one out of order."""
    root = tmp_path_factory.mktemp("archive")
    (root / "telemetry").mkdir()
    (root / "requests").mkdir()
    a = long_rows(SECONDS)
    # In ascending order, so each row stays where it is put.
    insert(a, 500, ts=None)
    insert(a, 66_000, value=math.nan)
    insert(a, 70_000, ts=_ts(START + 60))  # late: its windows closed after the first chunk
    insert(a, 71_000, ts=_ts(946_684_000))  # 1999-12-31
    pq.write_table(pa.table(a).cast(LONG_SCHEMA), root / "telemetry" / "a.parquet")
    b = long_rows(3_600)
    keep = [i for i, g in enumerate(b["gpu"]) if g == b["gpu"][0]]
    b = {k: [v[i] for i in keep] for k, v in b.items()}
    b["gpu"] = ["GPU-extra-0000"] * len(keep)
    b["pod"] = ["extra-pod"] * len(keep)
    pq.write_table(pa.table(b).cast(LONG_SCHEMA), root / "telemetry" / "b.parquet")
    pq.write_table(requests_table(SECONDS), root / "requests" / "r.parquet")
    return root


def assert_same_tables(want_dir: Path, got_dir: Path | str) -> dict[str, int]:
    counts = {}
    for name in TABLES:
        want, got = read_table(want_dir, name), read_table(got_dir, name)
        if want is None or want.num_rows == 0:
            assert got is None or got.num_rows == 0, name
            counts[name] = 0
            continue
        assert got is not None, name
        a, b = _sorted(want), _sorted(got)
        assert a.schema.equals(b.schema), name
        assert a.equals(b), name
        counts[name] = want.num_rows
    return counts


@pytest.mark.parametrize("shards", [1, 3])
def test_backfill_equals_replay_every_table(
    spark: SparkSession, archive: Path, tmp_path: Path, shards: int
) -> None:
    """Two telemetry files read side by side and a requests file, with dead, late and idle
    rows: every table, every column (received_at, source and offsets too) equals replay's
    when replay's chunks are one Parquet batch each, as the backfill's are; in one engine,
    and in three shards merged."""
    tel, req = str(archive / "telemetry"), str(archive / "requests")
    replay([tel, req], tmp_path / "replay", config=CONFIG, chunk_bytes=1)
    summary = backfill(
        spark,
        str(tmp_path / "spark"),
        telemetry=[tel],
        requests=[req],
        config=CONFIG,
        shards=shards,
    )
    counts = assert_same_tables(tmp_path / "replay", tmp_path / "spark")
    assert {k: v for k, v in counts.items() if v} == {k: v for k, v in summary.rows.items() if v}
    assert all(counts[t] > 0 for t in TABLES), counts
    dead = read_table(tmp_path / "spark", "dead_letters")
    assert dead is not None
    where = sorted(zip(dead["source"].to_pylist(), dead["offset"].to_pylist(), strict=True))
    a_file = os.path.join(tel, "a.parquet")
    r_file = os.path.join(req, "r.parquet")
    assert where == sorted([(a_file, 500), (a_file, 66_000), (a_file, 71_000), (r_file, 10)])
    late = read_table(tmp_path / "spark", "late_events")
    assert late is not None
    assert (a_file, 70_000) in set(
        zip(late["source"].to_pylist(), late["offset"].to_pylist(), strict=True)
    )


def test_wide_form_through_the_cli_to_s3(
    spark: SparkSession, s3_env: S3Location, tmp_path: Path
) -> None:
    """`gpuledger spark-backfill` on wide Parquet with a bad row, written to an S3-compatible
    server (S3Proxy): replay's rows, and the summary as JSON."""
    n = 600
    gpus = [f"GPU-w{g}" for g in range(4)]
    wide = pa.table(
        {
            "ts": [float(START + i // 4) for i in range(n * 4)],
            "gpu": [gpus[i % 4] for i in range(n * 4)],
            "model": ["NVIDIA L40S"] * (n * 4),
            "namespace": [f"team-{i % 2}" for i in range(n * 4)],
            "pod": [f"pod-{i % 4}" for i in range(n * 4)],
            "gr_engine_active": [((i * 37) % 100) / 100 if i != 7 else 3.5 for i in range(n * 4)],
            "power_w": [200.0 + i % 50 for i in range(n * 4)],
        }
    )
    path = tmp_path / "wide.parquet"
    pq.write_table(wide, path)
    replay([path], tmp_path / "replay")
    result = CliRunner().invoke(
        cli_main,
        [
            *("spark-backfill", "--telemetry", str(path), "--out", s3_env.uri),
            *("--form", "wide", "--json-summary"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    counts = assert_same_tables(tmp_path / "replay", s3_env.uri)
    assert counts["gpu_windows"] == 40 and counts["dead_letters"] == 1
    assert summary["rows"]["gpu_windows"] == 40
    # A cached DataFrame has no file listing: the files are listed from its rows instead.
    cached = read_parquet(spark, [str(path)]).cache()
    assert cached.count() == wide.num_rows
    tables = compute_tables(spark, cached, None, roots=[str(path)])
    want = read_table(tmp_path / "replay", "dead_letters")
    assert _sorted(tables["dead_letters"]).equals(want)


def test_file_ids_on_the_driver_equal_sparks_xxhash64(spark: SparkSession) -> None:
    """The listing's file ids are computed on the driver; each row's by Spark: they must be
    the same function, or every row of a file would be refused as not listed."""
    from pyspark.sql import functions as F

    from gpuledger.spark.archive import spark_xxhash64

    paths = ["file:/tmp/a.parquet", "file:///d/x%20y/é.parquet", "s3a://b/p/q.parquet", ""]
    row = spark.range(1).select(*[F.xxhash64(F.lit(p)) for p in paths]).collect()[0]
    assert [spark_xxhash64(p) for p in paths] == list(row)


def test_bad_input_is_a_clear_error(spark: SparkSession, tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere")
    with pytest.raises(ReplayInputError, match="nowhere"):
        backfill(spark, str(tmp_path / "out"), telemetry=[missing])
    # This session was started without the s3a connector: the error says how to add it.
    with pytest.raises(ReplayInputError, match=r"no s3a connector.*hadoop-aws:3"):
        backfill(spark, str(tmp_path / "out"), telemetry=["s3://archive/telemetry/"])
    frame = spark.createDataFrame(
        [(1.0, "g", "DCGM_FI_DEV_GPU_UTIL", 1.0)],
        "ts double, gpu string, field string, value double",
    )
    with pytest.raises(ReplayError, match="provenance"):
        compute_tables(spark, frame, None)
    sums = gpuledger.Config.from_dict(
        {"aggregations": [{"name": "a", "field": "DCGM_FI_DEV_GPU_UTIL", "reducer": "mean"}]}
    )
    with pytest.raises(ReplayError, match="aggregations"):
        backfill(spark, str(tmp_path / "agg"), telemetry=[missing], config=sums, shards=2)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ReplayError, match="not empty"):
        backfill(spark, str(tmp_path / "full"), telemetry=[missing])


def test_cli_reads_s3_archives_with_the_aws_variables(
    archive: Path, s3_env: S3Location, tmp_path: Path
) -> None:
    """`python -m gpuledger.spark` as a user runs it on an archive in an S3-compatible server
    (S3Proxy), in its own Spark session, with only the AWS_* variables gpuledger's own client
    reads: the s3a connector is fetched and pointed at the same store, the archive is read
    through it, and the output written back to S3 equals replay of the same files kept
    locally, every table; dead letters and late rows name the s3:// files, and their
    received_at is the object's modification time."""
    fs = s3_env.server.filesystem()
    base = f"{s3_env.bucket}/{s3_env.prefix}"
    for name in ("telemetry/a.parquet", "telemetry/b.parquet", "requests/r.parquet"):
        with (archive / name).open("rb") as src, fs.open_output_stream(f"{base}/{name}") as dst:
            dst.write(src.read())
    tel, req = f"{s3_env.uri}/telemetry/", f"{s3_env.uri}/requests"
    out = f"{s3_env.uri}/out"
    env = {**os.environ, **s3_env.env, "PYSPARK_PYTHON": sys.executable}
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "gpuledger.spark", "--master", "local[2]"),
            *("--telemetry", tel, "--requests", req, "--out", out, "--json-summary"),
            *("--config", str(_write_config(tmp_path))),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    local_tel, local_req = str(archive / "telemetry"), str(archive / "requests")
    replay([local_tel, local_req], tmp_path / "replay", config=CONFIG, chunk_bytes=1)
    renamed = {
        os.path.join(local_tel, "a.parquet"): f"{s3_env.uri}/telemetry/a.parquet",
        os.path.join(local_tel, "b.parquet"): f"{s3_env.uri}/telemetry/b.parquet",
        os.path.join(local_req, "r.parquet"): f"{s3_env.uri}/requests/r.parquet",
    }
    modified = {uri: fs.get_file_info(uri[len("s3://") :]).mtime for uri in renamed.values()}
    for name in TABLES:
        want, got = read_table(tmp_path / "replay", name), read_table(out, name)
        assert want is not None and want.num_rows > 0, name
        assert got is not None, name
        assert summary["rows"][name] == want.num_rows, name
        if "source" in want.column_names:
            sources = [renamed[s] for s in want["source"].to_pylist()]
            want = want.set_column(
                want.schema.get_field_index("source"),
                want.schema.field("source"),
                pa.array(sources, want.schema.field("source").type),
            )
        if "received_at" in want.column_names:
            field = want.schema.field("received_at")
            # S3 reports modification times to the second, as Spark's listing gives them.
            times = [modified[s].replace(microsecond=0) for s in want["source"].to_pylist()]
            want = want.set_column(
                want.schema.get_field_index("received_at"), field, pa.array(times, field.type)
            )
        assert _sorted(want).equals(_sorted(got)), name


def _write_config(tmp_path: Path) -> Path:
    """CONFIG as a file, for the CLI."""
    path = tmp_path / "gpuledger.toml"
    path.write_text("[idle]\nthreshold = 0.05\nttl_s = 120\n")
    return path
