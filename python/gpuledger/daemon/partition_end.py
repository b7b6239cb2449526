"""Whether an assigned partition has nothing left to fetch: the test a partition passes before
it may be marked idle, so that only silent partitions stop holding the watermark back, never
ones whose backlog was not fetched yet (docs/daemon.md, "idle partitions")."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from gpuledger.daemon.partitions import PartitionState

# The broker is asked for a partition's first offset at most this long (the rare case of a
# partition never committed, never read, whose messages retention may all have deleted).
LOW_OFFSET_TIMEOUT_S = 5.0


def reached_end(consumer: Any, state: PartitionState) -> bool:
    """True when `state`'s partition was read up to the broker's high watermark as of the
    last fetch response. Sets `state.end_offset` for a partition this run read nothing of
    (its checkpoint can then move with its engine's). Partition-EOF events are not used for
    this: with them enabled librdkafka 2.2-2.12 moves the position one past the end, and a
    pause and resume (backpressure) then skips a message (librdkafka issue #4844)."""
    tp = TopicPartition(state.topic, state.partition)
    try:
        _, high = consumer.get_watermark_offsets(tp, cached=True)
        if state.consumed:
            if state.at_eof:
                return True
            # Read this run: the application position is one past the last message, or
            # past trailing transaction markers, which never reach the consumer.
            [pos] = consumer.position([tp])
            return bool(high >= 0 and pos.offset >= 0 and pos.offset >= high)
        if high < 0:
            return False  # no fetch response yet
        start = state.start_offset
        if start is None:
            # Nothing committed: reading starts at the log's first offset.
            if high == 0:
                start = 0
            else:
                if state.log_start is None:  # asked once: a partition not read keeps it
                    state.log_start, _ = consumer.get_watermark_offsets(
                        tp, timeout=LOW_OFFSET_TIMEOUT_S
                    )
                start = state.log_start
    except KafkaException:
        return False  # unknown: keep holding the watermark back
    if start < high:
        return False
    state.end_offset = start
    return True
