"""Test helper: the daemon's own main loop on the in-process consumer
(`gpuledger.daemon.memory_source`) over `fleet_topics` named "tel" and "lat", and its output
as rows that compare across runs."""

from __future__ import annotations

from pathlib import Path

import gpuledger
from gpuledger.daemon import Daemon
from gpuledger.daemon.log import EventLog
from gpuledger.daemon.memory_source import MemoryConsumer
from gpuledger.output.sink import read_table

START = 1_795_867_200
TABLES = ("gpu_windows", "pool_windows", "latency_windows", "late_events", "dead_letters")


def memory_config(out: Path, *, idle_timeout_s: float, batch_messages: int) -> gpuledger.Config:
    """One-minute windows, 5 s lateness, a flush on every loop turn."""
    return gpuledger.Config.from_dict(
        {
            "engine": {
                "window_s": [60],
                "max_future_s": 1e10,
                "allowed_lateness_s": 5,
                "idle_timeout_s": idle_timeout_s,
            },
            "output": {"dir": str(out)},
            "observability": {"metrics_port": 0, "log_format": "json"},
            "run": {"batch_messages": batch_messages, "flush_interval_s": 0.0001},
            "topics": {"telemetry": "tel", "latency": "lat"},
        }
    )


def run_daemon(cfg: gpuledger.Config, consumer: MemoryConsumer, *, until_eof: bool) -> None:
    """Runs the daemon to its end (or the consumer's exception); its log goes next to the
    output directory."""
    out = Path(str(cfg.output.dir))
    daemon = Daemon(
        cfg,
        until_eof=until_eof,
        log=EventLog("json", open(out.parent / f"{out.name}.log", "a")),  # noqa: SIM115
        consumer_factory=lambda _settings: consumer,
    )
    assert daemon.run() == 0


def output_rows(out: Path) -> dict[str, list[str]]:
    """Every row of `TABLES` in `out`, sorted, as text."""
    return {t: sorted(map(repr, read_table(out, t).to_pylist())) for t in TABLES}
