"""Property tests of the engine against the independent reference in `reference_windows.py`.

Random DCGM streams (prometheus-kafka-adapter JSON) with gaps, pod changes, duplicates,
counter resets, blanks, unknown fields and dead letters are delivered out of order over several
partitions and batches, with polls, idle partitions and explicit watermark moves in between.
Every table the engine returns at every call must match the reference: keys, counts and
integers exactly, floats within 1e-9 (they are exact computations; only summation order may
differ).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_windows import (
    ENERGY,
    FB_USED,
    GPU_UTIL,
    GR,
    POWER,
    SM_ACTIVE,
    Output,
    ReferenceEngine,
)

import gpuledger

START = 1_795_867_200  # 2026-11-28T12:00:00Z, aligned to every window size used here
MODELS = ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA L40S"]
PRICES = {"default": 2.0, "NVIDIA H100 80GB HBM3": 4.5, "NVIDIA A100-SXM4-80GB": 3.25}
TEAMS = {"ns-a": "team-a", "ns-b": "team-a", "ns-c": "team-c"}  # ns-d is unmapped
NAMESPACES = ["ns-a", "ns-b", "ns-c", "ns-d"]
# (tumbling sizes, hopping (size, slide)); sizes never repeat across families so that
# (window_start, window_end) tells the family apart.
FAMILIES = [
    ([60], []),
    ([60, 300], []),
    ([60, 300], [(120, 30)]),
    ([300], [(120, 30)]),
    ([60], [(90, 30)]),
    ([30], [(300, 60)]),
]
REL = 1e-9
# The inputs a stream is spread over, as (source, partition): a watermark is kept per pair,
# so partition 0 of two sources are two inputs.
INPUTS = [("gpu-telemetry", 0), ("replay.jsonl", 0), ("gpu-telemetry", 1)]
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

GPU_FLOATS = [
    "covered_s",
    "util_mean",
    "util_min",
    "util_max",
    "util_p50",
    "util_p95",
    "busy_gpu_s",
    "idle_gpu_s",
    "fb_used_max_mib",
    "power_mean_w",
    "energy_j",
    "price_usd_per_gpu_hour",
    "cost_usd",
    "idle_cost_usd",
    "unallocated_cost_usd",
]
GPU_EXACT = [
    "window_start",
    "window_end",
    "gpu_uuid",
    "namespace",
    "pod",
    "hostname",
    "gpu_index",
    "model_name",
    "container",
    "team",
    "samples",
    "allocated",
]
POOL_EXACT = ["window_start", "window_end", "team", "model_name", "gpus"]
POOL_EXACT += ["demand_buckets", "provisioned_buckets"]
POOL_FLOATS = [
    "gpu_s",
    "busy_gpu_s",
    "idle_gpu_s",
    "cost_usd",
    "idle_cost_usd",
    "provisioned_mean_gpus",
    "demand_mean_gpus",
    "demand_p95_gpus",
    "demand_peak_gpus",
    "buffer_gpus",
    "buffer_cost_usd",
    "utilization",
]


# --- messages ------------------------------------------------------------------------------


def stamp(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def message(ts: int, name: str, value: str, labels: dict[str, str]) -> bytes:
    body = {
        "timestamp": stamp(ts),
        "value": value,
        "name": name,
        "labels": {"__name__": name, **labels},
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class Gpu:
    uuid: str
    base: dict[str, str]
    segments: list[tuple[int, str, str, str]]  # (from second, namespace, pod, container)
    mode: str  # gr | util | both | mixed | none
    period: int
    gaps: list[tuple[int, int]]
    p_power: float
    p_fb: float
    energy: bool

    def labels(self, t: int) -> dict[str, str]:
        seg = [s for s in self.segments if s[0] <= t][-1]
        return {**self.base, "namespace": seg[1], "pod": seg[2], "container": seg[3]}

    def silent(self, t: int) -> bool:
        return any(a <= t < b for a, b in self.gaps)


def make_fleet(rnd: random.Random, n_gpus: int, duration: int) -> list[Gpu]:
    fleet = []
    for i in range(n_gpus):
        base = {"UUID": f"GPU-{i:04d}-9c1e-44d2-{rnd.randrange(16**6):06x}"}
        if rnd.random() < 0.85:
            base["gpu"] = str(i % 4)
        base["modelName"] = rnd.choice(MODELS)
        base["Hostname" if rnd.random() < 0.8 else "hostname"] = f"node-{i // 2}"
        if rnd.random() < 0.1:
            base["GPU_I_ID"] = str(rnd.randint(1, 6))
        # Pods change at most twice; a new pod often stays in the namespace (a restart).
        switches = sorted(rnd.sample(range(1, duration), rnd.randint(0, 2)))
        segs = []
        ns = rnd.choice(NAMESPACES)
        for j, t in enumerate([-(10**9), *switches]):
            if rnd.random() < 0.2:
                segs.append((t, "", "", ""))
                continue
            if rnd.random() < 0.5:
                ns = rnd.choice(NAMESPACES)
            segs.append((t, ns, f"{ns}-job{i}-{j}", "main"))
        gaps = []
        for _ in range(rnd.randint(0, 2)):
            a = rnd.randrange(duration)
            gaps.append((a, a + rnd.randint(5, 150)))
        fleet.append(
            Gpu(
                uuid=base["UUID"],
                base=base,
                segments=segs,
                mode=rnd.choice(["gr", "gr", "util", "both", "mixed", "none"]),
                period=rnd.choice([1, 1, 1, 2, 3]),
                gaps=gaps,
                p_power=rnd.choice([0.0, 0.5, 1.0]),
                p_fb=rnd.choice([0.0, 0.3, 1.0]),
                energy=rnd.random() < 0.6,
            )
        )
    return fleet


def util_value(rnd: random.Random, name: str) -> str:
    if name == GPU_UTIL:
        return str(rnd.choice([0, 100, rnd.randint(0, 100)]))
    return f"{rnd.choice([0.0, 1.0, rnd.random(), rnd.random()]):.3f}"


def fleet_readings(
    rnd: random.Random, fleet: list[Gpu], duration: int
) -> list[tuple[int, str, str, dict[str, str], int]]:
    """(second offset, field, value, labels, gpu number) for every sample of every GPU."""
    out = []
    for g_i, g in enumerate(fleet):
        counter = rnd.randint(0, 10**9)
        for t in range(rnd.randrange(g.period), duration, g.period):
            if g.silent(t):
                continue
            labels = g.labels(t)
            names = {
                "gr": [GR],
                "util": [GPU_UTIL],
                "both": [GR, GPU_UTIL],
                "mixed": [GPU_UTIL] + ([GR] if (t // 100) % 2 == 0 else []),
                "none": [],
            }[g.mode]
            for name in names:
                out.append((t, name, util_value(rnd, name), labels, g_i))
            watts = rnd.uniform(50, 700)
            if rnd.random() < g.p_power:
                out.append((t, POWER, f"{watts:.1f}", labels, g_i))
            if rnd.random() < g.p_fb:
                out.append((t, FB_USED, str(rnd.randint(0, 81920)), labels, g_i))
            if g.energy:
                counter += int(watts * g.period * 1000)
                if rnd.random() < 0.01:
                    counter = rnd.randint(0, 5000)  # counter reset
                if rnd.random() < 0.9:
                    out.append((t, ENERGY, str(counter), labels, g_i))
            if rnd.random() < 0.01:
                out.append((t, SM_ACTIVE, f"{rnd.random():.3f}", labels, g_i))
    return out


def noise(rnd: random.Random, fleet: list[Gpu], duration: int) -> bytes:
    """A message that must be skipped or become a dead letter."""
    g = rnd.choice(fleet)
    t = rnd.randrange(duration)
    labels = g.labels(t)
    ts = START + t
    kind = rnd.randrange(9)
    if kind == 0:
        return message(ts, "DCGM_FI_DEV_MEMORY_TEMP", "41", labels)
    if kind == 1:
        return message(ts, rnd.choice([GR, FB_USED, POWER]), "9223372036854775794", labels)
    if kind == 2:
        return message(ts, GR, "0.5", labels)[: rnd.randint(5, 60)]  # truncated JSON
    if kind == 3:
        return message(ts, rnd.choice([GR, POWER]), rnd.choice(["NaN", "+Inf", "-Inf"]), labels)
    if kind == 4:
        return message(ts, GR, "1.5", labels)  # ratio out of range
    if kind == 5:
        return message(ts, POWER, "-3.0", labels)  # negative power
    if kind == 6:
        return message(ts, GPU_UTIL, "50", {k: v for k, v in labels.items() if k != "UUID"})
    if kind == 7:
        return message(START + 10 * 365 * 86_400, GR, "0.5", labels)  # far in the future
    return message(ts, GPU_UTIL, "abc", labels)


# --- scenarios -----------------------------------------------------------------------------


@dataclass
class Scenario:
    window_s: list[int]
    hopping: list[tuple[int, int]]
    lateness: int
    interval: float
    ops: list[tuple[Any, ...]] = field(default_factory=list)
    note: str = ""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # hypothesis' printer
        p.text(repr(self))

    def __repr__(self) -> str:
        calls = Counter(op[0] for op in self.ops)
        return (
            f"Scenario(window_s={self.window_s}, hopping={self.hopping}, "
            f"lateness={self.lateness}, interval={self.interval}, {self.note}, "
            f"messages={len(self.messages())}, calls={dict(calls)})"
        )

    def config(self) -> gpuledger.Config:
        return gpuledger.Config.from_dict(
            {
                "engine": {
                    "window_s": self.window_s,
                    "hopping": [{"size_s": a, "slide_s": b} for a, b in self.hopping],
                    "allowed_lateness_s": self.lateness,
                    "sample_interval_s": self.interval,
                },
                "prices": PRICES,
                "teams": TEAMS,
            }
        )

    def engine(self) -> gpuledger.Engine:
        return gpuledger.Engine(self.config())

    def reference(self) -> ReferenceEngine:
        return ReferenceEngine(
            window_s=self.window_s,
            hopping=self.hopping,
            allowed_lateness_s=self.lateness,
            sample_interval_s=self.interval,
            prices=PRICES,
            teams=TEAMS,
        )

    def messages(self) -> list[bytes]:
        return [m for op in self.ops if op[0] == "push" for m in op[2]]


@st.composite
def scenarios(draw: st.DrawFn, *, batches: bool = True) -> Scenario:
    """A random stream and the calls that deliver it. Hypothesis draws the seed; the shape
    comes from the seed too, which spreads examples far better than shrinkable draws of
    each knob (a failure prints its seed: `scenario_from_seed(seed)` rebuilds it)."""
    return scenario_from_seed(draw(st.integers(0, 2**32 - 1)), batches=batches)


def scenario_from_seed(seed: int, *, batches: bool = True) -> Scenario:
    rnd = random.Random(seed)
    windows, hopping = rnd.choice(FAMILIES)
    sc = Scenario(
        window_s=windows,
        hopping=hopping,
        lateness=rnd.choice([0, rnd.randint(0, 60)]),
        interval=rnd.choice([1.0, 1.0, 1.0, 2.0, 0.5]),
    )
    n_gpus = rnd.randint(2, 6)
    duration = rnd.randint(60, 480)
    n_parts = rnd.randint(1, 3) if batches else 1
    p_dup = rnd.choice([0.0, 0.02, 0.1])
    p_noise = rnd.choice([0.0, 0.01, 0.03])
    p_straggle = rnd.choice([0.0, 0.03, 0.1, 0.2]) if batches else 0.0
    sc.note = f"gpus={n_gpus}, duration={duration}, partitions={n_parts}, seed={seed}"

    fleet = make_fleet(rnd, n_gpus, duration)
    readings = fleet_readings(rnd, fleet, duration)
    msgs = []  # (second offset, gpu number or -1, bytes)
    for t, name, value, labels, g_i in readings:
        msgs.append((t, g_i, message(START + t, name, value, labels)))
        if rnd.random() < p_dup:
            if rnd.random() < 0.5:  # exact copy
                msgs.append((t + rnd.randint(0, 90), g_i, msgs[-1][2]))
            else:  # same series, field and time, another value
                if name in (GR, GPU_UTIL):
                    other = util_value(rnd, name)
                elif name == SM_ACTIVE:
                    other = f"{rnd.random():.3f}"
                else:
                    other = str(float(value) + rnd.choice([-1, 1]) * rnd.randint(0, 3))
                    other = str(max(0.0, float(other)))
                msgs.append((t + rnd.randint(0, 90), g_i, message(START + t, name, other, labels)))
    for _ in range(int(len(msgs) * p_noise)):
        msgs.append((rnd.randrange(duration), -1, noise(rnd, fleet, duration)))

    if not batches:
        rnd.shuffle(msgs)
        sc.ops += [("push", 0, [m for _, _, m in msgs], 0), ("poll",), ("finish",)]
        return sc

    by_gpu = rnd.random() < 0.6
    part_of_gpu = [rnd.randrange(n_parts) for _ in fleet]
    lag = [rnd.choice([0, 0, 5, 30, 90]) for _ in range(n_parts)]
    jitter = rnd.choice([0, 2, 10])
    deliveries = []
    for t, g_i, m in msgs:
        p = part_of_gpu[g_i] if by_gpu and g_i >= 0 else rnd.randrange(n_parts)
        delay = lag[p] + rnd.randint(0, jitter)
        if rnd.random() < p_straggle:
            delay += rnd.randint(30, 300)
        deliveries.append((t + delay, rnd.random(), p, m))
    deliveries.sort()
    width = rnd.choice([5, 15, 30, 60, 60, 10_000])
    offsets = [0] * n_parts
    batch: dict[int, list[bytes]] = {}
    current = None
    p_poll = rnd.choice([0.5, 1.0])

    def flush(now: int) -> None:
        parts = list(batch)
        rnd.shuffle(parts)
        for p in parts:
            if rnd.random() < 0.5:
                rnd.shuffle(batch[p])
            sc.ops.append(("push", p, batch[p], offsets[p]))
            offsets[p] += len(batch[p])
        batch.clear()
        if rnd.random() < p_poll:
            sc.ops.append(("poll",))
        if rnd.random() < 0.08:
            sc.ops.append(("idle", rnd.randrange(n_parts)))
        if rnd.random() < 0.05:
            sc.ops.append(("advance", START + now - rnd.randint(30, 300)))

    for at, _, p, m in deliveries:
        if current is not None and at // width != current:
            flush(current * width + width)
        current = at // width
        batch.setdefault(p, []).append(m)
    if batch:
        flush(duration)
    sc.ops.append(("finish",))
    return sc


# --- running and comparing -----------------------------------------------------------------


def rows_of(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts, timestamps as integer milliseconds."""
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        cols[name] = col.to_pylist()
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == b or math.isclose(a, b, rel_tol=REL, abs_tol=REL)


