"""What every scenario part shares: the simulation context (seed, start, duration, window),
seeded random streams, and the `Component` interface the writers read.

A component owns some GPUs. For each second `k` of the simulation it says, per GPU, where the
GPU is placed, its utilization and its framebuffer use; it may also emit request events.
Randomness comes from streams named after the component, so adding a component never changes
another one's numbers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from gpuledger.simulate.fleet import Placement, SimGpu


@dataclass(frozen=True)
class SimContext:
    seed: int
    start_s: int  # Unix seconds of the first sample
    duration_s: int
    window_s: int = 60  # the windows the engine will use (pool sizing, SLO sizing)

    def rng(self, *names: object) -> random.Random:
        """A random stream for `names` (str seeding hashes with SHA-512: stable everywhere)."""
        return random.Random(":".join([str(self.seed), *map(str, names)]))


class Sample(NamedTuple):
    placement: Placement
    util: float  # GR_ENGINE_ACTIVE, 0..1
    fb_mib: float


class Request(NamedTuple):
    ts: float  # completion time, Unix seconds
    service: str
    namespace: str
    pod: str
    latency_ms: float
    ttft_ms: float
    status: int
    tokens_in: int
    tokens_out: int
    request_id: str


class Component:
    """A part of a scenario: GPUs, their samples per second, optional request events."""

    name: str = "component"
    gpus: list[SimGpu]

    def samples(self, k: int) -> Sequence[Sample]:
        """One sample per GPU of `self.gpus` (same order) for second `k` (0-based)."""
        raise NotImplementedError

    def requests(self) -> Iterator[Request]:
        """Request events in completion-time order."""
        return iter(())

    def describe(self) -> dict[str, object]:
        """Figures the scenario was built with (printed by the CLI, used by the tests)."""
        return {}


def clip01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x
