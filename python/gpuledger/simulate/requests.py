"""Request events of an inference service: trace arrivals plus modelled latencies, assigned
to pods round-robin, emitted in completion-time order (a request is logged when it ends)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence

from gpuledger.simulate.base import Request, SimContext
from gpuledger.simulate.latency import Arrival, Draws


def request_stream(
    ctx: SimContext,
    service: str,
    namespace: str,
    arrivals: Sequence[Arrival],
    lat: Sequence[tuple[float, float]],
    draws: Draws,
    pods_at: Callable[[int], Sequence[str]],
) -> Iterator[Request]:
    """`pods_at(k)` lists the pods serving in second `k`; request `i` goes to
    `pods[i % len(pods)]`. Completion times are rounded to the millisecond."""
    prefix = f"{ctx.rng(service, 'ids').getrandbits(24):06x}"
    heap: list[tuple[float, int, Request]] = []
    start = ctx.start_s
    for i, ((t, tin, tout), (ms, ttft)) in enumerate(zip(arrivals, lat, strict=True)):
        arrival = start + t
        while heap and heap[0][0] <= arrival:
            yield heapq.heappop(heap)[2]
        pods = pods_at(int(t))
        pod = pods[i % len(pods)] if pods else ""
        done = round(arrival + ms / 1000.0, 3)
        status = 500 if draws.error[i] else 200
        req = Request(
            done, service, namespace, pod, ms, ttft, status, tin, tout, f"r-{prefix}-{i:x}"
        )
        heapq.heappush(heap, (done, i, req))
    while heap:
        yield heapq.heappop(heap)[2]
