"""The daemon's restart path without a broker: its main loop on the in-process consumer
(`gpuledger.daemon.memory_source`), stopped gracefully mid-stream and started again from the commits
it made, gives the same tables as one uninterrupted run, `idle_streaks` included (seeded from
the gpu_windows already written). The Kafka versions of this are tests/test_daemon_*.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fleet_topics import fleet_topics

import gpuledger
from gpuledger.daemon import Daemon
from gpuledger.daemon.log import EventLog
from gpuledger.daemon.memory_source import MemoryConsumer
from gpuledger.output.sink import read_table

START = 1_795_867_200
TABLES = ("gpu_windows", "pool_windows", "latency_windows", "service_cost_windows", "idle_streaks")


def config(out: Path) -> gpuledger.Config:
    return gpuledger.Config.from_dict(
        {
            "engine": {"window_s": [60], "max_future_s": 1e10, "allowed_lateness_s": 5},
            "idle": {"ttl_s": 600.0},
            "services": {"chat-llm": {"slo_latency_ms": 200.0, "slo_target": 0.95}},
            "output": {"dir": str(out)},
            "observability": {"metrics_port": 0, "log_format": "json"},
            "run": {"batch_messages": 1500, "flush_interval_s": 0.0001},
            "topics": {"telemetry": "tel", "latency": "lat"},
        }
    )


class StoppingConsumer(MemoryConsumer):
    """Asks the daemon to stop (as SIGTERM would) after `calls` consume calls."""

    def __init__(self, topics: Any, committed: dict[Any, Any], calls: int) -> None:
        super().__init__(topics)
        self.committed_at = committed
        self.calls = calls
        self.daemon: Daemon | None = None

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        self.calls -= 1
        if self.calls == 0 and self.daemon is not None:
            self.daemon.stop_signal = "TEST"
        return super().consume(num_messages, timeout)


def run(out: Path, topics: Any, committed: dict[Any, Any], *, stop_after: int | None) -> int:
    consumer = StoppingConsumer(topics, committed, stop_after or -1)
    daemon = Daemon(
        config(out),
        until_eof=stop_after is None,
        log=EventLog("json", open(out.parent / f"{out.name}.log", "a")),  # noqa: SIM115
        consumer_factory=lambda _settings: consumer,
    )
    consumer.daemon = daemon
    return daemon.run()


def tables(out: Path) -> dict[str, list[str]]:
    return {t: sorted(map(repr, read_table(out, t).to_pylist())) for t in TABLES}


@pytest.mark.parametrize("stops", [[7], [3, 9, 14], [20, 21]])
def test_stopping_and_restarting_gives_one_runs_tables(tmp_path: Path, stops: list[int]) -> None:
    topics = fleet_topics(START, 60 * 60, telemetry="tel", latency="lat", partitions=2)
    assert run(tmp_path / "once", topics, {}, stop_after=None) == 0
    committed: dict[Any, Any] = {}
    for calls in stops:
        assert run(tmp_path / "restarted", topics, committed, stop_after=calls) == 0
        assert committed, "the graceful stop committed"
    assert run(tmp_path / "restarted", topics, committed, stop_after=None) == 0
    want, got = tables(tmp_path / "once"), tables(tmp_path / "restarted")
    assert want["idle_streaks"], "the forgotten notebook must show up"
    for t in TABLES:
        assert got[t] == want[t], t