def compare_rows(
    got: list[dict[str, Any]],
    want: list[dict[str, Any]],
    exact: list[str],
    floats: list[str],
    where: str,
) -> None:
    got_keys = [tuple(r[c] for c in exact) for r in got]
    want_keys = [tuple(r[c] for c in exact) for r in want]
    if got_keys != want_keys:
        missing = [k for k in want_keys if k not in got_keys]
        extra = [k for k in got_keys if k not in want_keys]
        pytest.fail(
            f"{where}: rows differ ({len(got)} vs {len(want)} expected)\n"
            f"missing (first 5): {missing[:5]}\nunexpected (first 5): {extra[:5]}\n"
            f"order got: {got_keys[:8]}\norder want: {want_keys[:8]}"
        )
    for g, w in zip(got, want, strict=True):
        bad = [(c, g[c], w[c]) for c in floats if not close(g[c], w[c])]
        if bad:
            pytest.fail(f"{where}: row {tuple(w[c] for c in exact[:5])}: (col, got, want) {bad}")


def compare_output(got: gpuledger.Windows, want: Output, where: str) -> None:
    # every column of both tables is checked
    assert set(got.gpu_windows.column_names) == {*GPU_EXACT, *GPU_FLOATS}
    assert set(got.pool_windows.column_names) == {*POOL_EXACT, *POOL_FLOATS}
    compare_rows(rows_of(got.gpu_windows), want.gpu_windows, GPU_EXACT, GPU_FLOATS, where)
    pool_order = ["window_end", "window_start", "team", "model_name"]
    pools_got = sorted(rows_of(got.pool_windows), key=lambda r: [r[c] for c in pool_order])
    pools_want = sorted(want.pool_windows, key=lambda r: [r[c] for c in pool_order])
    compare_rows(pools_got, pools_want, POOL_EXACT, POOL_FLOATS, f"{where} pool_windows")
    late_got = Counter(tuple(sorted(r.items())) for r in rows_of(got.late_events))
    late_want = Counter(tuple(sorted(r.items())) for r in want.late_events)
    assert late_got == late_want, (
        f"{where} late_events: {late_got - late_want} vs {late_want - late_got}"
    )
    dead_cols = ["source", "partition", "offset", "raw", "raw_size"]
    dead = rows_of(got.dead_letters)
    assert all(r["reason"] for r in dead)
    dead_got = Counter(tuple(r[c] for c in dead_cols) for r in dead)
    dead_want = Counter(tuple(r[c] for c in dead_cols) for r in want.dead_letters)
    assert dead_got == dead_want, f"{where} dead_letters"


