"""Small pyarrow helpers shared by the aggregations: money as exact decimals, time
buckets, and group-by sums without a Python object per row."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as _compute

# pyarrow-stubs type the compute functions by overloads that leave out the Python scalars
# pyarrow accepts (pc.less(column, 0.35)); the report calls them through this alias.
pc: Any = _compute

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
