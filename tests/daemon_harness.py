"""Harness for the daemon's integration tests (`gpuledger run` against a real Kafka broker).

Pieces:
- `Trace`: a deterministic synthetic fleet (12 GPUs, 3 services whose pods are GPU pods):
  DCGM telemetry as prometheus-kafka-adapter JSON, one message per GPU, field and second,
  keyed by GPU UUID and pinned to partition `gpu index % 3`; request latency JSON events
  keyed by service, pinned to partition `service index % 2`. Within a partition event times
  never decrease. Event times start a little before "now" and may advance faster than the
  wall clock (`ContinuousProducer(speed=...)`).
- `TraceProducer` / `ContinuousProducer`: produce a trace (bulk or paced, in a thread) and
  record where every message landed (partition, offset, Kafka timestamp).
- `Daemon` / `DaemonPool`: write the daemon's TOML, run `gpuledger run` as a subprocess with
  stdout/stderr in files, parse its JSON log lines, wait for events, signal it; the pool
  kills leftovers at teardown (fixture `daemons`).
- `reference_tables`: the library engine (`gpuledger.Engine`) fed the messages read back from
  the topics, partition by partition (values, offsets, Kafka timestamps), then poll + finish.
- `assert_same_tables`: exact comparison of tables as sorted lists of row dicts.
- `PrivateBroker`: a second local broker (compose/kafka-local) for tests that restart it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

REPO = Path(__file__).resolve().parents[1]
KAFKA_LOCAL = REPO / "compose" / "kafka-local" / "kafka-local.sh"

WINDOW_S = 10
LATENESS_S = 2
IDLE_TIMEOUT_S = 3
SAMPLE_INTERVAL_S = 1.0
TELEMETRY_PARTITIONS = 3
LATENCY_PARTITIONS = 2

TABLES = (
    "gpu_windows",
    "pool_windows",
    "latency_windows",
    "service_cost_windows",
    "late_events",
    "dead_letters",
)
WINDOW_TABLES = TABLES[:4]

# Large messages (the bad-input test sends a 3 MiB one).
BIG_MESSAGE_BYTES = 8_000_000
BIG_TOPIC_CONFIG = {"max.message.bytes": str(BIG_MESSAGE_BYTES)}


# --------------------------------------------------------------------------------------------
# The synthetic fleet and its trace
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    uuid: str
    index: int  # position in the fleet; partition = index % TELEMETRY_PARTITIONS
    host: str
    model: str
    namespace: str
    pod: str
    container: str
    base_util: float


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    pods: tuple[str, ...]
    rps: float
    latency_ms: float


SERVICES = (
    Service("chat-llm", "team-chat", ("vllm-chat-0", "vllm-chat-1", "vllm-chat-2"), 4.0, 180.0),
    Service("ranker", "team-search", ("ranker-0", "ranker-1"), 6.0, 40.0),
    Service("embedder", "team-embed", ("embed-0",), 3.0, 15.0),
)

H100, L40S, A100 = "NVIDIA H100 80GB HBM3", "NVIDIA L40S", "NVIDIA A100-SXM4-80GB"


def default_gpus() -> tuple[Gpu, ...]:
    """12 GPUs on 3 nodes: 6 serve chat-llm (2 per pod), 2 the ranker, 1 the embedder,
    2 a training job (no requests) and 1 is unallocated."""
    plan = [
        (H100, "team-chat", "vllm-chat-0", 0.55),
        (H100, "team-chat", "vllm-chat-0", 0.52),
        (H100, "team-chat", "vllm-chat-1", 0.40),
        (H100, "team-chat", "vllm-chat-1", 0.38),
        (H100, "team-chat", "vllm-chat-2", 0.20),
        (H100, "team-chat", "vllm-chat-2", 0.18),
        (L40S, "team-search", "ranker-0", 0.30),
        (L40S, "team-search", "ranker-1", 0.27),
        (L40S, "team-embed", "embed-0", 0.12),
        (A100, "team-research", "llm-pretrain-0", 0.85),
        (A100, "team-research", "llm-pretrain-0", 0.83),
        (L40S, "", "", 0.0),
    ]
    rng = random.Random(20261128)
    gpus = []
    for i, (model, ns, pod, util) in enumerate(plan):
        tail = "".join(rng.choice("0123456789abcdef") for _ in range(12))
        gpus.append(
            Gpu(
                uuid=f"GPU-{i:08x}-5e1f-4c2a-9d3b-{tail}",
                index=i,
                host=f"gpu-node-{i // 4}",
                model=model,
                namespace=ns,
                pod=pod,
                container="main" if pod else "",
                base_util=util,
            )
        )
    return tuple(gpus)


@dataclass(frozen=True)
class Msg:
    """One message to produce. `stream` is "telemetry" or "latency"; `event_s` is None for
    messages that are not valid events; `bad` names the bad-input case (None if good)."""

    stream: str
    partition: int
    key: bytes | None
    value: bytes
    event_s: float | None
    bad: str | None = None


def rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def prom_json(name: str, value: str, t: int, g: Gpu, **label_overrides: str) -> bytes:
    labels = {
        "__name__": name,
        "gpu": str(g.index % 4),
        "UUID": g.uuid,
        "pci_bus_id": f"00000000:{0x18 + g.index % 4:02X}:00.0",
        "device": f"nvidia{g.index % 4}",
        "modelName": g.model,
        "Hostname": g.host,
        "namespace": g.namespace,
        "pod": g.pod,
        "container": g.container,
    }
    labels.update(label_overrides)
    body = {"timestamp": rfc3339(t), "value": value, "name": name, "labels": labels}
    return json.dumps(body, separators=(",", ":")).encode()


def trace_start() -> int:
    """A start time 100 s before the last full hour: a few-minute trace crosses an hour
    boundary (two output partitions), and stays far from engine.max_future_s."""
    return (int(time.time()) // 3600) * 3600 - 100


class Trace:
    """Deterministic events per second of event time: `second(t)` is the same list for the
    same (seed, t), however the trace is cut into chunks."""

    def __init__(
        self,
        start_s: int,
        *,
        seed: int = 7,
        gpus: Sequence[Gpu] | None = None,
        services: Sequence[Service] = SERVICES,
        bad_every_s: int = 0,
    ) -> None:
        self.start_s = start_s
        self.seed = seed
        self.gpus = tuple(gpus if gpus is not None else default_gpus())
        self.services = tuple(services)
        self.bad_every_s = bad_every_s

    def telemetry(self, t: int) -> list[Msg]:
        rng = random.Random(f"{self.seed}-gpu-{t}")
        out = []
        for g in self.gpus:
            wave = 0.2 * g.base_util * math.sin(t / 37.0 + g.index)
            noise = rng.gauss(0.0, 0.05 * g.base_util + 0.002)
            u = min(1.0, max(0.0, g.base_util + wave + noise))
            power = 70 + 600 * u
            # A counter: mJ since boot at the GPU's mean power (never decreases).
            energy_mj = (
                10**9 + g.index * 10**7 + (t - self.start_s) * int((70 + 600 * g.base_util) * 1000)
            )
            fields = (
                ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", f"{u:.3f}"),
                ("DCGM_FI_DEV_GPU_UTIL", f"{min(100, round(u * 100 + 3))}"),
                ("DCGM_FI_DEV_POWER_USAGE", f"{power:.1f}"),
                ("DCGM_FI_DEV_FB_USED", f"{int(2000 + 70000 * u)}"),
                ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", str(energy_mj)),
            )
            part = g.index % TELEMETRY_PARTITIONS
            for name, value in fields:
                out.append(Msg("telemetry", part, g.uuid.encode(), prom_json(name, value, t, g), t))
        return out

    def latency(self, t: int) -> list[Msg]:
        rng = random.Random(f"{self.seed}-req-{t}")
        events = []
        for si, s in enumerate(self.services):
            n = rng.randint(0, round(2 * s.rps))
            for k in range(n):
                ts = round(t + rng.random(), 3)
                latency = round(s.latency_ms * rng.lognormvariate(0.0, 0.5), 2)
                body: dict[str, Any] = {
                    "ts": ts,
                    "service": s.name,
                    "namespace": s.namespace,
                    "pod": rng.choice(s.pods),
                    "latency_ms": latency,
                    "ttft_ms": round(latency * rng.uniform(0.1, 0.4), 2),
                    "status": 503 if rng.random() < 0.03 else 200,
                    "tokens_in": rng.randint(16, 2048),
                    "tokens_out": rng.randint(1, 512),
                    "request_id": f"r-{t}-{si}-{k}",
                }
                value = json.dumps(body, separators=(",", ":")).encode()
                events.append(Msg("latency", si % LATENCY_PARTITIONS, s.name.encode(), value, ts))
        events.sort(key=lambda m: (m.event_s, m.value))
        return events

    def bad(self, t: int) -> list[Msg]:
        """With `bad_every_s`: every that many seconds, a truncated telemetry message and a
        request with a negative latency (both dead letters), on rotating partitions."""
        if not self.bad_every_s or (t - self.start_s) % self.bad_every_s != self.bad_every_s // 2:
            return []
        n = (t - self.start_s) // self.bad_every_s
        g = self.gpus[n % len(self.gpus)]
        truncated = prom_json("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "0.5", t, g)[:60]
        negative = json.dumps(
            {"ts": t + 0.5, "service": "ranker", "pod": "ranker-0", "latency_ms": -5.0}
        ).encode()
        return [
            Msg(
                "telemetry",
                g.index % TELEMETRY_PARTITIONS,
                g.uuid.encode(),
                truncated,
                None,
                "truncated",
            ),
            Msg("latency", n % LATENCY_PARTITIONS, b"bad", negative, None, "negative latency"),
        ]

    def second(self, t: int) -> list[Msg]:
        return self.telemetry(t) + self.latency(t) + self.bad(t)

    def messages(self, t0: int, t1: int) -> list[Msg]:
        """Every message of event seconds [t0, t1)."""
        return [m for t in range(t0, t1) for m in self.second(t)]


# --------------------------------------------------------------------------------------------
# Kafka: topics, producing, reading back
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topics:
    telemetry: str
    latency: str
    dead_letter: str = ""

    def of(self, stream: str) -> str:
        return self.telemetry if stream == "telemetry" else self.latency


def make_topics(
    make_topic: Callable[..., str], *, big: bool = False, dead_letter: bool = False
) -> Topics:
    """Fresh topics through conftest's `make_topic` fixture: telemetry (3 partitions),
    latency (2), and optionally a dead-letter topic (1). `big` raises max.message.bytes."""
    cfg = BIG_TOPIC_CONFIG if big else None
    return Topics(
        telemetry=make_topic(partitions=TELEMETRY_PARTITIONS, config=cfg),
        latency=make_topic(partitions=LATENCY_PARTITIONS, config=cfg),
        dead_letter=make_topic(partitions=1, config=cfg) if dead_letter else "",
    )


def create_topic(bootstrap: str, name: str, partitions: int, config: dict | None = None) -> str:
    """Creates a topic with AdminClient (for brokers without conftest's fixture) and waits
    until every partition has a leader."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=30,
    )
    futures[name].result(timeout=30)
    deadline = time.monotonic() + 30
    while True:
        meta = admin.list_topics(topic=name, timeout=10).topics.get(name)
        if (
            meta
            and meta.error is None
            and len(meta.partitions) == partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return name
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {name} has no leader for all {partitions} partitions")
        time.sleep(0.1)


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    msg: Msg


class TraceProducer:
    """Produces `Msg`s to their topic and partition (idempotent, so retries across a broker
    outage neither lose nor duplicate) and records their delivery reports."""

    def __init__(self, bootstrap: str, topics: Topics, **conf: Any) -> None:
        from confluent_kafka import Producer

        settings = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.max.bytes": BIG_MESSAGE_BYTES + 100_000,
            "message.timeout.ms": 120_000,
        }
        settings.update(conf)
        self.topics = topics
        self.producer = Producer(settings)
        self.delivered: list[Delivered] = []
        self.errors: list[str] = []
        self.sent = 0

    def send(self, msgs: Iterable[Msg]) -> None:
        for m in msgs:
            topic = self.topics.of(m.stream)

            def report(err: Any, km: Any, m: Msg = m, topic: str = topic) -> None:
                if err is not None:
                    self.errors.append(f"{topic}[{m.partition}]: {err}")
                else:
                    ts = km.timestamp()[1]
                    self.delivered.append(Delivered(topic, km.partition(), km.offset(), ts, m))

            while True:
                try:
                    self.producer.produce(
                        topic, value=m.value, key=m.key, partition=m.partition, on_delivery=report
                    )
                    break
                except BufferError:  # local queue full: serve delivery reports, retry
                    self.producer.poll(0.1)
            self.sent += 1
            self.producer.poll(0)

    def close(self) -> None:
        """Drops the librdkafka handle (no reconnect attempts to a broker stopped later)."""
        self.producer = None  # type: ignore[assignment]

    def flush(self, timeout: float = 120.0) -> list[Delivered]:
        left = self.producer.flush(timeout)
        assert left == 0, f"{left} messages still queued after {timeout} s"
        assert self.errors == [], self.errors[:5]
        assert len(self.delivered) == self.sent
        return self.delivered


