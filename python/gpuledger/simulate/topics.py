"""The embedded default source of `gpuledger demo`: the simulator's fleet and its request traffic,
laid out as in-memory Kafka topics (telemetry keyed by GPU over partitions, requests by pod)."""

from __future__ import annotations

import zlib

Topics = dict[str, list[list[tuple[bytes, int]]]]


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


def simulated_topics(
    start_s: int,
    seconds: int,
    *,
    telemetry: str,
    latency: str,
    partitions: int = 3,
    seed: int = 1,
    scenario: str = "mixed",
) -> Topics:
    """The `gpuledger simulate` scenario (default `mixed`: a training cluster, a buffered
    inference pool, a bursty chat service and forgotten experiments) as in-memory topics:
    telemetry keyed by GPU UUID, requests by pod, Kafka timestamps = event times."""
    from gpuledger.simulate import Simulation
    from gpuledger.simulate.encode import Encoder, request_json

    sim = Simulation(scenario, seed=seed, start_s=start_s, duration_s=seconds)
    encoder = Encoder()
    tel: list[list[tuple[bytes, int]]] = [[] for _ in range(partitions)]
    reqs: list[list[tuple[bytes, int]]] = [[] for _ in range(partitions)]
    slot: dict[str, int] = {}
    for tick in sim.ticks():
        at = tick.ts * 1000
        for uuid, message in encoder.keyed_messages("prom_json", tick.ts, tick.rows):
            p = slot.get(uuid)
            if p is None:
                p = slot[uuid] = partition_of(uuid, partitions)
            tel[p].append((message.encode(), at))
        for r in tick.requests:
            reqs[partition_of(r.pod, partitions)].append(
                (request_json(r).encode(), int(r.ts * 1000))
            )
    return {telemetry: tel, latency: reqs}
