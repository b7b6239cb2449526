"""`gpuledger run --until-eof` end to end: a known trace on real topics, the daemon as a
subprocess; every output table equals the library engine's over the same messages, and the
daemon's counters reconcile with what was produced."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import (
    DaemonPool,
    Trace,
    TraceProducer,
    assert_counters_reconcile,
    assert_same_tables,
    daemon_config,
    daemon_pool,
    engine_settings,
    make_topics,
    output_layout_problems,
    read_output,
    reference_ignores,
    reference_tables,
    trace_start,
    unique_name,
)

pytestmark = pytest.mark.kafka


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[DaemonPool]:
    yield from daemon_pool(tmp_path)


SECONDS = 200  # event seconds: 20 windows of 10 s, across an hour boundary


@pytest.mark.parametrize("consumer", ["native", "confluent-kafka"])
def test_until_eof_output_equals_library_engine(
    kafka_bootstrap: str, make_topic, daemons: DaemonPool, tmp_path: Path, consumer: str
) -> None:
    topics = make_topics(make_topic)
    trace = Trace(trace_start(), bad_every_s=20)
    producer = TraceProducer(kafka_bootstrap, topics)
    producer.send(trace.messages(trace.start_s, trace.start_s + SECONDS))
    delivered = producer.flush()
    n_bad = sum(1 for d in delivered if d.msg.bad)
    assert n_bad == 2 * SECONDS // 20

    settings = engine_settings()
    out = tmp_path / "out"
    group = unique_name("e2e")
    cfg = daemon_config(
        bootstrap=kafka_bootstrap, group=group, topics=topics, out_dir=out, settings=settings
    )
    cfg["kafka"]["consumer"] = consumer  # both clients: the same rows (docs/daemon.md)
    d = daemons.start(cfg, name="until-eof", until_eof=True)
    d.run_to_exit(60)

    names = [e["event"] for e in d.events]
    for needed in ("started", "assigned", "eof", "stopped"):
        assert needed in names, f"no `{needed}` log line:\n{d.log_tail()}"
    assigned = {p for e in d.named("assigned") for p in e.get("partitions", [])}
    assert assigned >= {f"{topics.telemetry}:{p}" for p in range(3)} | {
        f"{topics.latency}:{p}" for p in range(2)
    }

    c = assert_counters_reconcile(d.stopped())
    assert c["consumed"] == len(delivered), c
    assert c["dead"] == n_bad, c
    assert c["late"] == 0, c

    actual = read_output(out)
    expected = reference_tables(kafka_bootstrap, topics, settings)
    assert expected["gpu_windows"].num_rows == 12 * SECONDS // 10
    assert_same_tables(actual, expected, ignore=reference_ignores(), label="daemon vs library")
    # Dead letters carry the Kafka timestamp as received_at: reruns give identical rows.
    stamps = {(x.topic, x.partition, x.offset): x.timestamp_ms for x in delivered if x.msg.bad}
    got = {
        (r["source"], r["partition"], r["offset"]): int(r["received_at"].timestamp() * 1000)
        for r in actual["dead_letters"].to_pylist()
    }
    assert got == stamps
    assert output_layout_problems(out) == []

    # The group committed the end: a second run reads nothing and writes nothing new.
    d2 = daemons.start(cfg, name="until-eof-again", until_eof=True)
    d2.run_to_exit(60)
    c2 = assert_counters_reconcile(d2.stopped())
    assert c2["consumed"] == 0, c2
    assert_same_tables(read_output(out), actual, label="after a second --until-eof run")
    daemons.assert_json_logs()
