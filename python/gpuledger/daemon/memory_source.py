"""An in-process stand-in for a Kafka broker and consumer, so the daemon's own main loop runs
without Kafka: the embedded demo source (`gpuledger demo`). It implements the part of
`confluent_kafka.Consumer` the daemon uses, over messages held in memory, with committed
offsets and metadata kept like a broker keeps them (for one process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import OFFSET_INVALID, KafkaError, TopicPartition


class MemoryMessage:
    """What `Consumer.consume()` returns, for one message or an end-of-partition event."""

    __slots__ = ("_eof", "_offset", "_partition", "_timestamp", "_topic", "_value")

    def __init__(
        self, topic: str, partition: int, offset: int, value: bytes | None, ts_ms: int, eof: bool
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._value, self._timestamp, self._eof = value, ts_ms, eof

    def error(self) -> KafkaError | None:
        return KafkaError(KafkaError._PARTITION_EOF) if self._eof else None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)  # TIMESTAMP_CREATE_TIME


Callback = Callable[[Any, list[TopicPartition]], None]


class MemoryConsumer:
    """A single-member consumer group over in-memory topics.

    `topics` maps a topic to its partitions, each a list of (value, timestamp ms).
    """

    def __init__(self, topics: Mapping[str, list[list[tuple[bytes, int]]]]) -> None:
        self.topics = topics
        self.committed_at: dict[tuple[str, int], tuple[int, str | None]] = {}
        self.positions: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()
        self.eof_sent: set[tuple[str, int]] = set()
        self.on_revoke: Callback | None = None
        self.pending_assign: list[TopicPartition] | None = None
        self.on_assign: Callback | None = None

    def subscribe(
        self,
        topics: Iterable[str],
        on_assign: Callback | None = None,
        on_revoke: Callback | None = None,
        on_lost: Callback | None = None,
    ) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke
        self.pending_assign = [
            TopicPartition(t, p) for t in topics for p in range(len(self.topics[t]))
        ]

    def committed(
        self, partitions: list[TopicPartition], timeout: float | None = None
    ) -> list[TopicPartition]:
        out = []
        for tp in partitions:
            offset, metadata = self.committed_at.get(
                (tp.topic, tp.partition), (OFFSET_INVALID, None)
            )
            if metadata is None:
                out.append(TopicPartition(tp.topic, tp.partition, offset))
            else:
                out.append(TopicPartition(tp.topic, tp.partition, offset, metadata=metadata))
        return out

    def assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions[(tp.topic, tp.partition)] = max(tp.offset, 0)
            # Like librdkafka: the end of a partition is reported again after an assignment.
            self.eof_sent.discard((tp.topic, tp.partition))

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[MemoryMessage]:
        if self.pending_assign is not None:
            assigned, self.pending_assign = self.pending_assign, None
            if self.on_assign is not None:
                self.on_assign(self, assigned)
            else:
                self.assign(assigned)
        out: list[MemoryMessage] = []
        for (topic, partition), pos in self.positions.items():
            if (topic, partition) in self.paused:
                continue
            log = self.topics[topic][partition]
            take = log[pos : pos + max(num_messages - len(out), 0)]
            out.extend(
                MemoryMessage(topic, partition, pos + i, v, ts, False)
                for i, (v, ts) in enumerate(take)
            )
            self.positions[(topic, partition)] = pos + len(take)
            if pos + len(take) == len(log) and (topic, partition) not in self.eof_sent:
                self.eof_sent.add((topic, partition))
                out.append(MemoryMessage(topic, partition, len(log), None, 0, True))
            if len(out) >= num_messages:
                break
        return out

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        for tp in offsets:
            self.committed_at[(tp.topic, tp.partition)] = (tp.offset, tp.metadata)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update((tp.topic, tp.partition) for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused.difference_update((tp.topic, tp.partition) for tp in partitions)

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        return (0, len(self.topics[partition.topic][partition.partition]))

    def seek(self, partition: TopicPartition) -> None:
        self.positions[(partition.topic, partition.partition)] = max(partition.offset, 0)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions.get((tp.topic, tp.partition), 0))
            for tp in partitions
        ]

    def close(self) -> None:
        if self.on_revoke is not None and self.positions:
            self.on_revoke(self, [TopicPartition(t, p) for t, p in self.positions])
        self.positions = {}
