"""`Engine.push_kafka`: confluent-kafka Message objects grouped by partition in Rust. Uses
stand-ins with the Message methods the engine calls; the daemon tests use real ones."""

from __future__ import annotations

import pyarrow as pa
import pytest

import gpuledger


class FakeMessage:
    def __init__(
        self, topic: str, partition: int, offset: int, value: bytes | None, err: object = None
    ) -> None:
        self._t, self._p, self._o, self._v, self._e = topic, partition, offset, value, err

    def error(self) -> object:
        return self._e

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes | None:
        return self._v

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_795_867_200_000 + self._o)


GOOD = (
    b'{"timestamp":"2026-11-28T12:00:01Z","value":"0.5","name":"DCGM_FI_PROF_GR_ENGINE_ACTIVE",'
    b'"labels":{"UUID":"GPU-1","pod":"p","namespace":"n"}}'
)


def test_groups_by_partition_and_reports_errors_and_partitions_fed() -> None:
    engine = gpuledger.Engine(gpuledger.Config())
    eof = FakeMessage("tel", 1, 9, None, err="end of partition")
    msgs = [
        FakeMessage("tel", 0, 5, GOOD),
        FakeMessage("tel", 1, 7, b"{broken"),
        FakeMessage("tel", 0, 6, None),  # a tombstone: an empty message, a dead letter
        eof,
        FakeMessage("req", 0, 3, b'{"ts": 1795867201.5, "service": "s", "latency_ms": -1}'),
    ]
    fed, errors = engine.push_kafka(msgs, {"tel": "prom_json", "req": "latency_json"})
    assert fed == [("tel", 0, 5, 2), ("tel", 1, 7, 1), ("req", 0, 3, 4)]
    assert errors == [(3, eof)]
    dead = engine.poll().dead_letters
    got = sorted(zip(dead["source"].to_pylist(), dead["offset"].to_pylist(), strict=True))
    assert got == [("req", 3), ("tel", 6), ("tel", 7)]
    # Kafka timestamps are the receive times.
    stamps = dead["received_at"].cast(pa.int64()).to_pylist()
    assert sorted(stamps) == [1_795_867_200_000 + o for o in (3, 6, 7)]
    s = engine.stats()
    assert (s["consumed"], s["aggregated"], s["dead"]) == (4, 1, 3)


def test_messages_of_partitions_not_assigned_are_not_read() -> None:
    engine = gpuledger.Engine(gpuledger.Config())
    msgs = [FakeMessage("tel", 0, 1, GOOD), FakeMessage("tel", 2, 1, GOOD)]
    fed, _ = engine.push_kafka(msgs, {"tel": "prom_json"}, [("tel", 0)])
    assert fed == [("tel", 0, 1, 0)]
    assert engine.stats()["consumed"] == 1


def test_a_topic_without_a_format_is_an_error() -> None:
    engine = gpuledger.Engine(gpuledger.Config())
    with pytest.raises(gpuledger.InputError, match="no message format for topic"):
        engine.push_kafka([FakeMessage("other", 0, 1, GOOD)], {"tel": "prom_json"})


class RenamedTopicMessage(FakeMessage):
    """A second message type in the same batch, overriding one method."""

    def topic(self) -> str:
        return "tel"


class BrokenOffsetMessage(FakeMessage):
    def offset(self) -> int:
        raise RuntimeError("offset unavailable")


def test_a_batch_of_several_message_types_calls_each_ones_own_methods() -> None:
    # The methods are looked up on the first message's type; the others go through Python.
    engine = gpuledger.Engine()
    msgs = [FakeMessage("tel", 0, 1, GOOD), RenamedTopicMessage("req", 0, 2, GOOD)]
    fed, errors = engine.push_kafka(msgs, {"tel": "prom_json", "req": "latency_json"})
    assert fed == [("tel", 0, 1, 1)]
    assert errors == []
    assert engine.stats()["consumed"] == 2  # the same reading twice: one aggregated


def test_an_exception_from_a_message_method_is_raised_not_swallowed() -> None:
    engine = gpuledger.Engine()
    msgs = [FakeMessage("tel", 0, 1, GOOD), BrokenOffsetMessage("tel", 0, 2, GOOD)]
    with pytest.raises(RuntimeError, match="offset unavailable"):
        engine.push_kafka(msgs, {"tel": "prom_json"})


def test_an_empty_batch_feeds_nothing() -> None:
    engine = gpuledger.Engine()
    assert engine.push_kafka([], {"tel": "prom_json"}) == ([], [])
    assert engine.stats()["consumed"] == 0
