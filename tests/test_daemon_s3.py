"""The daemon writing to s3:// on a real S3-compatible server (S3Proxy): exactly once under a
SIGKILL loop (the output equals the library engine's over the same messages, as replay's
does), and a store that is down for a while (backpressure: the daemon pauses, says so in
its log and on /metrics, loses nothing, and resumes when the store is back)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from daemon_harness import (
    ContinuousProducer,
    DaemonExited,
    DaemonPool,
    Trace,
    assert_counters_reconcile,
    assert_same_tables,
    daemon_config,
    daemon_pool,
    engine_settings,
    make_topics,
    reference_ignores,
    reference_tables,
    trace_start,
    unique_name,
)
from s3_server import REPO, S3_LOCAL, S3PROXY_CHECKSUM_ENV

from gpuledger.output.sink import read_table
from gpuledger.tables import TABLES

pytestmark = pytest.mark.kafka

SEED = 20261207


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonPool]:
    yield from daemon_pool(tmp_path)


def read_uri(uri: str) -> dict[str, pa.Table]:
    return {name: read_table(uri, name) for name in TABLES}


def test_sigkill_loop_with_s3_output_equals_the_library(
    kafka_bootstrap: str, make_topic, daemons: DaemonPool, s3_env
) -> None:
    topics = make_topics(make_topic)
    trace = Trace(trace_start(), bad_every_s=15)
    settings = engine_settings()
    cfg = daemon_config(
        bootstrap=kafka_bootstrap,
        group=unique_name("s3crash"),
        topics=topics,
        out_dir=s3_env.uri,  # type: ignore[arg-type]  # a URI: written as given
        settings=settings,
    )
    cfg["kafka"]["instance_id"] = "s3-crash-member"
    assert cfg["output"]["dir"] == s3_env.uri
    producer = ContinuousProducer(kafka_bootstrap, topics, trace, duration_s=18, speed=5)
    rng = random.Random(SEED)
    producer.start()
    kills = 0
    flushed_before_kill = 0
    while kills < 6 or producer.is_alive():
        d = daemons.start(cfg, name=f"killed-{kills}")
        if kills % 2:
            try:
                d.wait_for_event("assigned", 30)
            except DaemonExited as e:
                pytest.fail(f"run {kills} died on its own: {e}")
        time.sleep(rng.uniform(0.5, 3.0))
        assert d.alive(), d.log_tail()
        d.sigkill()
        flushed_before_kill += len(d.named("flushed")) > 0
        kills += 1
        assert kills < 30
    delivered = producer.finish()
    assert flushed_before_kill >= 2, flushed_before_kill
    drain = daemons.start(cfg, name="drain", until_eof=True)
    drain.run_to_exit(90)
    c = assert_counters_reconcile(drain.stopped())
    del c

    expected = reference_tables(kafka_bootstrap, topics, settings)
    assert expected["dead_letters"].num_rows > 0
    got = read_uri(s3_env.uri)
    assert_same_tables(
        got, expected, ignore=reference_ignores(), label=f"s3 output after {kills} SIGKILLs"
    )
    assert sum(1 for x in delivered if x.msg.bad) == got["dead_letters"].num_rows
    secret = s3_env.env["AWS_SECRET_ACCESS_KEY"]
    for d in daemons.started:
        assert secret not in d.log_tail(10_000)
    daemons.assert_json_logs()


@dataclass
class PrivateS3:
    """Its own S3Proxy (port, data dir), sharing the jar cache, to stop and start at will."""

    base: Path
    port: int

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "GPULEDGER_S3_PORT": str(self.port),
            "GPULEDGER_S3_DIR": str(self.base),
            "GPULEDGER_S3_JARS": os.environ.get("GPULEDGER_S3_JARS", str(REPO / ".s3-local/jars")),
        }

    def run(self, cmd: str) -> str:
        proc = subprocess.run(
            ["bash", str(S3_LOCAL), cmd], env=self.env(), capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def aws_env(self) -> dict[str, str]:
        out = {}
        for line in self.run("env").splitlines():
            if line.startswith("export "):
                k, _, v = line[7:].partition("=")
                out[k] = v
        return out | S3PROXY_CHECKSUM_ENV


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def blocked_metric(port: int) -> float | None:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return None
    for line in text.decode().splitlines():
        if line.startswith("gpuledger_output_blocked "):
            return float(line.split()[1])
    return None


def test_store_down_for_a_while_backpressure_and_nothing_lost(
    kafka_bootstrap: str, make_topic, daemons: DaemonPool, tmp_path: Path, monkeypatch
) -> None:
    store = PrivateS3(tmp_path / "s3", free_port())
    store.run("up")
    try:
        aws = store.aws_env()
        for k, v in aws.items():
            monkeypatch.setenv(k, v)
        fs = pafs.S3FileSystem(
            access_key=aws["AWS_ACCESS_KEY_ID"],
            secret_key=aws["AWS_SECRET_ACCESS_KEY"],
            endpoint_override=f"127.0.0.1:{store.port}",
            scheme="http",
            allow_bucket_creation=True,
        )
        fs.create_dir("outage-bucket")
        uri = "s3://outage-bucket/run"
        topics = make_topics(make_topic)
        settings = engine_settings()
        port = free_port()
        cfg = daemon_config(
            bootstrap=kafka_bootstrap,
            group=unique_name("s3down"),
            topics=topics,
            out_dir=uri,  # type: ignore[arg-type]
            settings=settings,
            metrics_port=port,
        )
        producer = ContinuousProducer(
            kafka_bootstrap, topics, Trace(trace_start()), duration_s=30, speed=5
        )
        producer.start()
        d = daemons.start(cfg, name="through-outage")
        d.wait_for_event("flushed", 60)
        assert blocked_metric(port) == 0

        store.run("down")
        down_at = len(d.read_events())
        blocked = d.wait_for_event("output_blocked", 60, after=down_at)
        assert "outage-bucket" in blocked["error"]
        deadline = time.monotonic() + 20
        while blocked_metric(port) != 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert blocked_metric(port) == 1
        time.sleep(4)  # the producer goes on; the daemon holds back
        status = d.wait_for_event("status", 10, lambda e: e.get("output_blocked") is True)
        assert status["lag"] is not None

        store.run("up")
        d.wait_for_event("output_resumed", 90, after=down_at)
        deadline = time.monotonic() + 20
        while blocked_metric(port) != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert blocked_metric(port) == 0
        delivered = producer.finish()
        assert d.stop(30) == 0
        drain = daemons.start(cfg, name="drain", until_eof=True)
        drain.run_to_exit(90)
        stopped = assert_counters_reconcile(drain.stopped())
        del stopped

        expected = reference_tables(kafka_bootstrap, topics, settings)
        got = read_uri(uri)
        assert got["gpu_windows"].num_rows > 0
        assert_same_tables(got, expected, ignore=reference_ignores(), label="through an outage")
        assert len(delivered) > 0
        for daemon in daemons.started:
            assert aws["AWS_SECRET_ACCESS_KEY"] not in daemon.log_tail(10_000)
    finally:
        store.run("down")