def replay(sc: Scenario, eng: gpuledger.Engine, ref: ReferenceEngine | None = None) -> list[Any]:
    """Runs the scenario's calls on the engine (and the reference, comparing after each call);
    returns the engine's outputs of the closing calls."""
    outputs = []
    for i, op in enumerate(sc.ops):
        where = f"call {i} {op[0]}{op[1:2] if op[0] != 'push' else (op[1], len(op[2]))}"
        if op[0] == "push":
            source, partition = INPUTS[op[1]]
            eng.push(op[2], source=source, partition=partition, first_offset=op[3])
            if ref is not None:
                ref.push(op[2], source=source, partition=partition, first_offset=op[3])
        elif op[0] == "idle":
            source, partition = INPUTS[op[1]]
            eng.mark_idle(partition, source=source)
            if ref is not None:
                ref.mark_idle(partition, source=source)
        else:
            if op[0] == "poll":
                got = eng.poll()
                want = ref.poll() if ref is not None else None
            elif op[0] == "advance":
                got = eng.advance_to(op[1])
                want = ref.advance_to(op[1]) if ref is not None else None
            else:
                got = eng.finish()
                want = ref.finish() if ref is not None else None
            outputs.append(got)
            if want is not None:
                compare_output(got, want, where)
        s = eng.stats()
        assert s["consumed"] == (
            s["aggregated"]
            + s["skipped_unknown_field"]
            + s["skipped_blank"]
            + s["skipped_duplicate"]
            + s["skipped_replayed"]
            + s["late"]
            + s["dead"]
        ), f"{where}: counters do not reconcile: {s}"
        if ref is not None:
            assert s == ref.stats.as_dict(), f"{where}: stats {s} != {ref.stats.as_dict()}"
    return outputs


