"""A small deterministic GPU fleet that emits DCGM samples as prometheus-kafka-adapter JSON.

It is the embedded default source: the demo and tests run the engine on real encoded
messages without Kafka. (The full scenario simulator is `gpuledger simulate`, issue 6.)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class Gpu:
    uuid: str
    index: int
    hostname: str
    model: str
    namespace: str
    pod: str
    container: str
    base_util: float  # mean GR_ENGINE_ACTIVE this GPU hovers around


def default_fleet(seed: int = 7) -> list[Gpu]:
    """Eight GPUs: a busy training job, an inference pool with headroom, a forgotten
    notebook, and an unallocated spare."""
    rng = random.Random(seed)
    plan = [
        ("train-a100-0", "NVIDIA A100-SXM4-80GB", "team-research", "llm-pretrain-0", 0.82),
        ("train-a100-0", "NVIDIA A100-SXM4-80GB", "team-research", "llm-pretrain-0", 0.79),
        ("infer-h100-0", "NVIDIA H100 80GB HBM3", "team-chat", "vllm-chat-0", 0.41),
        ("infer-h100-0", "NVIDIA H100 80GB HBM3", "team-chat", "vllm-chat-1", 0.37),
        ("infer-h100-1", "NVIDIA H100 80GB HBM3", "team-search", "ranker-0", 0.28),
        ("infer-h100-1", "NVIDIA H100 80GB HBM3", "team-search", "ranker-1", 0.25),
        ("dev-l40s-0", "NVIDIA L40S", "team-research", "notebook-forgotten", 0.01),
        ("dev-l40s-0", "NVIDIA L40S", "", "", 0.0),
    ]
    fleet = []
    for i, (host, model, ns, pod, util) in enumerate(plan):
        tail = "".join(rng.choice("0123456789abcdef") for _ in range(12))
        fleet.append(
            Gpu(
                uuid=f"GPU-{i:08x}-d9cf-fef3-62e9-{tail}",
                index=i % 4,
                hostname=host,
                model=model,
                namespace=ns,
                pod=pod,
                container="main" if pod else "",
                base_util=util,
            )
        )
    return fleet


def _rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def prom_json_messages(
    fleet: list[Gpu], start_s: int, seconds: int, seed: int = 7
) -> Iterator[bytes]:
    """Yields one GR_ENGINE_ACTIVE and one POWER_USAGE message per GPU per second, in the
    exact shape prometheus-kafka-adapter writes to Kafka."""
    rng = random.Random(seed)
    for t in range(start_s, start_s + seconds):
        stamp = _rfc3339(t)
        for g in fleet:
            # Load swings and noise scale with the GPU's load, so an idle GPU stays near 0.
            wave = 0.25 * g.base_util * math.sin(t / 97.0 + g.index)
            noise = rng.gauss(0.0, 0.05 * g.base_util + 0.002)
            u = min(1.0, max(0.0, g.base_util + wave + noise))
            labels = (
                f'"gpu":"{g.index}","UUID":"{g.uuid}","device":"nvidia{g.index}",'
                f'"modelName":"{g.model}","Hostname":"{g.hostname}",'
                f'"namespace":"{g.namespace}","pod":"{g.pod}","container":"{g.container}"'
            )
            for name, value in (
                ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", f"{u:.3f}"),
                ("DCGM_FI_DEV_POWER_USAGE", f"{80 + 600 * u:.1f}"),
            ):
                yield (
                    f'{{"timestamp":"{stamp}","value":"{value}","name":"{name}",'
                    f'"labels":{{"__name__":"{name}",{labels}}}}}'
                ).encode()
