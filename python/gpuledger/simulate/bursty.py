"""`bursty`: an inference service whose P95 latency target needs about twice its mean load.

A fixed pool of `gpus` replicas (`vllm-chat-<i>` in `team-chat`, one GPU each) serves the
Azure conversation trace (by default). The latency model (`latency.py`) turns load and tokens
into latency; the pool's capacity is sized by bisection to the smallest one for which every
window's latency quantile at `slo_target` (0.95) stays under `slo_ms` (200 ms, with a 2 %
margin for the engine's sketch error), then multiplied by `capacity_factor` (1.0; below 1
shows what under-provisioning does). Each GPU's utilization is the pool's `u_k` with 3 %
multiplicative noise, so the mean demand is `gpus * mean(u)` while the pool is `gpus`: the
ratio is the headroom the latency target costs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from gpuledger.simulate import trace as trace_mod
from gpuledger.simulate.base import Component, Request, Sample, SimContext, clip01
from gpuledger.simulate.fleet import H100, GpuModel, Placement, make_gpus
from gpuledger.simulate.latency import (
    Draws,
    ServiceModel,
    latencies,
    offered_work,
    run_queue,
    size_capacity,
)
from gpuledger.simulate.requests import request_stream


class SloSizedPool(Component):
    name = "bursty"

    def __init__(
        self,
        ctx: SimContext,
        gpus: int,
        *,
        service: str = "chat-llm",
        namespace: str = "team-chat",
        pod_prefix: str = "vllm-chat",
        trace: str = "conv",
        trace_shift_s: float = 0.0,
        slo_ms: float = 200.0,
        slo_target: float = 0.95,
        capacity_factor: float = 1.0,
        model: ServiceModel | None = None,
        host_prefix: str = "chat-h100",
        gpu_model: GpuModel = H100,
    ) -> None:
        self.ctx = ctx
        self.service, self.namespace = service, namespace
        self.model = model or ServiceModel()
        self.gpus = make_gpus(ctx.rng(self.name, service, "gpus"), gpus, host_prefix, gpu_model)
        self.pods = [f"{pod_prefix}-{i}" for i in range(len(self.gpus))]
        self.placements = [Placement(namespace, p, "vllm") for p in self.pods]
        seconds = ctx.duration_s
        self.arrivals = list(
            trace_mod.arrivals(trace_mod.load(trace), seconds, shift_s=trace_shift_s)
        )
        self.draws = Draws.make(
            ctx.rng(self.name, service, "draws"), len(self.arrivals), self.model
        )
        sized = size_capacity(
            self.arrivals,
            seconds,
            self.model,
            self.draws,
            start_s=ctx.start_s,
            window_s=ctx.window_s,
            slo_ms=slo_ms,
            slo_target=slo_target,
        )
        self.capacity = sized * capacity_factor
        work = offered_work(self.arrivals, seconds, self.model)
        self.load = run_queue(work, lambda _k: self.capacity, self.model)
        self.lat = latencies(self.arrivals, self.load, self.model, self.draws)
        self._noise = ctx.rng(self.name, service, "noise")
        self.slo_ms, self.slo_target, self.capacity_factor = slo_ms, slo_target, capacity_factor

    def samples(self, k: int) -> Sequence[Sample]:
        u = self.load.util[k]
        gauss = self._noise.gauss
        fb_frac = 0.55 + 0.35 * u
        return [
            Sample(p, clip01(u * (1.0 + gauss(0.0, 0.03))), fb_frac * g.model.memory_mib)
            for p, g in zip(self.placements, self.gpus, strict=True)
        ]

    def requests(self) -> Iterator[Request]:
        pods = self.pods
        return request_stream(
            self.ctx,
            self.service,
            self.namespace,
            self.arrivals,
            self.lat,
            self.draws,
            lambda _k: pods,
        )

    def describe(self) -> dict[str, object]:
        util = self.load.util
        mean_u = sum(util) / max(1, len(util))
        return {
            "gpus": len(self.gpus),
            "service": self.service,
            "requests": len(self.arrivals),
            "capacity_slot_s_per_s": round(self.capacity, 4),
            "capacity_factor": self.capacity_factor,
            "mean_util": round(mean_u, 4),
            "provisioned_over_mean_demand": round(1.0 / mean_u, 3) if mean_u > 0 else None,
        }
