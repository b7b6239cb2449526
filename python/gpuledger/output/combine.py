"""Combines the partial rows of scaled-out gpuledger instances into one row per key.

Several `gpuledger run` daemons in one Kafka consumer group split the input partitions, so
each writes *partial* rows for the keys whose events span partitions, and one instance can
write two partial rows for a key after a rebalance. This module merges them by key: sums add,
extremes take the extreme, means are re-weighted by their counts, ratios are recomputed from
the combined sums and latency quantiles from the merged sketches. Quantities that partial rows
cannot give exactly follow a documented approximate rule. docs/scale-out.md has the rule of
every column; a key with a single row comes out unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from gpuledger._engine import schemas
from gpuledger.errors import CombineError
from gpuledger.output.object_store import is_uri, local_path, store_for
from gpuledger.output.sink import (
    FORMATS,
    TABLE_NAME,
    ArrowSink,
    list_files,
    output_files,
    read_table,
)
from gpuledger.sketch import DEFAULT_QUANTILES, LatencySketch, merge_sketches
from gpuledger.tables import EVENT_TABLES, KEYED_TABLES

__all__ = [
    "EVENT_TABLES",
    "KEYS",
    "CombineError",
    "check_out_dir",
    "combine_dirs",
    "combine_tables",
    "read_dirs",
    "write_combined",
]

KEYS = KEYED_TABLES
"""The key of each table combined by key (`gpuledger.tables`, docs/schema.md); tables of
single events (`EVENT_TABLES`) are never partial, concatenated without exact duplicates."""
WRITER_ID = "combined"
BATCH_KEY = "combined"

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
    Rule: TypeAlias = Callable[["_Groups", "_Sources"], dict[str, Array]]


# --- public API ------------------------------------------------------------------------------


def combine_tables(tables: Mapping[str, pa.Table]) -> dict[str, pa.Table]:
    """One row per key for every table of `tables` (which may hold several partial rows per
    key), with the same schema. `gpu_windows`, `pool_windows`, `latency_windows` and
    `service_cost_windows` are combined by key; `late_events` and `dead_letters` lose exact
    duplicate rows; any other table (custom aggregations, window functions) is returned as
    it is. Raises CombineError for a schema that is not gpuledger's."""
    for name, table in tables.items():
        if table.num_columns and (name in KEYS or name in EVENT_TABLES):
            _check_schema(name, table)
    sources = _Sources(tables)
    out: dict[str, pa.Table] = {}
    for name, table in tables.items():
        if not table.num_columns or (name not in KEYS and name not in EVENT_TABLES):
            out[name] = table  # empty, or not combinable: docs/scale-out.md
        elif name in EVENT_TABLES:
            out[name] = _distinct_rows(table)
        else:
            out[name] = sources.combined(name)
    return out


def read_dirs(in_dirs: Sequence[str | os.PathLike[str]]) -> dict[str, pa.Table]:
    """Every table under every directory of `in_dirs` (gpuledger output directories), each
    concatenated over the directories in their order, tables by name. Raises CombineError
    when one table's files do not share a schema."""
    names_given = [os.fspath(d) for d in in_dirs]
    dirs = [d if is_uri(d) else Path(local_path(d)) for d in names_given]
    for d in dirs:
        if isinstance(d, Path) and not d.is_dir():
            raise FileNotFoundError(f"no output directory {d}")
    names = sorted({n for d in dirs for n in _table_names(d)})
    tables: dict[str, pa.Table] = {}
    for name in names:
        parts: list[tuple[str | Path, pa.Table]] = []
        for d in dirs:
            try:
                t = read_table(d, name)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise CombineError(f"table {name!r}: the files under {d} disagree: {e}") from e
            if t.num_columns:
                parts.append((d, t))
        try:
            tables[name] = pa.concat_tables([t for _, t in parts], promote_options="default")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            where = ", ".join(str(d) for d, _ in parts)
            raise CombineError(f"table {name!r}: schemas differ between {where}: {e}") from e
    return tables


def write_combined(
    tables: Mapping[str, pa.Table], out_dir: str | os.PathLike[str], *, format: str = "arrow"
) -> list[Path]:
    """Writes combined tables under `out_dir` as writer `combined`, batch `combined`: the
    same combination written again is a no-op, a different one an OutputConflictError."""
    sink = ArrowSink(out_dir, format=format, writer_id=WRITER_ID)
    return sink.write(tables, batch_key=BATCH_KEY)


