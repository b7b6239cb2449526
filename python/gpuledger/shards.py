"""Shards: one input split over several engines by GPU, and their tables merged into exactly the
rows one engine writes (docs/scale-out.md "All cores, one machine"). `replay --workers` and
`gpuledger.spark` use this; so can any other splitter (Ray, a process pool).

A GPU's shard is `crc32(gpu_uuid) % count` (`shard_of_gpu`; `shard_of_rows` computes it for a
columnar batch with the engine's own label rules). Every shard is given every request: the
join of services to the GPUs of their pods needs them all. Shard 0 alone writes what requests
give by themselves (`latency_windows`, request late events and dead letters, their counters).

>>> parts = [Engine(cfg, shard=(k, 2, False)) ...]          # one engine per shard
>>> tables = merge_shards([p.finish().tables for p in parts])
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from gpuledger import _engine
from gpuledger.errors import CombineError, InputError
from gpuledger.output.arrow_math import arr, coalesce, div, divide, mul, sub
from gpuledger.output.combine import combine_tables
from gpuledger.tables import KEYED_TABLES

if TYPE_CHECKING:
    from typing import TypeAlias

    Array: TypeAlias = pa.Array[Any]

__all__ = ["MEMBERS_TABLE", "merge_shards", "shard_of_gpu", "shard_of_rows"]

MEMBERS_TABLE = "service_members"
"""The table shards write besides the standard ones: the pods and GPUs each service's window
was joined with, so distinct counts can be taken over all shards. Never written to output."""

_SERVICE_KEY = ("window_start", "window_end", "service")
_F64 = pa.float64()


def shard_of_gpu(gpu_uuid: str, count: int) -> int:
    """The shard of a GPU among `count`: CRC-32 (IEEE) of its UTF-8 id, modulo `count`."""
    return zlib.crc32(gpu_uuid.encode()) % max(count, 1)


def shard_of_rows(data: Any, count: int, form: str | None = None) -> pa.Array[Any]:
    """The shard (uint32) of every row of columnar telemetry `data` (a RecordBatch, Table or
    any Arrow PyCapsule producer; `form` as `Engine.push_arrow` takes it). Rows without a
    readable GPU, and request rows, are shard 0."""
    result: pa.Array[Any] = _engine.shard_of_rows(data, count, form)
    return result


def merge_shards(parts: Sequence[Mapping[str, pa.Table]]) -> dict[str, pa.Table]:
    """The tables of one engine from the tables of its shards (`parts[k]`: shard k's tables,
    every shard of one split, in shard order). Per-GPU tables are disjoint and concatenated;
    `pool_windows` is merged from its per-bucket demand (exact); `service_cost_windows` takes
    requests and the SLO from shard 0, sums GPU time and cost over the shards and counts
    distinct pods and GPUs from `service_members`. Tables no shard split (custom
    aggregations, window functions) are refused: CombineError."""
    if not parts:
        return {}
    names = [n for n in parts[0] if n != MEMBERS_TABLE]
    tables = {n: _concat([p[n] for p in parts if n in p]) for n in names}
    unsplittable = [n for n in names if n not in KEYED_TABLES and n not in _PLAIN]
    if unsplittable:
        raise CombineError(f"tables {', '.join(unsplittable)} cannot be merged from shards")
    # A GPU is in one shard and requests' rows are shard 0's: only pool rows are partial,
    # merged in Rust (exact: per-bucket integer sums, GPU sums re-added in engine order).
    combined = combine_tables({n: tables[n] for n in _DISJOINT if n in tables}, _DISJOINT)
    if "pool_windows" in tables:
        combined["pool_windows"] = _merge_pools(tables["pool_windows"], tables.get("gpu_windows"))
    out: dict[str, pa.Table] = {}
    for name in names:
        if name in combined:
            out[name] = combined[name]
        elif name == "service_cost_windows":
            out[name] = _service_cost(parts, tables)
        else:
            out[name] = tables[name]
    return out


_PLAIN = frozenset({"late_events", "dead_letters", "idle_streaks"})
_DISJOINT = frozenset({"gpu_windows", "latency_windows"})


def _merge_pools(pools: pa.Table, gpu_windows: pa.Table | None) -> pa.Table:
    """The shards' partial `pool_windows` rows merged (`_engine.merge_pool_windows`)."""
    gpu = gpu_windows if gpu_windows is not None else pa.table({})
    try:
        merged = _engine.merge_pool_windows(pools, gpu)
    except InputError as e:
        raise CombineError(str(e)) from None
    return pa.Table.from_batches([merged])


