"""Dead letters also go to a Kafka topic (`[topics] dead_letter`), through an idempotent
producer, with their provenance as headers: gpuledger.source, gpuledger.partition,
gpuledger.offset, gpuledger.reason. The `dead_letters` table is the exact record; the topic
is at-least-once across crashes (a restart may produce a range again), so consumers of it
deduplicate on (source, partition, offset)."""

from __future__ import annotations

import logging

import pyarrow as pa
from confluent_kafka import Producer

from gpuledger.config import Config


class DeadLetterTopic:
    def __init__(self, cfg: Config) -> None:
        settings = cfg.kafka.client_settings()
        settings.pop("group.id", None)
        self.topic = cfg.topics.dead_letter
        self.failed = 0
        self.producer = Producer(
            {
                **settings,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 20,
                "logger": logging.getLogger("gpuledger.kafka"),
            }
        )

    def _delivered(self, err: object, msg: object) -> None:
        if err is not None:
            self.failed += 1

    def produce(self, rows: pa.Table) -> None:
        for r in rows.to_pylist():
            headers = [
                ("gpuledger.source", str(r["source"]).encode()),
                ("gpuledger.partition", str(r["partition"]).encode()),
                ("gpuledger.offset", str(r["offset"]).encode()),
                ("gpuledger.reason", str(r["reason"]).encode()),
            ]
            while True:
                try:
                    self.producer.produce(
                        self.topic, value=r["raw"], headers=headers, on_delivery=self._delivered
                    )
                    break
                except BufferError:
                    self.producer.poll(0.1)  # queue full: let deliveries drain
            self.producer.poll(0)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """True when every produced dead letter was delivered."""
        remaining = self.producer.flush(timeout_s)
        ok = remaining == 0 and self.failed == 0
        self.failed = 0
        return ok