class ContinuousProducer(threading.Thread):
    """Produces `trace.second(t)` for t = t0, t0 + 1, ... paced at `speed` event seconds per
    wall second, for `duration_s` wall seconds (or until `stop()`), then flushes. `end_t`
    is the first event second not produced; `delivered` holds the delivery reports."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        trace: Trace,
        *,
        t0: int | None = None,
        duration_s: float = 30.0,
        speed: float = 5.0,
        **conf: Any,
    ) -> None:
        super().__init__(name="continuous-producer", daemon=True)
        self.trace = trace
        self.t0 = trace.start_s if t0 is None else t0
        self.end_t = self.t0
        self.duration_s = duration_s
        self.speed = speed
        self.producer = TraceProducer(bootstrap, topics, **conf)
        self._stop_event = threading.Event()
        self.error: BaseException | None = None
        self.delivered: list[Delivered] = []

    def run(self) -> None:
        try:
            began = time.monotonic()
            t = self.t0
            while not self._stop_event.is_set():
                due = began + (t - self.t0) / self.speed
                if due - began >= self.duration_s:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    self.producer.producer.poll(min(wait, 0.05))
                    continue
                self.producer.send(self.trace.second(t))
                t += 1
                self.end_t = t
            self.delivered = self.producer.flush()
            self.producer.close()
        except BaseException as e:  # surfaced by finish()
            self.error = e

    def stop(self) -> None:
        self._stop_event.set()

    def finish(self, timeout: float = 150.0) -> list[Delivered]:
        """Waits for the thread; returns the delivery reports (raises its error)."""
        self.join(timeout)
        assert not self.is_alive(), "producer thread did not finish"
        if self.error is not None:
            raise self.error
        return self.delivered


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> dict[int, list[Record]]:
    """Every message of `topic` (up to the high watermarks as of now), by partition, in
    offset order."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("harness-read"),
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.message.max.bytes": BIG_MESSAGE_BYTES + 100_000,
            "fetch.max.bytes": 4 * BIG_MESSAGE_BYTES,
            "receive.message.max.bytes": 4 * BIG_MESSAGE_BYTES + 1024,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = sorted(meta.partitions)
        highs = {}
        for p in parts:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            highs[p] = high
        out: dict[int, list[Record]] = {p: [] for p in parts}
        wanted = {p for p in parts if highs[p] > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in wanted])
        deadline = time.monotonic() + timeout
        while wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: partitions {sorted(wanted)} incomplete")
            for m in consumer.consume(10_000, 0.5):
                if m.error():
                    raise KafkaException(m.error())
                p = m.partition()
                out[p].append(
                    Record(
                        topic,
                        p,
                        m.offset(),
                        m.timestamp()[1],
                        m.value() or b"",
                        tuple((k, v or b"") for k, v in (m.headers() or [])),
                    )
                )
                if m.offset() + 1 >= highs[p]:
                    wanted.discard(p)
        for p in parts:
            out[p] = [r for r in out[p] if r.offset < highs[p]]
        return out
    finally:
        consumer.close()


