"""Output on a real S3-compatible server (S3Proxy, started by compose/s3-local through the
`s3_server` fixture): replay to s3://, combine from and to s3://, the exactly-once rule on
objects, and credentials that never reach logs, messages or repr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from fleet_topics import fleet_topics

from gpuledger.errors import OutputConflictError
from gpuledger.output import object_store
from gpuledger.output.combine import combine_dirs
from gpuledger.output.sink import ArrowSink, output_files, read_table
from gpuledger.tables import TABLES

START = 1_795_867_200  # 2026-11-28T12:00:00Z


def gpuledger(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpuledger", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> Path:
    """20 minutes of the small fleet's DCGM samples and chat requests, one JSON per line."""
    topics = fleet_topics(START, 1200, telemetry="t", latency="r", partitions=1)
    path = tmp_path_factory.mktemp("trace") / "trace.jsonl"
    with path.open("wb") as f:
        for value, _ in topics["t"][0]:
            f.write(value + b"\n")
    req = tmp_path_factory.mktemp("trace") / "requests.jsonl"
    with req.open("wb") as f:
        for value, _ in topics["r"][0]:
            f.write(value + b"\n")
    return path.parent


def tables(where: str | Path) -> dict[str, pa.Table]:
    return {name: read_table(where, name) for name in TABLES}


