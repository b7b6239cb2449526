"""Bench: latency sketch insert speed, size, merge speed and accuracy against peers.

Issue target: sketch insert at most 20 ns per value, faster than DataDog's `ddsketch` and
`hdrhistogram` (PyPI) doing the same inserts from the same numpy array; relative error at
most 1 % for p50..p99.9. Contenders, all fed the same lognormal latencies (ms, clamped to
0.1 ms .. 10 min):

- gpuledger `LatencySketch(relative_accuracy=0.005).add(array)`: one call, the array is read
  in place (C-contiguous float64).
- ddsketch `DDSketch(relative_accuracy=0.005).add(v)` in a Python loop over `array.tolist()`
  (its API takes one value at a time; the `tolist()` is not timed).
- hdrhistogram `HdrHistogram(1 us, 10 min, digits).record_value(v)` in a Python loop over
  integer microseconds (its unit is an integer; the conversion is not timed).

Size is the serialized sketch (ours: `to_bytes()`; ddsketch: its protobuf, when `protobuf`
is installed; hdrhistogram: `encode()`, compressed base64). Merge is 100 sketches of 10k
values each into one. Accuracy is the relative error against numpy's exact order statistic
(`np.quantile(..., method="lower")`, the rank a DDSketch answer estimates) on four
distributions. Usage: python benches/bench_sketch.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

from gpuledger.sketch import LatencySketch, merge_sketches

ALPHA = 0.005
QS = (0.5, 0.95, 0.99, 0.999)
LO_MS, HI_MS = 0.1, 600_000.0


def datasets(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20260428)
    bimodal = np.where(
        rng.random(n) < 0.7,
        rng.lognormal(np.log(8.0), 0.3, n),
        rng.lognormal(np.log(2_000.0), 0.5, n),
    )
    data = {
        "lognormal": rng.lognormal(np.log(20.0), 1.5, n),
        "pareto": (rng.pareto(1.1, n) + 1.0) * 0.5,
        "bimodal": bimodal,
        "constant": np.full(n, 123.456),
    }
    return {k: np.clip(v, LO_MS, HI_MS) for k, v in data.items()}


class Contender:
    """Builds a sketch from values and answers quantiles, for one library."""

    name: str

    def build(self, values: np.ndarray) -> Any:
        raise NotImplementedError

    def prepare(self, values: np.ndarray) -> Any:
        """Untimed conversion of the input into what `build_prepared` consumes."""
        return values

    def build_prepared(self, prepared: Any) -> Any:
        raise NotImplementedError

    def quantile(self, sketch: Any, q: float) -> float:
        raise NotImplementedError

    def size(self, sketch: Any) -> int | None:
        raise NotImplementedError

    def merge(self, sketches: list[Any]) -> Any:
        raise NotImplementedError


class Ours(Contender):
    name = f"gpuledger LatencySketch(alpha={ALPHA})"

    def build_prepared(self, prepared: np.ndarray) -> LatencySketch:
        s = LatencySketch(relative_accuracy=ALPHA)
        s.add(prepared)
        return s

    def quantile(self, sketch: LatencySketch, q: float) -> float:
        return float(sketch.quantile(q) or 0.0)

    def size(self, sketch: LatencySketch) -> int:
        return len(sketch.to_bytes())

    def merge(self, sketches: list[LatencySketch]) -> LatencySketch:
        return merge_sketches(sketches)


class OursBytes(Ours):
    """Merging the encoded column (what a user does with `latency_sketch`)."""

    name = "gpuledger merge_sketches(list of bytes)"

    def merge(self, sketches: list[LatencySketch]) -> LatencySketch:
        return merge_sketches(self._blobs)

    def ready(self, sketches: list[LatencySketch]) -> None:
        self._blobs = [s.to_bytes() for s in sketches]


class Dd(Contender):
    name = f"ddsketch DDSketch(relative_accuracy={ALPHA})"

    def __init__(self) -> None:
        from ddsketch import DDSketch

        self.cls = DDSketch

    def prepare(self, values: np.ndarray) -> list[float]:
        return values.tolist()  # type: ignore[no-any-return]

    def build_prepared(self, prepared: list[float]) -> Any:
        s = self.cls(relative_accuracy=ALPHA)
        add = s.add
        for v in prepared:
            add(v)
        return s

    def quantile(self, sketch: Any, q: float) -> float:
        return float(sketch.get_quantile_value(q))

    def size(self, sketch: Any) -> int | None:
        try:
            from ddsketch.pb.proto import DDSketchProto
        except ImportError:  # protobuf not installed
            return None
        return len(DDSketchProto.to_proto(sketch).SerializeToString())

    def merge(self, sketches: list[Any]) -> Any:
        out = self.cls(relative_accuracy=ALPHA)
        for s in sketches:
            out.merge(s)
        return out


class Hdr(Contender):
    def __init__(self, digits: int) -> None:
        from hdrh.histogram import HdrHistogram

        self.cls = HdrHistogram
        self.digits = digits
        self.name = f"hdrhistogram HdrHistogram(1 us, 10 min, {digits} digits)"

    def prepare(self, values: np.ndarray) -> list[int]:
        return np.rint(values * 1000.0).astype(np.int64).tolist()  # type: ignore[no-any-return]

    def build_prepared(self, prepared: list[int]) -> Any:
        h = self.cls(1, 600_000_000, self.digits)
        rec = h.record_value
        for v in prepared:
            rec(v)
        return h

    def quantile(self, sketch: Any, q: float) -> float:
        return float(sketch.get_value_at_percentile(q * 100.0)) / 1000.0

    def size(self, sketch: Any) -> int:
        return len(sketch.encode())

    def merge(self, sketches: list[Any]) -> Any:
        out = self.cls(1, 600_000_000, self.digits)
        for s in sketches:
            out.add(s)
        return out


def exact(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q, method="lower"))


def rel_errors(c: Contender, sketch: Any, values: np.ndarray) -> list[float]:
    return [abs(c.quantile(sketch, q) - exact(values, q)) / exact(values, q) for q in QS]


def run(quick: bool) -> dict[str, Any]:
    n_fast = 1_000_000
    n_py = 100_000 if quick else 1_000_000  # Python-loop contenders
    repeat = 3
    data = datasets(n_fast)
    values = data["lognormal"]
    contenders: list[Contender] = [Ours(), Dd(), Hdr(2), Hdr(3)]
    rows: list[dict[str, Any]] = []
    ns: dict[str, float] = {}
    for c in contenders:
        n = n_fast if isinstance(c, Ours) else n_py
        prepared = c.prepare(values[:n])
        timing = C.median_time(lambda c=c, p=prepared: c.build_prepared(p), repeat, warmup=1)
        sketch = c.build_prepared(prepared)
        errs = rel_errors(c, sketch, values[:n])
        ns[c.name] = timing["median_s"] / n * 1e9
        rows.append(
            {
                "contender": c.name,
                "values": n,
                "ns_per_insert": ns[c.name],
                "min_ns_per_insert": timing["min_s"] / n * 1e9,
                "bytes_serialized": c.size(sketch),
                **{f"err_p{q * 100:g}_%": e * 100 for q, e in zip(QS, errs, strict=True)},
            }
        )

    # Merge: 100 sketches of 10k values each.
    merge_rows: list[dict[str, Any]] = []
    parts = np.split(values[:1_000_000], 100)
    merged_ours: LatencySketch | None = None
    for c in [Ours(), OursBytes(), Dd(), Hdr(2)]:
        sketches = [c.build_prepared(c.prepare(p)) for p in parts]
        if isinstance(c, OursBytes):
            c.ready(sketches)
        merge: Callable[[], Any] = lambda c=c, s=sketches: c.merge(s)  # noqa: E731
        timing = C.median_time(merge, repeat, warmup=1)
        merged = merge()
        if type(c) is Ours:
            merged_ours = merged
        merge_rows.append(
            {
                "contender": f"merge 100 x 10k: {c.name}",
                "us_per_merge": timing["median_s"] / len(sketches) * 1e6,
                "err_p99_%": 100 * rel_errors(c, merged, values)[QS.index(0.99)],
            }
        )
    assert merged_ours is not None

    # Accuracy on four distributions (100k values each), ours vs ddsketch vs hdr.
    acc_rows: list[dict[str, Any]] = []
    worst_ours, worst_dd, ours_no_worse = 0.0, 0.0, True
    for name, v in data.items():
        v = v[:100_000]
        for c in [Ours(), Dd(), Hdr(2), Hdr(3)]:
            errs = rel_errors(c, c.build_prepared(c.prepare(v)), v)
            acc_rows.append(
                {
                    "contender": f"{name}: {c.name}",
                    **{f"err_p{q * 100:g}_%": e * 100 for q, e in zip(QS, errs, strict=True)},
                }
            )
            if isinstance(c, Ours):
                ours_errs = errs
                worst_ours = max(worst_ours, *errs)
            elif isinstance(c, Dd):
                worst_dd = max(worst_dd, *errs)
                ours_no_worse &= max(ours_errs) <= max(errs) + 1e-12

    ours_ns = ns[Ours.name]
    peers = {k: v for k, v in ns.items() if k != Ours.name}
    heap = LatencySketch()
    heap.add(np.exp(np.random.default_rng(1).uniform(np.log(LO_MS), np.log(HI_MS), 1_000_000)))
    return {
        "title": "Latency sketch: insert, size, merge, accuracy vs ddsketch and hdrhistogram",
        "params": {
            "values": n_fast,
            "python_loop_values": n_py,
            "repeat": repeat,
            "alpha": ALPHA,
            "heap_bytes_1M_0.1ms_to_10min": heap.heap_bytes,
            "bytes_1M_0.1ms_to_10min": len(heap.to_bytes()),
        },
        "rows": rows + merge_rows + acc_rows,
        "targets": [
            C.target("insert <= 20 ns per value", ours_ns <= 20.0, f"{ours_ns:.1f} ns"),
            C.target(
                "insert faster than ddsketch and hdrhistogram",
                all(ours_ns < v for v in peers.values()),
                ", ".join(f"{k}: {v / ours_ns:.0f}x slower" for k, v in peers.items()),
            ),
            C.target(
                "relative error <= 1 % at p50..p99.9 (4 distributions)",
                worst_ours <= 0.01,
                f"worst {worst_ours * 100:.3f} %",
            ),
            C.target(
                "relative error no worse than ddsketch at the same alpha",
                ours_no_worse,
                f"worst ours {worst_ours * 100:.3f} %, ddsketch {worst_dd * 100:.3f} %",
            ),
        ],
        "notes": [
            "ns_per_insert is the median of repeated builds of one sketch from the array.",
            "hdrhistogram records integer microseconds; its error includes that rounding.",
            "ddsketch bytes need `protobuf` (blank without it); it encodes counts as doubles.",
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="100k values in the Python loops")
    a = ap.parse_args()
    result = run(a.quick)
    print(C.markdown(result), flush=True)
    print("written:", C.write_results([result], "bench_sketch"))


if __name__ == "__main__":
    main()