# --------------------------------------------------------------------------------------------
# Settings, the daemon's configuration and the library reference
# --------------------------------------------------------------------------------------------


def engine_settings(**engine_overrides: Any) -> dict[str, Any]:
    """The configuration sections shared by the daemon and the library reference."""
    engine = {
        "window_s": [WINDOW_S],
        "allowed_lateness_s": LATENESS_S,
        "idle_timeout_s": IDLE_TIMEOUT_S,
        "sample_interval_s": SAMPLE_INTERVAL_S,
    }
    engine.update(engine_overrides)
    return {
        "engine": engine,
        "prices": {"default": 2.0, H100: 4.5, A100: 3.0, L40S: 1.25},
        "teams": {"team-chat": "chat", "team-search": "search"},
        "services": {
            "chat-llm": {"slo_latency_ms": 300.0, "slo_target": 0.99},
            # Pod rules let a group member attribute GPUs to services without seeing the
            # requests (those may be in another member's partitions).
            "pods": [
                {"namespace": s.namespace, "pattern": f"{pod}", "service": s.name}
                for s in SERVICES
                for pod in s.pods
            ],
        },
    }


def daemon_config(
    *,
    bootstrap: str,
    group: str,
    topics: Topics,
    out_dir: Path,
    settings: Mapping[str, Any],
    client: Mapping[str, Any] | None = None,
    flush_interval_s: float = 0.5,
    status_interval_s: float = 1.0,
    batch_messages: int = 20_000,
    metrics_port: int = 0,
) -> dict[str, Any]:
    cfg = {key: value for key, value in settings.items()}
    cfg["kafka"] = {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "client": dict(client or {}),
    }
    cfg["topics"] = {
        "telemetry": topics.telemetry,
        "telemetry_format": "prom_json",
        "latency": topics.latency,
        "dead_letter": topics.dead_letter,
    }
    cfg["output"] = {"dir": str(out_dir), "format": "arrow"}
    cfg["observability"] = {
        "metrics_port": metrics_port,
        "log_format": "json",
        "status_interval_s": status_interval_s,
    }
    cfg["run"] = {"batch_messages": batch_messages, "flush_interval_s": flush_interval_s}
    return cfg


