"""Small pyarrow helpers shared by the aggregations: money as exact decimals, time
buckets, and group-by sums without a Python object per row."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as _compute


class _Compute:
    """pyarrow.compute with Python numbers turned into Arrow scalars first. pyarrow converts
    a bare `0` or `1e10` itself, but each conversion costs about 0.2 ms (it retries a failed
    optional import every time): a thousand times a pa.scalar, and thousands of calls over
    a month of hours. Typed as Any: pyarrow-stubs' overloads leave out Python numbers."""

    def __getattr__(self, name: str) -> Any:
        fn = getattr(_compute, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return fn(*(_arrow(a) for a in args), **kwargs)

        setattr(self, name, call)  # looked up once per function
        return call


def _arrow(value: Any) -> Any:
    if isinstance(value, bool):
        return pa.scalar(value, pa.bool_())
    if isinstance(value, int):
        return pa.scalar(value, pa.int64())
    if isinstance(value, float):
        return pa.scalar(value, pa.float64())
    return value


pc: Any = _Compute()

__all__ = [
    "MONEY",
    "as_float",
    "bucket_ms",
    "money",
    "pc",
    "scalar_decimal",
    "scalar_float",
    "sum_by",
]

MONEY = pa.decimal128(38, 10)
"""USD summed exactly: each float64 cost becomes a decimal (10 places) before any sum."""


def money(column: Any) -> Any:
    """A float64 USD column as decimal128(38, 10), nulls as 0."""
    return pc.fill_null(pc.cast(column, MONEY, safe=False), pa.scalar(Decimal(0), MONEY))


def bucket_ms(times: Any, size_s: int) -> Any:
    """The start (epoch ms, int64) of the `size_s` bucket of each timestamp."""
    ms = pc.cast(times, pa.int64())
    size = size_s * 1000
    return pc.multiply(pc.divide(ms, size), size)


def sum_by(table: pa.Table, keys: Sequence[str], values: Sequence[str]) -> pa.Table:
    """One row per key with the sum of each value column, named like the value."""
    out = table.group_by(list(keys), use_threads=False).aggregate([(v, "sum") for v in values])
    return out.rename_columns([n.removesuffix("_sum") for n in out.column_names])


def as_float(column: Any) -> Any:
    """A (decimal) column as float64, for charts."""
    return pc.cast(column, pa.float64())


def scalar_decimal(value: Any) -> Decimal:
    """A pyarrow sum as a Decimal (0 for null)."""
    v = value.as_py() if hasattr(value, "as_py") else value
    return Decimal(0) if v is None else Decimal(v)


def scalar_float(value: Any) -> float:
    v = value.as_py() if hasattr(value, "as_py") else value
    return 0.0 if v is None else float(v)


class CompositeKey:
    """One int64 key for several string columns and a bucket index: pyarrow groups by one
    integer column many times faster than by several string columns. Each string column is
    dictionary-encoded; key = ((code0 * n1 + code1) * ... ) * n_buckets + bucket index."""

    def __init__(self, columns: Sequence[Any], bucket_index: Any, n_buckets: int) -> None:
        self.dictionaries: list[Any] = []
        self.sizes: list[int] = []
        key: Any = None
        for col in columns:
            whole = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            encoded = pc.dictionary_encode(whole)
            self.dictionaries.append(encoded.dictionary)
            size = max(1, len(encoded.dictionary))
            self.sizes.append(size)
            codes = pc.cast(encoded.indices, pa.int64())
            key = codes if key is None else pc.add(pc.multiply(key, size), codes)
        self.n_buckets = n_buckets
        self.size = n_buckets
        for size in self.sizes:
            self.size *= size  # keys are in [0, size)
        base = pa.scalar(0, pa.int64()) if key is None else key
        self.key = pc.add(pc.multiply(base, n_buckets), pc.cast(bucket_index, pa.int64()))

    def decode(self, keys: Any) -> tuple[list[Any], Any]:
        """(the string columns, the bucket index) of each key."""
        rest = keys
        bucket = pc.subtract(rest, pc.multiply(pc.divide(rest, self.n_buckets), self.n_buckets))
        rest = pc.divide(rest, self.n_buckets)
        values: list[Any] = []
        for dictionary, size in zip(
            reversed(self.dictionaries), reversed(self.sizes), strict=False
        ):
            code = pc.subtract(rest, pc.multiply(pc.divide(rest, size), size))
            rest = pc.divide(rest, size)
            values.append(pc.take(dictionary, code))
        return list(reversed(values)), bucket


def local_buckets(times: Any, bucket_s: int) -> tuple[Any, int, int]:
    """(bucket index of each time counted from the first bucket of `times`, the number of
    buckets spanned, the first bucket's start in epoch ms)."""
    step = bucket_s * 1000
    ms = pc.cast(times, pa.int64())
    lo = int(pc.min(ms).as_py()) // step * step
    index = pc.divide(pc.subtract(ms, lo), step)
    return index, int(pc.max(index).as_py()) + 1, lo


UNITS_PER_USD = 10**10
"""Money summed on big tables: integer units of 1e-10 USD (the scale of MONEY), exact and
several times faster to sum than decimals. A group's sum fits int64 up to $922M; the
period's totals are Python integers (unbounded)."""


def money_units(column: Any) -> Any:
    """A float64 USD column as int64 units of 1e-10 USD (rounded), nulls as 0."""
    scaled = pc.round(pc.multiply(pc.fill_null(column, 0.0), float(UNITS_PER_USD)))
    return pc.cast(scaled, pa.int64())


def units_usd(units: int) -> Decimal:
    """Exact USD of a sum of units."""
    return Decimal(int(units)).scaleb(-10)


def units_decimal_column(column: Any) -> Any:
    """int64 units as a decimal128(38, 10) column (for small, aggregated tables)."""
    return pa.array([units_usd(v or 0) for v in column.to_pylist()], MONEY)


def units_float_column(column: Any) -> Any:
    """int64 units as float64 USD (for charts)."""
    return pc.divide(pc.cast(column, pa.float64()), float(UNITS_PER_USD))


def as_numpy(column: Any) -> np.ndarray:
    """A non-null numeric or boolean Arrow column as a numpy array (bools as int64)."""
    if pa.types.is_boolean(column.type):
        column = pc.cast(column, pa.int64())
    return np.asarray(column.to_numpy())


def dense_sums(
    key: Any, size: int, sums: dict[str, Any], maxima: dict[str, Any] | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per distinct value of an integer key in [0, size): the sums (and maxima) of the
    given columns, vectorized with numpy (np.add.at is two orders of magnitude faster than
    a hash group-by on a dense small key). Returns (the keys present, their values)."""
    k = as_numpy(key).astype(np.int64, copy=False)
    present = np.bincount(k, minlength=size) > 0
    out: dict[str, np.ndarray] = {}
    for name, column in sums.items():
        values = as_numpy(column)
        acc = np.zeros(size, dtype=values.dtype)
        np.add.at(acc, k, values)
        out[name] = acc[present]
    for name, column in (maxima or {}).items():
        values = as_numpy(column)
        acc = np.full(size, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(acc, k, values.astype(np.int64, copy=False))
        out[name] = acc[present]
    return np.flatnonzero(present), out
