"""The engine's first slice against an independent plain-Python reference: decode
prometheus-kafka-adapter JSON and compute per-GPU tumbling-window utilization."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import datetime

import pyarrow as pa
import pytest

import gpuledger
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200  # 2026-11-28T12:00:00Z


def reference_windows(messages: list[bytes], window_s: int, interval_s: float) -> dict:
    """Plain-Python gpu_windows (no engine code): key -> (samples, busy_gpu_s, idle_gpu_s)."""
    points: dict[tuple, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for raw in messages:
        m = json.loads(raw)
        labels = m["labels"]
        ts = int(datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")).timestamp())
        start = ts - ts % window_s
        ns, pod = labels.get("namespace", ""), labels.get("pod", "")
        key = (start, start + window_s, labels["UUID"], ns, pod)
        field = points[key][m["name"]]
        field[ts] = max(field.get(ts, float("-inf")), float(m["value"]))
    out = {}
    for key, fields in points.items():
        if "DCGM_FI_PROF_GR_ENGINE_ACTIVE" in fields:
            us = list(fields["DCGM_FI_PROF_GR_ENGINE_ACTIVE"].values())
        else:
            us = [v / 100 for v in fields.get("DCGM_FI_DEV_GPU_UTIL", {}).values()]
        covered = min(len(us) * interval_s, window_s)
        busy = sum(us) / len(us) * covered if us else 0.0
        out[key] = (len(us), busy, covered - busy)
    return out


def engine_windows(table: pa.Table) -> dict:
    d = table.to_pydict()
    out = {}
    for i in range(table.num_rows):
        start = int(d["window_start"][i].timestamp())
        end = int(d["window_end"][i].timestamp())
        key = (start, end, d["gpu_uuid"][i], d["namespace"][i], d["pod"][i])
        assert key not in out, f"duplicate row {key}"
        out[key] = (d["samples"][i], d["busy_gpu_s"][i], d["idle_gpu_s"][i])
    return out


def run(messages: list[bytes], **engine: object) -> pa.Table:
    e = gpuledger.Engine(gpuledger.Config.from_dict({"engine": engine}))
    e.push(messages)
    return e.poll().concat(e.finish()).gpu_windows


def assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for k in want:
        assert got[k][0] == want[k][0], k
        assert got[k][1] == pytest.approx(want[k][1], rel=1e-12, abs=1e-9), k
        assert got[k][2] == pytest.approx(want[k][2], rel=1e-12, abs=1e-9), k


def test_matches_reference_on_simulated_fleet() -> None:
    msgs = list(prom_json_messages(default_fleet(), START, 600))
    table = run(msgs, window_s=[60])
    assert table.schema == gpuledger.schemas()["gpu_windows"]
    assert table.num_rows == 8 * 10
    assert_same(engine_windows(table), reference_windows(msgs, 60, 1.0))


def test_shuffled_and_duplicated_input_gives_same_rows() -> None:
    msgs = list(prom_json_messages(default_fleet(), START, 300))
    rng = random.Random(3)
    noisy = msgs + rng.sample(msgs, 500)
    rng.shuffle(noisy)
    a = run(msgs, window_s=[60])
    b = run(noisy, window_s=[60])
    assert a.equals(b)


def test_several_window_sizes_at_once() -> None:
    msgs = list(prom_json_messages(default_fleet()[:2], START, 600))
    table = run(msgs, window_s=[60, 300])
    got = engine_windows(table)
    want = reference_windows(msgs, 60, 1.0) | reference_windows(msgs, 300, 1.0)
    assert_same(got, want)


def test_gpu_util_fallback_and_sample_interval_cap() -> None:
    def m(ts: str, v: str) -> bytes:
        return (
            f'{{"timestamp":"{ts}","value":"{v}","name":"DCGM_FI_DEV_GPU_UTIL",'
            f'"labels":{{"UUID":"GPU-x","pod":""}}}}'
        ).encode()

    msgs = [m(f"2026-11-28T12:00:{s:02d}Z", "50") for s in range(0, 60, 2)]
    t = run(msgs, window_s=[60], sample_interval_s=2.0)
    assert t.column("samples").to_pylist() == [30]
    assert t.column("covered_s").to_pylist() == [60.0]
    assert t.column("util_mean").to_pylist() == [0.5]
    assert t.column("busy_gpu_s").to_pylist() == [30.0]


def test_bad_messages_become_dead_letters_with_offsets() -> None:
    good = next(prom_json_messages(default_fleet()[:1], START, 1))
    bad = [
        b'{"timestamp":"2026-11-28T12:00:01Z","val',  # truncated JSON
        b"\xff\xfe not utf8",
        good.replace(b'"value":"', b'"value":"NaN').replace(b"NaN0.", b"NaN"),
        b"[" * 10_000,
    ]
    e = gpuledger.Engine()
    e.push([good, *bad], source="t", partition=3, first_offset=100)
    dead = e.poll().dead_letters.to_pydict()
    assert list(zip(dead["partition"], dead["offset"], strict=True)) == [
        (3, 101),
        (3, 102),
        (3, 103),
        (3, 104),
    ]
    assert all(dead["reason"]) and dead["source"] == ["t"] * 4
    assert dead["raw"][0] == bad[0]
    s = e.stats()
    assert s["consumed"] == 5 and s["dead"] == 4 and s["aggregated"] == 1


def test_non_bytes_message_is_a_clear_error() -> None:
    e = gpuledger.Engine()
    with pytest.raises(gpuledger.InputError, match=r"messages\[1\] must be bytes"):
        e.push([b"{}", "text"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"window_s": []}, "engine.window_s"),
        ({"window_s": [0]}, "engine.window_s"),
        ({"allowed_lateness_s": -1.0}, "engine.allowed_lateness_s"),
        ({"sample_interval_s": float("nan")}, "engine.sample_interval_s"),
    ],
)
def test_invalid_config_names_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(gpuledger.ConfigError, match=key):
        gpuledger.Engine(gpuledger.Config.from_dict({"engine": kwargs}))


def test_core_engine_refuses_unknown_or_mistyped_settings() -> None:
    from gpuledger import _engine

    with pytest.raises(_engine.ConfigError, match="bogus: not an engine setting"):
        _engine.Engine(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(_engine.ConfigError, match="window_s"):
        _engine.Engine(window_s="sixty")  # type: ignore[arg-type]