def _toml_key(key: str) -> str:
    if key and all(c.isalnum() or c in "_-" for c in key):
        return key
    return json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{ }"
    raise TypeError(f"no TOML for {value!r}")


def toml_dumps(data: Mapping[str, Mapping[str, Any]]) -> str:
    """TOML for section -> {key: value} data; nested tables inside a section are inline,
    except the sub-tables of [services] (one [services."name"] each)."""
    lines: list[str] = []
    for section, body in data.items():
        lines.append(f"[{_toml_key(section)}]")
        arrays = []
        for key, value in body.items():
            if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
                arrays.append((key, value))  # an array of tables: after the plain keys
            else:
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        for key, items in arrays:
            for item in items:
                lines.append(f"[[{_toml_key(section)}.{_toml_key(key)}]]")
                lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items())
        lines.append("")
    return "\n".join(lines)


_TIMESTAMPS: bool | None = None


def _push_supports_timestamps() -> bool:
    """Whether `Engine.push(timestamps=...)` works (being added to the engine)."""
    global _TIMESTAMPS
    if _TIMESTAMPS is None:
        import gpuledger

        try:
            gpuledger.Engine().push([b"{}"], timestamps=[1_000_000_000_000])
            _TIMESTAMPS = True
        except TypeError:
            _TIMESTAMPS = False
    return _TIMESTAMPS


def reference_tables(
    bootstrap: str,
    topics: Topics,
    settings: Mapping[str, Any],
    *,
    records: Mapping[str, Mapping[int, list[Record]]] | None = None,
) -> dict[str, pa.Table]:
    """The library engine's tables over everything on the telemetry and latency topics:
    every partition pushed whole (values, offsets, Kafka timestamps), then poll and finish.
    `records` (topic -> partition -> records) skips reading the topics again."""
    import gpuledger

    engine = gpuledger.Engine(gpuledger.Config.from_dict(settings))
    with_ts = _push_supports_timestamps()
    for topic, fmt in ((topics.telemetry, "prom_json"), (topics.latency, "latency_json")):
        parts = records[topic] if records is not None else read_topic(bootstrap, topic)
        for p in sorted(parts):
            recs = parts[p]
            if not recs:
                continue
            kw: dict[str, Any] = {"offsets": [r.offset for r in recs]}
            if with_ts:
                kw["timestamps"] = [r.timestamp_ms for r in recs]
            engine.push([r.value for r in recs], format=fmt, source=topic, partition=p, **kw)
    windows = engine.poll().concat(engine.finish())
    return {name: windows.tables.get(name, pa.table({})) for name in TABLES}


