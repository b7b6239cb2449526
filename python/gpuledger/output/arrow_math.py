"""Element-wise arithmetic on Arrow columns with the engine's null and zero rules, for the
combine rules: each result is one Array (pyarrow-stubs type many results as scalar unions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from typing import TypeAlias

    Array: TypeAlias = pa.Array[Any]
    Column: TypeAlias = pa.Array[Any] | pa.ChunkedArray[Any]

F64 = pa.float64()


def arr(value: object) -> Array:
    """A compute result as one Array (pyarrow-stubs type many results as scalar unions)."""
    if isinstance(value, pa.ChunkedArray):
        return value.combine_chunks()
    if isinstance(value, pa.Array):
        return value
    raise TypeError(f"expected an Arrow array, got {type(value).__name__}")


def where(condition: Column, left: Column | float, right: Column | float | None) -> Array:
    """`left` where `condition` is true, else `right` (null condition: `right`)."""
    cond = arr(pc.fill_null(condition, pa.scalar(False)))
    kind = left.type if not isinstance(left, float) else F64
    return arr(pc.if_else(cond, value(left, kind), value(right, kind)))


def value(v: Column | float | None, kind: pa.DataType) -> Column | pa.Scalar[Any]:
    return v if isinstance(v, (pa.Array, pa.ChunkedArray)) else pa.scalar(v, kind)


def positive(values: Column) -> Array:
    """values > 0, null counting as false."""
    return arr(pc.fill_null(pc.greater(values, pa.scalar(0, values.type)), pa.scalar(False)))


def divide(num: Column, den: Column, *, when: Column | None = None) -> Array:
    """num / den where den > 0 (and `when`), else null: the engine's
    `(den > 0).then(num / den)`."""
    den = arr(den).cast(F64)
    ok = positive(den) if when is None else arr(pc.and_(positive(den), when))
    return where(ok, arr(pc.divide(arr(num).cast(F64), where(ok, den, 1.0))), None)


def add(a: Column, b: Column | float) -> Array:
    return arr(pc.add(a, b))


def sub(a: Column | float, b: Column) -> Array:
    return arr(pc.subtract(a, b))


def mul(a: Column, b: Column | float) -> Array:
    return arr(pc.multiply(a, b))


def div(a: Column, b: Column | float) -> Array:
    """a / b for floats (no zero check: `divide` is the null-safe ratio)."""
    return arr(pc.divide(a, b))


def least(a: Column, b: Column | float) -> Array:
    return arr(pc.min_element_wise(a, value(b, F64)))


def greatest(a: Column, b: Column | float) -> Array:
    return arr(pc.max_element_wise(a, value(b, F64)))


def coalesce(a: Column, b: Column | float) -> Array:
    return arr(pc.coalesce(a, value(b, a.type)))
