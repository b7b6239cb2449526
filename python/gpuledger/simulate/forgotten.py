"""`forgotten`: experiments that finished days ago but still hold their GPUs.

Of `gpus` GPUs, `round(forgotten_share * gpus)` (0.40) belong to pods of `team-research`
named after the day they started (`exp-<name>-<YYYYMMDD>`, 3 to 9 days before the simulation
start), each holding its model in memory at 0 to 1 % utilization (never above 0.02). The other
GPUs run active experiments (`train-<name>-<i>`, about 0.55-0.85 utilization, changing every
10 minutes). Every GPU reports every second, so the forgotten pods hold exactly their share of
the covered GPU-seconds; the `idle_streaks` table reports them once a streak passes
`[idle] ttl_s` (6 h by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from gpuledger.simulate.base import Component, Sample, SimContext, clip01
from gpuledger.simulate.fleet import A100, GpuModel, Placement, make_gpus

NAMES = ("lora-sweep", "ablation", "distill", "rlhf-probe", "tokenizer-test", "eval-harness")
BLOCK_S = 600


class ForgottenExperiments(Component):
    name = "forgotten"

    def __init__(
        self,
        ctx: SimContext,
        gpus: int,
        *,
        forgotten_share: float = 0.40,
        namespace: str = "team-research",
        host_prefix: str = "research-a100",
        model: GpuModel = A100,
    ) -> None:
        self.ctx = ctx
        rng = ctx.rng(self.name, "plan")
        self.gpus = make_gpus(ctx.rng(self.name, "gpus"), gpus, host_prefix, model)
        self.forgotten = round(forgotten_share * len(self.gpus))
        start = datetime.fromtimestamp(ctx.start_s, tz=timezone.utc)
        self.placements = []
        for i in range(len(self.gpus)):
            name = NAMES[i % len(NAMES)]
            if i < self.forgotten:
                day = (start - timedelta(days=rng.randint(3, 9))).strftime("%Y%m%d")
                pod = f"exp-{name}-{day}-{i}"
            else:
                pod = f"train-{name}-{i}"
            self.placements.append(Placement(namespace, pod, "main"))
        self._noise = ctx.rng(self.name, "noise")
        self._blocks: dict[int, list[float]] = {}

    def _levels(self, block: int) -> list[float]:
        levels = self._blocks.get(block)
        if levels is None:
            rng = self.ctx.rng(self.name, "block", block)
            levels = [rng.uniform(0.55, 0.85) for _ in self.gpus]
            self._blocks = {block: levels}
        return levels

    def samples(self, k: int) -> Sequence[Sample]:
        rnd = self._noise.random
        gauss = self._noise.gauss
        levels = self._levels(k // BLOCK_S)
        out = []
        for i, (p, g) in enumerate(zip(self.placements, self.gpus, strict=True)):
            if i < self.forgotten:
                u = 0.0 if rnd() < 0.7 else round(0.02 * rnd(), 3)
                out.append(Sample(p, u, 0.45 * g.model.memory_mib))
            else:
                u = clip01(levels[i] * (1.0 + gauss(0.0, 0.05)))
                out.append(Sample(p, u, 0.85 * g.model.memory_mib))
        return out

    def describe(self) -> dict[str, object]:
        n = len(self.gpus)
        return {
            "gpus": n,
            "forgotten_gpus": self.forgotten,
            "forgotten_share": round(self.forgotten / n, 4) if n else 0.0,
        }
