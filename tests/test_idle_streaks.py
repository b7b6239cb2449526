"""Table `idle_streaks` (spec: forgotten allocations), with hand-computed figures: rows every
window while a (pod, GPU) streak lasts beyond the TTL, a final `ended` row, GPUs of one pod
apart, unallocated GPUs never, the driving window family, and seeding after a restart."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timezone

import pyarrow as pa
import pytest

import gpuledger
from gpuledger import _engine

START = 1_795_867_200  # 2026-11-28T12:00:00Z
GR = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
PRICE = 3.6  # $/GPU-hour: 0.001 $ per GPU-second

# (gpu, namespace, pod) -> utilization in minute m (None: the GPU sends nothing that minute)
Plan = dict[tuple[str, str, str], Callable[[int], "float | None"]]


def config(**engine: object) -> gpuledger.Config:
    return gpuledger.Config.from_dict(
        {
            "engine": {"sample_interval_s": 10, **engine},
            "prices": {"H100": PRICE},
            "teams": {"research": "ml-research"},
            "idle": {"threshold": 0.05, "ttl_s": 120},
        }
    )


def telemetry(plan: Plan, minutes: range) -> pa.Table:
    """Long-form samples every 10 s: 6 per GPU and minute, so `covered_s` is 60."""
    cols: dict[str, list[object]] = {
        k: [] for k in ("ts", "gpu", "field", "value", "model_name", "namespace", "pod")
    }
    for m in minutes:
        for (gpu, ns, pod), util in sorted(plan.items()):
            u = util(m)
            if u is None:
                continue
            for s in range(0, 60, 10):
                cols["ts"].append(datetime.fromtimestamp(START + 60 * m + s, timezone.utc))
                cols["gpu"].append(gpu)
                cols["field"].append(GR)
                cols["value"].append(u)
                cols["model_name"].append("H100")
                cols["namespace"].append(ns)
                cols["pod"].append(pod)
    return pa.table(cols)


def at(minute: int) -> datetime:
    return datetime.fromtimestamp(START + 60 * minute, timezone.utc)


def rows(table: pa.Table) -> list[tuple[object, ...]]:
    """(gpu, pod, streak_start min, as_of min, streak_s, idle_gpu_s, idle_cost_usd, ended)."""
    out = []
    for r in table.to_pylist():
        out.append(
            (
                r["gpu_uuid"],
                r["pod"],
                round((r["streak_start"].timestamp() - START) / 60),
                round((r["as_of"].timestamp() - START) / 60),
                r["streak_s"],
                round(r["idle_gpu_s"], 6),
                round(r["idle_cost_usd"], 9),
                r["ended"],
            )
        )
    return out


def minute_by_minute(engine: gpuledger.Engine, plan: Plan, minutes: range) -> dict[int, pa.Table]:
    """Pushes the input minute by minute: the idle_streaks rows of the window closed at the
    end of every minute."""
    out = {}
    for m in minutes:
        engine.push_arrow(telemetry(plan, range(m, m + 1)))
        out[m] = engine.advance_to(at(m + 1)).idle_streaks
    return out


# A forgotten notebook: G1 and G2 of pod research/nb idle at 1 % utilization; G2 gets busy in
# minute 4, G1 in minute 6. Pod research/short is idle for 2 minutes only (not longer than
# the 120 s TTL); a training pod is busy; an unallocated GPU idles all along.
PLAN: Plan = {
    ("G1", "research", "nb"): lambda m: 0.01 if m < 6 else 0.8,
    ("G2", "research", "nb"): lambda m: 0.01 if m < 4 else 0.5,
    ("G3", "research", "short"): lambda m: 0.0 if m < 2 else 0.6,
    ("G4", "prod", "train"): lambda m: 0.9,
    ("G5", "", ""): lambda m: 0.0,
}
IDLE_S = 60 - 0.01 * 60  # 59.4 idle GPU-seconds per idle minute (6 samples * 10 s)
IDLE_USD = IDLE_S / 3600 * PRICE  # 0.0594


def test_forgotten_notebook_rows_per_window_beyond_ttl_and_a_final_row() -> None:
    e = gpuledger.Engine(config())
    got = {m: rows(t) for m, t in minute_by_minute(e, PLAN, range(9)).items()}

    def row(gpu: str, n: int, ended: bool = False) -> tuple[object, ...]:
        return (gpu, "nb", 0, n, 60.0 * n, round(n * IDLE_S, 6), round(n * IDLE_USD, 9), ended)

    # 60 s and 120 s of idleness are not longer than the TTL: the first rows come with the
    # third idle window; a GPU's streak ends with its first busy window.
    assert got == {
        0: [],
        1: [],
        2: [row("G1", 3), row("G2", 3)],
        3: [row("G1", 4), row("G2", 4)],
        4: [row("G1", 5), row("G2", 4, ended=True)],
        5: [row("G1", 6)],
        6: [row("G1", 6, ended=True)],
        7: [],
        8: [],
    }
    t = e.finish().idle_streaks
    assert t.schema == gpuledger.schemas()["idle_streaks"]
    assert t.schema.field("as_of").type == pa.timestamp("ms", tz="UTC")


def test_attribution_columns_and_windows_property() -> None:
    e = gpuledger.Engine(config())
    e.push_arrow(telemetry(PLAN, range(4)))
    w = e.advance_to(at(3))
    assert w.idle_streaks is w.tables["idle_streaks"]
    first = w.idle_streaks.to_pylist()[0]
    assert {k: first[k] for k in ("namespace", "pod", "team", "gpu_uuid", "model_name")} == {
        "namespace": "research",
        "pod": "nb",
        "team": "ml-research",
        "gpu_uuid": "G1",
        "model_name": "H100",
    }
    assert first["streak_start"] == at(0)
    assert first["as_of"] == at(3)


def test_short_idle_pods_and_unallocated_gpus_give_no_rows() -> None:
    plan = {k: v for k, v in PLAN.items() if k[2] in ("short", "train", "")}
    e = gpuledger.Engine(config())
    e.push_arrow(telemetry(plan, range(10)))
    out = e.finish()
    assert out.gpu_windows.num_rows == 30
    assert out.idle_streaks.num_rows == 0


def test_a_gpu_that_stops_reporting_ends_its_streak() -> None:
    # G1 (pod nb) sends nothing from minute 4 on while G4 keeps reporting: the window of
    # minute 4 closes without a G1 row, which ends the streak.
    plan: Plan = {
        ("G1", "research", "nb"): lambda m: 0.01 if m < 4 else None,
        ("G4", "prod", "train"): lambda m: 0.9,
    }
    e = gpuledger.Engine(config())
    got = {m: rows(t) for m, t in minute_by_minute(e, plan, range(6)).items()}
    four = ("G1", "nb", 0, 4, 240.0, round(4 * IDLE_S, 6), round(4 * IDLE_USD, 9))
    assert got[3] == [(*four, False)]
    assert got[4] == [(*four, True)]
    assert got[5] == []


def test_only_the_smallest_tumbling_family_drives_streaks() -> None:
    data = telemetry(PLAN, range(12))

    def streaks(**engine: object) -> pa.Table:
        e = gpuledger.Engine(config(**engine))
        e.push_arrow(data)
        return e.finish().idle_streaks

    alone = streaks(window_s=[60])
    assert alone.num_rows == 8
    many = streaks(window_s=[300, 60], hopping=[{"size_s": 120, "slide_s": 60}])
    assert many.equals(alone)


def test_idle_settings_reach_the_engine() -> None:
    strict = gpuledger.Config.from_dict(
        {
            "engine": {"sample_interval_s": 10},
            "prices": {"H100": PRICE},
            "idle": {"threshold": 0.005, "ttl_s": 30},
        }
    )
    e = gpuledger.Engine(strict)
    e.push_arrow(telemetry(PLAN, range(3)))
    out = e.finish().idle_streaks
    # 1 % is not below 0.5 %: only G3 (0 %), idle for 2 windows, beyond a 30 s TTL from the
    # first window on, then busy.
    assert [(r[0], r[3], r[7]) for r in rows(out)] == [
        ("G3", 1, False),
        ("G3", 2, False),
        ("G3", 2, True),
    ]
    with pytest.raises(_engine.ConfigError, match=r"idle\.threshold"):
        _engine.Engine(idle_threshold=1.5)
    with pytest.raises(_engine.ConfigError, match=r"idle\.ttl_s"):
        _engine.Engine(idle_ttl_s=0)


def random_plan(seed: int, gpus: int = 8) -> Plan:
    rnd = random.Random(seed)
    plan: Plan = {}
    for g in range(gpus):
        # per minute: idle, busy or silent, in runs so that streaks form and end
        states: list[float | None] = []
        while len(states) < 40:
            kind = rnd.choices(["idle", "busy", "silent"], weights=[6, 3, 1])[0]
            u = {"idle": rnd.choice([0.0, 0.01, 0.04]), "busy": 0.7, "silent": None}[kind]
            states += [u] * rnd.randint(1, 8)
        pod = "" if g == 7 else f"p{g // 2}"
        plan[(f"G{g}", "ns" if pod else "", pod)] = states.__getitem__
    return plan


@pytest.mark.parametrize("cut", [3, 7, 13, 21])
@pytest.mark.parametrize("seed", [1, 2])
def test_seeded_restart_continues_like_an_uninterrupted_run(seed: int, cut: int) -> None:
    plan = random_plan(seed)
    families = {"window_s": [60, 300], "hopping": [{"size_s": 180, "slide_s": 60}]}
    # A: uninterrupted; the rows of windows closed after the cut
    a = gpuledger.Engine(config(**families))
    a.push_arrow(telemetry(plan, range(cut)))
    a.advance_to(at(cut))
    a.push_arrow(telemetry(plan, range(cut, 40)))
    after_a = a.finish().idle_streaks
    # B: the first engine writes the windows up to the cut, then stops; a new one is seeded
    # with what it wrote and reads the input from the cut on
    b1 = gpuledger.Engine(config(**families))
    b1.push_arrow(telemetry(plan, range(cut)))
    written = b1.advance_to(at(cut)).gpu_windows
    b2 = gpuledger.Engine(config(**families))
    shuffled = written.take(random.Random(seed).sample(range(written.num_rows), written.num_rows))
    assert b2.seed_idle_streaks(shuffled) == cut - sum(
        all(plan[k](m) is None for k in plan) for m in range(cut)
    )
    b2.push_arrow(telemetry(plan, range(cut, 40)))
    after_b = b2.finish().idle_streaks
    assert after_a.num_rows > 0
    assert after_b.equals(after_a)
    # without seeding, streaks would restart at the cut
    b3 = gpuledger.Engine(config(**families))
    b3.push_arrow(telemetry(plan, range(cut, 40)))
    if any(r[2] < cut for r in rows(after_a)):
        assert not b3.finish().idle_streaks.equals(after_a)


def test_seeding_reads_rows_written_twice_and_any_producer() -> None:
    import polars as pl

    e1 = gpuledger.Engine(config())
    e1.push_arrow(telemetry(PLAN, range(3)))
    written = e1.advance_to(at(3)).gpu_windows
    e2 = gpuledger.Engine(config())
    assert e2.seed_idle_streaks(pl.from_arrow(pa.concat_tables([written, written]))) == 3
    assert e2._core.idle_streaks_open == 2  # G1 and G2 of nb (G3 of short got busy)
    e2.push_arrow(telemetry(PLAN, range(3, 5)))
    got = rows(e2.advance_to(at(5)).idle_streaks)
    assert [(r[0], r[3], r[7]) for r in got] == [
        ("G1", 4, False),
        ("G2", 4, False),
        ("G1", 5, False),
        ("G2", 4, True),
    ]


def test_seeding_rejects_a_table_that_is_not_gpu_windows() -> None:
    e = gpuledger.Engine(config())
    with pytest.raises(_engine.InputError, match="gpu_windows: no column"):
        e.seed_idle_streaks(pa.table({"window_start": [1], "window_end": [2]}))