def concat(outputs: list[gpuledger.Windows]) -> gpuledger.Windows:
    total = outputs[0]
    for w in outputs[1:]:
        total = total.concat(w)
    return total


# --- 1. engine == reference on random streams ----------------------------------------------


@settings(SETTINGS, max_examples=100)
@given(scenarios())
def test_random_streams_match_reference(sc: Scenario) -> None:
    eng, ref = sc.engine(), sc.reference()
    replay(sc, eng, ref)
    assert eng.stats()["consumed"] == len(sc.messages())


# --- 2. order inside a batch never matters -------------------------------------------------


@SETTINGS
@given(scenarios(batches=False), st.randoms(use_true_random=False))
def test_one_batch_in_any_order_gives_identical_tables(sc: Scenario, rnd: random.Random) -> None:
    msgs = sc.messages()
    results = []
    for _ in range(2):
        shuffled = msgs[:]
        rnd.shuffle(shuffled)
        e = sc.engine()
        e.push(shuffled, partition=0)
        results.append((e.poll().concat(e.finish()), e.stats()))
    (a, sa), (b, sb) = results
    assert a.gpu_windows.equals(b.gpu_windows)
    assert a.pool_windows.equals(b.pool_windows)
    assert sa == sb


@SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_reordering_inside_every_batch_changes_nothing(sc: Scenario, rnd: random.Random) -> None:
    reordered = Scenario(sc.window_s, sc.hopping, sc.lateness, sc.interval)
    for op in sc.ops:
        if op[0] == "push":
            msgs = op[2][:]
            rnd.shuffle(msgs)
            op = ("push", op[1], msgs, op[3])
        reordered.ops.append(op)
    a_out = replay(sc, sc.engine())
    b_eng = reordered.engine()
    b_out = replay(reordered, b_eng)
    for i, (a, b) in enumerate(zip(a_out, b_out, strict=True)):
        assert a.gpu_windows.equals(b.gpu_windows), f"closing call {i}"
        assert a.pool_windows.equals(b.pool_windows), f"closing call {i}"
        # offsets follow the shuffled order; everything else must be the same
        drop = ["offset"]
        la = Counter(map(str, rows_of(a.late_events.drop_columns(drop))))
        lb = Counter(map(str, rows_of(b.late_events.drop_columns(drop))))
        assert la == lb, f"closing call {i}"


