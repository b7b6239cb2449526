"""Test fixture: the small deterministic fleet's telemetry and a chat service's requests as
in-memory Kafka topics (telemetry keyed by GPU over partitions, requests by pod)."""

from __future__ import annotations

import json
import random

from gpuledger.simulate.small_fleet import Gpu, default_fleet, prom_json_messages
from gpuledger.simulate.topics import Topics, partition_of


def fleet_topics(
    start_s: int, seconds: int, *, telemetry: str, latency: str, partitions: int = 3, seed: int = 7
) -> Topics:
    fleet: list[Gpu] = default_fleet(seed)
    tel: list[list[tuple[bytes, int]]] = [[] for _ in range(partitions)]
    per_second = 2 * len(fleet)  # prom_json_messages: two fields per GPU per second
    for i, m in enumerate(prom_json_messages(fleet, start_s, seconds, seed)):
        g = fleet[(i % per_second) // 2]
        t = start_s + i // per_second
        tel[partition_of(g.uuid, partitions)].append((m, t * 1000))
    reqs: list[list[tuple[bytes, int]]] = [[] for _ in range(partitions)]
    rng = random.Random(seed)
    pods = [g for g in fleet if g.pod.startswith("vllm-chat")]
    for t in range(start_s, start_s + seconds):
        # Daytime chat traffic with bursts: a few requests a second, latency growing with load.
        burst = 6 if (t // 60) % 5 == 0 else 1
        for _ in range(rng.randint(0, 3) * burst):
            pod = rng.choice(pods)
            ts = t + rng.random()
            latency_ms = rng.lognormvariate(4.4, 0.35) * (1.0 + 0.15 * burst)
            body = {
                "ts": round(ts, 3),
                "service": "chat-llm",
                "namespace": pod.namespace,
                "pod": pod.pod,
                "latency_ms": round(latency_ms, 1),
                "ttft_ms": round(latency_ms * 0.2, 1),
                "status": 500 if rng.random() < 0.002 else 200,
                "tokens_in": rng.randint(50, 2000),
                "tokens_out": rng.randint(10, 400),
            }
            reqs[partition_of(pod.pod, partitions)].append(
                (json.dumps(body, separators=(",", ":")).encode(), int(ts * 1000))
            )
    return {telemetry: tel, latency: reqs}
