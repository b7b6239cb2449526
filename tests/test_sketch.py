"""LatencySketch: accuracy against exact numpy quantiles and DataDog's `ddsketch`, the merge
property, the byte encoding, bounded memory, input handling and insert speed."""

from __future__ import annotations

import contextlib
import copy
import itertools
import pickle

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuledger import GpuledgerError, InputError
from gpuledger.sketch import DEFAULT_QUANTILES, LatencySketch, merge_sketches, quantiles_of

ALPHA = 0.005
QS = (0.5, 0.9, 0.95, 0.99, 0.999)
LO_MS, HI_MS = 0.1, 600_000.0  # 0.1 ms .. 10 minutes
N = 100_000


def _datasets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20260428)
    bimodal = np.where(
        rng.random(N) < 0.7,
        rng.lognormal(np.log(8.0), 0.3, N),
        rng.lognormal(np.log(2_000.0), 0.5, N),
    )
    data = {
        "lognormal": rng.lognormal(np.log(50.0), 1.5, N),
        "pareto": (rng.pareto(1.1, N) + 1.0) * 0.5,
        "bimodal": bimodal,
        "constant": np.full(N, 123.456),
        "loguniform": np.exp(rng.uniform(np.log(LO_MS), np.log(HI_MS), N)),
    }
    return {k: np.clip(v, LO_MS, HI_MS) for k, v in data.items()}


DATA = _datasets()


def exact_quantile(values: np.ndarray, q: float) -> float:
    """The order statistic of rank floor(q (n - 1)), the one a DDSketch answer estimates."""
    return float(np.quantile(values, q, method="lower"))


def rel_err(estimate: float, exact: float) -> float:
    return abs(estimate - exact) / exact


def bracket_err(estimate: float, values: np.ndarray, q: float) -> float:
    """Relative distance to the interval between the order statistics around rank q (n-1)."""
    lo = float(np.quantile(values, q, method="lower"))
    hi = float(np.quantile(values, q, method="higher"))
    if lo <= estimate <= hi:
        return 0.0
    return min(rel_err(estimate, lo), rel_err(estimate, hi))


def sketch_of(values: np.ndarray | list[float], alpha: float = ALPHA) -> LatencySketch:
    s = LatencySketch(relative_accuracy=alpha)
    s.add(values)
    return s


# --- accuracy ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DATA))
def test_accuracy_against_exact_quantiles(name: str) -> None:
    values = DATA[name]
    s = sketch_of(values)
    assert s.count == N
    assert s.min == values.min() and s.max == values.max()
    assert s.sum == pytest.approx(values.sum(), rel=1e-9)
    assert s.mean == pytest.approx(values.mean(), rel=1e-9)
    for q in (0.0, 0.001, 0.1, 0.25, *QS, 0.9999, 1.0):
        est = s.quantile(q)
        assert est is not None
        err = rel_err(est, exact_quantile(values, q))
        assert err <= ALPHA * (1 + 1e-9), (name, q, err)
        assert err <= 0.01
        assert bracket_err(est, values, q) <= err
    if name == "constant":
        assert s.quantiles(list(QS)) == [123.456] * len(QS)


@pytest.mark.parametrize("alpha", [0.005, 0.01, 0.02])
@pytest.mark.parametrize("name", sorted(DATA))
def test_no_worse_than_ddsketch(name: str, alpha: float) -> None:
    import ddsketch

    values = DATA[name][:20_000] if alpha != ALPHA else DATA[name]
    dd = ddsketch.DDSketch(relative_accuracy=alpha)
    for v in values.tolist():
        dd.add(v)
    ours = sketch_of(values, alpha)
    our_errs, their_errs = [], []
    for q in QS:
        exact = exact_quantile(values, q)
        our_errs.append(rel_err(ours.quantile(q) or 0.0, exact))
        their_errs.append(rel_err(dd.get_quantile_value(q), exact))
    assert max(our_errs) <= max(their_errs) + 1e-12, (our_errs, their_errs)
    for o, t in zip(our_errs, their_errs, strict=True):
        assert o <= t + 1e-12
    assert max(our_errs) <= alpha * (1 + 1e-9)


