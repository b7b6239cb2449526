"""Consumer group scaling (docs/daemon.md, guarantee 2): two daemons in one group split the
partitions while a producer writes; one leaves with SIGTERM mid-run (a rebalance), the survivor
carries on, a fresh member drains with `--until-eof`. Together their rows equal one uninterrupted
run: nothing lost, nothing duplicated."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import (
    APPROXIMATE_WHEN_COMBINED,
    ContinuousProducer,
    DaemonPool,
    Trace,
    assert_counters_reconcile,
    assert_same_sums,
    assert_same_tables,
    assert_tables_close,
    combine,
    concat_outputs,
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

PRODUCE_S = 24.0
SPEED = 5.0
TERM_AFTER_S = 10.0  # member A leaves this long after production starts


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonPool]:
    yield from daemon_pool(tmp_path)


@pytest.mark.parametrize("engines", [1, 2])  # 2: engines in parallel, pushes pipelined
def test_two_members_and_a_sigterm_lose_and_duplicate_nothing(
    kafka_bootstrap: str, make_topic, daemons: DaemonPool, tmp_path: Path, engines: int
) -> None:
    topics = make_topics(make_topic)
    trace = Trace(trace_start(), bad_every_s=20)
    settings = engine_settings()
    group = unique_name("group")

    def cfg(out: Path, group: str = group, engines: int = engines) -> dict:
        config = daemon_config(
            bootstrap=kafka_bootstrap, group=group, topics=topics, out_dir=out, settings=settings
        )
        config["run"]["engines"] = engines
        return config

    dirs = {m: tmp_path / f"out-{m}" for m in ("a", "b", "c", "ref")}
    producer = ContinuousProducer(kafka_bootstrap, topics, trace, duration_s=PRODUCE_S, speed=SPEED)
    a = daemons.start(cfg(dirs["a"]), name="member-a")
    b = daemons.start(cfg(dirs["b"]), name="member-b")
    began = time.monotonic()
    producer.start()
    a.wait_for_event("assigned", 30, lambda e: bool(e.get("partitions")))
    b.wait_for_event("assigned", 30, lambda e: bool(e.get("partitions")))

    time.sleep(max(0.0, TERM_AFTER_S - (time.monotonic() - began)))
    assert a.alive() and b.alive()
    rc = a.stop(timeout=10)
    assert rc == 0, a.log_tail()
    assert_counters_reconcile(a.stopped())

    delivered = producer.finish()
    b.wait_caught_up(40)
    rc = b.stop(timeout=10)
    assert rc == 0, b.log_tail()
    assert_counters_reconcile(b.stopped())
    # After A left, B held every partition at some point.
    held = {p for e in b.named("assigned") for p in e.get("partitions", [])}
    assert len(held) == 5, f"B was assigned only {sorted(held)}"

    c = daemons.start(cfg(dirs["c"]), name="member-c-drain", until_eof=True)
    c.run_to_exit(60)
    assert_counters_reconcile(c.stopped())

    # The uninterrupted run: one engine, whose rows are final (the library's).
    ref = daemons.start(
        cfg(dirs["ref"], unique_name("group-ref"), engines=1), name="ref", until_eof=True
    )
    ref.run_to_exit(60)
    rc_counts = assert_counters_reconcile(ref.stopped())
    assert rc_counts["consumed"] == len(delivered)

    outs = {m: read_output(d) for m, d in dirs.items()}
    expected = reference_tables(kafka_bootstrap, topics, settings)
    assert_same_tables(outs["ref"], expected, ignore=reference_ignores(), label="ref vs library")
    members = [outs["a"], outs["b"], outs["c"]]
    assert outs["a"]["gpu_windows"].num_rows > 0, "member A wrote nothing before it left"
    together = concat_outputs(*members)

    # Every comparison runs; the failures are reported together.
    problems = []

    # A GPU's telemetry and a service's requests each live in one partition: their rows are
    # never partial, so the members' rows together are exactly the uninterrupted run's.
    # Late events and dead letters are single events: each exactly once.
    def check(fn, *args, **kw) -> None:
        try:
            fn(*args, **kw)
        except AssertionError as e:
            problems.append(str(e))

    check(
        assert_same_tables,
        together,
        outs["ref"],
        tables=("gpu_windows", "latency_windows", "late_events", "dead_letters"),
        label="members A+B+C vs uninterrupted",
    )
    # Pools and services span partitions: partial rows add up, and combine into the
    # uninterrupted run's rows.
    check(assert_same_sums, together, outs["ref"])
    combined = combine(*members)
    if combined is not None:
        check(
            assert_tables_close,
            combined,
            outs["ref"],
            exclude=APPROXIMATE_WHEN_COMBINED,
            label="combine_tables(A, B, C) vs uninterrupted",
        )
    check(daemons.assert_json_logs)
    assert not problems, "\n\n".join(problems)
