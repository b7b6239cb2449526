"""Crashes around partitions a run reads nothing of: the restarted daemon writes every window
once. First, a partition that never held a message: it is committed at its end with its
engine's checkpoint, so the restart puts it in the same engine as before, whose files keep
their names; windows written but not yet committed at the crash are written again under the
same name, not twice under two (docs/daemon.md, exactly-once output). Second, a restart
whose first commits come before a partition's first fetch: the partition's committed
position must stand (the engine reports a resumed partition not read yet at its replay
bound, past the re-reads the next restart needs). Runs the daemon's own loop on the
in-process consumer; a crash is an exception out of `consume`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fleet_topics import fleet_topics
from memory_daemon import START, TABLES, memory_config, output_rows, run_daemon

from gpuledger.daemon.memory_source import MemoryConsumer
from gpuledger.output.sink import read_table


def run(out: Path, consumer: MemoryConsumer, until_eof: bool) -> None:
    run_daemon(
        memory_config(out, idle_timeout_s=0.05, batch_messages=2000), consumer, until_eof=until_eof
    )


class Crash(Exception):
    """The process dying: nothing after it runs."""


class CrashingConsumer(MemoryConsumer):
    """Fetches from every partition in turn (as librdkafka does). Keeps the commits until
    windows were written and `commits` more (the broker got them), drops the rest (the
    process died before they were sent), and crashes `crash_after` consume calls after the
    first dropped commit."""

    def __init__(self, topics: Any, out: Path, commits: int, crash_after: int) -> None:
        super().__init__(topics)
        self.out = out
        self.commits_left = commits
        self.crash_after = crash_after
        self.dropped = 0

    def commit(self, offsets: list[Any], asynchronous: bool = True) -> None:
        if self.commits_left >= 0:
            if read_table(self.out, "gpu_windows").num_rows:
                self.commits_left -= 1
            super().commit(offsets, asynchronous)
        else:
            self.dropped += 1

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        if self.dropped:
            self.crash_after -= 1
            if self.crash_after <= 0:
                raise Crash
        # The first call assigns (and reports the empty partitions' ends).
        out: list[Any] = super().consume(0, timeout) if self.pending_assign else []
        for key in list(self.positions):
            held = set(self.paused)
            self.paused.update(k for k in self.positions if k != key)
            try:
                out += super().consume(max(1, num_messages // len(self.positions)), timeout)
            finally:
                self.paused = held
        return out


@pytest.mark.parametrize(("commits", "crash_after"), [(0, 1), (2, 6)])
def test_crash_with_an_empty_partition_writes_each_window_once(
    tmp_path: Path, commits: int, crash_after: int
) -> None:
    topics = fleet_topics(START, 20 * 60, telemetry="tel", latency="lat", partitions=2)
    topics = {"tel": topics["tel"], "lat": [topics["lat"][0] + topics["lat"][1], []]}
    run(tmp_path / "once", MemoryConsumer(topics), until_eof=True)
    crashed = CrashingConsumer(topics, tmp_path / "crashed", commits, crash_after)
    with pytest.raises(Crash):
        run(tmp_path / "crashed", crashed, until_eof=False)
    assert ("lat", 1) in crashed.committed_at, "the empty partition was committed at its end"
    assert crashed.dropped, "windows were written after the last commit the broker got"
    restarted = MemoryConsumer(topics)
    restarted.committed_at = crashed.committed_at
    run(tmp_path / "crashed", restarted, until_eof=True)
    want, got = output_rows(tmp_path / "once"), output_rows(tmp_path / "crashed")
    for t in TABLES:
        assert got[t] == want[t], t


class HoldingConsumer(CrashingConsumer):
    """Serves nothing of `held` (a first fetch that has not come back), keeps every commit,
    and crashes at the `crash_at`-th consume call."""

    def __init__(self, topics: Any, out: Path, held: tuple[str, int], crash_at: int) -> None:
        super().__init__(topics, out, commits=10**9, crash_after=10**9)
        self.held = held
        self.calls = crash_at

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        self.calls -= 1
        if self.calls == 0:
            raise Crash
        paused = set(self.paused)
        self.paused.add(self.held)
        try:
            return super().consume(num_messages, timeout)
        finally:
            self.paused = paused


def test_commits_before_a_partitions_first_fetch_keep_its_position(tmp_path: Path) -> None:
    topics = fleet_topics(START, 20 * 60, telemetry="tel", latency="lat", partitions=2)
    run(tmp_path / "once", MemoryConsumer(topics), until_eof=True)
    out = tmp_path / "crashed"
    crashed = CrashingConsumer(topics, out, commits=2, crash_after=3)
    with pytest.raises(Crash):
        run(out, crashed, until_eof=False)
    committed = dict(crashed.committed_at)
    start, metadata = committed[("tel", 0)]
    assert f'"d":{start}' not in metadata, "the re-reads start below the replay bound"
    holding = HoldingConsumer(topics, out, ("tel", 0), crash_at=8)
    holding.committed_at = dict(committed)
    with pytest.raises(Crash):
        run(out, holding, until_eof=False)
    assert holding.committed_at[("tel", 0)][0] == start, "not read: its position stands"
    restarted = MemoryConsumer(topics)
    restarted.committed_at = holding.committed_at
    run(out, restarted, until_eof=True)
    want, got = output_rows(tmp_path / "once"), output_rows(out)
    for t in TABLES:
        assert got[t] == want[t], t
