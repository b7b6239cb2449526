"""Sums of columns per distinct key, and counts of distinct keys, for the replay summary, with
`pyarrow.compute` and numpy, and without importing pandas.

`Table.group_by` would do it, but it runs on pyarrow's Acero engine, whose import brings in
`pyarrow.dataset` and pandas; and pyarrow imports pandas as well the first time it converts
to or from Python or numpy values (`pa.array`, `pa.scalar`, `Array.to_numpy`), to check for
pandas objects. Importing pandas took 0.2 s of a `gpuledger replay` that otherwise takes
about 0.5 s (issue 22). So numbers cross between Arrow and numpy here through their buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["count_distinct", "int64_scalar", "sum_by"]

Column: TypeAlias = "pa.Array[Any] | pa.ChunkedArray[Any]"


def _whole(col: Column) -> pa.Array[Any]:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _numbers(col: Column, kind: pa.DataType, dtype: type[np.generic]) -> np.ndarray[Any, Any]:
    """`col` cast to `kind` as a numpy array of `dtype`; nulls become 0."""
    arr = _whole(col).cast(kind)
    width = np.dtype(dtype).itemsize
    data: Any = arr.buffers()[1]  # a pyarrow Buffer: the buffer protocol
    values: np.ndarray[Any, Any] = np.frombuffer(
        data, dtype=dtype, count=len(arr), offset=arr.offset * width
    )
    if arr.null_count:
        validity: Any = arr.buffers()[0]
        bits = np.frombuffer(validity, dtype=np.uint8)
        valid = np.unpackbits(bits, bitorder="little")[arr.offset : arr.offset + len(arr)]
        values = np.where(valid.astype(bool), values, 0)
    return values


def _int64_array(values: np.ndarray[Any, Any]) -> pa.Array[Any]:
    data: Any = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])


def int64_scalar(value: int) -> pa.Scalar[Any]:
    """An int64 scalar (`pa.scalar` would import pandas)."""
    scalar: pa.Scalar[Any] = _int64_array(np.array([value], dtype=np.int64))[0]
    return scalar


def _codes(keys: Sequence[Column]) -> tuple[np.ndarray[Any, Any], list[list[Any]]]:
    """(group of each row, 0..g-1; per key column, the value of each group)."""
    n = len(keys[0])
    group: np.ndarray[Any, Any] = np.zeros(n, dtype=np.int64)
    firsts: np.ndarray[Any, Any] = np.zeros(1, dtype=np.int64)  # a row of each group
    for key in keys:
        # The stubs type the result as the input's type; it is a DictionaryArray.
        enc: Any = pc.dictionary_encode(_whole(key), null_encoding="encode")
        idx = _numbers(enc.indices, pa.int64(), np.int64)
        # Renumbered after each column, so the codes stay below the number of rows.
        _, firsts, group = np.unique(
            group * len(enc.dictionary) + idx, return_index=True, return_inverse=True
        )
        group = group.reshape(-1)
    taken = _int64_array(firsts)
    values = [k.take(taken).to_pylist() for k in keys]
    return group, values


def sum_by(
    keys: Sequence[Column], values: Sequence[Column]
) -> list[tuple[tuple[Any, ...], list[float]]]:
    """One (key values, sums of `values`) per distinct combination of `keys` (nulls are a
    key value of their own; null values count as 0). All columns have the same length."""
    if not len(keys[0]):
        return []
    group, key_values = _codes(keys)
    groups = len(key_values[0])
    sums = [
        np.bincount(group, weights=_numbers(v, pa.float64(), np.float64), minlength=groups)
        for v in values
    ]
    return [(tuple(k[g] for k in key_values), [float(s[g]) for s in sums]) for g in range(groups)]


def count_distinct(keys: Sequence[Column]) -> int:
    """The number of distinct combinations of `keys`."""
    if not len(keys[0]):
        return 0
    return len(_codes(keys)[1][0])
