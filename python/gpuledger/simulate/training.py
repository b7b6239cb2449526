"""`training`: a reserved training cluster, busy only during scheduled retraining windows.

Every GPU is allocated all the time to its host's trainer pod (`trainer-<host>` in
`ml-training`). Retraining runs every `retrain_every_s` for `retrain_for_s`, starting
`retrain_offset_s` after the simulation start: then every GPU runs near `busy_util` (0.90,
with a 20 s checkpoint dip to 0.10 every 15 min). Outside those windows, each GPU in each
10-minute block is either running an evaluation/experiment (`eval_share` of the GPUs, 0.25,
drawn anew each block; utilization 0.45-0.65) or nearly idle (0.02-0.10): on average about
0.18, under 35 %.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpuledger.simulate.base import Component, Sample, SimContext, clip01
from gpuledger.simulate.fleet import H100, GpuModel, Placement, make_gpus

BLOCK_S = 600


class TrainingCluster(Component):
    name = "training"

    def __init__(
        self,
        ctx: SimContext,
        gpus: int,
        *,
        retrain_every_s: int = 21600,
        retrain_for_s: int = 3600,
        retrain_offset_s: int = 1800,
        busy_util: float = 0.90,
        eval_share: float = 0.25,
        namespace: str = "ml-training",
        host_prefix: str = "train-h100",
        model: GpuModel = H100,
    ) -> None:
        self.ctx = ctx
        self.gpus = make_gpus(ctx.rng(self.name, "gpus"), gpus, host_prefix, model)
        self.every = max(1, retrain_every_s)
        self.length = retrain_for_s
        self.offset = retrain_offset_s
        self.busy = busy_util
        self.eval_share = eval_share
        self.placements = [
            Placement(namespace, f"trainer-{g.host.rsplit('-', 1)[-1]}", "trainer")
            for g in self.gpus
        ]
        self._noise = ctx.rng(self.name, "noise")
        self._blocks: dict[int, list[float]] = {}

    def retraining(self, k: int) -> bool:
        """Whether second `k` falls in a scheduled retraining window."""
        return (k - self.offset) % self.every < self.length and k >= self.offset

    def _block_levels(self, block: int) -> list[float]:
        levels = self._blocks.get(block)
        if levels is None:
            rng = self.ctx.rng(self.name, "block", block)
            n = len(self.gpus)
            evals = set(rng.sample(range(n), round(self.eval_share * n)))
            levels = [
                rng.uniform(0.45, 0.65) if i in evals else rng.uniform(0.02, 0.10) for i in range(n)
            ]
            self._blocks = {block: levels}  # keep only the current block
        return levels

    def samples(self, k: int) -> Sequence[Sample]:
        gauss = self._noise.gauss
        out = []
        if self.retraining(k):
            dip = (k - self.offset) % 900 < 20
            base = 0.10 if dip else self.busy
            for p, g in zip(self.placements, self.gpus, strict=True):
                u = clip01(base + gauss(0.0, 0.02))
                out.append(Sample(p, u, 0.92 * g.model.memory_mib))
        else:
            for p, g, level in zip(
                self.placements, self.gpus, self._block_levels(k // BLOCK_S), strict=True
            ):
                u = clip01(level * (1.0 + gauss(0.0, 0.1)))
                fb = (0.40 if level > 0.3 else 0.04) * g.model.memory_mib
                out.append(Sample(p, u, fb))
        return out

    def describe(self) -> dict[str, object]:
        return {
            "gpus": len(self.gpus),
            "retrain_every_s": self.every,
            "retrain_for_s": self.length,
            "retrain_offset_s": self.offset,
        }