def combine_dirs(
    in_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    format: str = "arrow",
) -> dict[str, pa.Table]:
    """Reads every table of every directory of `in_dirs`, combines them (`combine_tables`)
    and, when `out_dir` is given, writes the result there (`write_combined`). `out_dir` must
    not be one of the inputs: its partial rows would be read again with the combined ones."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, not {format!r}")
    if out_dir is not None:
        check_out_dir(in_dirs, out_dir)
    combined = combine_tables(read_dirs(in_dirs))
    if out_dir is not None:
        write_combined(combined, out_dir, format=format)
    return combined


def check_out_dir(
    in_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str]
) -> None:
    """Raises CombineError when `out_dir` is one of `in_dirs`."""

    def where(d: str | os.PathLike[str]) -> str:
        d = os.fspath(d)
        return d.rstrip("/") if is_uri(d) else str(Path(local_path(d)).resolve())

    out = where(out_dir)
    for d in in_dirs:
        if where(d) == out:
            raise CombineError(f"output directory {out_dir} is also an input; use a new one")


# --- reading and checking ----------------------------------------------------------------------


def _table_names(out_dir: str | Path) -> list[str]:
    """Tables with at least one file under `out_dir` (skips `.staging` and strays)."""
    if isinstance(out_dir, str):  # a URI
        names = store_for(out_dir).children()
        return [n for n in names if TABLE_NAME.fullmatch(n) and output_files(out_dir, n)]
    return [
        e.name
        for e in sorted(out_dir.iterdir())
        if TABLE_NAME.fullmatch(e.name) and e.is_dir() and list_files(out_dir, e.name)
    ]


def _check_schema(name: str, table: pa.Table) -> None:
    """Same column names and types as gpuledger's table `name` (any order, any nullability),
    and no null keys: the rules below know every column."""
    want = schemas()[name]
    have = table.schema
    problems = [f"missing column {f.name!r}" for f in want if have.get_field_index(f.name) < 0]
    problems += [f"unknown column {n!r}" for n in have.names if want.get_field_index(n) < 0]
    if len(set(have.names)) != len(have.names):
        problems.append("duplicate column names")
    for f in want:
        i = have.get_field_index(f.name)
        if i >= 0 and not have.field(i).type.equals(f.type):
            problems.append(f"column {f.name!r} is {have.field(i).type}, expected {f.type}")
    for k in KEYS.get(name, ()):
        if not problems and table.column(k).null_count:
            problems.append(f"key column {k!r} has nulls")
    if problems:
        raise CombineError(f"cannot combine {name}: " + "; ".join(problems))


# --- grouping ----------------------------------------------------------------------------------


def _arr(value: object) -> Array:
    """A compute result as one Array (pyarrow-stubs type many results as scalar unions)."""
    if isinstance(value, pa.ChunkedArray):
        return value.combine_chunks()
    if isinstance(value, pa.Array):
        return value
    raise TypeError(f"expected an Arrow array, got {type(value).__name__}")


def _where(condition: Column, left: Column | float, right: Column | float | None) -> Array:
    """`left` where `condition` is true, else `right` (null condition: `right`)."""
    cond = _arr(pc.fill_null(condition, pa.scalar(False)))
    kind = left.type if not isinstance(left, float) else _F64
    return _arr(pc.if_else(cond, _value(left, kind), _value(right, kind)))


def _value(v: Column | float | None, kind: pa.DataType) -> Column | pa.Scalar[Any]:
    return v if isinstance(v, (pa.Array, pa.ChunkedArray)) else pa.scalar(v, kind)


def _positive(values: Column) -> Array:
    """values > 0, null counting as false."""
    return _arr(pc.fill_null(pc.greater(values, pa.scalar(0, values.type)), pa.scalar(False)))


def _differs_from_previous(column: Column) -> Array:
    """For rows 1..n-1: whether the value differs from the previous row's (null = null)."""
    col = _arr(column)
    a, b = col.slice(1), col.slice(0, len(col) - 1)
    same = _arr(pc.fill_null(pc.equal(a, b), pa.scalar(False)))
    both_null = _arr(pc.and_(pc.is_null(a), pc.is_null(b)))
    return _arr(pc.invert(pc.or_(same, both_null)))


