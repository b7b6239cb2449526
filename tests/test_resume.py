"""Engine restarts (`Engine.resume`, `Engine.positions`): the library half of the daemon's
exactly-once output. A run is cut at a checkpoint (its watermark and per-partition positions),
continues a while (output written but not committed), "crashes", and a new engine resumes
from the checkpoint, re-reading each partition from its commit offset with other batch sizes.
Every window row it emits must equal the uninterrupted run's, none may be missing, and the
late and dead rows of the re-read input must not come again below `replay_until`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import pyarrow as pa
import pytest

import gpuledger
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200  # 2026-11-28T12:00:00Z
TABLES = ("gpu_windows", "pool_windows", "latency_windows", "service_cost_windows")
KEYS = {
    "gpu_windows": ("window_start", "window_end", "gpu_uuid", "namespace", "pod"),
    "pool_windows": ("window_start", "window_end", "team", "model_name"),
    "latency_windows": ("window_start", "window_end", "service"),
    "service_cost_windows": ("window_start", "window_end", "service"),
}
Message = tuple[str, int, int, bytes]  # source, partition, offset, value


WINDOWS = [10, 30]


def config() -> gpuledger.Config:
    return gpuledger.Config.from_dict(
        {
            "engine": {"window_s": WINDOWS, "allowed_lateness_s": 2, "max_future_s": 10**9},
            "services": {
                "chat": {"slo_latency_ms": 200.0, "slo_target": 0.95},
                "pods": [{"namespace": "team-chat", "pattern": "vllm-chat-*", "service": "chat"}],
            },
        }
    )


def partitions(seconds: int, seed: int) -> dict[tuple[str, int], list[bytes]]:
    """Three telemetry partitions (GPUs spread over them, in time order, with a few bad and
    very late messages) and one request partition."""
    rng = random.Random(seed)
    fleet = default_fleet()
    parts: dict[tuple[str, int], list[bytes]] = {("tel", p): [] for p in range(3)}
    per_second = 2 * len(fleet)
    for i, m in enumerate(prom_json_messages(fleet, START, seconds)):
        gpu = (i % per_second) // 2
        parts[("tel", gpu % 3)].append(m)
        if rng.random() < 0.004:
            parts[("tel", gpu % 3)].append(b'{"timestamp":"2026-11-28T12:00:0')  # truncated
        if rng.random() < 0.002 and i > per_second * 120:
            parts[("tel", gpu % 3)].append(m.replace(b"T12:0", b"T11:0"))  # an hour late
    reqs = []
    for t in range(START, START + seconds):
        for _ in range(rng.randint(0, 4)):
            ts = t + rng.random()
            latency = rng.lognormvariate(4.5, 0.6)
            pod = rng.choice(["vllm-chat-0", "vllm-chat-1"])
            reqs.append(
                json.dumps(
                    {
                        "ts": round(ts, 3),
                        "service": "chat",
                        "namespace": "team-chat",
                        "pod": pod,
                        "latency_ms": round(latency, 2),
                        "status": 200,
                    }
                ).encode()
            )
        if rng.random() < 0.01:
            reqs.append(b'{"ts": 1, "service": "chat", "latency_ms": -5}')
    parts[("req", 0)] = reqs
    return parts


def interleave(
    parts: dict[tuple[str, int], list[bytes]], start: dict[tuple[str, int], int], batch: int
) -> Iterator[tuple[tuple[str, int], int, list[bytes]]]:
    """Round-robin batches from each partition, from its start offset."""
    pos = dict(start)
    while True:
        progressed = False
        for key, msgs in parts.items():
            if pos[key] < len(msgs):
                chunk = msgs[pos[key] : pos[key] + batch]
                yield key, pos[key], chunk
                pos[key] += len(chunk)
                progressed = True
        if not progressed:
            return


def push(engine: gpuledger.Engine, key: tuple[str, int], first: int, chunk: list[bytes]) -> None:
    fmt = "latency_json" if key[0] == "req" else "prom_json"
    engine.push(chunk, format=fmt, source=key[0], partition=key[1], first_offset=first)


def rows(windows: list[gpuledger.Windows], table: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for w in windows:
        out.extend(w[table].to_pylist())
    return out


def keyed(table: str, rs: list[dict[str, object]]) -> dict[tuple[object, ...], dict[str, object]]:
    out: dict[tuple[object, ...], dict[str, object]] = {}
    for r in rs:
        k = tuple(r[c] for c in KEYS[table])
        assert k not in out, f"{table}: {k} emitted twice"
        out[k] = r
    return out


def offsets_of(rs: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    return sorted((r["source"], r["partition"], r["offset"]) for r in rs)


@pytest.mark.parametrize("seed", range(6))
def test_restart_from_a_checkpoint_equals_one_run(seed: int) -> None:
    rng = random.Random(seed)
    parts = partitions(seconds=240, seed=seed)
    zero = dict.fromkeys(parts, 0)

    # The uninterrupted run.
    full = gpuledger.Engine(config())
    one_run: list[gpuledger.Windows] = []
    for key, first, chunk in interleave(parts, zero, 50):
        push(full, key, first, chunk)
        one_run.append(full.poll())
    one_run.append(full.finish())

    # A run cut at a checkpoint, continued a while, then crashed.
    crashed = gpuledger.Engine(config())
    batches = list(interleave(parts, zero, 50))
    cut = rng.randrange(len(batches) // 4, len(batches) // 2)
    crash = rng.randrange(cut, cut + len(batches) // 4)
    written: list[gpuledger.Windows] = []
    checkpoint: tuple[int | None, list[tuple[str, int, int, int]]] | None = None
    late_dead_before_cut: list[gpuledger.Windows] = []
    for i, (key, first, chunk) in enumerate(batches[:crash]):
        push(crashed, key, first, chunk)
        written.append(crashed.poll())
        if i == cut:
            checkpoint = (crashed.watermark_ms, crashed.positions())
            late_dead_before_cut = list(written)
    assert checkpoint is not None
    watermark, positions = checkpoint

    # The restart: from the checkpoint alone, other batch sizes.
    resumed = gpuledger.Engine(config())
    resumed.resume([(s, p, nxt, watermark) for s, p, _, nxt in positions])
    start = dict(zero)
    for s, p, commit, _ in positions:
        start[(s, p)] = commit
    after: list[gpuledger.Windows] = []
    for key, first, chunk in interleave(parts, start, 37):
        push(resumed, key, first, chunk)
        after.append(resumed.poll())
    after.append(resumed.finish())
    st = resumed.stats()
    assert st["consumed"] == sum(st[k] for k in st if k not in ("consumed", "windows_emitted")), st

    for table in TABLES:
        want = keyed(table, rows(one_run, table))
        before = keyed(table, rows(written, table))
        again = keyed(table, rows(after, table))
        # Windows written before the crash and emitted again must be identical ...
        for k in before.keys() & again.keys():
            assert before[k] == again[k], f"{table} {k} differs after the restart"
        # ... and together nothing is missing, nothing extra, every value equal.
        union = {**before, **again}
        assert union.keys() == want.keys(), f"{table}: windows differ"
        for k, r in want.items():
            assert union[k] == r, f"{table} {k}"
        assert len(want) > 0

    # Late and dead rows: those written up to the checkpoint plus those of the restart are
    # exactly the uninterrupted run's (the restart does not repeat any below replay_until).
    for table in ("late_events", "dead_letters"):
        want_offsets = offsets_of(rows(one_run, table))
        got = offsets_of(rows(late_dead_before_cut, table) + rows(after, table))
        assert got == want_offsets, table
    assert offsets_of(rows(one_run, "dead_letters"))
    assert offsets_of(rows(one_run, "late_events"))


def test_positions_hold_back_to_the_oldest_open_event() -> None:
    engine = gpuledger.Engine(config())
    parts = partitions(seconds=60, seed=1)
    msgs = parts[("tel", 0)]
    engine.push(msgs, source="tel", partition=0)
    engine.poll()
    [(source, partition, commit, nxt)] = engine.positions()
    assert (source, partition, nxt) == ("tel", 0, len(msgs))
    # Windows of 10 s and 30 s, 2 s lateness, 60 s of data: the last open window started at
    # 30 s, so its first event (and the previous pane's, kept for energy) is held.
    assert 0 < commit < len(msgs)
    assert engine.finish().gpu_windows.num_rows > 0
    [(_, _, commit_after, _)] = engine.positions()
    assert commit_after == len(msgs)


def test_an_expected_partition_holds_the_watermark_until_it_sends_or_idles() -> None:
    engine = gpuledger.Engine(config())
    engine.expect_partition(1, source="tel")
    msgs = partitions(seconds=60, seed=2)[("tel", 0)]
    engine.push(msgs, source="tel", partition=0)
    assert engine.poll().gpu_windows.num_rows == 0  # partition 1 has sent nothing yet
    engine.mark_idle(1, source="tel")
    assert engine.poll().gpu_windows.num_rows > 0


def test_timestamps_are_received_at_and_the_future_check_reference() -> None:
    engine = gpuledger.Engine(config())
    future = b'{"ts": 4102444800.0, "service": "chat", "latency_ms": 5}'  # 2100-01-01
    engine.push([b"{oops", future], format="latency_json", timestamps=[1_000_000, 4102444800000])
    dead = engine.poll().dead_letters
    assert dead.num_rows == 1  # the 2100 event is not in the future of its own receive time
    assert dead.column("received_at").cast(pa.int64()).to_pylist() == [1_000_000]


@pytest.mark.parametrize("seed", range(4))
def test_a_partition_moving_between_instances_is_counted_once(seed: int) -> None:
    """Two instances split the partitions; at a rebalance both write what is final and
    checkpoint, then each resumes the partitions it now owns from their checkpoints, one
    engine per distinct written-through watermark. Every GPU lives in one partition, so the
    union of the instances' gpu_windows rows is exactly one run's."""
    rng = random.Random(seed)
    parts = partitions(seconds=240, seed=seed)
    zero = dict.fromkeys(parts, 0)
    one = gpuledger.Engine(config())
    want: list[gpuledger.Windows] = []
    for key, first, chunk in interleave(parts, zero, 50):
        push(one, key, first, chunk)
        want.append(one.poll())
    want.append(one.finish())

    owners = {"a": [("tel", 0), ("tel", 1), ("req", 0)], "b": [("tel", 2)]}
    engines = {name: gpuledger.Engine(config()) for name in owners}
    for name, keys in owners.items():
        for s, p in keys:
            engines[name].expect_partition(p, source=s)
    got: list[gpuledger.Windows] = []
    checkpoints: dict[tuple[str, int], tuple[int, int, int | None]] = {}
    batches = list(interleave(parts, zero, 40))
    cut = rng.randrange(len(batches) // 4, 3 * len(batches) // 4)
    for key, first, chunk in batches[:cut]:
        owner = next(n for n, ks in owners.items() if key in ks)
        push(engines[owner], key, first, chunk)
        got.append(engines[owner].poll())
    for e in engines.values():  # the revoke: write what is final, checkpoint
        got.append(e.poll())
        for s, p, commit, nxt in e.positions():
            checkpoints[(s, p)] = (commit, nxt, e.watermark_ms)
    # Each instance runs one engine per distinct checkpoint watermark among the partitions
    # it now owns (as the daemon does: gpuledger.daemon.groups).
    owners = {"a": [("tel", 0), ("req", 0)], "b": [("tel", 1), ("tel", 2)]}
    groups: dict[tuple[str, int | None], list[tuple[str, int]]] = {}
    for name, keys in owners.items():
        for k in keys:
            groups.setdefault((name, checkpoints.get(k, (0, 0, None))[2]), []).append(k)
    engines = {g: gpuledger.Engine(config()) for g in groups}
    start = dict(zero)
    for g, keys in groups.items():
        resume = []
        for k in keys:
            commit, nxt, wm = checkpoints.get(k, (0, 0, None))
            start[k] = commit
            resume.append((k[0], k[1], nxt, wm))
        engines[g].resume(resume)
    for key, first, chunk in interleave(parts, start, 29):
        owner = next(g for g, ks in groups.items() if key in ks)
        push(engines[owner], key, first, chunk)
        got.append(engines[owner].poll())
    for e in engines.values():
        got.append(e.finish())

    union = keyed("gpu_windows", rows(got, "gpu_windows"))  # asserts no key twice
    assert union == keyed("gpu_windows", rows(want, "gpu_windows"))
    for table in ("late_events", "dead_letters"):
        assert offsets_of(rows(got, table)) == offsets_of(rows(want, table)), table
