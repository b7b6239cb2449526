"""The `gpuledger` command line: version, help and the embedded demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import gpuledger
from gpuledger.cli import DEMO_START_S, main
from gpuledger.cli.demo import LATENCY, TELEMETRY, demo_config
from gpuledger.output.sink import read_table
from gpuledger.simulate.topics import simulated_topics


def test_version_and_help() -> None:
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0
    assert r.output.strip() == f"gpuledger, version {gpuledger.__version__}"
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "demo" in r.output


def test_demo_runs_the_daemon_loop_and_summarizes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["demo", "--minutes", "60", "--out", str(out)])
    assert r.exit_code == 0, r.output
    for line in ("Idle cost by team:", "Buffer cost by pool", "Headroom cost and SLO by service:"):
        assert line in r.output
    assert "team-research" in r.output and "chat-llm" in r.output
    assert "Forgotten experiments" in r.output and "exp-" in r.output
    # The demo allocates the fleet's simulated FOCUS bill: billed next to list, reconciled.
    assert "Billed GPU spend from the simulated FOCUS bill" in r.output
    assert "totals equal; bill rows whose parts differ: 0" in r.output
    assert read_table(out, "allocated_costs").num_rows > 0
    # The daemon's loop wrote the same rows the library computes from the same messages.
    topics = simulated_topics(DEMO_START_S, 60 * 60, telemetry=TELEMETRY, latency=LATENCY)
    cfg = demo_config(60, 1800.0)
    engine = gpuledger.Engine(cfg)
    for topic, parts in topics.items():
        fmt = "latency_json" if topic == LATENCY else "prom_json"
        for p, msgs in enumerate(parts):
            engine.push(
                [m for m, _ in msgs],
                format=fmt,
                source=topic,
                partition=p,
                timestamps=[ts for _, ts in msgs],
            )
    want = engine.finish()
    tables = ("gpu_windows", "pool_windows", "latency_windows", "service_cost_windows")
    for table in (*tables, "idle_streaks"):
        got = sorted(map(repr, read_table(out, table).to_pylist()))
        assert got == sorted(map(repr, want[table].to_pylist())), table


def test_console_script_is_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gpuledger.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and gpuledger.__version__ in out.stdout
