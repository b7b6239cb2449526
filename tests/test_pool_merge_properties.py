"""Property test of the exact pool merge (docs/scale-out.md): engines over any split of a
fleet's GPUs, their pool_windows combined, equal one engine over every GPU, bit for bit."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import gpuledger
from gpuledger.combine import combine_tables
from gpuledger.tables import KEYED_TABLES

START = 1_795_867_200
SECONDS = 130
CONFIG = {"engine": {"window_s": [60]}, "prices": {"default": 2.5}}
POOLS = [("team-a", "H100"), ("team-a", "A100"), ("team-b", "H100")]


def message(t: int, gpu: int, pool: int, value: float) -> bytes:
    namespace, model = POOLS[pool]
    stamp = datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f'{{"timestamp":"{stamp}","value":"{value}","name":"DCGM_FI_PROF_GR_ENGINE_ACTIVE",'
        f'"labels":{{"__name__":"DCGM_FI_PROF_GR_ENGINE_ACTIVE","UUID":"GPU-{gpu}",'
        f'"gpu":"{gpu}","modelName":"{model}","Hostname":"h{gpu}",'
        f'"namespace":"{namespace}","pod":"p{gpu}"}}}}'
    ).encode()


gpu_strategy = st.tuples(
    st.integers(0, len(POOLS) - 1),  # pool
    st.integers(0, 2),  # shard
    st.lists(st.one_of(st.none(), st.integers(0, 1000)), min_size=SECONDS, max_size=SECONDS),
)


def engine_pools(messages: list[bytes]) -> dict[str, pa.Table]:
    engine = gpuledger.Engine(gpuledger.Config.from_dict(CONFIG))
    engine.push(messages, source="gpu-telemetry", partition=0)
    tables = engine.finish().tables
    return {n: tables[n] for n in ("gpu_windows", "pool_windows")}


@settings(max_examples=25, deadline=None)
@given(st.lists(gpu_strategy, min_size=1, max_size=6))
def test_split_fleets_combine_to_one_engine(gpus: list[tuple[int, int, list[int | None]]]) -> None:
    shards: dict[int, list[bytes]] = {}
    everything = []
    for t in range(SECONDS):
        for g, (pool, shard, values) in enumerate(gpus):
            v = values[t]
            if v is not None:
                m = message(START + t, g, pool, v / 1000)
                everything.append(m)
                shards.setdefault(shard, []).append(m)
    assume(everything)
    whole = engine_pools(everything)
    parts = [engine_pools(ms) for ms in shards.values()]
    both = {n: pa.concat_tables([p[n] for p in parts]) for n in ("gpu_windows", "pool_windows")}
    got = combine_tables(both)["pool_windows"]
    keys = [(k, "ascending") for k in KEYED_TABLES["pool_windows"]]
    want = whole["pool_windows"].sort_by(keys)
    assert got.to_pylist() == want.to_pylist()