# --- 3. every message ends in exactly one counter ------------------------------------------


@settings(SETTINGS, max_examples=60)
@given(scenarios())
def test_counters_reconcile(sc: Scenario) -> None:
    eng = sc.engine()
    outputs = replay(sc, eng)  # checks the identity after every call
    s = eng.stats()
    assert s["consumed"] == len(sc.messages())
    total = concat(outputs)
    assert total.dead_letters.num_rows == s["dead"]
    # every late message has at least one late_events row (one per family it missed)
    late_offsets = {(r["source"], r["partition"], r["offset"]) for r in rows_of(total.late_events)}
    assert len(late_offsets) >= s["late"]
    assert s["windows_emitted"] == len(
        {(r["window_start"], r["window_end"]) for r in rows_of(total.gpu_windows)}
    )


# --- 4. late events never change emitted rows ----------------------------------------------


def steady_stream(
    rnd: random.Random, n_gpus: int, start: int, end: int
) -> list[tuple[int, str, str, dict[str, str]]]:
    out = []
    for i in range(n_gpus):
        labels = {
            "UUID": f"GPU-late-{i}",
            "gpu": str(i),
            "modelName": MODELS[i % 3],
            "Hostname": "n0",
            "namespace": NAMESPACES[i % 4],
            "pod": f"p{i}",
            "container": "main",
        }
        for t in range(start, end):
            out.append((t, GR, f"{rnd.random():.3f}", labels))
            out.append((t, POWER, f"{rnd.uniform(60, 600):.1f}", labels))
            out.append((t, ENERGY, str(1_000_000 + t * 300_000), labels))
    return out