def _run_starts(table: pa.Table, columns: Sequence[str]) -> Array:
    """True where a row starts a run of rows equal on `columns` (the table is sorted)."""
    if table.num_rows == 0:
        return pa.array([], pa.bool_())
    changed: Array = pa.array([False] * (table.num_rows - 1), pa.bool_())
    for c in columns:
        changed = _arr(pc.or_(changed, _differs_from_previous(table.column(c))))
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
    size_of_row = _arr(pc.take(sizes.sort_by(_GROUP).column(f"{_GROUP}_count"), group_of_row))
    singles = rows.filter(pc.equal(size_of_row, pa.scalar(1, pa.int64())))
    partial = rows.filter(pc.greater(size_of_row, pa.scalar(1, pa.int64())))
    if partial.num_rows == 0:
        return singles, None
    return singles, _Groups(partial, keys)


def _group_ids(rows: pa.Table, keys: Sequence[str]) -> Array:
    """0, 1, ... numbering the runs of equal keys of sorted `rows`."""
    starts = _run_starts(rows, keys).cast(pa.int64())
    return _arr(pc.subtract(_arr(pc.cumulative_sum(starts)), pa.scalar(1, pa.int64())))


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
        return _arr(out.column(f"v_{func}"))

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
        return _arr(pc.divide(_arr(pc.subtract(end, start)).cast(_F64), 1000.0))

    def weighted_mean(self, column: str, weight: str) -> Array:
        """Mean of the non-null values of `column` weighted by `weight`; the plain mean when
        the weights of those rows are all 0; null when there is no value."""
        values = _arr(self.rows.column(column))
        w = _arr(self.rows.column(weight)).cast(_F64)
        num = self.sum(pc.multiply(values, w))
        den = self.sum(_where(pc.is_valid(values), w, None))
        return _where(_positive(den), _divide(num, den), self.agg(values, "mean"))

    def equal_or_raise(self, table: str, column: str, why: str) -> Array:
        """The value of `column` shared by each key's rows; CombineError when they differ."""
        lo, hi = self.agg(column, "min"), self.agg(column, "max")
        differ = _arr(pc.fill_null(pc.not_equal(lo, hi), pa.scalar(False)))
        where = _arr(pc.indices_nonzero(differ))
        if len(where):
            i = where[0].as_py()
            key = self.key_table().slice(i, 1).to_pylist()[0]
            raise CombineError(
                f"{table}: the partial rows of {key} disagree on {column} "
                f"({lo[i].as_py()} and {hi[i].as_py()}): {why}"
            )
        return lo


def _divide(num: Column, den: Column, *, when: Column | None = None) -> Array:
    """num / den where den > 0 (and `when`), else null: the engine's
    `(den > 0).then(num / den)`."""
    den = _arr(den).cast(_F64)
    ok = _positive(den) if when is None else _arr(pc.and_(_positive(den), when))
    return _where(ok, _arr(pc.divide(_arr(num).cast(_F64), _where(ok, den, 1.0))), None)


def _lookup(keys: pa.Table, right: pa.Table, column: str) -> Array:
    """`column` of `right` (unique on the columns of `keys`) for each row of `keys`, null
    where `right` has no row."""
    on = keys.column_names
    left = keys.append_column(_ROW, pa.array(range(keys.num_rows), pa.int64()))
    joined = left.join(right.select([*on, column]), keys=on, join_type="left outer")
    return _arr(joined.sort_by(_ROW).column(column))


# --- the tables --------------------------------------------------------------------------------


class _Sources:
    """The input tables, and each standard table once combined (service_cost_windows reads
    the combined latency_windows; pool_windows counts GPUs in the input gpu_windows)."""

    def __init__(self, tables: Mapping[str, pa.Table]) -> None:
        self.tables = tables
        self._combined: dict[str, pa.Table] = {}

    def usable(self, name: str) -> pa.Table | None:
        t = self.tables.get(name)
        return t if t is not None and t.num_columns and t.num_rows else None

    def combined(self, name: str) -> pa.Table:
        if name not in self._combined:
            self._combined[name] = _combine_by_key(self.tables[name], name, self)
        return self._combined[name]


