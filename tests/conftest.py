"""Shared pytest fixtures: a real Kafka broker for the integration tests.

``kafka_bootstrap`` (session) picks, in order:
  1. ``KAFKA_BOOTSTRAP_SERVERS`` from the environment, used as is;
  2. a testcontainers Kafka (KRaft) if a Docker engine answers within ~2 s;
  3. the Docker-free local broker ``compose/kafka-local/kafka-local.sh up``
     (stopped at session end only if this session started it).
``make_topic(partitions=N)`` / ``kafka_topic`` give each test its own fresh topic.
Tests that need Kafka carry the ``kafka`` marker (``pytest -m "not kafka"`` skips them).
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KAFKA_LOCAL = REPO / "compose" / "kafka-local" / "kafka-local.sh"
# the S3-compatible server's fixtures; pytester checks the no-skip rule (tests/test_no_skips.py)
pytest_plugins = ["s3_server", "pytester"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "kafka: needs a running Kafka broker (see tests/conftest.py)"
    )


def pytest_sessionfinish(session, exitstatus):
    # No test may skip: the project's setup installs everything the tests need, so a skip
    # means a missing install step or a missing feature, and it fails the run (CI included).
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter.write_line(
            f"{len(skipped)} test(s) skipped: no test may skip (tests/conftest.py)", red=True
        )


def pytest_collection_modifyitems(items):
    # Any test that (indirectly) uses the broker is a kafka test, marked or not.
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


def _docker_answers() -> bool:
    """Cheap probe (< 2 s) for a Docker engine; False on any problem."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _kafka_container_class():
    try:  # testcontainers >= 4.15
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:
        try:
            from testcontainers.kafka import KafkaContainer
        except ImportError:
            return None
    return KafkaContainer


def _kafka_local(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    # GPULEDGER_KAFKA_PYTHON: the script's readiness probe uses this interpreter's confluent_kafka.
    env = {
        **os.environ,
        "GPULEDGER_KAFKA_PYTHON": os.environ.get("GPULEDGER_KAFKA_PYTHON", sys.executable),
    }
    proc = subprocess.run(
        ["bash", str(KAFKA_LOCAL), *args], env=env, capture_output=True, text=True, timeout=900
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"kafka-local.sh {' '.join(args)} failed (exit {proc.returncode}):\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """Bootstrap servers (host:port) of a ready Kafka broker."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return

    container_cls = _kafka_container_class()
    if container_cls is not None and _docker_answers():
        container = container_cls()
        if hasattr(container, "with_kraft"):
            container = container.with_kraft()
        with container as kafka:
            yield kafka.get_bootstrap_server()
        return

    already_running = _kafka_local("status", check=False).returncode == 0
    print(_kafka_local("up").stderr, end="", file=sys.stderr)  # timings; shown with -s
    try:
        yield _kafka_local("bootstrap").stdout.strip()
    finally:
        if not already_running:
            gc.collect()  # close leftover clients first, so they don't log reconnect errors
            _kafka_local("down", check=False)


def _unique_topic(test_name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", test_name).strip("-")[:80]
    return f"test-{safe}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_topic(kafka_bootstrap, request):
    """Factory: ``make_topic(partitions=3)`` creates a unique topic, deleted at teardown."""
    from confluent_kafka.admin import AdminClient, NewTopic

    # Held in a dict, not a closure cell, so teardown can drop it (pytest keeps _make around).
    state = {"admin": AdminClient({"bootstrap.servers": kafka_bootstrap})}
    created: list[str] = []

    def _make(partitions: int = 1, config: dict | None = None) -> str:
        admin = state["admin"]
        name = _unique_topic(request.node.name)
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
            operation_timeout=30,
        )
        futures[name].result(timeout=30)
        created.append(name)
        # Wait until every partition has a leader, so producers/consumers start cleanly.
        deadline = time.monotonic() + 30
        while True:
            meta = admin.list_topics(topic=name, timeout=10).topics.get(name)
            if (
                meta
                and meta.error is None
                and len(meta.partitions) == partitions
                and all(p.leader >= 0 for p in meta.partitions.values())
            ):
                return name
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {name} has no leader for all {partitions} partitions")
            time.sleep(0.1)

    yield _make

    admin = state.pop("admin")
    if created:  # best effort
        try:
            for fut in admin.delete_topics(created, operation_timeout=30).values():
                fut.result(timeout=30)
        except Exception:
            pass


@pytest.fixture
def kafka_topic(make_topic, request):
    """A fresh topic; partitions = indirect param (default 1):
    ``@pytest.mark.parametrize("kafka_topic", [3], indirect=True)``."""
    return make_topic(partitions=getattr(request, "param", 1))