@SETTINGS
@given(
    st.sampled_from(FAMILIES),
    st.integers(0, 45),
    st.integers(2, 3),
    st.integers(0, 2**32),
)
def test_late_events_never_change_emitted_rows(
    families: tuple[list[int], list[tuple[int, int]]], lateness: int, n_gpus: int, seed: int
) -> None:
    rnd = random.Random(seed)
    sc = Scenario(families[0], families[1], lateness, 1.0)
    first = steady_stream(rnd, n_gpus, 0, 420)
    second = steady_stream(rnd, n_gpus, 420, 660)
    a, b, ref = sc.engine(), sc.engine(), sc.reference()
    batch1 = [message(START + t, n, v, lab) for t, n, v, lab in first]
    for e in (a, b, ref):
        e.push(batch1, source="t", partition=0)
    before_a, before_b = a.poll(), b.poll()
    compare_output(before_a, ref.poll(), "first poll")
    assert before_a.gpu_windows.equals(before_b.gpu_windows)
    emitted = {(r["window_start"], r["window_end"]) for r in rows_of(before_a.gpu_windows)}
    wm = a.watermark_ms
    assert wm is not None and emitted

    # Late data for emitted windows: other values at the same timestamps (duplicates with a
    # larger value), new timestamps, and a GPU never seen before.
    late = []
    for _ in range(rnd.randint(1, 40)):
        t, name, _, labels = rnd.choice(first)
        ts_ms = (START + t) * 1000
        if ts_ms >= wm:
            continue
        if rnd.random() < 0.3:
            labels = {**labels, "UUID": "GPU-newcomer", "pod": "late-pod"}
        value = "1.000" if name == GR else "999999999999" if name == ENERGY else "700.0"
        late.append(message(START + t, name, value, labels))
    a.push(late, source="late", partition=0, first_offset=10_000)
    ref.push(late, source="late", partition=0, first_offset=10_000)
    batch2 = [message(START + t, n, v, lab) for t, n, v, lab in second]
    for e in (a, b, ref):
        e.push(batch2, source="t", partition=0, first_offset=len(batch1))
    after_a, after_b = a.poll().concat(a.finish()), b.poll().concat(b.finish())
    want = ref.poll()
    want.extend(ref.finish())
    compare_output(after_a, want, "after late data")

    # No emitted window comes out again.
    again = {(r["window_start"], r["window_end"]) for r in rows_of(after_a.gpu_windows)}
    assert not (again & emitted)
    # Every late reading is listed once per family it missed, naming an emitted window, with
    # the watermark's distance past that window's end.
    families_n = len(sc.window_s) + len(sc.hopping)
    late_rows = rows_of(after_a.late_events)
    assert all(r["source"] == "late" for r in late_rows)
    assert all((r["window_start"], r["window_end"]) in emitted for r in late_rows)
    assert all(r["lateness_s"] == (wm - r["window_end"]) / 1000 for r in late_rows)
    per_msg = Counter(r["offset"] for r in late_rows)
    assert all(1 <= n <= families_n for n in per_msg.values())
    sa, sb = a.stats(), b.stats()
    assert sa["consumed"] - sb["consumed"] == len(late)
    assert sa["late"] - sb["late"] == sum(n == families_n for n in per_msg.values())
    # Data that missed every window changes nothing at all.
    if len(per_msg) == len(late) and all(n == families_n for n in per_msg.values()):
        assert after_a.gpu_windows.equals(after_b.gpu_windows)
        assert after_a.pool_windows.equals(after_b.pool_windows)


