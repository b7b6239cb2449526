"""Exactly-once output under SIGKILL (docs/daemon.md, guarantee 1): a producer writes continuously
while the daemon is killed with SIGKILL at random moments and restarted (same group, same output
directory) again and again; after a final `--until-eof` drain, the output equals that of one
uninterrupted run over the same topics, and the library engine's."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

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
    read_output,
    reference_ignores,
    reference_tables,
    trace_start,
    unique_name,
)

pytestmark = pytest.mark.kafka

SEED = 20261129
MIN_KILLS = 10
PRODUCE_S = 32.0  # wall seconds of continuous production
SPEED = 5.0  # event seconds per wall second


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonPool]:
    yield from daemon_pool(tmp_path)


def test_sigkill_loop_gives_the_rows_of_one_uninterrupted_run(
    kafka_bootstrap: str, make_topic, daemons: DaemonPool, tmp_path: Path
) -> None:
    topics = make_topics(make_topic)
    trace = Trace(trace_start(), bad_every_s=20)  # dead letters across the crashes too
    settings = engine_settings()
    out = tmp_path / "out-crashed"
    cfg = daemon_config(
        bootstrap=kafka_bootstrap,
        group=unique_name("crash"),
        topics=topics,
        out_dir=out,
        settings=settings,
        # Static membership: a restarted member takes its partitions back at once instead of
        # waiting for the killed one's session to time out.
        client={"session.timeout.ms": 6000},
    )
    cfg["kafka"]["instance_id"] = "crash-member"

    producer = ContinuousProducer(kafka_bootstrap, topics, trace, duration_s=PRODUCE_S, speed=SPEED)
    rng = random.Random(SEED)
    producer.start()
    kills: list[str] = []
    flushed_before_kill = 0
    while len(kills) < MIN_KILLS or producer.is_alive():
        n = len(kills)
        d = daemons.start(cfg, name=f"killed-{n}")
        # Odd runs count the delay from the assignment (a kill mid-processing), even runs
        # from the process start (a kill during startup, joining or recovery).
        if n % 2:
            try:
                d.wait_for_event("assigned", 30)
            except DaemonExited as e:
                pytest.fail(f"run {n} died on its own: {e}")
        delay = rng.uniform(0.5, 3.0)
        time.sleep(delay)
        assert d.alive(), f"run {n} exited on its own ({d.poll()}):\n{d.log_tail()}"
        d.sigkill()
        flushed = len(d.named("flushed"))
        flushed_before_kill += flushed > 0
        kills.append(f"run {n}: killed {delay:.2f} s after {'assignment' if n % 2 else 'start'}")
        if len(kills) > 40:
            break
    delivered = producer.finish()
    assert len(kills) >= MIN_KILLS
    # The loop must have killed daemons that had written output, not only starting ones.
    assert flushed_before_kill >= 3, f"only {flushed_before_kill} kills after a flush: {kills}"

    drain = daemons.start(cfg, name="drain", until_eof=True)
    drain.run_to_exit(60)
    assert_counters_reconcile(drain.stopped())

    fresh_out = tmp_path / "out-uninterrupted"
    fresh_cfg = daemon_config(
        bootstrap=kafka_bootstrap,
        group=unique_name("crash-ref"),
        topics=topics,
        out_dir=fresh_out,
        settings=settings,
    )
    ref_run = daemons.start(fresh_cfg, name="uninterrupted", until_eof=True)
    ref_run.run_to_exit(60)
    c = assert_counters_reconcile(ref_run.stopped())
    assert c["consumed"] == len(delivered), c
    assert c["dead"] == sum(1 for x in delivered if x.msg.bad), c

    crashed, uninterrupted = read_output(out), read_output(fresh_out)
    expected = reference_tables(kafka_bootstrap, topics, settings)
    assert expected["dead_letters"].num_rows > 0
    assert_same_tables(
        uninterrupted, expected, ignore=reference_ignores(), label="uninterrupted vs library"
    )
    assert_same_tables(
        crashed, uninterrupted, label=f"after {len(kills)} SIGKILLs vs uninterrupted"
    )
    daemons.assert_json_logs()
