"""The rule of every column when partial rows of one key are combined (docs/scale-out.md): sums
add, extremes take the extreme, means are re-weighted by their counts, ratios are recomputed
from the combined sums and latency quantiles from the merged sketches. `Sources.combined(name)`
is one table combined; `distinct_rows` dedups the tables of single events."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuledger import _engine
from gpuledger.errors import CombineError
from gpuledger.output.arrow_math import (
    add,
    arr,
    coalesce,
    div,
    divide,
    greatest,
    least,
    mul,
    positive,
    sub,
    where,
)
from gpuledger.sketch import DEFAULT_QUANTILES, LatencySketch, merge_sketches
from gpuledger.tables import KEYED_TABLES as KEYS

__all__ = ["Sources", "distinct_rows"]

_GROUP = "__group"
_ROW = "__row"
_F64 = pa.float64()
_TTFT_QUANTILES = ("ttft_p50_ms", "ttft_p95_ms", "ttft_p99_ms")
_LATENCY_QUANTILES = (
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_p999_ms",
)

if TYPE_CHECKING:
    from typing import TypeAlias

    Array: TypeAlias = pa.Array[Any]
    Column: TypeAlias = pa.Array[Any] | pa.ChunkedArray[Any]
    Rule: TypeAlias = Callable[["_Groups", "Sources"], dict[str, Array]]


# --- grouping ----------------------------------------------------------------------------------


def _differs_from_previous(column: Column) -> Array:
    """For rows 1..n-1: whether the value differs from the previous row's (null = null)."""
    col = arr(column)
    a, b = col.slice(1), col.slice(0, len(col) - 1)
    same = arr(pc.fill_null(pc.equal(a, b), pa.scalar(False)))
    both_null = arr(pc.and_(pc.is_null(a), pc.is_null(b)))
    return arr(pc.invert(pc.or_(same, both_null)))


def _run_starts(table: pa.Table, columns: Sequence[str]) -> Array:
    """True where a row starts a run of rows equal on `columns` (the table is sorted)."""
    if table.num_rows == 0:
        return pa.array([], pa.bool_())
    changed: Array = pa.array([False] * (table.num_rows - 1), pa.bool_())
    for c in columns:
        changed = arr(pc.or_(changed, _differs_from_previous(table.column(c))))
    return pa.concat_arrays([pa.array([True]), changed])