def reference_ignores() -> dict[str, tuple[str, ...]]:
    """Columns the library cannot reproduce yet: `received_at` of dead letters until
    `Engine.push(timestamps=...)` exists."""
    return {} if _push_supports_timestamps() else {"dead_letters": ("received_at",)}


# --------------------------------------------------------------------------------------------
# Comparing tables
# --------------------------------------------------------------------------------------------


class _NaN:
    """NaN that equals itself (one instance), so rows holding NaN compare equal."""

    def __repr__(self) -> str:
        return "nan"


NAN = _NaN()


def _norm(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return NAN
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def _sort_key(v: Any) -> tuple[int, Any]:
    if v is None:
        return (0, 0)
    if v is NAN:
        return (1, 0)
    if isinstance(v, dict | list):
        return (3, repr(v))
    return (2, v)


def table_rows(table: pa.Table, drop: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The rows of `table` as dicts (without `drop` columns), NaN normalized, sorted by every
    column left to right."""
    drop = set(drop)
    keep = [n for n in table.column_names if n not in drop]
    rows = [{k: _norm(r[k]) for k in keep} for r in table.select(keep).to_pylist()]
    rows.sort(key=lambda r: tuple(_sort_key(r[k]) for k in keep))
    return rows


def _hashable(row: Mapping[str, Any]) -> str:
    return repr(sorted(row.items()))


def _describe(rows: Sequence[Mapping[str, Any]], limit: int = 4) -> str:
    return "\n".join(f"    {dict(r)}" for r in rows[:limit]) + (
        f"\n    ... {len(rows) - limit} more" if len(rows) > limit else ""
    )


def diff_rows(
    actual: Sequence[Mapping[str, Any]], expected: Sequence[Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(rows missing from actual, rows actual has in excess), as multisets."""
    a = Counter(_hashable(r) for r in actual)
    e = Counter(_hashable(r) for r in expected)
    by_key = {_hashable(r): r for r in list(actual) + list(expected)}
    missing = [by_key[k] for k, n in (e - a).items() for _ in range(n)]
    extra = [by_key[k] for k, n in (a - e).items() for _ in range(n)]
    return missing, extra


def table_diff(
    name: str, actual: pa.Table, expected: pa.Table, drop: Iterable[str] = ()
) -> str | None:
    """None if equal (same columns and types when both have rows, same rows as multisets);
    else a readable description of the difference."""
    drop = set(drop)
    if actual.num_rows and expected.num_rows:
        sa = [(f.name, f.type) for f in actual.schema if f.name not in drop]
        se = [(f.name, f.type) for f in expected.schema if f.name not in drop]
        if sa != se:
            return f"{name}: schema differs:\n  actual   {sa}\n  expected {se}"
    ra, re_ = table_rows(actual, drop), table_rows(expected, drop)
    if ra == re_:
        return None
    missing, extra = diff_rows(ra, re_)
    text = f"{name}: {len(ra)} rows, expected {len(re_)}"
    if missing:
        text += f"; {len(missing)} expected rows missing:\n{_describe(missing)}"
    if extra:
        text += f"\n  {len(extra)} unexpected rows:\n{_describe(extra)}"
    if missing and extra:
        # Show which columns differ between the first pair with the same window and key.
        m, x = missing[0], extra[0]
        cols = [k for k in m if m.get(k) != x.get(k)]
        text += f"\n  first missing vs first unexpected differ in columns {cols}"
    return text


def assert_same_tables(
    actual: Mapping[str, pa.Table],
    expected: Mapping[str, pa.Table],
    *,
    tables: Sequence[str] = TABLES,
    ignore: Mapping[str, Iterable[str]] | None = None,
    label: str = "",
) -> None:
    ignore = ignore or {}
    problems = []
    for name in tables:
        d = table_diff(
            name,
            actual.get(name, pa.table({})),
            expected.get(name, pa.table({})),
            ignore.get(name, ()),
        )
        if d:
            problems.append(d)
    assert not problems, (f"{label}: " if label else "") + "\n".join(problems)


def read_output(out_dir: Path) -> dict[str, pa.Table]:
    from gpuledger.output.sink import read_table

    return {name: read_table(out_dir, name) for name in TABLES}


def concat_outputs(*outputs: Mapping[str, pa.Table]) -> dict[str, pa.Table]:
    """The rows of several outputs together (duplicates kept)."""
    out = {}
    for name in TABLES:
        parts = [o[name] for o in outputs if o.get(name) is not None and o[name].num_rows]
        out[name] = pa.concat_tables(parts, promote_options="default") if parts else pa.table({})
    return out


def only_rows(table: pa.Table, keep: Callable[[Mapping[str, Any]], bool]) -> pa.Table:
    if table.num_rows == 0:
        return table
    rows = [r for r in table.to_pylist() if keep(r)]
    return pa.Table.from_pylist(rows, schema=table.schema)


def _close(a: Any, b: Any, rel: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    return bool(a == b)


APPROXIMATE_WHEN_COMBINED = {
    "service_cost_windows": ("pods", "gpus"),
}
"""Columns combine_tables documents as approximate (bounds) for partial rows."""


def assert_tables_close(
    actual: Mapping[str, pa.Table],
    expected: Mapping[str, pa.Table],
    *,
    tables: Sequence[str] = WINDOW_TABLES,
    rel: float = 1e-9,
    exclude: Mapping[str, Iterable[str]] | None = None,
    label: str = "",
) -> None:
    """Window tables match row by row on their keys: one row per key on both sides, the same
    keys, every non-float column equal and floats within `rel` (partial rows combined add in
    another order than one engine does); `exclude` columns are not compared."""
    from gpuledger.output.combine import KEYS as COMBINE_KEYS

    problems = []
    for name in tables:
        a, e = actual.get(name, pa.table({})), expected.get(name, pa.table({}))
        keys = COMBINE_KEYS[name]
        rows_a, rows_e = {}, {}
        for rows, t, side in ((rows_a, a, "actual"), (rows_e, e, "expected")):
            for r in t.to_pylist():
                k = tuple(r[c] for c in keys)
                if k in rows:
                    problems.append(f"{name}: {side} has two rows for {k}")
                rows[k] = {c: _norm(v) for c, v in r.items()}
        if set(rows_a) != set(rows_e):
            problems.append(
                f"{name}: {len(rows_a)} keys, expected {len(rows_e)}; missing "
                f"{sorted(set(rows_e) - set(rows_a), key=repr)[:3]}, unexpected "
                f"{sorted(set(rows_a) - set(rows_e), key=repr)[:3]}"
            )
            continue
        for k, re_ in rows_e.items():
            ra = rows_a[k]
            skip = set((exclude or {}).get(name, ()))
            bad = [c for c in re_ if c not in skip and not _close(ra.get(c), re_[c], rel)]
            if bad:
                problems.append(
                    f"{name}{k}: "
                    + ", ".join(f"{c}={ra.get(c)!r} expected {re_[c]!r}" for c in bad)
                )
    assert not problems, (f"{label}: " if label else "") + "\n".join(problems[:20])


# Columns that add up when partial rows (from several group members) combine.
ADDITIVE = (
    "samples",
    "covered_s",
    "busy_gpu_s",
    "idle_gpu_s",
    "gpu_s",
    "requests",
    "errors",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "idle_cost_usd",
    "slo_violations",
)
KEYS = {
    "gpu_windows": ("window_start", "window_end", "gpu_uuid"),
    "pool_windows": ("window_start", "window_end", "team", "model_name"),
    "latency_windows": ("window_start", "window_end", "service"),
    "service_cost_windows": ("window_start", "window_end", "service"),
}


def additive_sums(table: pa.Table, name: str) -> dict[tuple[Any, ...], dict[str, float]]:
    """Per key of a window table, the sums of its additive columns (partial rows added)."""
    out: dict[tuple[Any, ...], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    if table.num_rows == 0:
        return {}
    cols = [c for c in ADDITIVE if c in table.column_names]
    for r in table.to_pylist():
        acc = out[tuple(r[k] for k in KEYS[name])]
        for c in cols:
            acc[c] += r[c] or 0
    return {k: dict(v) for k, v in out.items()}


def assert_same_sums(
    actual: Mapping[str, pa.Table], expected: Mapping[str, pa.Table], rel: float = 1e-9
) -> None:
    """Additive columns summed per key agree (floats within `rel`): nothing lost or counted
    twice when partial rows of group members are added up."""
    problems = []
    for name in KEYS:
        a, e = additive_sums(actual[name], name), additive_sums(expected[name], name)
        if set(a) != set(e):
            problems.append(
                f"{name}: keys missing {sorted(set(e) - set(a))[:4]}, "
                f"unexpected {sorted(set(a) - set(e))[:4]}"
            )
            continue
        for key, sums in e.items():
            for col, v in sums.items():
                if not math.isclose(a[key][col], v, rel_tol=rel, abs_tol=1e-9):
                    problems.append(f"{name}{key}: {col} = {a[key][col]}, expected {v}")
    assert not problems, "\n".join(problems[:20])


def combine_function() -> Callable[[Mapping[str, pa.Table]], dict[str, pa.Table]] | None:
    """`gpuledger.combine_tables` (or `gpuledger.combine.combine_tables`); None while it does
    not exist."""
    import gpuledger

    fn = getattr(gpuledger, "combine_tables", None)
    if fn is None:
        try:
            from gpuledger.output.combine import combine_tables as fn
        except ImportError:
            return None
    return fn  # type: ignore[no-any-return]


def combine(*outputs: Mapping[str, pa.Table]) -> dict[str, pa.Table] | None:
    """The partial rows of several outputs combined into one row per key (None while
    `combine_tables` does not exist). Event tables (late_events, dead_letters) are returned
    concatenated as they are: combine_tables drops exact duplicates there, which would hide
    a dead letter written twice."""
    fn = combine_function()
    if fn is None:
        return None
    together = concat_outputs(*outputs)
    combined = fn({n: together[n] for n in WINDOW_TABLES})
    return {
        **combined,
        "late_events": together["late_events"],
        "dead_letters": together["dead_letters"],
    }


# --------------------------------------------------------------------------------------------
# Running the daemon
# --------------------------------------------------------------------------------------------


def daemon_command() -> list[str]:
    script = Path(sys.executable).parent / "gpuledger"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "gpuledger"]


def daemon_available() -> tuple[bool, str]:
    """Whether `gpuledger run` exists (its --help works)."""
    proc = subprocess.run(
        [*daemon_command(), "run", "--help"], capture_output=True, text=True, timeout=60
    )
    return proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]


_AVAILABLE: tuple[bool, str] | None = None


def require_daemon() -> None:
    """Fails the test when `gpuledger run` cannot start (e.g. broken at import): a daemon
    test never skips, so a broken daemon cannot pass CI."""
    global _AVAILABLE
    if _AVAILABLE is None:
        _AVAILABLE = daemon_available()
    ok, text = _AVAILABLE
    if not ok:
        pytest.fail(f"`gpuledger run --help` failed: {text.strip()[-300:]}")


class DaemonExited(AssertionError):
    pass


class Daemon:
    """One `gpuledger run` process. stdout/stderr go to files in `workdir`; JSON log lines
    on stderr are parsed into `events` (other lines kept as {"event": "<text>", "text":...})."""

    def __init__(
        self,
        config: Mapping[str, Any],
        workdir: Path,
        name: str,
        *,
        until_eof: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.config_path = workdir / f"{name}.toml"
        self.config_path.write_text(toml_dumps(config))
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self.args = [*daemon_command(), "run", "--config", str(self.config_path), *extra_args]
        if until_eof:
            self.args.append("--until-eof")
        self.proc: subprocess.Popen[bytes] | None = None
        self.events: list[dict[str, Any]] = []
        self._pos = 0
        self._partial = b""
        self.started_at = 0.0

    @property
    def out_dir(self) -> Path:
        return Path(self.config["output"]["dir"])

    def start(self) -> Daemon:
        # The daemon gets its settings from its file only: no GPULEDGER_* / KAFKA_* overrides.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GPULEDGER_") and k != "KAFKA_BOOTSTRAP_SERVERS"
        }
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                self.args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env
            )
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def read_events(self) -> list[dict[str, Any]]:
        """Parses new stderr lines; returns all events so far."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(self._pos)
                chunk = f.read()
        except FileNotFoundError:
            return self.events
        self._pos += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            text = line.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if not isinstance(obj, dict) or "event" not in obj:
                obj = {"event": "<text>", "text": text}
            self.events.append(obj)
        return self.events

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.read_events() if e.get("event") == name]

    def wait_for_event(
        self,
        name: str,
        timeout: float,
        pred: Callable[[dict[str, Any]], bool] | None = None,
        *,
        after: int = 0,
    ) -> dict[str, Any]:
        """The first event `name` (at index >= `after` in `events`) satisfying `pred`;
        raises if the process exits first or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.read_events()
            for e in events[after:]:
                if e.get("event") == name and (pred is None or pred(e)):
                    return e
            if self.poll() is not None:
                self.read_events()
                for e in self.events[after:]:
                    if e.get("event") == name and (pred is None or pred(e)):
                        return e
                raise DaemonExited(
                    f"{self.name} exited ({self.poll()}) before event {name!r}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name}: no event {name!r} within {timeout} s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def wait_caught_up(self, timeout: float, *, min_consumed: int = 0) -> dict[str, Any]:
        """Waits for a `status` line logged from now on with no lag and at least
        `min_consumed` messages consumed."""
        after = len(self.read_events())
        return self.wait_for_event(
            "status",
            timeout,
            lambda e: total_lag(e.get("lag")) == 0 and e.get("consumed", 0) >= min_consumed,
            after=after,
        )

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def sigterm(self) -> None:
        self.signal(signal.SIGTERM)

    def sigkill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(30)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"{self.name} still running after {timeout} s:\n{self.log_tail()}"
            ) from None
        self.read_events()
        return rc

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then the exit code (within `timeout`)."""
        self.sigterm()
        return self.wait_exit(timeout)

    def run_to_exit(self, timeout: float) -> int:
        """For --until-eof runs: waits for the exit; asserts exit code 0."""
        rc = self.wait_exit(timeout)
        assert rc == 0, f"{self.name} exited {rc}:\n{self.log_tail()}"
        return rc

    def stopped(self) -> dict[str, Any]:
        events = self.named("stopped")
        assert events, f"{self.name}: no `stopped` event:\n{self.log_tail()}"
        return events[-1]

    def non_json_lines(self) -> list[str]:
        """stderr lines that are not JSON log events (with log_format = "json" every line
        should be one)."""
        return [e["text"] for e in self.read_events() if e.get("event") == "<text>"]

    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.read_events() if e.get("level") == "error"]

    def log_tail(self, n: int = 40) -> str:
        lines = []
        for path in (self.stdout_path, self.stderr_path):
            with contextlib.suppress(FileNotFoundError):
                text = path.read_bytes().decode("utf-8", "replace").splitlines()
                lines.append(f"--- {path.name} (last {n} of {len(text)} lines) ---")
                lines.extend(line[:600] for line in text[-n:])
        return "\n".join(lines)


def total_lag(lag: Any) -> int | None:
    """A status line's lag: a number, or a mapping / list of per-partition numbers."""
    if lag is None:
        return None
    if isinstance(lag, int | float):
        return int(lag)
    if isinstance(lag, Mapping):
        return sum(int(v) for v in lag.values())
    if isinstance(lag, list):
        return sum(int(v) for v in lag)
    return None


def counters(event: Mapping[str, Any]) -> dict[str, int]:
    """consumed/aggregated/skipped/late/dead of a `stopped` or `status` line (a `skipped`
    mapping per reason is summed)."""
    skipped = event.get("skipped", 0)
    if isinstance(skipped, Mapping):
        skipped = sum(skipped.values())
    return {
        "consumed": int(event["consumed"]),
        "aggregated": int(event["aggregated"]),
        "skipped": int(skipped),
        "late": int(event["late"]),
        "dead": int(event["dead"]),
    }


def assert_counters_reconcile(event: Mapping[str, Any]) -> dict[str, int]:
    c = counters(event)
    assert c["consumed"] == c["aggregated"] + c["skipped"] + c["late"] + c["dead"], c
    return c


class DaemonPool:
    """Starts daemons for one test; `kill_all` (teardown) SIGKILLs whatever still runs."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Daemon] = []
        self._count = 0

    def start(
        self, config: Mapping[str, Any], *, name: str = "", until_eof: bool = False
    ) -> Daemon:
        self._count += 1
        d = Daemon(
            config,
            self.workdir / "daemons",
            f"{self._count:02d}-{name or 'daemon'}",
            until_eof=until_eof,
        )
        self.started.append(d)
        return d.start()

    def assert_json_logs(self) -> None:
        """Every daemon of the test wrote only JSON lines on stderr (log_format = "json")."""
        bad = {d.name: d.non_json_lines() for d in self.started}
        bad = {k: v for k, v in bad.items() if v}
        assert not bad, "non-JSON lines on stderr with log_format = json:\n" + "\n".join(
            f"  {name}: {len(lines)} lines, e.g. {lines[0][:200]!r}" for name, lines in bad.items()
        )

    def kill_all(self) -> None:
        for d in self.started:
            if d.alive():
                with contextlib.suppress(Exception):
                    d.proc.kill()  # type: ignore[union-attr]
                    d.proc.wait(30)  # type: ignore[union-attr]


def daemon_pool(tmp_path: Path) -> Iterator[DaemonPool]:
    """Body of each test module's `daemons` fixture (``yield from daemon_pool(tmp_path)``):
    a `DaemonPool` whose leftover processes die at teardown; fails without the daemon."""
    require_daemon()
    pool = DaemonPool(tmp_path)
    try:
        yield pool
    finally:
        pool.kill_all()


# --------------------------------------------------------------------------------------------
# A private broker (compose/kafka-local) for tests that stop and restart it
# --------------------------------------------------------------------------------------------


def _ephemeral_ports() -> range:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port_pair() -> int:
    """A port p with p and p + 1 free (broker and controller listeners), outside the
    ephemeral range: clients reconnecting while the broker is down must not take the port
    it restarts on."""
    ephemeral = _ephemeral_ports()
    rng = random.Random()
    for _ in range(200):
        p = rng.randrange(20_000, 32_000)
        if p in ephemeral or p + 1 in ephemeral:
            continue
        try:
            for port in (p, p + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return p
    raise RuntimeError("no free port pair")


@dataclass
class PrivateBroker:
    """`kafka-local.sh up/down` with its own port and data dir and the shared jar cache."""

    data_dir: Path
    port: int = field(default_factory=free_port_pair)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "GPULEDGER_KAFKA_PORT": str(self.port),
            "GPULEDGER_KAFKA_DIR": str(self.data_dir),
            "GPULEDGER_KAFKA_JARS": str(REPO / ".kafka-local" / "jars"),
            "GPULEDGER_KAFKA_PYTHON": sys.executable,
        }
        proc = subprocess.run(
            ["bash", str(KAFKA_LOCAL), *args], env=env, capture_output=True, text=True, timeout=300
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"kafka-local.sh {' '.join(args)} (port {self.port}) failed "
                f"(exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def up(self) -> None:
        self._run("up")

    def down(self) -> None:
        self._run("down", check=False)

    def __enter__(self) -> PrivateBroker:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


def assert_no_paths_outside(
    out_dir: Path, roots: Iterable[Path], before: Mapping[Path, set[str]]
) -> None:
    """No entry appeared in `roots` (directories around `out_dir`) since `before`."""
    for root in roots:
        now = {p.name for p in root.iterdir()}
        assert now == before[root], f"{root}: new entries {sorted(now - before[root])}"


def output_layout_problems(out_dir: Path) -> list[str]:
    """Files under `out_dir` that are not `<table>/date=YYYY-MM-DD/hour=HH/part-*`, in
    `.staging` or the daemon's `.gpuledger/ranges/<topic>/<partition>` markers; symlinks
    anywhere."""
    import re

    ok = re.compile(
        r"(?:[a-z0-9_]{1,64}/date=\d{4}-\d{2}-\d{2}/hour=\d{2}/part-[A-Za-z0-9._-]+\.arrow"
        r"|\.staging/.*|\.gpuledger(?:/ranges(?:/[A-Za-z0-9._-]+(?:/\d+(?:/[^/]+)?)?)?)?"
        r"|[a-z0-9_]{1,64}(?:/date=\d{4}-\d{2}-\d{2}(?:/hour=\d{2})?)?)"
    )
    problems = []
    for dirpath, dirnames, filenames in os.walk(out_dir):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = p.relative_to(out_dir).as_posix()
            if p.is_symlink():
                problems.append(f"symlink {rel}")
            elif rel != ".staging" and not ok.fullmatch(rel):
                problems.append(rel)
    return problems
