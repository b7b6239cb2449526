"""Outages and stops (delivery.md 5, 6, 7): a broker restart, an unwritable output directory
and SIGTERM delay output but lose and duplicate nothing.

These tests produce in phases or pause the daemon, so every partition is silent for a few
seconds at some point; `idle_timeout_s` is raised above those gaps so that no partition is
declared idle and then comes back (outside the exactly-once contract)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import (
    LATENESS_S,
    WINDOW_TABLES,
    ContinuousProducer,
    DaemonPool,
    PrivateBroker,
    Topics,
    Trace,
    TraceProducer,
    assert_counters_reconcile,
    assert_same_tables,
    create_topic,
    daemon_config,
    daemon_pool,
    diff_rows,
    engine_settings,
    make_topics,
    only_rows,
    read_output,
    reference_ignores,
    reference_tables,
    table_rows,
    trace_start,
    unique_name,
)

pytestmark = pytest.mark.kafka

IDLE_TIMEOUT_S = 60


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonPool]:
    yield from daemon_pool(tmp_path)


def _drain(daemons: DaemonPool, cfg: dict, name: str = "drain") -> None:
    d = daemons.start(cfg, name=name, until_eof=True)
    d.run_to_exit(60)
    assert_counters_reconcile(d.stopped())


def test_broker_restart_delays_output_and_loses_nothing(
    daemons: DaemonPool, tmp_path: Path
) -> None:
    with PrivateBroker(tmp_path / "broker") as broker:
        bootstrap = broker.bootstrap
        topics = Topics(
            create_topic(bootstrap, unique_name("outage-tel"), 3),
            create_topic(bootstrap, unique_name("outage-lat"), 2),
        )
        settings = engine_settings(idle_timeout_s=IDLE_TIMEOUT_S)
        out = tmp_path / "out"
        cfg = daemon_config(
            bootstrap=bootstrap,
            group=unique_name("outage"),
            topics=topics,
            out_dir=out,
            settings=settings,
        )
        trace = Trace(trace_start(), bad_every_s=20)
        # The producer keeps writing through the outage (librdkafka queues and retries,
        # idempotent: no loss, no duplicates, order kept).
        producer = ContinuousProducer(bootstrap, topics, trace, duration_s=20, speed=5)
        d = daemons.start(cfg, name="streaming")
        producer.start()
        d.wait_for_event("flushed", 30, lambda e: e.get("files", 0) > 0)

        broker.down()
        time.sleep(5)
        assert d.alive(), f"the daemon died with the broker:\n{d.log_tail()}"
        broker.up()

        delivered = producer.finish()
        d.wait_caught_up(60)
        rc = d.stop(timeout=10)
        assert rc == 0, d.log_tail()
        assert_counters_reconcile(d.stopped())
        _drain(daemons, cfg)

        expected = reference_tables(bootstrap, topics, settings)
        assert sum(len(v) for v in expected.values()) > 0
        assert len(delivered) == producer.producer.sent
        assert_same_tables(
            read_output(out), expected, ignore=reference_ignores(), label="after broker restart"
        )
        # The outage is reported in the machine-readable log (`kafka_error`).
        assert d.named("kafka_error"), "no `kafka_error` log line during a broker outage"
        daemons.assert_json_logs()


def test_sigterm_during_broker_outage_exits_in_bounded_time_and_loses_nothing(
    daemons: DaemonPool, tmp_path: Path
) -> None:
    """Graceful stop (delivery.md 7) does not depend on the broker: with the broker down,
    SIGTERM still stops the daemon within a bounded time (stop_timeout_s, 8 s by default,
    plus a margin); once the broker is back, a rerun gives the reference output."""
    with PrivateBroker(tmp_path / "broker") as broker:
        bootstrap = broker.bootstrap
        topics = Topics(
            create_topic(bootstrap, unique_name("down-tel"), 3),
            create_topic(bootstrap, unique_name("down-lat"), 2),
        )
        settings = engine_settings(idle_timeout_s=IDLE_TIMEOUT_S)
        out = tmp_path / "out"
        cfg = daemon_config(
            bootstrap=bootstrap,
            group=unique_name("down"),
            topics=topics,
            out_dir=out,
            settings=settings,
            # A member stopped while the broker is down cannot leave the group: keep its
            # session short so the rerun gets the partitions soon.
            client={"session.timeout.ms": 6000},
        )
        trace = Trace(trace_start(), bad_every_s=20)
        producer = TraceProducer(bootstrap, topics)
        producer.send(trace.messages(trace.start_s, trace.start_s + 60))
        delivered = producer.flush()
        producer.close()
        d = daemons.start(cfg, name="streaming")
        d.wait_caught_up(60, min_consumed=len(delivered))

        broker.down()
        time.sleep(2)
        term_at = time.monotonic()
        d.sigterm()
        try:
            rc = d.wait_exit(15)
        except TimeoutError:
            rc = None
        took = time.monotonic() - term_at
        stopping = bool(d.named("stopping"))
        if rc is None:
            d.sigkill()
        broker.up()
        assert rc is not None, (
            f"still running {took:.0f} s after SIGTERM with the broker down "
            f"(`stopping` logged: {stopping}):\n{d.log_tail(12)}"
        )
        _drain(daemons, cfg)
        expected = reference_tables(bootstrap, topics, settings)
        assert_same_tables(
            read_output(out), expected, ignore=reference_ignores(), label="stop during outage"
        )


def _block_staging(staging: Path, aside: Path) -> None:
    """Replaces the directory `staging` with a regular file (root ignores permissions).
    Retries when the daemon recreates the directory between the two renames."""
    blocker = aside.with_name("blocker")
    for _ in range(100):
        blocker.write_text("not a directory\n")
        if staging.is_dir():
            shutil.rmtree(aside, ignore_errors=True)
            os.rename(staging, aside)
        try:
            os.rename(blocker, staging)  # fails if `staging` is a directory again
            return
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"could not replace {staging} with a file")


def test_unwritable_output_blocks_consumption_then_resumes_without_loss(
    kafka_bootstrap: str, make_topic, daemons: DaemonPool, tmp_path: Path
) -> None:
    topics = make_topics(make_topic)
    settings = engine_settings(idle_timeout_s=IDLE_TIMEOUT_S)
    out = tmp_path / "out"
    cfg = daemon_config(
        bootstrap=kafka_bootstrap,
        group=unique_name("blocked"),
        topics=topics,
        out_dir=out,
        settings=settings,
    )
    trace = Trace(trace_start(), bad_every_s=20)
    producer = ContinuousProducer(kafka_bootstrap, topics, trace, duration_s=20, speed=5)
    d = daemons.start(cfg, name="streaming")
    producer.start()
    d.wait_for_event("flushed", 30, lambda e: e.get("files", 0) > 0)
    staging = out / ".staging"
    assert staging.is_dir(), f"no {staging} after a flush: {sorted(os.listdir(out))}"

    mark = len(d.read_events())
    _block_staging(staging, tmp_path / "staging-aside")
    blocked = d.wait_for_event("output_blocked", 15, after=mark)
    assert blocked.get("error"), blocked
    assert blocked.get("level") in ("warning", "error"), blocked
    time.sleep(4)  # stays blocked across retries, keeps running
    assert d.alive(), d.log_tail()
    assert not d.named("output_resumed"), "resumed while the output was still unwritable"

    staging.unlink()
    d.wait_for_event("output_resumed", 40, after=mark)
    delivered = producer.finish()
    d.wait_caught_up(60)
    rc = d.stop(timeout=10)
    assert rc == 0, d.log_tail()
    assert_counters_reconcile(d.stopped())
    _drain(daemons, cfg)

    expected = reference_tables(kafka_bootstrap, topics, settings)
    assert len(delivered) > 0
    assert_same_tables(
        read_output(out), expected, ignore=reference_ignores(), label="after a blocked output"
    )
    assert staging.is_dir() or not staging.exists()
    daemons.assert_json_logs()


def test_sigterm_writes_final_windows_exits_0_and_a_rerun_yields_the_rest(
    kafka_bootstrap: str, make_topic, daemons: DaemonPool, tmp_path: Path
) -> None:
    topics = make_topics(make_topic)
    settings = engine_settings(idle_timeout_s=IDLE_TIMEOUT_S)
    trace = Trace(trace_start(), bad_every_s=20)
    producer = TraceProducer(kafka_bootstrap, topics)
    producer.send(trace.messages(trace.start_s, trace.start_s + 125))  # last window half full
    delivered = producer.flush()

    out = tmp_path / "out"
    cfg = daemon_config(
        bootstrap=kafka_bootstrap,
        group=unique_name("sigterm"),
        topics=topics,
        out_dir=out,
        settings=settings,
    )
    d = daemons.start(cfg, name="streaming")
    d.wait_caught_up(60, min_consumed=len(delivered))
    term_at = time.monotonic()
    d.sigterm()
    rc = d.wait_exit(10)
    took = time.monotonic() - term_at
    assert rc == 0, d.log_tail()
    assert took <= 10
    assert d.named("stopping"), d.log_tail()
    c = assert_counters_reconcile(d.stopped())
    assert c["consumed"] == len(delivered), c

    # Final windows: those ending at or before the watermark, min over partitions of the
    # largest event time, minus the allowed lateness.
    newest: dict[tuple[str, int], float] = {}
    for x in delivered:
        if x.msg.event_s is not None:
            k = (x.topic, x.partition)
            newest[k] = max(newest.get(k, x.msg.event_s), x.msg.event_s)
    assert len(newest) == 5
    watermark = min(newest.values()) - LATENESS_S

    expected = reference_tables(kafka_bootstrap, topics, settings)
    first = read_output(out)
    for name in WINDOW_TABLES:
        final = only_rows(expected[name], lambda r: r["window_end"].timestamp() <= watermark)
        assert final.num_rows > 0
        got = table_rows(first[name]) if first[name].num_rows else []
        missing, _ = diff_rows(got, table_rows(final))
        assert not missing, f"{name}: {len(missing)} final windows not written at SIGTERM"
        # What was written is whole: rows of the uninterrupted result, none partial.
        _, wrong = diff_rows(got, table_rows(expected[name]))
        assert not wrong, f"{name}: rows written at SIGTERM that are not final rows: {wrong[:2]}"

    _drain(daemons, cfg, name="rerun")
    # The output directory now holds both runs' files: together they are the reference,
    # nothing twice.
    assert_same_tables(
        read_output(out), expected, ignore=reference_ignores(), label="SIGTERM run + rerun"
    )
    assert first["gpu_windows"].num_rows < expected["gpu_windows"].num_rows
    daemons.assert_json_logs()


def test_second_signal_exits_at_once_with_130_and_output_stays_consistent(
    kafka_bootstrap: str, make_topic, daemons: DaemonPool, tmp_path: Path
) -> None:
    """A stop that cannot finish (the output is unwritable, so final windows cannot be
    written) is cut short by a second SIGTERM: exit 130 at once. Nothing written is corrupt
    and a rerun, once the output is writable, completes the output exactly once."""
    topics = make_topics(make_topic)
    settings = engine_settings(idle_timeout_s=IDLE_TIMEOUT_S)
    out = tmp_path / "out"
    cfg = daemon_config(
        bootstrap=kafka_bootstrap,
        group=unique_name("twice"),
        topics=topics,
        out_dir=out,
        settings=settings,
        # Exiting at once leaves the member in the group until its session times out: keep
        # that short so the rerun gets the partitions soon.
        client={"session.timeout.ms": 6000},
    )
    trace = Trace(trace_start(), bad_every_s=20)
    producer = ContinuousProducer(kafka_bootstrap, topics, trace, duration_s=8, speed=10)
    d = daemons.start(cfg, name="streaming")
    producer.start()
    d.wait_for_event("flushed", 30, lambda e: e.get("files", 0) > 0)
    mark = len(d.read_events())
    _block_staging(out / ".staging", tmp_path / "staging-aside")
    d.wait_for_event("output_blocked", 15, after=mark)

    d.sigterm()
    d.wait_for_event("stopping", 5, after=mark)
    time.sleep(0.5)
    assert d.alive(), f"exited ({d.poll()}) before the second signal:\n{d.log_tail()}"
    second_at = time.monotonic()
    d.sigterm()
    rc = d.wait_exit(5)
    assert rc == 130, f"exit code {rc} after two SIGTERMs:\n{d.log_tail()}"
    assert time.monotonic() - second_at < 2.0
    producer.finish()

    (out / ".staging").unlink()
    read_output(out)  # whatever was written is readable
    _drain(daemons, cfg)
    expected = reference_tables(kafka_bootstrap, topics, settings)
    assert_same_tables(
        read_output(out), expected, ignore=reference_ignores(), label="after a double SIGTERM"
    )
    daemons.assert_json_logs()
