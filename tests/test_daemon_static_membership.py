"""Restarts in seconds (docs/daemon.md): with `[kafka] instance_id` (Kafka static membership) a
SIGKILLed daemon started again under the same id consumes again within 10 s, with default
session settings otherwise (a dynamic member would wait for the dead session's 45 s timeout).
And `/readyz` says ready only while the member holds partitions."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import (
    ContinuousProducer,
    DaemonPool,
    Topics,
    Trace,
    daemon_config,
    daemon_pool,
    engine_settings,
    make_topics,
    trace_start,
    unique_name,
)

pytestmark = pytest.mark.kafka

RESTART_LIMIT_S = 10.0


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonPool]:
    yield from daemon_pool(tmp_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of http://127.0.0.1:port/path; (0, error) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def consumed(port: int) -> float:
    status, text = get(port, "/metrics")
    if status != 200:
        return 0.0
    for line in text.splitlines():
        if line.startswith("gpuledger_messages_consumed_total "):
            return float(line.split()[1])
    return 0.0


def wait_until(pred, timeout: float, what: str) -> float:
    """Polls `pred` every 50 ms; returns the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"not within {timeout} s: {what}")


def static_config(kafka_bootstrap: str, topics: Topics, out: Path, group: str, **kw):
    cfg = daemon_config(
        bootstrap=kafka_bootstrap,
        group=group,
        topics=topics,
        out_dir=out,
        settings=engine_settings(),
        **kw,
    )
    assert "session.timeout.ms" not in cfg["kafka"]["client"]  # librdkafka's default: 45 s
    return cfg


def test_sigkilled_static_member_consumes_again_within_10_s(
    kafka_bootstrap: str, make_topic, daemons: DaemonPool, tmp_path: Path
) -> None:
    topics = make_topics(make_topic)
    producer = ContinuousProducer(
        kafka_bootstrap, topics, Trace(trace_start()), duration_s=60, speed=5
    )
    producer.start()
    port = free_port()
    cfg = static_config(
        kafka_bootstrap, topics, tmp_path / "out", unique_name("static"), metrics_port=port
    )
    cfg["kafka"]["instance_id"] = "gpuledger-0"
    try:
        first = daemons.start(cfg, name="first")
        wait_until(lambda: get(port, "/readyz")[0] == 200, 60, "first member ready")
        wait_until(lambda: consumed(port) > 0, 30, "first member consuming")

        killed_at = time.monotonic()
        first.sigkill()
        second = daemons.start(cfg, name="restarted")
        ready_at = wait_until(lambda: get(port, "/readyz")[0] == 200, 60, "restarted ready")
        consuming_at = wait_until(lambda: consumed(port) > 0, 60, "restarted consuming")
        ready_s, consuming_s = ready_at - killed_at, consuming_at - killed_at
        print(f"SIGKILL -> ready {ready_s:.2f} s, -> consuming {consuming_s:.2f} s")
        assert consuming_s < RESTART_LIMIT_S, (consuming_s, second.log_tail())
        assert ready_s <= consuming_s + 0.5
        # It took the killed member's partitions back, not a share of a new assignment.
        assigned = second.named("assigned")[-1]["partitions"]
        assert len(assigned) == 5, assigned  # telemetry 3 + latency 2
    finally:
        producer.stop()
        producer.finish()


def test_readyz_only_while_partitions_are_assigned(
    kafka_bootstrap: str, make_topic, daemons: DaemonPool, tmp_path: Path
) -> None:
    # One partition per topic and two members: the range assignor gives both partitions to
    # one member; the other holds none and must not say it is ready.
    topics = Topics(telemetry=make_topic(partitions=1), latency=make_topic(partitions=1))
    group = unique_name("ready")
    ports = {}
    members = {}
    for name in ("a", "b"):
        ports[name] = free_port()
        cfg = static_config(
            kafka_bootstrap, topics, tmp_path / "out", group, metrics_port=ports[name]
        )
        cfg["kafka"]["instance_id"] = f"member-{name}"
        members[name] = daemons.start(cfg, name=name)
        # Before its first assignment a member answers /healthz but is not ready.
        wait_until(lambda n=name: get(ports[n], "/healthz")[0] == 200, 60, f"{name} alive")
    for d in members.values():
        d.wait_for_event("assigned", 60)

    def ready_members() -> set[str]:
        return {n for n in members if get(ports[n], "/readyz")[0] == 200}

    # Wait for the group to settle: both members' latest assignment covers the 2 partitions.
    def settled() -> bool:
        held = [len(d.named("assigned")[-1]["partitions"]) for d in members.values()]
        return sum(held) == 2 and len(ready_members()) == 1

    wait_until(settled, 60, "group settled with one member holding both partitions")
    [holder] = ready_members()
    [idle] = set(members) - {holder}
    status, body = get(ports[idle], "/readyz")
    assert status == 503 and "no partitions assigned" in body
    assert get(ports[idle], "/healthz")[0] == 200
    status, body = get(ports[holder], "/readyz")
    assert status == 200 and "2 partitions assigned" in body
    metric = [
        line
        for line in get(ports[holder], "/metrics")[1].splitlines()
        if line.startswith("gpuledger_partitions_assigned ")
    ]
    assert metric == ["gpuledger_partitions_assigned 2.0"]
    assert get(ports[holder], "/nope")[0] == 404
