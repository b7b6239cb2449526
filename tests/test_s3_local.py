"""The local S3 server (compose/s3-local/s3-local.sh) and its fixture: a real S3 API that
pyarrow's S3 filesystem writes to and reads from, multipart uploads included."""

from __future__ import annotations

import os
import subprocess

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from s3_server import S3_LOCAL


def test_parquet_round_trip_through_a_uri(s3_env):
    table = pa.table({"gpu": ["a", "b", "c"], "cost": [1, 2, 3]})
    fs, path = pafs.FileSystem.from_uri(f"{s3_env.uri}/t.parquet")
    pq.write_table(table, path, filesystem=fs)
    assert pq.read_table(path, filesystem=fs).equals(table)
    listed = fs.get_file_info(pafs.FileSelector(f"{s3_env.bucket}/{s3_env.prefix}"))
    assert [i.base_name for i in listed] == ["t.parquet"]


def test_multipart_upload_completes(s3_env):
    # 12 MiB > pyarrow's 5 MiB part size: a multipart upload, which S3Proxy 2.6.0 accepts
    # only with the checksum variables the fixture sets.
    fs, path = pafs.FileSystem.from_uri(f"{s3_env.uri}/big.bin")
    payload = os.urandom(1 << 20) * 12
    with fs.open_output_stream(path) as out:
        out.write(payload)
    with fs.open_input_stream(path) as f:
        assert f.read() == payload


def test_each_test_gets_an_empty_location(s3_bucket):
    fs = s3_bucket.server.filesystem()
    selector = pafs.FileSelector(s3_bucket.bucket, recursive=True, allow_not_found=True)
    assert fs.get_file_info(selector) == []


def test_up_is_idempotent_and_status_reports(s3_server):
    if not s3_server.local:
        return  # an explicit endpoint: the script is not in use
    env = dict(os.environ)
    again = subprocess.run(["bash", str(S3_LOCAL), "up"], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr
    status = subprocess.run(["bash", str(S3_LOCAL), "status"], capture_output=True, text=True)
    assert status.returncode == 0 and s3_server.endpoint in status.stdout
