"""Request latency from load and tokens: a per-second fluid queue in front of a GPU pool.

Equations (docs/simulate.md, "Latency model"):
- service time of request `i` on an idle replica:
  `S_i = base_ms + prefill_ms_per_token * tokens_in + decode_ms_per_token * tokens_out`;
- offered work in second `k`: `A_k = sum of S_i` over requests arriving in it (slot-seconds:
  one batch slot busy for `S_i`); the pool's capacity `C_k` in slot-seconds per second;
- backlog `B_k = max(0, B_{k-1} + A_k - C_k)`; utilization `u_k = min(1, (A_k + B_{k-1}) / C_k)`;
- smoothed load `rho_k = rho_{k-1} + (1 - exp(-1/smoothing_s)) * (u_k - rho_{k-1})`, capped at
  `max_load` (a batch slows down as it fills: processor sharing);
- latency `L_i = (S_i / (1 - rho_k) + 1000 * B_{k-1} / C_k) * J_i`, TTFT the same with
  `base_ms + prefill_ms_per_token * tokens_in` in place of `S_i`; `J_i = exp(N(0, jitter_sigma))`;
- status 500 with probability `error_rate`, else 200.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Arrival = tuple[float, int, int]  # (seconds since start, tokens_in, tokens_out)


@dataclass(frozen=True)
class ServiceModel:
    base_ms: float = 10.0
    prefill_ms_per_token: float = 0.005
    decode_ms_per_token: float = 0.1
    jitter_sigma: float = 0.1
    smoothing_s: float = 5.0
    max_load: float = 0.95
    error_rate: float = 0.001

    def service_ms(self, tokens_in: int, tokens_out: int) -> float:
        return (
            self.base_ms
            + self.prefill_ms_per_token * tokens_in
            + (self.decode_ms_per_token * tokens_out)
        )

    def prefill_ms(self, tokens_in: int) -> float:
        return self.base_ms + self.prefill_ms_per_token * tokens_in


@dataclass(frozen=True)
class Draws:
    """Per-request random draws, made once so that sizing never changes them."""

    jitter: list[float]
    error: list[bool]

    @staticmethod
    def make(rng: random.Random, n: int, model: ServiceModel) -> Draws:
        jitter = [math.exp(rng.gauss(0.0, model.jitter_sigma)) for _ in range(n)]
        error = [rng.random() < model.error_rate for _ in range(n)]
        return Draws(jitter, error)


def offered_work(arrivals: Sequence[Arrival], seconds: int, model: ServiceModel) -> list[float]:
    """`A_k` in slot-seconds per second of simulation."""
    work = [0.0] * seconds
    for t, tin, tout in arrivals:
        work[int(t)] += model.service_ms(tin, tout) / 1000.0
    return work


@dataclass(frozen=True)
class Load:
    """Per second: utilization `u_k`, smoothed load `rho_k`, queueing wait in ms."""

    util: list[float]
    rho: list[float]
    wait_ms: list[float]


def run_queue(work: Sequence[float], capacity: Callable[[int], float], model: ServiceModel) -> Load:
    alpha = 1.0 - math.exp(-1.0 / model.smoothing_s) if model.smoothing_s > 0 else 1.0
    n = len(work)
    util = [0.0] * n
    rho = [0.0] * n
    wait = [0.0] * n
    backlog = 0.0
    smooth = 0.0
    for k in range(n):
        cap = capacity(k)
        offered = work[k] + backlog
        u = min(1.0, offered / cap) if cap > 0 else 1.0
        smooth += alpha * (u - smooth)
        util[k] = u
        rho[k] = min(model.max_load, smooth)
        wait[k] = 1000.0 * backlog / cap if cap > 0 else 0.0
        backlog = max(0.0, offered - cap)
    return Load(util, rho, wait)


def latencies(
    arrivals: Sequence[Arrival], load: Load, model: ServiceModel, draws: Draws
) -> list[tuple[float, float]]:
    """(latency_ms, ttft_ms) per request."""
    out = []
    rho, wait = load.rho, load.wait_ms
    for i, (t, tin, tout) in enumerate(arrivals):
        k = int(t)
        slow = 1.0 / (1.0 - rho[k])
        j = draws.jitter[i]
        out.append(
            (
                (model.service_ms(tin, tout) * slow + wait[k]) * j,
                (model.prefill_ms(tin) * slow + wait[k]) * j,
            )
        )
    return out


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    pos = q * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def worst_window_quantile(
    arrivals: Sequence[Arrival],
    lat: Sequence[tuple[float, float]],
    start_s: int,
    window_s: int,
    q: float,
    min_requests: int,
) -> float:
    """The largest per-window `q` quantile of latency over epoch-aligned windows of the
    completion time, among windows with at least `min_requests` requests."""
    windows: dict[int, list[float]] = {}
    for (t, _, _), (ms, _) in zip(arrivals, lat, strict=True):
        w = int((start_s + t + ms / 1000.0) // window_s)
        windows.setdefault(w, []).append(ms)
    worst = 0.0
    for values in windows.values():
        if len(values) >= min_requests:
            values.sort()
            worst = max(worst, quantile(values, q))
    return worst


def size_capacity(
    arrivals: Sequence[Arrival],
    seconds: int,
    model: ServiceModel,
    draws: Draws,
    *,
    start_s: int,
    window_s: int,
    slo_ms: float,
    slo_target: float,
    min_requests: int = 20,
    margin: float = 0.98,
) -> float:
    """The smallest pool capacity (slot-seconds per second, to 0.5 %) for which every
    window's latency quantile at `slo_target` stays at or below `margin * slo_ms`."""
    work = offered_work(arrivals, seconds, model)
    mean = sum(work) / max(1, seconds)
    if mean <= 0.0:
        return 1.0

    def ok(cap: float) -> bool:
        load = run_queue(work, lambda _k: cap, model)
        lat = latencies(arrivals, load, model, draws)
        worst = worst_window_quantile(arrivals, lat, start_s, window_s, slo_target, min_requests)
        return worst <= margin * slo_ms

    lo, hi = mean, mean * 2.0
    while not ok(hi):
        lo, hi = hi, hi * 2.0
        if hi > mean * 1e4:
            return hi  # the SLO cannot be met by capacity alone (unloaded latency too high)
    while hi / lo > 1.005:
        mid = math.sqrt(lo * hi)
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi
