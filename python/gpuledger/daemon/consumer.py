"""The daemon's Kafka consumer settings: throughput defaults the user's settings override, and
the settings exactly-once output depends on, which they cannot (docs/daemon.md)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gpuledger.config import Config


def consumer_settings(
    cfg: Config,
    *,
    until_eof: bool,
    error_cb: Callable[[Any], None],
    on_commit: Callable[[Any, list[Any]], None],
) -> dict[str, Any]:
    """confluent-kafka settings of a daemon member; secrets included: never log them."""
    return {
        # Throughput defaults: fewer, larger fetches (at most 100 ms of added delay).
        "fetch.min.bytes": 1_000_000,
        "fetch.wait.max.ms": 100,
        # librdkafka waits 1 s by default before refetching a full queue: a throttle.
        "fetch.queue.backoff.ms": 0,
        "max.partition.fetch.bytes": 10_485_760,
        "queued.min.messages": 1_000_000,
        # Bounded memory when the producer outruns us: librdkafka's prefetch is capped.
        "queued.max.messages.kbytes": 65536,
        # The user's settings win over the defaults above, not over those below.
        **cfg.kafka.client_settings(),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # Only `--until-eof` needs end-of-partition events: with them librdkafka 2.2-2.12
        # can skip a message after a pause (gpuledger/daemon/partition_end.py).
        "enable.partition.eof": until_eof,
        # Eager rebalancing: every member flushes and commits, then starts afresh.
        "partition.assignment.strategy": "range",
        # Broker outages and other client errors become `kafka_error` events, and
        # librdkafka's own log lines go through the event log (one format on stderr).
        "error_cb": error_cb,
        "on_commit": on_commit,
        "logger": logging.getLogger("gpuledger.kafka"),
    }
