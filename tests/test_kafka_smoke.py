"""Smoke tests against a real Kafka broker (fixtures in conftest.py).

They pin down what gpuledger relies on: messages keyed per GPU come back exactly
once, in per-key order, with contiguous offsets; and committed consumer-group
offsets carry a metadata string that round-trips (plain and transactional commits).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter, defaultdict

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

pytestmark = pytest.mark.kafka

N_MESSAGES = 1000


def dcgm_samples(n: int) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs shaped like prometheus-kafka-adapter JSON for DCGM metrics."""
    metrics = ["DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED"]
    out = []
    for i in range(n):
        host, gpu = f"node-{i % 4:02d}", (i // 4) % 8
        uuid_ = f"GPU-{host}-{gpu:04d}"
        sample = {
            "timestamp": f"2026-11-28T12:{(i // 60) % 60:02d}:{i % 60:02d}Z",
            "value": f"{(i * 37 % 1000) / 1000:.3f}",
            "name": metrics[i % 3],
            "labels": {
                "__name__": metrics[i % 3],
                "Hostname": host,
                "gpu": str(gpu),
                "UUID": uuid_,
                "modelName": "NVIDIA H100 80GB HBM3",
                "seq": str(i),  # makes every payload distinct
            },
        }
        out.append((uuid_.encode(), json.dumps(sample, sort_keys=True).encode()))
    return out


def consume(consumer: Consumer, n: int, timeout: float = 60.0) -> list:
    msgs, deadline = [], time.monotonic() + timeout
    while len(msgs) < n and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        msgs.append(msg)
    return msgs


def new_consumer(bootstrap: str, group: str, **extra) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    conf.update(extra)
    return Consumer(conf)


def test_produce_consume_roundtrip(kafka_bootstrap, make_topic):
    topic = make_topic(partitions=3)
    sent = dcgm_samples(N_MESSAGES)

    delivered, errors = {}, []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            delivered[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    for key, value in sent:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still queued after flush"
    assert errors == []
    assert len(delivered) == N_MESSAGES

    consumer = new_consumer(kafka_bootstrap, f"smoke-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    try:
        got = consume(consumer, N_MESSAGES)
        extra = consume(consumer, 1, timeout=1.0)  # nothing beyond what was sent
    finally:
        consumer.close()

    assert extra == []
    assert len(got) == N_MESSAGES
    assert Counter((m.key(), m.value()) for m in got) == Counter(sent)
    # Each message is where its delivery report said it was.
    assert {(m.partition(), m.offset()): (m.key(), m.value()) for m in got} == delivered

    offsets, per_key = defaultdict(list), defaultdict(list)
    for m in got:
        offsets[m.partition()].append(m.offset())
        per_key[m.key()].append(m.value())
    assert set(offsets) == {0, 1, 2}, "32 keys should spread over all 3 partitions"
    for part, offs in offsets.items():
        assert offs == list(range(len(offs))), f"partition {part} offsets not contiguous from 0"
    # Per-key order is preserved (one key -> one partition).
    sent_per_key = defaultdict(list)
    for key, value in sent:
        sent_per_key[key].append(value)
    assert per_key == sent_per_key


@pytest.mark.parametrize("kafka_topic", [2], indirect=True)  # 2 partitions
def test_commit_metadata_roundtrip(kafka_bootstrap, kafka_topic):
    topic = kafka_topic
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(10):
        producer.produce(topic, value=b"m%d" % i, partition=i % 2)
    assert producer.flush(30) == 0

    group = f"commit-{uuid.uuid4().hex[:8]}"
    meta = json.dumps(
        {"epoch": 7, "watermark": "2026-11-28T12:00:05Z", "ckpt": "a" * 64, "note": "héllo"}
    )
    consumer = new_consumer(kafka_bootstrap, group)
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, 0, 3, meta), TopicPartition(topic, 1, 5, "p1")],
            asynchronous=False,
        )
        # The broker's default offset.metadata.max.bytes is 4096: larger metadata is rejected.
        with pytest.raises(KafkaException) as exc:
            consumer.commit(offsets=[TopicPartition(topic, 0, 4, "x" * 5000)], asynchronous=False)
        assert exc.value.args[0].code() == KafkaError.OFFSET_METADATA_TOO_LARGE
    finally:
        consumer.close()

    # A new member of the group reads the commit back, and resumes from it.
    consumer = new_consumer(kafka_bootstrap, group)
    try:
        committed = consumer.committed(
            [TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10
        )
        assert [(tp.partition, tp.offset, tp.metadata, tp.error) for tp in committed] == [
            (0, 3, meta, None),
            (1, 5, "p1", None),
        ]
        consumer.subscribe([topic])
        got = consume(consumer, 2)  # partition 0 resumes at 3; partition 1 is exhausted at 5
        got += consume(consumer, 1, timeout=2.0)  # and nothing else
    finally:
        consumer.close()
    assert sorted((m.partition(), m.offset()) for m in got) == [(0, 3), (0, 4)]


def test_transactional_offsets_keep_metadata(kafka_bootstrap, make_topic):
    """Exactly-once path: offsets sent within a transaction keep their metadata."""
    source, sink = make_topic(partitions=1), make_topic(partitions=1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(5):
        producer.produce(source, value=b"s%d" % i)
    assert producer.flush(30) == 0

    group = f"txn-{uuid.uuid4().hex[:8]}"
    consumer = new_consumer(kafka_bootstrap, group, **{"isolation.level": "read_committed"})
    consumer.subscribe([source])
    try:
        got = consume(consumer, 5)
        assert [m.value() for m in got] == [b"s%d" % i for i in range(5)]

        txp = Producer(
            {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex[:8]}"}
        )
        txp.init_transactions(30)
        txp.begin_transaction()
        for m in got:
            txp.produce(sink, value=m.value().upper())
        meta = '{"window_end":"2026-11-28T12:01:00Z"}'
        txp.send_offsets_to_transaction(
            [TopicPartition(source, 0, 5, meta)], consumer.consumer_group_metadata(), 30
        )
        txp.commit_transaction(30)

        [tp] = consumer.committed([TopicPartition(source, 0)], timeout=10)
        assert (tp.offset, tp.metadata) == (5, meta)
    finally:
        consumer.close()

    reader = new_consumer(
        kafka_bootstrap, f"txn-read-{uuid.uuid4().hex[:8]}", **{"isolation.level": "read_committed"}
    )
    reader.subscribe([sink])
    try:
        out = consume(reader, 5)
    finally:
        reader.close()
    assert [m.value() for m in out] == [b"S%d" % i for i in range(5)]