def _combine_by_key(table: pa.Table, name: str, sources: _Sources) -> pa.Table:
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


def _add(a: Column, b: Column | float) -> Array:
    return _arr(pc.add(a, b))


def _sub(a: Column | float, b: Column) -> Array:
    return _arr(pc.subtract(a, b))


def _mul(a: Column, b: Column | float) -> Array:
    return _arr(pc.multiply(a, b))


def _div(a: Column, b: Column | float) -> Array:
    """a / b for floats (no zero check: `_divide` is the null-safe ratio)."""
    return _arr(pc.divide(a, b))


def _least(a: Column, b: Column | float) -> Array:
    return _arr(pc.min_element_wise(a, _value(b, _F64)))


def _greatest(a: Column, b: Column | float) -> Array:
    return _arr(pc.max_element_wise(a, _value(b, _F64)))


def _coalesce(a: Column, b: Column | float) -> Array:
    return _arr(pc.coalesce(a, _value(b, a.type)))


def _gpu_windows(g: _Groups, _: _Sources) -> dict[str, Array]:
    v = _firsts(g, ["hostname", "gpu_index", "model_name", "container", "team", "allocated"])
    v["samples"] = g.sum("samples")
    # Each part is capped already, so the capped sum equals the cap of all samples' time.
    covered = _least(g.sum("covered_s"), g.window_s())
    util_mean = g.weighted_mean("util_mean", "samples")
    busy = _coalesce(_mul(util_mean, covered), 0.0)  # the engine's util_mean * covered_s
    idle = _sub(covered, busy)
    price = _price(g)
    cost = _mul(_div(covered, 3600.0), price)
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
        "idle_cost_usd": _mul(_div(idle, 3600.0), price),
        "unallocated_cost_usd": _where(v["allocated"], 0.0, cost),
    }
    return v


def _price(g: _Groups) -> Array:
    """The rows' price; covered_s-weighted when they differ (a price change between the
    instances' configurations), so the cost is what the instances billed together."""
    lo, hi = g.agg("price_usd_per_gpu_hour", "min"), g.agg("price_usd_per_gpu_hour", "max")
    weighted = g.weighted_mean("price_usd_per_gpu_hour", "covered_s")
    return _where(pc.equal(lo, hi), lo, weighted)


def _pool_windows(g: _Groups, sources: _Sources) -> dict[str, Array]:
    v = _sums(g, ["gpu_s", "busy_gpu_s", "idle_gpu_s", "cost_usd", "idle_cost_usd"])
    v |= _sums(g, ["provisioned_mean_gpus", "demand_mean_gpus"])
    exact_gpus = _pool_gpus_seen(g, sources)
    v["gpus"] = _coalesce(exact_gpus, g.agg("gpus", "max"))  # else a lower bound
    # Demand never exceeds the GPUs (u <= 1 per GPU and bucket): an upper bound of the peak
    # together with the sum of the partial peaks, and a ceiling for the p95 estimate.
    most_gpus = _coalesce(exact_gpus, g.sum("gpus")).cast(_F64)
    peak = _least(g.sum("demand_peak_gpus"), most_gpus)
    v["demand_peak_gpus"] = peak
    v["demand_p95_gpus"] = _least(g.sum("demand_p95_gpus"), peak)
    buffer = _sub(v["provisioned_mean_gpus"], v["demand_p95_gpus"])
    v["buffer_gpus"] = buffer
    buffer_gpu_h = _div(_mul(_greatest(buffer, 0.0), g.window_s()), 3600.0)
    v["buffer_cost_usd"] = _mul(buffer_gpu_h, _mean_price(v["cost_usd"], v["gpu_s"]))
    v["utilization"] = _divide(v["busy_gpu_s"], v["gpu_s"])
    return v


def _mean_price(cost: Array, gpu_s: Array) -> Array:
    """USD per GPU-hour, cost / gpu_s * 3600; 0 without GPU time (then nothing is priced)."""
    return _coalesce(_mul(_divide(cost, gpu_s), 3600.0), 0.0)


def _pool_gpus_seen(g: _Groups, sources: _Sources) -> Array:
    """Distinct GPUs in each pool's input gpu_windows rows; null without them."""
    gpu = sources.usable("gpu_windows")
    if gpu is None:
        return pa.nulls(len(g.first("gpus")), pa.int64())
    keys = list(KEYS["pool_windows"])
    distinct = gpu.group_by(keys).aggregate([("gpu_uuid", "count_distinct")])
    return _lookup(g.key_table(), distinct, "gpu_uuid_count_distinct")


