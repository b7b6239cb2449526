"""Producing to Kafka at a chosen rate: a token bucket in front of a batching
confluent-kafka Producer. Used by `gpuledger simulate --kafka` and `gpuledger produce`.

Pacing: the bucket starts empty, refills at `rate` tokens per second and holds at most
`rate / 20` (50 ms worth, at least 1); each message takes one token. Over the whole run the
achieved rate is at most `rate`; any interval of `T` seconds sees at most `rate * T + rate / 20`
messages (a burst after a stall). `rate <= 0` means as fast as the broker takes them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from gpuledger.simulate.encode import Encoder, request_json
from gpuledger.simulate.simulation import Simulation

PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 20,
    "batch.num.messages": 10000,
    "batch.size": 1 << 20,
    "queue.buffering.max.messages": 500000,
    "queue.buffering.max.kbytes": 1 << 20,
    "compression.type": "lz4",
    "enable.idempotence": True,
    # The Java client's key hash: a key lands in the same partition whichever client (Java,
    # librdkafka, this one) produced it, so keyed topics stay keyed (docs/scale-out.md).
    "partitioner": "murmur2_random",
}

# Where the GPU UUID sits in a telemetry line: adapter JSON or exposition text, else wide JSON.
_UUID_LABEL = re.compile(rb'"UUID"\s*:\s*"([^"]+)"|UUID="([^"]+)"')
_WIDE_GPU = re.compile(rb'"gpu"\s*:\s*"([^"]+)"')
_HOST_LABEL = re.compile(rb'"Hostname"\s*:\s*"([^"]+)"|Hostname="([^"]+)"|"host"\s*:\s*"([^"]+)"')
_SERVICE = re.compile(rb'"service"\s*:\s*"([^"]+)"')


def gpu_key(line: bytes) -> bytes | None:
    """The GPU UUID of a telemetry message, None when it has none."""
    m = _UUID_LABEL.search(line)
    if m is not None:
        return m.group(1) or m.group(2)
    w = _WIDE_GPU.search(line)
    return None if w is None else w.group(1)


def host_key(line: bytes) -> bytes | None:
    """The hostname of a telemetry message (DCGM's `Hostname` label, wide JSON's `host`),
    None when it has none."""
    m = _HOST_LABEL.search(line)
    return None if m is None else m.group(1) or m.group(2) or m.group(3)


def service_key(line: bytes) -> bytes | None:
    """The `service` of a request event, None when it has none."""
    m = _SERVICE.search(line)
    return None if m is None else m.group(1)


KEYS: dict[str, Callable[[bytes], bytes | None]] = {
    "gpu": gpu_key,
    "host": host_key,
    "service": service_key,
}
"""What `gpuledger produce --key-by` keys a message by."""


class TokenBucket:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate / 20.0)
        self.tokens = 0.0
        self.clock = clock
        self.last = clock()

    def take(self, n: int = 1) -> float:
        """Takes `n` tokens, returning how long to wait before sending (0 when none)."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclass
class ProduceReport:
    produced: int = 0
    delivered: int = 0
    failed: int = 0
    keyed: int = 0
    seconds: float = 0.0
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


class PacedProducer:
    """`send(topic, value, key)` under a token bucket; `close()` flushes and reports."""

    def __init__(
        self,
        bootstrap: str,
        rate: float = 0.0,
        *,
        settings: dict[str, Any] | None = None,
        progress: TextIO | None = None,
        progress_every_s: float = 2.0,
    ) -> None:
        from confluent_kafka import Producer

        self.producer = Producer(
            {**PRODUCER_DEFAULTS, **(settings or {}), "bootstrap.servers": bootstrap}
        )
        self.bucket = TokenBucket(rate)
        self.report = ProduceReport()
        self.progress = progress
        self.progress_every = progress_every_s
        self.started = time.monotonic()
        self._next_progress = self.started + progress_every_s

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is None:
            self.report.delivered += 1
        else:
            self.report.failed += 1
            if not self.report.first_error:
                self.report.first_error = str(err)

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        wait = self.bucket.take()
        if wait > 0:
            self.producer.poll(0)
            time.sleep(wait)
        while True:
            try:
                self.producer.produce(topic, value, key, on_delivery=self._delivered)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.report.produced += 1
        if key is not None:
            self.report.keyed += 1
        if self.report.produced % 1000 == 0:
            self.producer.poll(0)
            now = time.monotonic()
            if self.progress is not None and now >= self._next_progress:
                self._next_progress = now + self.progress_every
                elapsed = now - self.started
                print(
                    f"produced {self.report.produced:,} messages "
                    f"({self.report.produced / elapsed:,.0f} msg/s)",
                    file=self.progress,
                    flush=True,
                )

    def close(self, timeout_s: float = 60.0) -> ProduceReport:
        remaining = self.producer.flush(timeout_s)
        if remaining:
            self.report.failed += remaining
            self.report.first_error = self.report.first_error or f"{remaining} not delivered"
        self.report.seconds = time.monotonic() - self.started
        return self.report


def produce_simulation(
    sim: Simulation,
    fmt: str,
    producer: PacedProducer,
    telemetry_topic: str,
    latency_topic: str,
) -> tuple[int, int]:
    """Sends the simulation second by second (telemetry keyed by GPU UUID, then the requests
    completing in that second, keyed by service), so consumer-group members write final
    gpu_windows and latency_windows rows (docs/scale-out.md). Returns (telemetry, request)
    message counts."""
    if fmt not in ("prom_json", "wide_json"):
        raise ValueError(f"Kafka takes prom_json or wide_json telemetry, not {fmt}")
    enc = Encoder()
    tel = req = 0
    for tick in sim.ticks():
        for key, msg in enc.keyed_messages(fmt, tick.ts, tick.rows):
            producer.send(telemetry_topic, msg.encode(), key.encode())
            tel += 1
        for r in tick.requests:
            producer.send(latency_topic, request_json(r).encode(), r.service.encode() or None)
            req += 1
    return tel, req