def _sort(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    if table.num_rows < 2:
        return table
    return table.take(pc.sort_indices(table, sort_keys=[(c, "ascending") for c in columns]))


def _split(table: pa.Table, keys: Sequence[str]) -> tuple[pa.Table, _Groups | None]:
    """(rows whose key has one row, the groups of the keys that have several)."""
    rows = _sort(table, keys)
    group_of_row = _group_ids(rows, keys)
    ids = pa.table({_GROUP: group_of_row})
    sizes = ids.group_by(_GROUP, use_threads=False).aggregate([(_GROUP, "count")])
    size_of_row = arr(pc.take(sizes.sort_by(_GROUP).column(f"{_GROUP}_count"), group_of_row))
    singles = rows.filter(pc.equal(size_of_row, pa.scalar(1, pa.int64())))
    partial = rows.filter(pc.greater(size_of_row, pa.scalar(1, pa.int64())))
    if partial.num_rows == 0:
        return singles, None
    return singles, _Groups(partial, keys)


def _group_ids(rows: pa.Table, keys: Sequence[str]) -> Array:
    """0, 1, ... numbering the runs of equal keys of sorted `rows`."""
    starts = _run_starts(rows, keys).cast(pa.int64())
    return arr(pc.subtract(arr(pc.cumulative_sum(starts)), pa.scalar(1, pa.int64())))


class _Groups:
    """The partial rows of the keys that have several, sorted by key. Every aggregate gives
    one value per key, in key order (first values in input order)."""

    def __init__(self, rows: pa.Table, keys: Sequence[str]) -> None:
        self.rows = rows
        self.keys = tuple(keys)
        self._ids = _group_ids(rows, keys)

    def agg(self, values: Column | str, func: str) -> Array:
        column = self.rows.column(values) if isinstance(values, str) else values
        t = pa.table({_GROUP: self._ids, "v": column})
        grouped = t.group_by(_GROUP, use_threads=False)
        out = grouped.aggregate([("v", func)]).sort_by(_GROUP)  # type: ignore[list-item]
        return arr(out.column(f"v_{func}"))

    def sum(self, values: Column | str) -> Array:
        return self.agg(values, "sum")

    def first(self, column: str) -> Array:
        return self.agg(column, "first")

    def key_table(self) -> pa.Table:
        return pa.table({k: self.first(k) for k in self.keys})

    def window_s(self) -> Array:
        """Window length in seconds, as the engine computes it: (end - start) ms / 1000."""
        start = self.first("window_start").cast(pa.int64())
        end = self.first("window_end").cast(pa.int64())
        return arr(pc.divide(arr(pc.subtract(end, start)).cast(_F64), 1000.0))

    def weighted_mean(self, column: str, weight: str) -> Array:
        """Mean of the non-null values of `column` weighted by `weight`; the plain mean when
        the weights of those rows are all 0; null when there is no value."""
        values = arr(self.rows.column(column))
        w = arr(self.rows.column(weight)).cast(_F64)
        num = self.sum(pc.multiply(values, w))
        den = self.sum(where(pc.is_valid(values), w, None))
        return where(positive(den), divide(num, den), self.agg(values, "mean"))

    @property
    def ids(self) -> Array:
        """The key number (0, 1, ...) of every row."""
        return self._ids

    def equal_or_raise(self, table: str, column: str, why: str) -> Array:
        """The value of `column` shared by each key's rows; CombineError when they differ."""
        return self.equal_or_raise_on(table, column, self.rows.column(column), why)

    def equal_or_raise_on(self, table: str, column: str, values: Column, why: str) -> Array:
        """The value of `values` (of `column`) shared by each key's rows; CombineError when
        they differ."""
        lo, hi = self.agg(values, "min"), self.agg(values, "max")
        differ = arr(pc.fill_null(pc.not_equal(lo, hi), pa.scalar(False)))
        where = arr(pc.indices_nonzero(differ))
        if len(where):
            i = where[0].as_py()
            key = self.key_table().slice(i, 1).to_pylist()[0]
            raise CombineError(
                f"{table}: the partial rows of {key} disagree on {column} "
                f"({lo[i].as_py()} and {hi[i].as_py()}): {why}"
            )
        return lo


def _lookup(keys: pa.Table, right: pa.Table, column: str) -> Array:
    """`column` of `right` (unique on the columns of `keys`) for each row of `keys`, null
    where `right` has no row."""
    on = keys.column_names
    left = keys.append_column(_ROW, pa.array(range(keys.num_rows), pa.int64()))
    joined = left.join(right.select([*on, column]), keys=on, join_type="left outer")
    return arr(joined.sort_by(_ROW).column(column))


# --- the tables --------------------------------------------------------------------------------


class Sources:
    """The input tables, and each standard table once combined (service_cost_windows reads
    the combined latency_windows; pool_windows counts GPUs in the input gpu_windows)."""

    def __init__(
        self, tables: Mapping[str, pa.Table], one_row_per_key: Collection[str] = ()
    ) -> None:
        """`one_row_per_key`: tables known to hold no partial rows (the shards of one engine
        split GPUs, so their gpu_windows are disjoint): only sorted by key, as combining
        would leave them, without looking for partial rows."""
        self.tables = tables
        self._combined: dict[str, pa.Table] = {
            n: _sort(tables[n], KEYS[n]) for n in one_row_per_key if n in tables
        }

    def usable(self, name: str) -> pa.Table | None:
        t = self.tables.get(name)
        return t if t is not None and t.num_columns and t.num_rows else None

    def combined(self, name: str) -> pa.Table:
        if name not in self._combined:
            self._combined[name] = _combine_by_key(self.tables[name], name, self)
        return self._combined[name]


def _combine_by_key(table: pa.Table, name: str, sources: Sources) -> pa.Table:
    keys = KEYS[name]
    singles, groups = _split(table, keys)
    if groups is None:
        return singles
    values = _RULES[name](groups, sources)
    arrays = []
    for field in table.schema:
        v = values[field.name] if field.name not in keys else groups.first(field.name)
        arrays.append(v.cast(field.type))
    merged = pa.Table.from_arrays(arrays, schema=table.schema)
    return _sort(pa.concat_tables([singles, merged]), keys)


def _firsts(g: _Groups, columns: Sequence[str]) -> dict[str, Array]:
    return {c: g.first(c) for c in columns}


def _sums(g: _Groups, columns: Sequence[str]) -> dict[str, Array]:
    return {c: g.sum(c) for c in columns}


def _gpu_windows(g: _Groups, _: Sources) -> dict[str, Array]:
    v = _firsts(g, ["hostname", "gpu_index", "model_name", "container", "team", "allocated"])
    v["samples"] = g.sum("samples")
    # Each part is capped already, so the capped sum equals the cap of all samples' time.
    covered = least(g.sum("covered_s"), g.window_s())
    util_mean = g.weighted_mean("util_mean", "samples")
    busy = coalesce(mul(util_mean, covered), 0.0)  # the engine's util_mean * covered_s
    idle = sub(covered, busy)
    price = _price(g)
    cost = mul(div(covered, 3600.0), price)
    v |= {
        "covered_s": covered,
        "util_mean": util_mean,
        "util_min": g.agg("util_min", "min"),
        "util_max": g.agg("util_max", "max"),
        "util_p50": g.weighted_mean("util_p50", "samples"),  # approximate
        "util_p95": g.weighted_mean("util_p95", "samples"),  # approximate
        "busy_gpu_s": busy,
        "idle_gpu_s": idle,
        "fb_used_max_mib": g.agg("fb_used_max_mib", "max"),
        "power_mean_w": g.weighted_mean("power_mean_w", "samples"),
        "energy_j": g.sum("energy_j"),
        "price_usd_per_gpu_hour": price,
        "cost_usd": cost,
        "idle_cost_usd": mul(div(idle, 3600.0), price),
        "unallocated_cost_usd": where(v["allocated"], 0.0, cost),
    }
    return v


def _price(g: _Groups) -> Array:
    """The rows' price; covered_s-weighted when they differ (a price change between the
    instances' configurations), so the cost is what the instances billed together."""
    lo, hi = g.agg("price_usd_per_gpu_hour", "min"), g.agg("price_usd_per_gpu_hour", "max")
    weighted = g.weighted_mean("price_usd_per_gpu_hour", "covered_s")
    return where(pc.equal(lo, hi), lo, weighted)


_POOL_SUMS = ("gpu_s", "busy_gpu_s", "idle_gpu_s", "cost_usd", "idle_cost_usd")
_GPU_OF_POOL_SUM = {"gpu_s": "covered_s"}


def _pool_windows(g: _Groups, sources: Sources) -> dict[str, Array]:
    v = _pool_sums(g, sources)
    exact_gpus = _pool_gpus_seen(g, sources)
    v["gpus"] = coalesce(exact_gpus, g.agg("gpus", "max"))  # else a lower bound
    why = "the instances ran with different sample_interval_s or window lengths"
    demand = _sum_lists(g, "demand_buckets", "pool_windows", why)
    provisioned = _sum_lists(g, "provisioned_buckets", "pool_windows", why)
    # The engine's own arithmetic over the merged per-bucket vectors (pool_windows.rs).
    figures = _engine.pool_demand_figures(demand, provisioned)
    for name in ("provisioned_mean_gpus", "demand_mean_gpus"):
        v[name] = arr(figures.column(name))
    v["demand_p95_gpus"] = arr(figures.column("demand_p95_gpus"))
    v["demand_peak_gpus"] = arr(figures.column("demand_peak_gpus"))
    v["demand_buckets"], v["provisioned_buckets"] = demand, provisioned
    buffer = sub(v["provisioned_mean_gpus"], v["demand_p95_gpus"])
    v["buffer_gpus"] = buffer
    buffer_gpu_h = div(mul(greatest(buffer, 0.0), g.window_s()), 3600.0)
    v["buffer_cost_usd"] = mul(buffer_gpu_h, _mean_price(v["cost_usd"], v["gpu_s"]))
    v["utilization"] = divide(v["busy_gpu_s"], v["gpu_s"])
    return v


def _pool_sums(g: _Groups, sources: Sources) -> dict[str, Array]:
    """The pool's GPU-time and cost sums. Re-added from the combined gpu_windows rows in the
    engine's order (by GPU, then namespace and pod), so they equal one engine's bit for bit;
    the sum of the partial sums for pools without gpu_windows rows."""
    partial = _sums(g, _POOL_SUMS)
    gpu = sources.usable("gpu_windows")
    if gpu is None:
        return partial
    keys = list(KEYS["pool_windows"])
    rows = sources.combined("gpu_windows")  # sorted by window, gpu_uuid, namespace, pod
    columns = [_GPU_OF_POOL_SUM.get(c, c) for c in _POOL_SUMS]
    # Hash aggregation adds each group's values one by one in row order, as the engine does.
    sums = rows.group_by(keys, use_threads=False).aggregate([(c, "sum") for c in columns])
    key_table = g.key_table()
    out = {}
    for name, column in zip(_POOL_SUMS, columns, strict=True):
        out[name] = coalesce(_lookup(key_table, sums, f"{column}_sum"), partial[name])
    return out


def _sum_lists(g: _Groups, column: str, table: str, why: str) -> Array:
    """Element-wise sum of each key's list values (all of one length, else CombineError).
    The lists hold integers (fixed-point demand, GPU counts), so the sum is exact in any
    order: numpy adds them in int64 (no Arrow group-by per value)."""
    lists = arr(g.rows.column(column))
    if not isinstance(lists, pa.ListArray):
        raise CombineError(f"{table}: {column} is {lists.type}, not a list")
    lengths = arr(pc.list_value_length(lists))
    per_key = g.equal_or_raise_on(table, f"the length of {column}", lengths, why)
    ids = g.ids.to_numpy(zero_copy_only=False)
    widths = per_key.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    ends = np.cumsum(widths)
    flat = arr(pc.list_flatten(lists)).fill_null(0).to_numpy(zero_copy_only=False)
    row_lengths = lengths.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    # Each value's place in its key's output list: the key's start plus its position in
    # its own list (rows of a key share one length).
    key_start = (ends - widths)[ids]
    row_of_value = np.repeat(np.arange(len(ids)), row_lengths)
    value_start = np.repeat(np.cumsum(row_lengths) - row_lengths, row_lengths)
    place = key_start[row_of_value] + (np.arange(len(flat)) - value_start)
    summed = np.zeros(int(ends[-1]) if len(ends) else 0, np.int64)
    np.add.at(summed, place, flat.astype(np.int64))
    item = lists.type.value_type
    offsets = pa.array(np.concatenate([[0], ends]).astype(np.int32))
    values = pa.array(summed).cast(item)  # a sum beyond the item type raises, not wraps
    return arr(pa.ListArray.from_arrays(cast("pa.Int32Array", offsets), values, type=lists.type))


def _mean_price(cost: Array, gpu_s: Array) -> Array:
    """USD per GPU-hour, cost / gpu_s * 3600; 0 without GPU time (then nothing is priced)."""
    return coalesce(mul(divide(cost, gpu_s), 3600.0), 0.0)


def _pool_gpus_seen(g: _Groups, sources: Sources) -> Array:
    """Distinct GPUs in each pool's input gpu_windows rows; null without them."""
    gpu = sources.usable("gpu_windows")
    if gpu is None:
        return pa.nulls(len(g.first("gpus")), pa.int64())
    keys = list(KEYS["pool_windows"])
    distinct = gpu.group_by(keys).aggregate([("gpu_uuid", "count_distinct")])
    return _lookup(g.key_table(), distinct, "gpu_uuid_count_distinct")


def _latency_windows(g: _Groups, _: Sources) -> dict[str, Array]:
    why = "the instances ran with different [services] SLOs; combine one configuration's output"
    v = {
        "slo_latency_ms": g.equal_or_raise("latency_windows", "slo_latency_ms", why),
        "slo_target": g.equal_or_raise("latency_windows", "slo_target", why),
    }
    v |= _sums(g, ["requests", "errors", "tokens_in", "tokens_out", "slo_violations"])
    requests = v["requests"]
    rate_mean = div(requests.cast(_F64), g.window_s())
    rate_p99 = g.sum("rate_p99_rps")  # approximate
    violation_ratio = divide(v["slo_violations"], requests)
    budget = sub(1.0, v["slo_target"])  # burn rate: only for targets below 1
    v |= {
        "error_ratio": divide(v["errors"], requests),
        "rate_mean_rps": rate_mean,
        "rate_p99_rps": rate_p99,
        "peak_to_mean": divide(rate_p99, rate_mean),
        "latency_mean_ms": g.weighted_mean("latency_mean_ms", "requests"),
        "latency_max_ms": g.agg("latency_max_ms", "max"),
        "violation_ratio": violation_ratio,
        "burn_rate": divide(violation_ratio, budget, when=positive(budget)),
    }
    for c in _TTFT_QUANTILES:
        v[c] = g.weighted_mean(c, "requests")  # approximate: no TTFT sketch in the output
    v |= _merged_sketches(g)
    return v


def _merged_sketches(g: _Groups) -> dict[str, Array]:
    """The merged sketch of each key and the latency quantiles read from it."""
    sketches: list[bytes] = []
    quantiles: list[list[float | None]] = []
    for parts in g.agg("latency_sketch", "list"):
        merged = merge_sketches(parts.values)
        sketches.append(merged.to_bytes())
        quantiles.append(merged.quantiles(list(DEFAULT_QUANTILES)))
    v: dict[str, Array] = {"latency_sketch": pa.array(sketches, pa.binary())}
    for i, c in enumerate(_LATENCY_QUANTILES):
        v[c] = pa.array([q[i] for q in quantiles], _F64)
    return v


def _service_cost_windows(g: _Groups, sources: Sources) -> dict[str, Array]:
    v = _sums(g, ["requests", "gpu_s", "busy_gpu_s", "cost_usd"])
    v["pods"] = g.agg("pods", "max")  # lower bound
    v["gpus"] = g.agg("gpus", "max")  # lower bound
    window_s = g.window_s()
    provisioned = div(v["gpu_s"], window_s)
    demand = div(v["busy_gpu_s"], window_s)
    headroom = sub(provisioned, demand)
    headroom_gpu_h = div(mul(headroom, window_s), 3600.0)
    v |= {
        "provisioned_gpus": provisioned,
        "demand_mean_gpus": demand,
        "headroom_gpus": headroom,
        "headroom_cost_usd": mul(headroom_gpu_h, _mean_price(v["cost_usd"], v["gpu_s"])),
        "cost_per_1k_requests_usd": mul(divide(v["cost_usd"], v["requests"]), 1000.0),
        "cost_per_1m_tokens_usd": mul(divide(v["cost_usd"], _tokens(g, sources)), 1e6),
        "slo_met": _slo_met(g, sources),
    }
    return v


def _tokens(g: _Groups, sources: Sources) -> Array:
    """Tokens in + out of each service window: from the input latency_windows rows when
    they have the key (exact), else recovered from the partial cost_per_1m_tokens_usd (rows
    with zero cost hide their tokens)."""
    per_row = divide(g.rows.column("cost_usd"), g.rows.column("cost_per_1m_tokens_usd"))
    recovered = g.sum(coalesce(mul(per_row, 1e6), 0.0))
    latency = sources.usable("latency_windows")
    if latency is None:
        return recovered
    keys = list(KEYS["latency_windows"])
    sums = latency.group_by(keys).aggregate([("tokens_in", "sum"), ("tokens_out", "sum")])
    sums = sums.append_column("tokens", add(sums["tokens_in_sum"], sums["tokens_out_sum"]))
    return coalesce(_lookup(g.key_table(), sums, "tokens"), recovered)


def _slo_met(g: _Groups, sources: Sources) -> Array:
    """From the merged sketch of the combined latency_windows row (exact). Without it: true
    when every partial row met the SLO, false when none did (the quantile of the union lies
    between the partial ones), else null."""
    all_met, any_met = g.agg("slo_met", "min"), g.agg("slo_met", "max")
    fallback = where(pc.equal(all_met, any_met), all_met, None)
    if sources.usable("latency_windows") is None:
        return fallback
    latency = sources.combined("latency_windows")
    keys = g.key_table()
    columns = ["requests", "slo_latency_ms", "slo_target", "latency_sketch"]
    found = zip(*(_lookup(keys, latency, c).to_pylist() for c in columns), strict=True)
    met: list[bool | None] = []
    for (requests, limit, target, sketch), other in zip(found, fallback.to_pylist(), strict=True):
        if requests is None:  # no latency row for this key
            met.append(other)
        elif requests == 0:
            met.append(None)
        else:
            q = LatencySketch.from_bytes(sketch).quantile(target)
            met.append(None if q is None else q <= limit)
    return pa.array(met, pa.bool_())


_RULES: Mapping[str, Rule] = {
    "gpu_windows": _gpu_windows,
    "pool_windows": _pool_windows,
    "latency_windows": _latency_windows,
    "service_cost_windows": _service_cost_windows,
}


def distinct_rows(table: pa.Table) -> pa.Table:
    """`table` without exact duplicate rows, sorted by every column."""
    rows = _sort(table, table.column_names)
    return rows.filter(_run_starts(rows, rows.column_names))