def _latency_windows(g: _Groups, _: _Sources) -> dict[str, Array]:
    why = "the instances ran with different [services] SLOs; combine one configuration's output"
    v = {
        "slo_latency_ms": g.equal_or_raise("latency_windows", "slo_latency_ms", why),
        "slo_target": g.equal_or_raise("latency_windows", "slo_target", why),
    }
    v |= _sums(g, ["requests", "errors", "tokens_in", "tokens_out", "slo_violations"])
    requests = v["requests"]
    rate_mean = _div(requests.cast(_F64), g.window_s())
    rate_p99 = g.sum("rate_p99_rps")  # approximate
    violation_ratio = _divide(v["slo_violations"], requests)
    budget = _sub(1.0, v["slo_target"])  # burn rate: only for targets below 1
    v |= {
        "error_ratio": _divide(v["errors"], requests),
        "rate_mean_rps": rate_mean,
        "rate_p99_rps": rate_p99,
        "peak_to_mean": _divide(rate_p99, rate_mean),
        "latency_mean_ms": g.weighted_mean("latency_mean_ms", "requests"),
        "latency_max_ms": g.agg("latency_max_ms", "max"),
        "violation_ratio": violation_ratio,
        "burn_rate": _divide(violation_ratio, budget, when=_positive(budget)),
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


def _service_cost_windows(g: _Groups, sources: _Sources) -> dict[str, Array]:
    v = _sums(g, ["requests", "gpu_s", "busy_gpu_s", "cost_usd"])
    v["pods"] = g.agg("pods", "max")  # lower bound
    v["gpus"] = g.agg("gpus", "max")  # lower bound
    window_s = g.window_s()
    provisioned = _div(v["gpu_s"], window_s)
    demand = _div(v["busy_gpu_s"], window_s)
    headroom = _sub(provisioned, demand)
    headroom_gpu_h = _div(_mul(headroom, window_s), 3600.0)
    v |= {
        "provisioned_gpus": provisioned,
        "demand_mean_gpus": demand,
        "headroom_gpus": headroom,
        "headroom_cost_usd": _mul(headroom_gpu_h, _mean_price(v["cost_usd"], v["gpu_s"])),
        "cost_per_1k_requests_usd": _mul(_divide(v["cost_usd"], v["requests"]), 1000.0),
        "cost_per_1m_tokens_usd": _mul(_divide(v["cost_usd"], _tokens(g, sources)), 1e6),
        "slo_met": _slo_met(g, sources),
    }
    return v


def _tokens(g: _Groups, sources: _Sources) -> Array:
    """Tokens in + out of each service window: from the input latency_windows rows when
    they have the key (exact), else recovered from the partial cost_per_1m_tokens_usd (rows
    with zero cost hide their tokens)."""
    per_row = _divide(g.rows.column("cost_usd"), g.rows.column("cost_per_1m_tokens_usd"))
    recovered = g.sum(_coalesce(_mul(per_row, 1e6), 0.0))
    latency = sources.usable("latency_windows")
    if latency is None:
        return recovered
    keys = list(KEYS["latency_windows"])
    sums = latency.group_by(keys).aggregate([("tokens_in", "sum"), ("tokens_out", "sum")])
    sums = sums.append_column("tokens", _add(sums["tokens_in_sum"], sums["tokens_out_sum"]))
    return _coalesce(_lookup(g.key_table(), sums, "tokens"), recovered)


def _slo_met(g: _Groups, sources: _Sources) -> Array:
    """From the merged sketch of the combined latency_windows row (exact). Without it: true
    when every partial row met the SLO, false when none did (the quantile of the union lies
    between the partial ones), else null."""
    all_met, any_met = g.agg("slo_met", "min"), g.agg("slo_met", "max")
    fallback = _where(pc.equal(all_met, any_met), all_met, None)
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


def _distinct_rows(table: pa.Table) -> pa.Table:
    """`table` without exact duplicate rows, sorted by every column."""
    rows = _sort(table, table.column_names)
    return rows.filter(_run_starts(rows, rows.column_names))
