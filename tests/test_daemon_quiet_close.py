"""The last window of a stream that stops is written by a daemon that keeps running
(docs/daemon.md, "Windows close on a quiet stream"): SIGKILLed again and
again while a producer writes, then restarted and left running with no new data, the daemon
writes exactly the rows of one engine that reads the same messages to their end (`gpuledger
replay`'s engine: poll, then finish), the last window included, and does not exit."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pytest
from daemon_harness import (
    WINDOW_S,
    ContinuousProducer,
    DaemonPool,
    Trace,
    TraceProducer,
    assert_same_tables,
    daemon_config,
    daemon_pool,
    engine_settings,
    make_topics,
    read_output,
    reference_ignores,
    reference_tables,
    trace_start,
    unique_name,
)

pytestmark = pytest.mark.kafka

SEED = 20261207
KILLS = 4
PRODUCE_S = 14.0
SPEED = 5.0


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonPool]:
    yield from daemon_pool(tmp_path)


def window_ends(out: Path) -> set[int]:
    tables = read_output(out)
    ends = tables["gpu_windows"]
    if ends.num_rows == 0:
        return set()
    return {int(t.timestamp()) for t in pc.unique(ends["window_end"]).to_pylist()}


def test_quiet_daemon_after_a_crash_loop_writes_the_last_window(
    kafka_bootstrap: str, make_topic, daemons: DaemonPool, tmp_path: Path
) -> None:
    topics = make_topics(make_topic)
    trace = Trace(trace_start(), bad_every_s=20)
    settings = engine_settings()
    out = tmp_path / "out"
    cfg = daemon_config(
        bootstrap=kafka_bootstrap,
        group=unique_name("quiet"),
        topics=topics,
        out_dir=out,
        settings=settings,
        client={"session.timeout.ms": 6000},
    )
    cfg["kafka"]["instance_id"] = "quiet-member"  # static membership: restarts in seconds
    producer = ContinuousProducer(kafka_bootstrap, topics, trace, duration_s=PRODUCE_S, speed=SPEED)
    rng = random.Random(SEED)
    producer.start()
    kills = 0
    while kills < KILLS or producer.is_alive():
        d = daemons.start(cfg, name=f"killed-{kills}")
        time.sleep(rng.uniform(0.5, 3.0))
        assert d.alive(), f"run {kills} exited on its own:\n{d.log_tail()}"
        d.sigkill()
        kills += 1
        assert kills < 30
    producer.finish()
    # The data ends on a window boundary: the last reading (second end - 1) covers up to
    # `end`, so every window, the last included, is covered to its end.
    end = -(-producer.end_t // WINDOW_S) * WINDOW_S
    rest = TraceProducer(kafka_bootstrap, topics)
    rest.send(trace.messages(producer.end_t, end))
    rest.flush()
    rest.close()

    last = daemons.start(cfg, name="left-running")
    want_last_end = end
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and want_last_end not in window_ends(out):
        assert last.alive(), f"the daemon exited:\n{last.log_tail()}"
        time.sleep(0.5)
    assert want_last_end in window_ends(out), (sorted(window_ends(out))[-3:], last.log_tail())
    time.sleep(2.0)  # a later flush must not add or change anything
    assert last.alive(), "the daemon keeps running"

    expected = reference_tables(kafka_bootstrap, topics, settings)
    assert max(window_ends(out)) == want_last_end
    assert_same_tables(
        read_output(out),
        expected,
        ignore=reference_ignores(),
        label=f"daemon left quiet after {kills} SIGKILLs vs one engine to the end",
    )
    last.stop()
    daemons.assert_json_logs()
