"""Latency sketches: decode, merge and query the `latency_sketch` column.

Every `latency_windows` row carries its request latencies as a mergeable relative-error
quantile sketch (DDSketch family, relative accuracy 0.005 by default, values in milliseconds)
in a documented, versioned byte encoding (`docs/sketch-encoding.md`). Merging the sketches of
any set of rows gives exactly the sketch of the union of their requests, so windows roll up
across time and across daemon instances::

    from gpuledger.sketch import merge_sketches, quantiles_of

    day = merge_sketches(table.column("latency_sketch"))  # pyarrow column, read in Rust
    day.quantile(0.99)                                      # ms, within 0.5 %
    quantiles_of(table.column("latency_sketch"), [0.5, 0.99])

    s = LatencySketch()
    s.add(numpy_array_of_ms)  # read in place when C-contiguous float64
    LatencySketch.from_bytes(s.to_bytes()) == s
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gpuledger._engine import LatencySketch, merge_sketches

__all__ = [
    "DEFAULT_QUANTILES",
    "LatencySketch",
    "merge_sketches",
    "quantiles_of",
]

#: The quantiles of the `latency_windows` table: p50, p90, p95, p99, p99.9.
DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99, 0.999)


def quantiles_of(
    sketches: object | Iterable[bytes | LatencySketch | None],
    qs: Sequence[float] = DEFAULT_QUANTILES,
) -> list[float | None]:
    """Quantiles (ms) of the union of `sketches`: an Arrow binary column or an iterable of
    sketch bytes / `LatencySketch` objects (see `merge_sketches`). None when it is empty."""
    return merge_sketches(sketches).quantiles(list(qs))