def test_zero_bucket_and_tiny_values() -> None:
    s = sketch_of([0.0, 0.0, 0.0005, 5.0, 6.0])
    assert s.zero_count == 3
    assert s.quantile(0.5) == 0.0
    assert s.quantile(1.0) == 6.0
    assert s.min == 0.0


def test_empty_sketch() -> None:
    s = LatencySketch()
    assert s.count == 0 and s.sum == 0.0
    assert s.min is None and s.max is None and s.mean is None
    assert s.quantile(0.5) is None
    assert s.quantiles([0.5, 0.99]) == [None, None]
    assert LatencySketch.from_bytes(s.to_bytes()) == s
    assert merge_sketches([]) == s
    assert quantiles_of([]) == [None] * len(DEFAULT_QUANTILES)


# --- merge ------------------------------------------------------------------------------


def _split(values: list[float], cuts: list[int]) -> list[list[float]]:
    bounds = [0, *sorted(c % (len(values) + 1) for c in cuts), len(values)]
    return [values[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.just(0.0), st.integers(0, 2**24).map(lambda i: i / 64)),
        max_size=400,
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
)
def test_merge_of_any_split_equals_whole_bytes(values: list[float], cuts: list[int]) -> None:
    # Dyadic values: every float sum is exact, so even the `sum` field (and the bytes) agree.
    whole = sketch_of(values)
    parts = [sketch_of(p).to_bytes() for p in _split(values, cuts)]
    merged = merge_sketches(parts)
    assert merged.to_bytes() == whole.to_bytes()
    assert merged == whole
    again = LatencySketch()
    for p in reversed(parts):
        again.merge(p)
    assert again.to_bytes() == whole.to_bytes()


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.just(0.0),
            st.floats(min_value=LO_MS, max_value=HI_MS),
            st.floats(min_value=0.0, max_value=1e12),
        ),
        min_size=1,
        max_size=400,
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
)
def test_merge_of_any_split_answers_like_whole(values: list[float], cuts: list[int]) -> None:
    whole = sketch_of(values)
    merged = merge_sketches(sketch_of(p) for p in _split(values, cuts))
    assert merged.buckets() == whole.buckets()
    assert (merged.count, merged.zero_count) == (whole.count, whole.zero_count)
    assert (merged.min, merged.max) == (whole.min, whole.max)
    assert merged.sum == pytest.approx(whole.sum, rel=1e-12)
    qs = [0.0, 0.01, *QS, 1.0]
    assert merged.quantiles(qs) == whole.quantiles(qs)
    arr = np.asarray(values)
    for q in qs:
        exact = exact_quantile(arr, q)
        est = merged.quantile(q)
        assert est is not None
        if exact >= 1e-3:  # above the zero bucket: relative guarantee
            assert rel_err(est, exact) <= ALPHA * (1 + 1e-9)
        else:
            assert abs(est - exact) < 1e-3


def test_merge_large_split_within_bound() -> None:
    values = DATA["bimodal"]
    whole = sketch_of(values)
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.integers(0, len(values), 37))
    parts = [sketch_of(p) for p in np.split(values, cuts)]
    merged = merge_sketches(parts)
    assert merged.buckets() == whole.buckets()
    for q in QS:
        est = merged.quantile(q)
        assert est is not None and est == whole.quantile(q)
        assert rel_err(est, exact_quantile(values, q)) <= ALPHA * (1 + 1e-9)


