"""The named scenarios (docs/simulate.md has the figures each one shows) and their parameters.

`build_components(name, ctx, gpus, params)` returns the parts of a scenario. `params` override
the keyword arguments of the parts (`-p capacity_factor=0.6`); in `mixed` they are prefixed
with the part's name (`-p bursty.capacity_factor=0.6`). Values given as strings are converted
to the type of the default they replace.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gpuledger.simulate.base import Component, SimContext
from gpuledger.simulate.buffer import BufferedPool
from gpuledger.simulate.bursty import SloSizedPool
from gpuledger.simulate.forgotten import ForgottenExperiments
from gpuledger.simulate.training import TrainingCluster

PartFactory = Callable[..., Component]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    default_gpus: int


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("training", "training cluster under 35 % busy outside retraining windows", 16),
        Scenario("buffer", "inference pool autoscaled 20 % above its P95 demand", 10),
        Scenario("bursty", "bursty inference: a 200 ms P95 target needs ~2x the mean load", 8),
        Scenario("forgotten", "forgotten experiments idle for days hold 40 % of GPU-hours", 10),
        Scenario("mixed", "all of the above at a smaller scale (the demo's fleet)", 16),
    )
}

_PARTS: dict[str, PartFactory] = {
    "training": TrainingCluster,
    "buffer": BufferedPool,
    "bursty": SloSizedPool,
    "forgotten": ForgottenExperiments,
}

# `mixed`: part -> (share of the GPUs, parameter overrides).
_MIXED: dict[str, tuple[float, dict[str, Any]]] = {
    "training": (
        0.25,
        {"retrain_every_s": 3600, "retrain_for_s": 1200, "retrain_offset_s": 600},
    ),
    "buffer": (0.25, {}),
    "bursty": (0.1875, {}),
    "forgotten": (0.3125, {}),
}


def _convert(part: PartFactory, key: str, value: object) -> object:
    sig = inspect.signature(part)
    if key not in sig.parameters or key in ("ctx", "gpus", "model", "gpu_model"):
        names = [p for p in sig.parameters if p not in ("ctx", "gpus", "model", "gpu_model")]
        raise ValueError(f"unknown parameter {key!r} (known: {', '.join(names)})")
    default = sig.parameters[key].default
    if not isinstance(value, str) or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            return value.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise ValueError(f"parameter {key}: {value!r} is not a {type(default).__name__}") from None
    return value


def _make(part: str, ctx: SimContext, gpus: int, params: Mapping[str, object]) -> Component:
    factory = _PARTS[part]
    kwargs = {k: _convert(factory, k, v) for k, v in params.items()}
    return factory(ctx, gpus, **kwargs)


def split_gpus(total: int) -> dict[str, int]:
    """How `mixed` divides `total` GPUs (16: training 4, buffer 4, bursty 3, forgotten 5)."""
    counts = {p: max(1, round(total * share)) for p, (share, _) in _MIXED.items()}
    counts["forgotten"] = max(1, total - sum(c for p, c in counts.items() if p != "forgotten"))
    return counts


def build_components(
    name: str, ctx: SimContext, gpus: int | None, params: Mapping[str, object]
) -> list[Component]:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}: expected one of {', '.join(SCENARIOS)}")
    total = gpus if gpus is not None else SCENARIOS[name].default_gpus
    if total < 1:
        raise ValueError("gpus must be >= 1")
    if name != "mixed":
        return [_make(name, ctx, total, params)]
    if total < len(_MIXED):
        raise ValueError(f"mixed needs at least {len(_MIXED)} GPUs")
    per_part: dict[str, dict[str, object]] = {p: dict(o) for p, (_, o) in _MIXED.items()}
    for key, value in params.items():
        part, dot, sub = key.partition(".")
        if not dot or part not in per_part:
            raise ValueError(
                f"mixed parameters are '<part>.<name>' with part one of "
                f"{', '.join(_MIXED)}: got {key!r}"
            )
        per_part[part][sub] = value
    counts = split_gpus(total)
    return [_make(p, ctx, counts[p], per_part[p]) for p in _MIXED]