# --- 5. idle partitions and explicit watermark moves ---------------------------------------


def gpu_msgs(uuid: str, seconds: range, value: str = "0.500") -> list[bytes]:
    labels = {"UUID": uuid, "modelName": MODELS[0], "namespace": "ns-a", "pod": uuid.lower()}
    return [message(START + t, GR, value, labels) for t in seconds]


def ends(w: gpuledger.Windows) -> set[int]:
    return {r["window_end"] // 1000 - START for r in rows_of(w.gpu_windows)}


@SETTINGS
@given(st.integers(0, 60), st.integers(20, 120), st.integers(300, 900))
def test_idle_partition_stops_holding_the_watermark(lateness: int, slow: int, fast: int) -> None:
    sc = Scenario([60], [], lateness, 1.0)
    e, ref = sc.engine(), sc.reference()

    def step(op: str, *args: Any) -> gpuledger.Windows:
        got = getattr(e, op)(*args)
        want = getattr(ref, op)(*args)
        compare_output(got, want, op)
        assert e.stats() == ref.stats.as_dict()
        return got

    for r in (e, ref):
        r.push(gpu_msgs("GPU-FAST", range(fast)), partition=0)
        r.push(gpu_msgs("GPU-SLOW", range(slow)), partition=1)
    held = step("poll")
    # the slow partition holds the watermark back
    assert all(end <= slow - 1 - lateness for end in ends(held))
    assert e.watermark_ms == (START + slow - 1 - lateness) * 1000
    e.mark_idle(1)
    ref.mark_idle(1)
    released = step("poll")
    wm = fast - 1 - lateness
    assert e.watermark_ms == (START + wm) * 1000
    assert ends(released) == {end for end in range(60, wm + 1, 60) if end - 60 < fast} - ends(held)
    # The idle partition wakes up behind: its old data is late, the watermark does not move back.
    for r in (e, ref):
        r.push(gpu_msgs("GPU-SLOW", range(slow, slow + 5)), partition=1)
    woke = step("poll")
    assert woke.gpu_windows.num_rows == 0
    assert e.watermark_ms == (START + wm) * 1000
    # Once it catches up it holds the watermark again, from where it was.
    for r in (e, ref):
        r.push(gpu_msgs("GPU-SLOW", range(fast + 100, fast + 101)), partition=1)
        r.push(gpu_msgs("GPU-FAST", range(fast, fast + 400)), partition=0)
    step("poll")
    assert e.watermark_ms == (START + fast + 100 - lateness) * 1000
    step("finish")


@SETTINGS
@given(
    st.sampled_from(FAMILIES),
    st.integers(0, 600),
    st.lists(st.integers(-100, 1500), min_size=1, max_size=6),
)
def test_advance_to_closes_windows_without_new_data(
    families: tuple[list[int], list[tuple[int, int]]], gap_at: int, targets: list[int]
) -> None:
    # Data with a gap of 200 s; a lateness so large that data alone closes nothing.
    sc = Scenario(families[0], families[1], 3600, 1.0)
    e, ref = sc.engine(), sc.reference()
    seconds = [t for t in range(0, 900) if not gap_at <= t < gap_at + 200]
    for r in (e, ref):
        r.push(gpu_msgs("GPU-A", seconds), partition=0)
    assert e.poll().gpu_windows.num_rows == 0
    ref.poll()
    emitted: set[tuple[int, int]] = set()
    highest = None
    for target in targets:
        got = e.advance_to(START + target)
        compare_output(got, ref.advance_to(START + target), f"advance_to {target}")
        highest = target if highest is None else max(highest, target)
        assert e.watermark_ms == (START + highest) * 1000
        rows = rows_of(got.gpu_windows)
        spans = {(r["window_start"] // 1000 - START, r["window_end"] // 1000 - START) for r in rows}
        assert not spans & emitted, "a window was emitted twice"
        emitted |= spans
        # every window that ends by the watermark and holds data is out; nothing else is
        for s, end in spans:
            assert end <= highest
            assert any(s <= t < end for t in seconds), "a window without data was emitted"
    compare_output(e.finish(), ref.finish(), "finish")
    assert e.stats() == ref.stats.as_dict()


# --- pinned cases --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["poll_first", "all_idle"])
def test_closing_before_any_watermark_does_not_stop_windows(how: str) -> None:
    labels = {"UUID": "GPU-1", "modelName": MODELS[0], "namespace": "ns-a", "pod": "p"}
    msgs = [message(START + t, GR, "0.500", labels) for t in range(150)]
    e = Scenario([60], [], 0, 1.0).engine()
    if how == "poll_first":
        e.poll()  # a consumer's first poll usually finds no data yet
        e.push(msgs)
        out = e.poll().concat(e.finish())
    else:
        e.push(msgs)
        e.mark_idle(0)
        out = e.poll().concat(e.finish())
    ends = sorted(r["window_end"] // 1000 - START for r in rows_of(out.gpu_windows))
    assert ends == [60, 120, 180]


def test_pool_counts_a_gpu_once_per_bucket() -> None:
    # One GPU at u = 0.5 every second; its pod changes (same namespace, so same pool) at
    # second 11, inside the 2 s bucket [10, 12).
    sc = Scenario([60], [], 0, 2.0)
    labels = {"UUID": "GPU-1", "modelName": MODELS[0], "namespace": "ns-a", "container": "main"}
    msgs = [
        message(START + t, GR, "0.500", {**labels, "pod": "a" if t < 11 else "b"})
        for t in range(60)
    ]
    e = sc.engine()
    e.push(msgs)
    (pool,) = rows_of(e.finish().pool_windows)
    assert pool["gpus"] == 1
    assert pool["demand_peak_gpus"] == 0.5  # not 1.0: one GPU at 50 %, counted once
    assert pool["provisioned_mean_gpus"] == 1.0


@SETTINGS
@given(
    st.integers(61, 700),
    st.sampled_from([0.0, 0.01, 0.1]),
    st.integers(0, 2**32),
    st.sampled_from(FAMILIES),
)
def test_energy_of_consecutive_windows_adds_up(
    n: int, p_reset: float, seed: int, families: tuple[list[int], list[tuple[int, int]]]
) -> None:
    # A counter read every second, reset to a small value now and then: the tumbling windows
    # of each size add up to the whole increase (the boundary reading links them).
    rnd = random.Random(seed)
    counter, readings = rnd.randint(0, 10**9), []
    for i in range(n):
        counter = (
            rnd.randint(0, 5000) if rnd.random() < p_reset else counter + rnd.randint(0, 700_000)
        )
        readings.append(message(START + i, ENERGY, str(counter), {"UUID": "GPU-E"}))
    values = [float(json.loads(m)["value"]) for m in readings]
    total = sum(b - a if b >= a else b for a, b in itertools.pairwise(values))
    sc = Scenario(families[0], families[1], 0, 1.0)
    e, ref = sc.engine(), sc.reference()
    e.push(readings)
    ref.push(readings)
    got = e.finish()
    compare_output(got, ref.finish(), "finish")
    for size in sc.window_s:
        rows = [
            r
            for r in rows_of(got.gpu_windows)
            if r["window_end"] - r["window_start"] == size * 1000
        ]
        assert len(rows) == -(-n // size)  # every window holds data
        assert math.isclose(sum(r["energy_j"] for r in rows), total / 1000, rel_tol=1e-12)