def test_merge_sketches_from_arrow_columns() -> None:
    rng = np.random.default_rng(2)
    rows = [rng.lognormal(3, 1, 1000) for _ in range(20)]
    blobs = [sketch_of(r).to_bytes() for r in rows]
    whole = sketch_of(np.concatenate(rows))
    with_nulls = [*blobs[:5], None, *blobs[5:]]
    columns: list[object] = [
        pa.array(with_nulls, pa.binary()),
        pa.array(with_nulls, pa.large_binary()),
        pa.array(with_nulls, pa.binary_view()),
        pa.chunked_array([pa.array(blobs[:7]), pa.array(blobs[7:])]),
        pa.table({"latency_sketch": pa.array(with_nulls)}).column("latency_sketch"),
        with_nulls,
        [bytearray(b) for b in blobs],
        [memoryview(b) for b in blobs],
        np.array(blobs, dtype=object),
    ]
    for col in columns:
        merged = merge_sketches(col)
        assert merged.buckets() == whole.buckets(), type(col)
        assert merged.count == whole.count
        assert quantiles_of(col) == whole.quantiles(list(DEFAULT_QUANTILES))
    assert merge_sketches(pa.array([], pa.binary())) == LatencySketch()
    assert merge_sketches(pa.array([None, None], pa.binary())).count == 0


def test_merge_errors() -> None:
    a = sketch_of([1.0, 2.0])
    b = sketch_of([1.0, 2.0], alpha=0.01)
    with pytest.raises(InputError, match="relative accuracy"):
        a.merge(b)
    with pytest.raises(InputError, match="relative accuracy"):
        merge_sketches([a.to_bytes(), b.to_bytes()])
    with pytest.raises(InputError, match="row 1"):
        merge_sketches(pa.array([a.to_bytes(), b"garbage"]))
    with pytest.raises(InputError, match="binary"):
        merge_sketches(pa.array([1, 2, 3]))
    with pytest.raises(TypeError):
        merge_sketches([1, 2])
    assert a.count == 2  # failed merges left it unchanged


def test_merge_self_and_bytes() -> None:
    s = sketch_of([1.0, 2.0, 3.0])
    twice = sketch_of([1.0, 2.0, 3.0, 1.0, 2.0, 3.0])
    t = s.copy()
    t.merge(t)
    assert t == twice
    u = s.copy()
    u.merge(s.to_bytes())
    assert u == twice
    u.merge(memoryview(LatencySketch().to_bytes()))
    assert u == twice
    with pytest.raises(InputError):
        u.merge(b"GLSK")
    assert u == twice


def test_merge_with_smaller_cap_collapses() -> None:
    big = sketch_of(DATA["loguniform"])
    small = LatencySketch(max_buckets=256)
    small.merge(big)
    assert small.max_buckets == 256 and small.bucket_span <= 256
    assert small.count == big.count
    # High quantiles keep the guarantee; only the collapsed low end loses it.
    for q in (0.99, 0.999):
        est = small.quantile(q)
        assert est is not None
        assert rel_err(est, exact_quantile(DATA["loguniform"], q)) <= ALPHA * (1 + 1e-9)


# --- encoding ---------------------------------------------------------------------------


def test_encoding_round_trip_and_worked_example() -> None:
    s = sketch_of([0.0, 100.0, 100.0, 101.0, 102.0])
    b = s.to_bytes()
    # The worked example of docs/sketch-encoding.md.
    assert b.hex() == (
        "474c534b"  # magic "GLSK"
        "01"  # version
        "7b14ae47e17a743f"  # relative accuracy 0.005
        "8020"  # max_buckets 4096
        "05"  # count
        "01"  # zero count
        "0000000000307940"  # sum 403.0
        "0000000000000000"  # min 0.0
        "0000000000805940"  # max 102.0
        "9a07"  # first key 461 (zigzag 922)
        "03"  # 3 bucket counts
        "020101"  # keys 461, 462, 463
    )
    assert bytes(s) == b
    for data in (b, bytearray(b), memoryview(b)):
        assert LatencySketch.from_bytes(data) == s
    for name, values in DATA.items():
        t = sketch_of(values)
        u = LatencySketch.from_bytes(t.to_bytes())
        assert u == t and u.to_bytes() == t.to_bytes(), name
        assert u.quantiles(list(QS)) == t.quantiles(list(QS))
    assert pickle.loads(pickle.dumps(s)) == s
    assert copy.deepcopy(s) == s and s.copy() == s


