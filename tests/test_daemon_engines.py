"""`[run] engines` (docs/daemon.md, "Engines: several cores"): the setting's validation, how the
assigned partitions are dealt over engines (stable, one engine per checkpoint within a slot), and
the threads that run the engines' work (every engine's call ends before the daemon goes on)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gpuledger.config import Config, ConfigError, load_config
from gpuledger.daemon.engine_threads import EngineThreads
from gpuledger.daemon.groups import engine_slots, group_partitions, usable_cores
from gpuledger.daemon.output import partition_set_id

TEL, LAT = "gpu-telemetry", "request-latency"


def test_engines_default_to_one_and_accept_zero_and_the_limit() -> None:
    assert Config().run.engines == 1
    assert Config.from_dict({"run": {"engines": 0}}).run.engines == 0
    assert Config.from_dict({"run": {"engines": 256}}).run.engines == 256


@pytest.mark.parametrize("value", [-1, 257, 1.5, "2", True])
def test_bad_engines_value_is_a_config_error_naming_the_key(value: object) -> None:
    with pytest.raises(
        ConfigError, match=r"^run\.engines: must be an integer >= 0 and <= 256, got "
    ) as info:
        Config.from_dict({"run": {"engines": value}})
    assert info.value.key == "run.engines"


def test_bad_engines_in_a_file_or_the_environment_names_it(tmp_path: Path) -> None:
    path = tmp_path / "gpuledger.toml"
    path.write_text("[run]\nengines = -2\n")
    with pytest.raises(ConfigError, match=r"^run\.engines: .*got -2"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match=r"^GPULEDGER_RUN__ENGINES: expected an integer"):
        load_config(None, env={"GPULEDGER_RUN__ENGINES": "all"})
    assert load_config(None, env={"GPULEDGER_RUN__ENGINES": "3"}).run.engines == 3


def test_slots_are_the_setting_or_the_cores_capped_by_the_partitions() -> None:
    assert engine_slots(1, 8) == 1
    assert engine_slots(2, 8) == 2
    assert engine_slots(16, 5) == 5
    assert engine_slots(4, 0) == 1
    assert engine_slots(0, 64) == min(usable_cores(), 64)
    assert engine_slots(0, 1) == 1


def resumed(
    tel: int, lat: int, floor: dict[tuple[str, int], int] | None = None
) -> list[tuple[tuple[str, int], int | None, int | None]]:
    keys = [(TEL, p) for p in range(tel)] + [(LAT, p) for p in range(lat)]
    floors = floor or {}
    return [(k, floors.get(k), None if k not in floors else 0) for k in keys]


def test_partitions_are_dealt_evenly_over_the_slots() -> None:
    groups = group_partitions(Config(), resumed(4, 4), 2)
    assert [sorted(g.partitions) for g in groups] == [
        sorted([(TEL, 0), (TEL, 2), (LAT, 0), (LAT, 2)]),
        sorted([(TEL, 1), (TEL, 3), (LAT, 1), (LAT, 3)]),
    ]
    assert [g.writer_id for g in groups] == [partition_set_id(g.partitions) for g in groups]
    assert len({g.writer_id for g in groups}) == 2
    # One slot is today's daemon: one engine, named by every partition.
    [one] = group_partitions(Config(), resumed(4, 4), 1)
    assert sorted(one.partitions) == sorted(k for k, _, _ in resumed(4, 4))


def test_odd_partition_counts_still_split_the_telemetry_evenly() -> None:
    groups = group_partitions(Config(), resumed(4, 3), 2)
    telemetry = [sum(t == TEL for t, _ in g.partitions) for g in groups]
    assert telemetry == [2, 2]
    assert sorted(len(g.partitions) for g in groups) == [3, 4]


def test_the_deal_depends_only_on_the_partitions_not_their_order() -> None:
    a = group_partitions(Config(), resumed(6, 2), 3)
    b = group_partitions(Config(), list(reversed(resumed(6, 2))), 3)
    assert [g.writer_id for g in a] == [g.writer_id for g in b]


def test_different_checkpoints_in_one_slot_get_their_own_engines() -> None:
    floors = {(TEL, 0): 1_000, (TEL, 2): 2_000, (LAT, 0): 1_000, (LAT, 2): 1_000}
    groups = group_partitions(Config(), resumed(4, 4, floors), 2)
    sets = [sorted(g.partitions) for g in groups]
    # Slot 0 holds TEL 0/2 and LAT 0/2: two watermarks, two engines; slot 1 one engine.
    assert sets == [
        sorted([(TEL, 0), (LAT, 0), (LAT, 2)]),
        [(TEL, 2)],
        sorted([(TEL, 1), (TEL, 3), (LAT, 1), (LAT, 3)]),
    ]
    assert [g.engine.watermark_ms for g in groups] == [1_000, 2_000, None]


def test_engine_threads_run_every_item_once_on_several_threads() -> None:
    threads = EngineThreads()
    seen: list[tuple[int, str]] = []
    lock = threading.Lock()
    arrived = threading.Barrier(3, timeout=10)

    def work(i: int) -> int:
        arrived.wait()  # passes only if three calls run at the same time
        with lock:
            seen.append((i, threading.current_thread().name))
        return i * 10

    try:
        assert threads.map(work, [0, 1, 2]) == [0, 10, 20]
        assert sorted(i for i, _ in seen) == [0, 1, 2]
        assert len({name for _, name in seen}) == 3
        assert threads.map(lambda i: i + 1, [5]) == [6]  # one engine: the calling thread
        assert threads.map(lambda i: i, []) == []
    finally:
        threads.shutdown()


def test_engine_threads_wait_for_every_engine_before_raising() -> None:
    threads = EngineThreads()
    finished: list[int] = []
    release = threading.Event()

    def work(i: int) -> int:
        if i == 0:
            raise RuntimeError("engine 0 failed")
        release.wait(5)
        finished.append(i)
        return i

    timer = threading.Timer(0.2, release.set)
    timer.start()
    try:
        with pytest.raises(RuntimeError, match="engine 0 failed"):
            threads.map(work, [0, 1, 2])
        assert sorted(finished) == [1, 2]  # the others had ended when the error came out
        with pytest.raises(ValueError, match="bad"):
            threads.map(lambda i: (_ for _ in ()).throw(ValueError("bad")) if i else i, [0, 1])
    finally:
        timer.cancel()
        threads.shutdown()


def test_engine_threads_start_returns_at_once_and_result_waits() -> None:
    threads = EngineThreads()
    release = threading.Event()
    ran: list[int] = []

    def work(i: int) -> int:
        release.wait(5)
        ran.append(i)
        return -i

    try:
        started = threads.start(work, [1, 2])
        assert ran == []  # still blocked: start did not wait
        release.set()
        assert started.result() == [-1, -2]
        assert sorted(ran) == [1, 2]
        assert threads.start(work, []).result() == []
        failing = threads.start(lambda i: 1 // i, [1, 0])
        with pytest.raises(ZeroDivisionError):
            failing.result()
    finally:
        release.set()
        threads.shutdown()
