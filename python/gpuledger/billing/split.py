"""Largest-remainder splitting in exact integers: each total is divided among its parts in
proportion to integer weights, the parts sum to the total exactly, and the units left by
flooring go to the largest remainders (ties: the part listed first). Vectorized over every
part of every total at once; Python ints (object arrays) keep any size exact."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy.typing as npt

    Ints: TypeAlias = npt.NDArray[np.int64]
    Objects: TypeAlias = npt.NDArray[np.object_]

__all__ = ["split_exact"]


def split_exact(totals: Objects, group: Ints, weights: Ints) -> Objects:
    """Parts of `totals` (Python ints, None = null), one per entry of `group` (the index of
    its total; sorted ascending, every total has at least one part) in proportion to
    `weights` (>= 0). A total whose weights are all 0 goes whole to its first part."""
    n = len(group)
    out: Objects = np.empty(n, dtype=object)
    if n == 0:
        return out
    if np.any(np.diff(group) < 0):
        raise ValueError("parts must be sorted by their total")
    if np.any(weights < 0):
        raise ValueError("weights must be >= 0")
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    w = weights.astype(np.int64).copy()
    sums = np.add.reduceat(w, starts)
    empty = sums == 0
    w[starts[empty]] = 1
    sums[empty] = 1
    row_of_part = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
    total = totals[group[starts]]
    null = np.array([t is None for t in total], dtype=bool)
    amount = np.where(null, 0, total)
    sign = np.where(np.asarray(amount < 0, dtype=bool), -1, 1)
    absolute = np.abs(amount).astype(object)
    a = absolute[row_of_part]
    wsum = sums[row_of_part]
    num = a * w.astype(object)
    q = num // wsum.astype(object)
    r = np.asarray(num - q * wsum.astype(object), dtype=np.int64)
    floor_sums = np.add.reduceat(q, starts)
    left = np.asarray(absolute - floor_sums, dtype=np.int64)  # < parts of the total
    order = np.lexsort((np.arange(n), -r, row_of_part))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[row_of_part[order]]
    parts = (q + (rank < left[row_of_part]).astype(np.int64).astype(object)) * sign[
        row_of_part
    ].astype(object)
    out[:] = parts
    out[null[row_of_part]] = None
    return out