def test_garbage_and_truncated_bytes_raise_input_error() -> None:
    b = sketch_of(DATA["lognormal"][:1000]).to_bytes()
    assert issubclass(InputError, GpuledgerError)
    for n in range(len(b)):
        with pytest.raises(InputError):
            LatencySketch.from_bytes(b[:n])
    with pytest.raises(InputError, match="trailing"):
        LatencySketch.from_bytes(b + b"\x00")
    with pytest.raises(InputError, match="version 9"):
        LatencySketch.from_bytes(b[:4] + b"\x09" + b[5:])
    with pytest.raises(InputError, match="magic"):
        LatencySketch.from_bytes(b"XXXX" + b[4:])
    rng = np.random.default_rng(3)
    for _ in range(2000):
        junk = b[:5] + rng.integers(0, 256, rng.integers(0, 120)).astype(np.uint8).tobytes()
        with pytest.raises(InputError):
            LatencySketch.from_bytes(junk)
    for i in range(len(b)):  # single-byte corruptions: an error or a valid sketch, no crash
        c = bytearray(b)
        c[i] ^= 0xFF
        with contextlib.suppress(InputError):
            LatencySketch.from_bytes(bytes(c))
    with pytest.raises(TypeError):
        LatencySketch.from_bytes("not bytes")  # type: ignore[arg-type]


# --- memory, inputs, parameters ---------------------------------------------------------


def test_memory_is_bounded() -> None:
    rng = np.random.default_rng(4)
    values = np.exp(rng.uniform(np.log(LO_MS), np.log(HI_MS), 1_000_000))
    values[:2] = (LO_MS, HI_MS)
    s = sketch_of(values)
    assert s.heap_bytes < 16 * 1024, s.heap_bytes
    assert s.bucket_span < 1600
    assert len(s.to_bytes()) < 8 * 1024
    # Far wider values: the cap holds (lowest buckets collapse).
    s.add(np.array([1e-2, 1e200, 1e300]))
    assert s.heap_bytes <= 8 * s.max_buckets


def test_add_accepts_buffers_sequences_and_scalars() -> None:
    values = DATA["lognormal"][:5000]
    ref = sketch_of(values)
    variants: list[object] = [
        values.tolist(),
        tuple(values.tolist()),
        memoryview(values.tobytes()).cast("d"),
        values.astype(">f8"),  # byte-swapped: converted
        np.ascontiguousarray(np.stack([values, values])[0]),
        pa.array(values),
    ]
    for v in variants:
        assert sketch_of(v) == ref, type(v)  # type: ignore[arg-type]
    strided = np.repeat(values, 2)[::2]
    assert not strided.flags.c_contiguous
    assert sketch_of(strided) == ref
    f32 = values.astype(np.float32)
    assert sketch_of(f32).count == 5000
    one = LatencySketch()
    assert one.add(5) == 1 and one.add(2.5) == 1 and one.add(np.arange(1, 4)) == 3
    assert one.count == 5 and one.max == 5.0


def test_invalid_values() -> None:
    s = sketch_of([1.0, 2.0])
    for bad in ([1.0, -1.0], [float("nan")], [float("inf")], np.array([3.0, -0.5])):
        with pytest.raises(InputError, match="finite and >= 0"):
            s.add(bad)
    with pytest.raises(InputError):
        s.add(-3.0)
    assert s.count == 2  # nothing was added
    assert s.add([1.0, -1.0, float("nan"), 4.0], skip_invalid=True) == 2
    assert s.count == 4
    with pytest.raises(ValueError):
        s.quantile(1.5)
    with pytest.raises(ValueError):
        s.quantile(float("nan"))
    with pytest.raises(ValueError):
        LatencySketch(relative_accuracy=0.0)
    with pytest.raises(ValueError):
        LatencySketch(max_buckets=4)


def test_buckets_and_repr() -> None:
    s = sketch_of([100.0, 100.0, 101.0])
    buckets = s.buckets()
    assert [c for _, _, c in buckets] == [2, 1]
    for lo, hi, _ in buckets:
        assert hi / lo == pytest.approx((1 + ALPHA) / (1 - ALPHA))
    assert buckets[0][0] < 100.0 <= buckets[0][1]
    assert "count=3" in repr(s)
