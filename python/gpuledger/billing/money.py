"""Exact money: the decimal type of every cost column and conversions between Arrow decimals
and unscaled Python integers (units of 10**-SCALE), with no float anywhere on the way."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as _compute

# pyarrow-stubs type many compute functions too narrowly for Arrow's own behaviour (a
# ChunkedArray where an Array is listed, string scalars): the calls are typed Any here and
# checked by the tests instead.
pc: Any = _compute

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy.typing as npt

    Objects: TypeAlias = npt.NDArray[np.object_]

__all__ = [
    "MONEY",
    "SCALE",
    "UNIT",
    "from_unscaled",
    "money_from_floats",
    "to_unscaled",
]

SCALE = 18
"""Decimal places of every cost column. FOCUS exports carry 11 (the sample) and up to 16-18
(float-formatted Azure exports); 18 keeps every one of them exact (docs/billing.md)."""
MONEY = pa.decimal128(38, SCALE)
UNIT = Decimal(1).scaleb(-SCALE)
LIST_UNIT = Decimal(1).scaleb(-10)
_TWO64 = 1 << 64
_LIMIT = 10**38  # decimal128(38, _) holds fewer than 38 digits


def to_unscaled(values: pa.Array[Any] | pa.ChunkedArray[Any]) -> Objects:
    """The values of a `MONEY` array as Python ints in units of 10**-SCALE (object array);
    nulls come out as None. Reads the 128-bit words directly (no Decimal per value)."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if not arr.type.equals(MONEY):
        raise TypeError(f"expected {MONEY}, got {arr.type}")
    n = len(arr)
    if n == 0:
        return np.empty(0, dtype=object)
    buf = arr.buffers()[1]
    assert buf is not None
    raw: Any = buf  # a pyarrow Buffer exposes the buffer protocol
    words = np.frombuffer(raw, dtype=np.int64, count=2 * (arr.offset + n))[2 * arr.offset :]
    low, high = words[0::2], words[1::2]
    if np.array_equal(high, low >> 63):  # every value fits one signed 64-bit word
        out: Objects = low.astype(object)
    else:
        out = high.astype(object) * _TWO64 + low.view(np.uint64).astype(object)
    if arr.null_count:
        out[np.asarray(arr.is_null().to_numpy(zero_copy_only=False))] = None
    return out


def from_unscaled(values: Objects | Sequence[int | None]) -> pa.Array[Any]:
    """A `MONEY` array from Python ints in units of 10**-SCALE (None for null). Raises
    OverflowError for a value beyond 38 digits."""
    objs = np.asarray(values, dtype=object)
    n = len(objs)
    null = np.array([v is None for v in objs], dtype=bool)
    ints = np.where(null, 0, objs) if null.any() else objs
    words = np.zeros(2 * n, dtype=np.int64)
    if n:
        if np.any(np.asarray(ints >= _LIMIT, dtype=bool) | np.asarray(ints <= -_LIMIT, dtype=bool)):
            raise OverflowError(f"an amount does not fit {MONEY}")
        words[0::2] = (ints & (_TWO64 - 1)).astype(np.uint64).view(np.int64)
        words[1::2] = (ints >> 64).astype(np.int64)
    validity = pa.array(~null).buffers()[1] if null.any() else None
    return pa.Array.from_buffers(
        MONEY, n, [validity, pa.py_buffer(words.tobytes())], null_count=int(null.sum())
    )


def money_from_floats(values: pa.Array[Any] | pa.ChunkedArray[Any]) -> pa.Array[Any]:
    """Float dollars (list prices from gpu_windows) as `MONEY`, each through its shortest
    decimal text (0.1 -> 0.1, not 0.1000000000000000055...), rounded half-even to SCALE
    places. These are estimates priced from the configuration, not bill amounts: rounded
    half-even to 10 decimal places, below which float sums carry noise."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    text = pc.cast(arr, pa.string())
    out: list[Decimal | None] = []
    for t in text.to_pylist():
        out.append(None if t is None else Decimal(t).quantize(LIST_UNIT))
    return pa.array(out, MONEY)
