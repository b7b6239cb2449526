"""`buffer`: an inference pool an autoscaler keeps 20 % above its P95 demand at all times.

Demand comes from the Azure trace (conversation, replayed from `trace_shift_s` = 1800 s into
it): `D_k = A_k / c` GPUs, with `A_k` the offered work of the latency model and `c` one GPU's
capacity, chosen so that the busiest window needs 90 % of the `gpus` GPUs. For every
epoch-aligned window `w` the autoscaler (with perfect foresight: it is a simulation) sets the
pool's mean size to `P_w = max(1, (1 + headroom) * p95_w(D))`: `floor(P_w)` GPUs for the whole
window plus one more during the `frac(P_w) * window` seconds of highest demand. GPUs outside
the pool are unallocated (empty namespace and pod). Allocated GPUs share the demand equally
(2 % noise). The engine's `pool_windows` then shows `buffer_gpus / demand_p95_gpus ~ headroom`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from gpuledger.simulate import trace as trace_mod
from gpuledger.simulate.base import Component, Request, Sample, SimContext, clip01
from gpuledger.simulate.fleet import L40S, UNALLOCATED, GpuModel, Placement, make_gpus
from gpuledger.simulate.latency import (
    Draws,
    ServiceModel,
    latencies,
    offered_work,
    quantile,
    run_queue,
)
from gpuledger.simulate.requests import request_stream


class BufferedPool(Component):
    name = "buffer"

    def __init__(
        self,
        ctx: SimContext,
        gpus: int,
        *,
        headroom: float = 0.20,
        service: str = "assist-llm",
        namespace: str = "team-assist",
        pod_prefix: str = "assist",
        trace: str = "conv",
        trace_shift_s: float = 1800.0,
        fill: float = 0.9,
        model: ServiceModel | None = None,
        host_prefix: str = "assist-l40s",
        gpu_model: GpuModel = L40S,
    ) -> None:
        self.ctx = ctx
        self.service, self.namespace, self.headroom = service, namespace, headroom
        self.model = model or ServiceModel()
        self.gpus = make_gpus(ctx.rng(self.name, service, "gpus"), gpus, host_prefix, gpu_model)
        n = len(self.gpus)
        self.pods = [f"{pod_prefix}-{i}" for i in range(n)]
        self.placements = [Placement(namespace, p, "server") for p in self.pods]
        seconds = ctx.duration_s
        self.arrivals = list(
            trace_mod.arrivals(trace_mod.load(trace), seconds, shift_s=trace_shift_s)
        )
        self.draws = Draws.make(
            ctx.rng(self.name, service, "draws"), len(self.arrivals), self.model
        )
        work = offered_work(self.arrivals, seconds, self.model)

        windows = _windows(ctx)
        peak = max((quantile(sorted(work[a:b]), 0.95) for a, b in windows), default=0.0)
        self.gpu_capacity = peak * (1.0 + headroom) / (fill * n) if peak > 0 and n else 1.0
        self.demand = [a / self.gpu_capacity for a in work]
        self.size = [0] * seconds  # GPUs in the pool per second
        self.targets: list[float] = []
        for a, b in windows:
            d = self.demand[a:b]
            target = min(float(n), max(1.0, (1.0 + headroom) * quantile(sorted(d), 0.95)))
            self.targets.append(target)
            full = math.floor(target)
            extra = round((target - full) * (b - a))
            top = sorted(range(a, b), key=lambda k: (-self.demand[k], k))[:extra]
            for k in range(a, b):
                self.size[k] = full
            for k in top:
                self.size[k] = min(n, full + 1)
        capacity = self.size
        cap = self.gpu_capacity
        self.load = run_queue(work, lambda k: max(1, capacity[k]) * cap, self.model)
        self.lat = latencies(self.arrivals, self.load, self.model, self.draws)
        self._noise = ctx.rng(self.name, service, "noise")

    def samples(self, k: int) -> Sequence[Sample]:
        size = self.size[k]
        share = min(1.0, self.demand[k] / size) if size else 0.0
        gauss = self._noise.gauss
        out = []
        for i, g in enumerate(self.gpus):
            if i < size:
                u = clip01(share * (1.0 + gauss(0.0, 0.02)))
                out.append(Sample(self.placements[i], u, (0.6 + 0.3 * u) * g.model.memory_mib))
            else:
                out.append(Sample(UNALLOCATED, 0.0, 0.0))
        return out

    def requests(self) -> Iterator[Request]:
        size, pods = self.size, self.pods
        return request_stream(
            self.ctx,
            self.service,
            self.namespace,
            self.arrivals,
            self.lat,
            self.draws,
            lambda k: pods[: max(1, size[k])],
        )

    def describe(self) -> dict[str, object]:
        return {
            "gpus": len(self.gpus),
            "service": self.service,
            "requests": len(self.arrivals),
            "headroom": self.headroom,
            "pool_mean_gpus": round(sum(self.size) / max(1, len(self.size)), 3),
        }


def _windows(ctx: SimContext) -> list[tuple[int, int]]:
    """[a, b) second ranges of the epoch-aligned windows the simulation covers."""
    w = ctx.window_s
    out = []
    k = 0
    while k < ctx.duration_s:
        end = min(ctx.duration_s, ((ctx.start_s + k) // w + 1) * w - ctx.start_s)
        out.append((k, end))
        k = end
    return out
