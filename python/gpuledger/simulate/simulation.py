"""A built scenario: its GPUs second by second as telemetry rows, and its request events.

`Simulation.ticks()` yields, for each second, the telemetry rows of every GPU and the request
events completing in that second, so writers can emit both streams in event-time order.
Requests that complete after the last second come with the last tick.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from gpuledger.simulate.base import Component, Request, SimContext
from gpuledger.simulate.fleet import Placement, SimGpu, gpu_util_percent, power_w
from gpuledger.simulate.scenarios import build_components


class Row(NamedTuple):
    """One GPU-second of DCGM telemetry."""

    gpu: SimGpu
    placement: Placement
    util: float  # DCGM_FI_PROF_GR_ENGINE_ACTIVE, ratio
    util_pct: int  # DCGM_FI_DEV_GPU_UTIL, percent
    fb_mib: int  # DCGM_FI_DEV_FB_USED
    power_w: float  # DCGM_FI_DEV_POWER_USAGE
    energy_mj: int  # DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION


@dataclass
class Tick:
    ts: int  # Unix seconds
    rows: list[Row]
    requests: list[Request]


class Simulation:
    def __init__(
        self,
        scenario: str,
        *,
        seed: int = 1,
        start_s: int,
        duration_s: int,
        gpus: int | None = None,
        window_s: int = 60,
        params: Mapping[str, object] | None = None,
    ) -> None:
        if duration_s < 1:
            raise ValueError("duration must be at least 1 s")
        self.scenario = scenario
        self.ctx = SimContext(seed, start_s, duration_s, window_s)
        self.params = dict(params or {})
        self.components: list[Component] = build_components(scenario, self.ctx, gpus, self.params)

    @property
    def gpus(self) -> list[SimGpu]:
        return [g for c in self.components for g in c.gpus]

    def parts(self) -> dict[str, dict[str, object]]:
        """Figures each part was built with, by part name."""
        return {c.name: c.describe() for c in self.components}

    def describe(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "seed": self.ctx.seed,
            "start_s": self.ctx.start_s,
            "duration_s": self.ctx.duration_s,
            "window_s": self.ctx.window_s,
            "gpus": len(self.gpus),
            "params": {k: str(v) for k, v in sorted(self.params.items())},
            "parts": self.parts(),
        }

    def requests(self) -> Iterator[Request]:
        return heapq.merge(*(c.requests() for c in self.components), key=lambda r: r.ts)

    def ticks(self) -> Iterator[Tick]:
        start, n = self.ctx.start_s, self.ctx.duration_s
        energy = [g.boot_energy_mj for g in self.gpus]
        reqs = self.requests()
        pending = next(reqs, None)
        for k in range(n):
            t = start + k
            rows = []
            i = 0
            for comp in self.components:
                for g, s in zip(comp.gpus, comp.samples(k), strict=True):
                    u = round(s.util, 3)
                    p = round(power_w(g.model, u), 1)
                    e = energy[i]
                    energy[i] = e + int(p * 1000)
                    rows.append(Row(g, s.placement, u, gpu_util_percent(u), int(s.fb_mib), p, e))
                    i += 1
            done: list[Request] = []
            last = k == n - 1
            while pending is not None and (last or pending.ts < t + 1):
                done.append(pending)
                pending = next(reqs, None)
            yield Tick(t, rows, done)