def _concat(tables: list[pa.Table]) -> pa.Table:
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _service_cost(
    parts: Sequence[Mapping[str, pa.Table]], tables: Mapping[str, pa.Table]
) -> pa.Table:
    """`service_cost_windows` of one engine, computed as the engine computes it from the
    merged `service_members` of all shards."""
    rows = tables["service_cost_windows"]
    schema = rows.schema
    if rows.num_rows == 0:
        return rows
    keys = list(_SERVICE_KEY)
    services = rows.group_by(keys, use_threads=False).aggregate([])
    first = parts[0]["service_cost_windows"].select([*keys, "requests", "slo_met"])
    merged = services.join(first, keys, join_type="left outer")
    members = _concat([p[MEMBERS_TABLE] for p in parts if MEMBERS_TABLE in p])
    merged = _with_member_figures(merged, members, keys)
    merged = _with_tokens(merged, tables.get("latency_windows"), keys)
    gpu_s, busy, cost = (arr(merged[c]) for c in _MEMBER_SUMS)
    requests = coalesce(arr(merged["requests"]), 0)
    start = arr(merged["window_start"]).cast(pa.int64())
    window_s = div(sub(arr(merged["window_end"]).cast(pa.int64()), start).cast(_F64), 1000.0)
    provisioned = div(gpu_s, window_s)
    demand = div(busy, window_s)
    headroom = sub(provisioned, demand)
    # As the engine: mean price = cost / gpu_s * 3600 (0 without GPU time), headroom cost =
    # (provisioned - demand) * window_s / 3600 * mean price, cost per 1k requests = cost /
    # requests * 1000, per 1M tokens = cost / tokens * 1e6: same operations, same order.
    mean_price = coalesce(mul(divide(cost, gpu_s), 3600.0), 0.0)
    headroom_cost = mul(div(mul(headroom, window_s), 3600.0), mean_price)
    per_1k = mul(divide(cost, requests), 1000.0)
    per_1m = mul(divide(cost, arr(merged["tokens"])), 1e6)
    columns = {
        "window_start": merged["window_start"],
        "window_end": merged["window_end"],
        "service": merged["service"],
        "requests": requests,
        "pods": merged["pods"],
        "gpus": merged["gpus"],
        "gpu_s": gpu_s,
        "busy_gpu_s": busy,
        "cost_usd": cost,
        "provisioned_gpus": provisioned,
        "demand_mean_gpus": demand,
        "headroom_gpus": headroom,
        "headroom_cost_usd": headroom_cost,
        "cost_per_1k_requests_usd": per_1k,
        "cost_per_1m_tokens_usd": per_1m,
        "slo_met": merged["slo_met"],
    }
    table = pa.table([arr(columns[f.name]).cast(f.type) for f in schema], schema=schema)
    return table.sort_by([("window_end", "ascending"), ("window_start", "ascending"),
                          ("service", "ascending")])  # fmt: skip


_ENGINE_ROW_ORDER = ("gpu_uuid", "namespace", "pod", "container", "hostname")
"""The order the engine adds a window's GPU rows in (engine/close.rs, `close_window`)."""
_MEMBER_SUMS = ("gpu_s", "busy_gpu_s", "cost_usd")


def _with_member_figures(merged: pa.Table, members: pa.Table, keys: list[str]) -> pa.Table:
    """Adds `pods` and `gpus` (distinct pods and GPUs joined to each service window over all
    shards) and the sums of the GPU time and cost shares, added one by one in the engine's
    row order so they equal one engine's bit for bit."""
    order: list[tuple[str, Literal["ascending", "descending"]]] = [
        (k, "ascending") for k in (*keys, *_ENGINE_ROW_ORDER)
    ]
    members = members.sort_by(order)
    join: Any = pc.binary_join_element_wise  # its stubs take no plain string arrays
    pod_id = arr(join(members["namespace"], members["pod"], "\x00"))
    table = members.select([*keys, "gpu_uuid", *_MEMBER_SUMS]).append_column("pod_id", pod_id)
    only_valid = pc.CountOptions("only_valid")
    aggregates: list[Any] = [
        ("pod_id", "count_distinct", only_valid),
        ("gpu_uuid", "count_distinct", only_valid),
        *((c, "sum") for c in _MEMBER_SUMS),
    ]
    # Hash aggregation without threads adds each group's values in row order.
    figures = table.group_by(keys, use_threads=False).aggregate(aggregates)
    figures = figures.rename_columns(
        {"pod_id_count_distinct": "pods", "gpu_uuid_count_distinct": "gpus"}
        | {f"{c}_sum": c for c in _MEMBER_SUMS}
    )
    out = merged.join(figures, keys, join_type="left outer")
    for name in ("pods", "gpus", *_MEMBER_SUMS):
        filled = coalesce(arr(out[name]), 0.0 if name in _MEMBER_SUMS else 0)
        out = out.set_column(out.schema.get_field_index(name), name, filled)
    return out


def _with_tokens(merged: pa.Table, latency: pa.Table | None, keys: list[str]) -> pa.Table:
    """Adds `tokens` (in + out, as the engine adds them) of each service window from shard 0's
    latency_windows; 0 without requests."""
    if latency is None or latency.num_rows == 0:
        return merged.append_column("tokens", pa.array([0.0] * merged.num_rows, _F64))
    tokens = pc.add(latency["tokens_in"].cast(_F64), latency["tokens_out"].cast(_F64))
    by_key = latency.select(keys).append_column("tokens", tokens)
    out = merged.join(by_key, keys, join_type="left outer")
    return out.set_column(
        out.schema.get_field_index("tokens"), "tokens", coalesce(arr(out["tokens"]), 0.0)
    )
