"""pytest plugin: a real S3-compatible server for the object-storage tests.

``s3_server`` (session) picks, in order:
  1. an explicit endpoint: ``GPULEDGER_S3_ENDPOINT`` (e.g. ``https://s3.eu-west-1.amazonaws.com``)
     with the standard ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_REGION``;
     ``GPULEDGER_S3_BUCKET`` names an existing bucket to use (tests then get fresh prefixes in
     it instead of fresh buckets);
  2. the Docker-free local S3Proxy ``compose/s3-local/s3-local.sh up`` (stopped at session end
     only if this session started it; ``GPULEDGER_S3_PORT`` picks its port).
``s3_bucket`` gives each test a fresh ``s3://bucket/prefix`` location; ``s3_env`` also puts the
server's AWS variables into ``os.environ`` for the test (pyarrow reads them). Tests that use the
server carry the ``s3`` marker.
Registered from tests/conftest.py (``pytest_plugins``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
S3_LOCAL = REPO / "compose" / "s3-local" / "s3-local.sh"
LOCAL_DATA = Path(os.environ.get("GPULEDGER_S3_DIR", REPO / ".s3-local")).resolve() / "data"

# S3Proxy 2.6.0 rejects the AWS SDK's newer default checksums on multipart uploads
# (XAmzContentSHA256Mismatch); "when_required" turns them off. Real S3 does not need them,
# so they are set only for the local server.
S3PROXY_CHECKSUM_ENV = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # scheme://host:port
    env: dict[str, str] = field(repr=False)  # AWS_* variables a client process needs
    bucket: str = ""  # a given bucket (explicit endpoint); "" = tests create their own
    local: bool = False

    @property
    def host_port(self) -> str:
        return urlsplit(self.endpoint).netloc

    @property
    def scheme(self) -> str:
        return urlsplit(self.endpoint).scheme or "https"

    def filesystem(self, *, allow_bucket_creation: bool = False):
        from pyarrow import fs

        return fs.S3FileSystem(
            access_key=self.env["AWS_ACCESS_KEY_ID"],
            secret_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region=self.env["AWS_REGION"],
            endpoint_override=self.host_port,
            scheme=self.scheme,
            allow_bucket_creation=allow_bucket_creation,
            allow_bucket_deletion=allow_bucket_creation,
        )


@dataclass(frozen=True)
class S3Location:
    server: S3Server
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def env(self) -> dict[str, str]:
        return self.server.env


def s3_local(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["bash", str(S3_LOCAL), *args], capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"s3-local.sh {' '.join(args)} failed (exit {proc.returncode}):\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
    return proc


def _local_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in s3_local("env").stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = value
    return env | S3PROXY_CHECKSUM_ENV


def pytest_configure(config):
    config.addinivalue_line("markers", "s3: needs an S3-compatible server (see tests/s3_server.py)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "s3_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.s3)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A ready S3-compatible server and the AWS variables that reach it."""
    explicit = os.environ.get("GPULEDGER_S3_ENDPOINT", "")
    if explicit:
        missing = [v for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if v not in os.environ]
        if missing:
            raise RuntimeError(f"GPULEDGER_S3_ENDPOINT is set but {', '.join(missing)} are not")
        env = {
            "AWS_ENDPOINT_URL": explicit,
            "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
            "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        }
        if os.environ.get("AWS_SESSION_TOKEN"):
            env["AWS_SESSION_TOKEN"] = os.environ["AWS_SESSION_TOKEN"]
        yield S3Server(explicit, env, bucket=os.environ.get("GPULEDGER_S3_BUCKET", ""))
        return

    already_running = s3_local("status", check=False).returncode == 0
    print(s3_local("up").stderr, end="", file=sys.stderr)  # timings; shown with -s
    env = _local_env()
    try:
        yield S3Server(env["AWS_ENDPOINT_URL"], env, local=True)
    finally:
        if not already_running:
            s3_local("down", check=False)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[S3Location]:
    """A fresh, empty location: a new bucket (or, with GPULEDGER_S3_BUCKET, a new prefix in
    it). Objects the test wrote are deleted afterwards."""
    name = f"gpuledger-test-{uuid.uuid4().hex[:12]}"
    bucket = s3_server.bucket or name
    prefix = name if s3_server.bucket else "out"
    fs = s3_server.filesystem(allow_bucket_creation=not s3_server.bucket)
    if not s3_server.bucket:
        fs.create_dir(bucket)
    yield S3Location(s3_server, bucket, prefix)
    if s3_server.local:
        # S3Proxy 2.6.0 stalls on DeleteObjects (pyarrow's delete_dir): its buckets are
        # directories under the script's data dir, removed directly.
        shutil.rmtree(LOCAL_DATA / bucket, ignore_errors=True)
        return
    try:  # best effort
        if s3_server.bucket:
            fs.delete_dir(f"{bucket}/{prefix}")
        else:
            fs.delete_dir(bucket)
    except OSError:
        pass


@pytest.fixture
def s3_env(s3_bucket: S3Location, monkeypatch: pytest.MonkeyPatch) -> S3Location:
    """`s3_bucket`, with the server's AWS variables in os.environ for the test's duration."""
    for key, value in s3_bucket.env.items():
        monkeypatch.setenv(key, value)
    return s3_bucket
