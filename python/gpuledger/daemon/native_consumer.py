"""The daemon's default Kafka consumer: librdkafka driven from Rust (`gpuledger._engine.
KafkaConsumer`), behind the part of confluent-kafka's `Consumer` interface the daemon uses, so
`Daemon` runs on either. `consume()` returns one `KafkaBatch` per poll instead of a Python
`Message` per record; engines read it in Rust (docs/daemon.md, "Kafka client")."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from gpuledger._engine import KafkaBatch, KafkaConsumer

# Settings confluent-kafka takes as Python objects. The native consumer reports client errors
# in its batches (the daemon reads them there), so `error_cb` is not called.
CALLBACK_SETTINGS = ("error_cb", "on_commit", "logger")
# librdkafka's syslog levels as Python logging levels.
LOG_LEVELS = {0: 50, 1: 50, 2: 50, 3: 40, 4: 30, 5: 20, 6: 20, 7: 10}
Callback = Callable[[Any, list[TopicPartition]], None]


def setting_text(value: object) -> str:
    """A confluent-kafka setting value as librdkafka's string (`True` -> "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def log_level(settings: dict[str, Any], logger: logging.Logger) -> int:
    """librdkafka's `log_level`: -1 when the user set one (passed on as their setting, which
    librdkafka checks), debug when `debug` contexts are asked for, else the level that sends
    `logger` what it would print."""
    if "log_level" in settings:
        return -1
    if settings.get("debug"):
        return 7
    level = logger.getEffectiveLevel()
    if level <= logging.DEBUG:
        return 7
    if level <= logging.INFO:
        return 6
    return 4 if level <= logging.WARNING else 3


class NativeConsumer:
    """A consumer-group member with confluent-kafka's method names and arguments."""

    def __init__(self, settings: dict[str, Any]):
        self._on_commit_cb: Callable[[Any, list[TopicPartition]], None] | None = settings.get(
            "on_commit"
        )
        self._logger: logging.Logger = settings.get("logger") or logging.getLogger(
            "gpuledger.kafka"
        )
        plain = [(k, setting_text(v)) for k, v in settings.items() if k not in CALLBACK_SETTINGS]
        self._on_assign: Callback | None = None
        self._on_revoke: Callback | None = None
        self._on_lost: Callback | None = None
        self._client = KafkaConsumer(plain, self, log_level(settings, self._logger))

    # --- what the daemon calls ----------------------------------------------------------

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callback | None = None,
        on_revoke: Callback | None = None,
        on_lost: Callback | None = None,
    ) -> None:
        self._on_assign, self._on_revoke, self._on_lost = on_assign, on_revoke, on_lost
        self._client.subscribe(list(topics))

    def consume(self, num_messages: int = 1, timeout: float = -1) -> KafkaBatch:
        # Client errors travel in the batch as events (the daemon reads them there, as it
        # reads confluent-kafka's error messages), not through `error_cb`.
        return self._client.consume(num_messages, 3600.0 if timeout < 0 else timeout)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._client.assign([offset_tuple(tp) for tp in partitions])

    def committed(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]:
        got = self._client.committed([(tp.topic, tp.partition) for tp in partitions], timeout)
        return [topic_partition(t, p, o, m) for t, p, o, m in got]

    def commit(
        self, offsets: list[TopicPartition] | None = None, asynchronous: bool = True
    ) -> None:
        self._client.commit([offset_tuple(tp) for tp in offsets or []], asynchronous)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self._client.pause([(tp.topic, tp.partition) for tp in partitions])

    def resume(self, partitions: list[TopicPartition]) -> None:
        self._client.resume([(tp.topic, tp.partition) for tp in partitions])

    def seek(self, partition: TopicPartition) -> None:
        self._client.seek(partition.topic, partition.partition, partition.offset)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        got = self._client.position([(tp.topic, tp.partition) for tp in partitions])
        return [TopicPartition(t, p, o) for t, p, o in got]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        return self._client.watermarks(partition.topic, partition.partition, cached, timeout)

    def close(self) -> None:
        self._client.close()

    # --- what the Rust client calls -----------------------------------------------------

    def _on_rebalance(self, kind: str, partitions: list[tuple[str, int]]) -> None:
        callback = {"assign": self._on_assign, "revoke": self._on_revoke, "lost": self._on_lost}
        tps = [TopicPartition(t, p) for t, p in partitions]
        chosen = callback[kind]
        if chosen is None and kind == "lost":
            chosen = self._on_revoke  # confluent-kafka's rule when on_lost is not given
        if chosen is not None:
            chosen(self, tps)

    def _on_commit(
        self, error: tuple[int, str] | None, offsets: list[tuple[str, int, int, int]]
    ) -> None:
        if self._on_commit_cb is None:
            return
        err = None if error is None else KafkaError(error[0], error[1])
        failed = [f"{t}:{p}" for t, p, _, code in offsets if code]
        if err is None and failed:
            # TopicPartition.error cannot be set from Python: a partition's failure fails the
            # whole result, so the daemon keeps every marker of it (nothing is lost).
            code = next(code for *_, code in offsets if code)
            err = KafkaError(code, "commit failed for " + ", ".join(failed))
        self._on_commit_cb(err, [TopicPartition(t, p, o) for t, p, o, _ in offsets])

    def _on_logs(self, lines: list[tuple[int, str, str]], dropped: int) -> None:
        for level, facility, message in lines:
            self._logger.log(LOG_LEVELS.get(level, logging.INFO), "%s: %s", facility, message)
        if dropped:
            self._logger.warning("%d librdkafka log lines dropped (too many at once)", dropped)


def topic_partition(topic: str, partition: int, offset: int, metadata: str | None) -> Any:
    """confluent-kafka's TopicPartition, whose constructor takes no metadata of None."""
    if metadata is None:
        return TopicPartition(topic, partition, offset)
    return TopicPartition(topic, partition, offset, metadata=metadata)


def offset_tuple(tp: TopicPartition) -> tuple[str, int, int, str | None]:
    return (tp.topic, tp.partition, tp.offset, tp.metadata)


def kafka_events(batch: KafkaBatch | list[Any]) -> Iterable[Any]:
    """What may carry an error in a `consume()` result: a native batch's events, or every
    confluent-kafka message (the caller checks each one's `error()`)."""
    if isinstance(batch, KafkaBatch):
        return [event for _, event in batch.events()]
    return batch