def assert_same(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> None:
    for name in TABLES:
        assert a[name].equals(b[name]), name
    assert a["gpu_windows"].num_rows > 0


def test_replay_to_s3_equals_replay_to_a_directory(s3_env, trace: Path, tmp_path: Path) -> None:
    inputs = sorted(str(p) for p in trace.parent.glob("*/*.jsonl"))
    local = gpuledger("replay", *inputs, "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    remote = gpuledger("replay", *inputs, "--out", s3_env.uri)
    assert remote.returncode == 0, remote.stderr
    assert not Path("s3:").exists()  # the bug of issue 19: a URI taken for a path
    assert_same(tables(s3_env.uri), tables(tmp_path / "local"))
    # Same layout and names as on disk.
    names = sorted(u.split(s3_env.uri + "/", 1)[1] for u in output_files(s3_env.uri, "gpu_windows"))
    local_names = sorted(
        str(Path(p).relative_to(tmp_path / "local"))
        for p in output_files(tmp_path / "local", "gpu_windows")
    )
    assert names == local_names and names
    # Replay writes afresh: a used location is refused.
    again = gpuledger("replay", *inputs, "--out", s3_env.uri)
    assert again.returncode != 0 and "not empty" in again.stderr
    secret = s3_env.env["AWS_SECRET_ACCESS_KEY"]
    for proc in (local, remote, again):
        assert secret not in proc.stdout + proc.stderr


def test_combine_from_and_to_s3(s3_env, trace: Path, tmp_path: Path) -> None:
    inputs = sorted(str(p) for p in trace.parent.glob("*/*.jsonl"))
    a, b = f"{s3_env.uri}/a", f"{s3_env.uri}/b"
    # Two "instances": telemetry and requests replayed apart, each partial.
    for uri, path in ((a, inputs[0]), (b, inputs[1])):
        proc = gpuledger("replay", path, "--out", uri)
        assert proc.returncode == 0, proc.stderr
    for uri, path in ((tmp_path / "a", inputs[0]), (tmp_path / "b", inputs[1])):
        proc = gpuledger("replay", path, "--out", str(uri))
        assert proc.returncode == 0, proc.stderr
    out = f"{s3_env.uri}/combined"
    cli = gpuledger("combine", a, b, "--out", out)
    assert cli.returncode == 0, cli.stderr
    local = combine_dirs([tmp_path / "a", tmp_path / "b"], tmp_path / "combined")
    assert_same(tables(out), tables(tmp_path / "combined"))
    assert local["gpu_windows"].num_rows == read_table(out, "gpu_windows").num_rows
    # Again: identical objects, nothing new; into one of its inputs: refused.
    again = gpuledger("combine", a, b, "--out", out)
    assert again.returncode == 0 and "0 files written" in again.stdout
    into_input = gpuledger("combine", a, b, "--out", a + "/")
    assert into_input.returncode == 1 and "also an input" in into_input.stderr
    # Mixed: a local directory and a bucket prefix combine as well.
    mixed = combine_dirs([tmp_path / "a", b])
    assert mixed["gpu_windows"].equals(local["gpu_windows"])


def _window_table(values: list[float]) -> pa.Table:
    starts = [1_795_867_200_000 + 60_000 * (i % 60) for i in range(len(values))]  # one hour
    return pa.table(
        {"window_start": pa.array(starts, pa.timestamp("ms", tz="UTC")), "value": values}
    )


def test_exactly_once_rule_on_objects(s3_env) -> None:
    sink = ArrowSink(s3_env.uri, writer_id="w1")
    table = _window_table([1.0, 2.0, 3.0])
    [written] = sink.write({"gpu_windows": table}, batch_key="b1")
    assert sink.write({"gpu_windows": table}, batch_key="b1") == []  # identical: skipped
    # The same rows in another order are the same file.
    assert sink.write({"gpu_windows": table.take([2, 0, 1])}, batch_key="b1") == []
    with pytest.raises(OutputConflictError, match="different rows"):
        sink.write({"gpu_windows": _window_table([1.0, 2.0, 4.0])}, batch_key="b1")
    assert read_table(s3_env.uri, "gpu_windows").equals(table)
    # Over the single-PUT size: staged, copied whole, the staging object removed.
    big = _window_table([float(i) for i in range(400_000)])
    assert big.nbytes > object_store.SINGLE_PUT_BYTES
    [big_path] = sink.write({"gpu_windows": big}, batch_key="big")
    fs = s3_env.server.filesystem()
    assert fs.get_file_info(str(big_path)).size > object_store.SINGLE_PUT_BYTES
    staged = fs.get_file_info(
        pafs.FileSelector(f"{s3_env.bucket}/{s3_env.prefix}/.staging", allow_not_found=True)
    )
    assert [i for i in staged if i.base_name.startswith(".part-")] == []
    assert read_table(s3_env.uri, "gpu_windows").num_rows == 400_003
    assert str(written).startswith(f"{s3_env.bucket}/{s3_env.prefix}/gpu_windows/date=")


def test_a_staged_upload_left_by_a_crash_is_cleaned_by_its_writer_only(s3_env) -> None:
    fs = s3_env.server.filesystem()
    staging = f"{s3_env.bucket}/{s3_env.prefix}/.staging"
    mine = f"{staging}/.part-b1-w1.arrow.tmp-123-abcd0123"
    theirs = f"{staging}/.part-b1-w2.arrow.tmp-456-abcd0123"
    for key in (mine, theirs):
        with fs.open_output_stream(key) as out:
            out.write(b"partial")
    sink = ArrowSink(s3_env.uri, writer_id="w1")  # starting a sink cleans up its writer's
    assert sink.cleanup_temp() == []  # nothing left for a second call
    assert fs.get_file_info(mine).type == pafs.FileType.NotFound
    assert fs.get_file_info(theirs).type == pafs.FileType.File
    # Readers never see either: they are not under a table.
    assert output_files(s3_env.uri, "gpu_windows") == []


def test_credentials_stay_out_of_uris_messages_and_repr(s3_env) -> None:
    secret = s3_env.env["AWS_SECRET_ACCESS_KEY"]
    key_id = s3_env.env["AWS_ACCESS_KEY_ID"]
    with pytest.raises(ValueError) as e:
        ArrowSink(f"s3://{key_id}:{secret}@{s3_env.bucket}/x")
    assert secret not in str(e.value) and "credentials do not belong" in str(e.value)
    sink = ArrowSink(s3_env.uri, writer_id="w1")
    for text in (repr(sink), str(sink), repr(sink.store), repr(vars(sink))):
        assert secret not in text and key_id not in text
    # A refused write names the object, not the credentials.
    sink.write({"gpu_windows": _window_table([1.0])}, batch_key="c")
    with pytest.raises(OutputConflictError) as conflict:
        sink.write({"gpu_windows": _window_table([2.0])}, batch_key="c")
    assert secret not in str(conflict.value)


def test_a_missing_bucket_is_a_clear_error(s3_env, trace: Path) -> None:
    proc = gpuledger(
        "replay",
        sorted(str(p) for p in trace.parent.glob("*/*.jsonl"))[0],
        "--out",
        f"s3://no-such-bucket-{s3_env.prefix}/x",
    )
    assert proc.returncode != 0
    assert "no-such-bucket" in proc.stderr and "Traceback" not in proc.stderr
    assert s3_env.env["AWS_SECRET_ACCESS_KEY"] not in proc.stderr


def test_credentials_from_a_mounted_credentials_file(s3_env, trace: Path, tmp_path: Path) -> None:
    """The secrets-file way (e.g. a Kubernetes Secret mounted as a file): the AWS shared
    credentials file named by AWS_SHARED_CREDENTIALS_FILE, no key variables."""
    creds = tmp_path / "credentials"
    creds.write_text(
        "[default]\n"
        f"aws_access_key_id = {s3_env.env['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {s3_env.env['AWS_SECRET_ACCESS_KEY']}\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(creds)
    inputs = sorted(str(p) for p in trace.parent.glob("*/*.jsonl"))
    proc = subprocess.run(
        [sys.executable, "-m", "gpuledger", "replay", inputs[0], "--out", s3_env.uri],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert read_table(s3_env.uri, "gpu_windows").num_rows > 0
    assert s3_env.env["AWS_SECRET_ACCESS_KEY"] not in proc.stdout + proc.stderr
    # And without any credentials the store refuses, with a message that says where.
    bad_secret = "not-the-secret-0123456789"
    creds.write_text(
        f"[default]\naws_access_key_id = nobody\naws_secret_access_key = {bad_secret}\n"
    )
    denied = subprocess.run(
        [sys.executable, "-m", "gpuledger", "replay", inputs[0], "--out", s3_env.uri + "-2"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert denied.returncode != 0 and s3_env.bucket in denied.stderr
    assert bad_secret not in denied.stderr and "Traceback" not in denied.stderr
