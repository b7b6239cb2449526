"""The daemon's native Kafka consumer (`gpuledger.daemon.native_consumer`) against the real
broker: what the daemon relies on behaves as confluent-kafka's `Consumer` does (commit
metadata, ends of partitions with their topic, rebalance callbacks, errors), and its batches
feed the engine exactly as a list of confluent-kafka messages does."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

import gpuledger
from gpuledger._engine import KafkaBatch
from gpuledger.daemon.native_consumer import NativeConsumer

pytestmark = pytest.mark.kafka


def produce(bootstrap: str, topic: str, values: list[bytes | None], partition: int = 0) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for i, v in enumerate(values):
        p.produce(topic, value=v, partition=partition, timestamp=START_S * 1000 + i)
    assert p.flush(30) == 0


def settings(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": f"native-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        **extra,
    }


def drain(consumer: Any, until: int, timeout_s: float = 30) -> list[Any]:
    """consume() results until `until` records (messages and events) came, or the timeout."""
    got, n = [], 0
    deadline = time.monotonic() + timeout_s
    while n < until and time.monotonic() < deadline:
        batch = consumer.consume(1000, timeout=0.5)
        got.append(batch)
        n += len(batch)
    return got


START_S = 1_795_867_200  # 2026-11-28T12:00:00Z: event times and Kafka timestamps


def telemetry(i: int) -> bytes:
    """A prometheus-kafka-adapter sample, `i` seconds after START_S."""
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START_S + i)).encode()
    return (
        b'{"timestamp":"' + at + b'","value":"0.5","name":"DCGM_FI_PROF_GR_ENGINE_ACTIVE",'
        b'"labels":{"UUID":"GPU-1","pod":"p","namespace":"n"}}'
    )


def test_batches_feed_the_engine_as_confluent_messages_do(kafka_bootstrap, make_topic) -> None:
    topic = make_topic(partitions=1)
    values: list[bytes | None] = [telemetry(i) for i in range(300)]
    values[7] = b"{not json"  # a dead letter
    values[8] = None  # a tombstone: an empty message, a dead letter
    produce(kafka_bootstrap, topic, values)
    results = []
    for client in ("native", "confluent"):
        s = settings(kafka_bootstrap)
        consumer = NativeConsumer(s) if client == "native" else Consumer(s)
        consumer.subscribe([topic])
        engine = gpuledger.Engine(gpuledger.Config())
        fed, events = [], []
        for batch in drain(consumer, until=301):
            if client == "native":
                assert isinstance(batch, KafkaBatch)
            f, e = engine.push_kafka(batch, {topic: "prom_json"}, [(topic, 0)])
            fed += f
            events += [(m.topic(), m.partition(), m.error().code()) for _, m in e]
        consumer.close()
        out = engine.finish()
        results.append((fed[0][:3], events, {n: out[n].to_pylist() for n in out}))
    native, confluent = results
    assert native[0] == (topic, 0, 0)
    # The end of the partition names its topic (the rdkafka crate's own poll drops it).
    assert native[1] == [(topic, 0, KafkaError._PARTITION_EOF)] == confluent[1]
    assert native[2] == confluent[2]
    dead = native[2]["dead_letters"]
    assert [r["offset"] for r in dead] == [7, 8]
    stamps = [int(r["received_at"].timestamp() * 1000) for r in dead]
    assert stamps == [START_S * 1000 + 7, START_S * 1000 + 8]  # the Kafka timestamps
    assert len(native[2]["gpu_windows"]) == 5


def test_commit_metadata_positions_and_watermarks(kafka_bootstrap, make_topic) -> None:
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, [telemetry(i) for i in range(50)], partition=1)
    # No end-of-partition events here: with them librdkafka 2.2-2.12 moves the position one
    # past the end (both clients; docs/daemon.md), which is not what this test checks.
    s = settings(kafka_bootstrap, **{"enable.partition.eof": False})
    assigned: list[list[tuple[str, int]]] = []

    def on_assign(c: Any, parts: list[TopicPartition]) -> None:
        assigned.append(sorted((tp.topic, tp.partition) for tp in parts))
        committed = c.committed(parts, timeout=30)
        assert all(tp.offset == -1001 and tp.metadata is None for tp in committed)
        c.assign(committed)

    consumer = NativeConsumer(s)
    consumer.subscribe([topic], on_assign=on_assign)
    batches = drain(consumer, until=50)
    assert assigned == [[(topic, 0), (topic, 1)]]
    assert sum(b.messages for b in batches) == 50
    tp1 = TopicPartition(topic, 1)
    assert consumer.get_watermark_offsets(tp1, cached=True)[1] == 50  # low: not in a fetch
    assert consumer.get_watermark_offsets(tp1, timeout=10) == (0, 50)
    [pos] = consumer.position([tp1])
    assert pos.offset == 50
    consumer.commit(offsets=[TopicPartition(topic, 1, 42, metadata="cp:v1")], asynchronous=False)
    [got] = consumer.committed([tp1], timeout=30)
    assert (got.offset, got.metadata) == (42, "cp:v1")
    consumer.pause([tp1])
    consumer.resume([tp1])
    consumer.seek(TopicPartition(topic, 1, 40))
    again = drain(consumer, until=10, timeout_s=10)
    assert sum(b.messages for b in again) == 10
    consumer.close()
    consumer.close()  # a second close does nothing
    with pytest.raises(RuntimeError, match="closed"):
        consumer.consume(10, timeout=0.1)
    # Checkpoints cross clients both ways (an upgrade, a downgrade): confluent-kafka reads
    # the native commit, and the native consumer reads what confluent-kafka commits.
    check = Consumer(settings(kafka_bootstrap, **{"group.id": s["group.id"]}))
    [seen] = check.committed([tp1], timeout=30)
    assert (seen.offset, seen.metadata) == (42, "cp:v1")
    check.commit(offsets=[TopicPartition(topic, 1, 43, metadata="cp:v2")], asynchronous=False)
    check.close()
    native = NativeConsumer(settings(kafka_bootstrap, **{"group.id": s["group.id"]}))
    [seen] = native.committed([tp1], timeout=30)
    native.close()
    assert (seen.offset, seen.metadata) == (43, "cp:v2")


def test_async_commit_results_reach_on_commit(kafka_bootstrap, make_topic) -> None:
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, [telemetry(i) for i in range(5)])
    results: list[tuple[Any, list[tuple[str, int, int]]]] = []

    def on_commit(err: Any, parts: list[TopicPartition]) -> None:
        results.append((err, [(tp.topic, tp.partition, tp.offset) for tp in parts]))

    consumer = NativeConsumer(settings(kafka_bootstrap, on_commit=on_commit))
    consumer.subscribe([topic])
    drain(consumer, until=6)
    consumer.commit(offsets=[TopicPartition(topic, 0, 5, metadata="m")], asynchronous=True)
    deadline = time.monotonic() + 30
    while not results and time.monotonic() < deadline:
        consumer.consume(100, timeout=0.2)
    consumer.close()
    assert results and results[0] == (None, [(topic, 0, 5)])


def test_a_callback_exception_is_raised_by_consume(kafka_bootstrap, make_topic) -> None:
    topic = make_topic(partitions=1)

    def on_assign(c: Any, parts: list[TopicPartition]) -> None:
        raise ValueError("assign handler failed")

    consumer = NativeConsumer(settings(kafka_bootstrap))
    consumer.subscribe([topic], on_assign=on_assign)
    with pytest.raises(ValueError, match="assign handler failed"):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            consumer.consume(100, timeout=0.2)
    consumer.close()


def test_bad_settings_and_unreachable_brokers_are_clear(kafka_bootstrap) -> None:
    with pytest.raises(KafkaException, match=r"No such configuration property.*bogus\.setting"):
        NativeConsumer(settings(kafka_bootstrap, **{"bogus.setting": 1}))
    with pytest.raises(KafkaException, match="GSSAPI"):
        NativeConsumer(
            settings(
                kafka_bootstrap,
                **{"security.protocol": "SASL_PLAINTEXT"},
                **{"sasl.mechanism": "GSSAPI"},
            )
        )
    with pytest.raises(KafkaException, match="log_level"):
        NativeConsumer(settings(kafka_bootstrap, log_level="loud"))
    oidc = {"sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.method": "oidc"}
    with pytest.raises(KafkaException, match="not supported in this build"):
        NativeConsumer(settings(kafka_bootstrap, **oidc))
    with pytest.raises(RuntimeError, match=r"group\.id"):
        NativeConsumer({"bootstrap.servers": kafka_bootstrap})
    # No broker answers: the errors arrive as events of the batch, the call returns.
    down = NativeConsumer(settings("127.0.0.1:1"))
    down.subscribe(["nothing-here"])
    batch = down.consume(10, timeout=1.0)
    down.close()
    events = [e for _, e in batch.events()]
    assert batch.messages == 0 and events
    assert all(e.topic() is None for e in events)
    codes = {e.error().code() for e in events}
    assert codes & {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN}, codes
