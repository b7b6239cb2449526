"""One engine, three uses, identical results: a simulated trace written to files, loaded into
a real Kafka broker with `gpuledger produce` and consumed by the `gpuledger run` daemon, gives
the same window tables as `gpuledger replay` of the same files and as the library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from gpuledger.cli import main
from gpuledger.output.sink import read_table

TABLES = ("gpu_windows", "pool_windows", "latency_windows", "service_cost_windows", "idle_streaks")
CONFIG = """
[engine]
window_s = [60]
allowed_lateness_s = 10
idle_timeout_s = 2
[idle]
ttl_s = 300
[prices]
"NVIDIA H100 80GB HBM3" = 4.5
"NVIDIA A100-SXM4-80GB" = 3.0
"NVIDIA L40S" = 1.2
[services]
"chat-llm" = { slo_latency_ms = 200.0, slo_target = 0.95 }
"""


def rows(out: Path, table: str) -> list[str]:
    return sorted(map(repr, read_table(out, table).to_pylist()))


def test_daemon_on_produced_files_equals_replay_of_the_files(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    sim = tmp_path / "sim"
    r = CliRunner().invoke(
        main, ["simulate", "--scenario", "mixed", "--duration", "20m", "--out", str(sim)]
    )
    assert r.exit_code == 0, r.output
    tel, lat = make_topic(partitions=3), make_topic(partitions=2)
    for path, topic, key in (
        (sim / "telemetry.jsonl", tel, "gpu"),
        (sim / "requests.jsonl", lat, "none"),
    ):
        r = CliRunner().invoke(
            main,
            [
                "produce",
                str(path),
                "--topic",
                topic,
                "--bootstrap",
                kafka_bootstrap,
                "--key-by",
                key,
            ],
        )
        assert r.exit_code == 0, r.output

    config = tmp_path / "gpuledger.toml"
    config.write_text(CONFIG)
    daemon_config = tmp_path / "daemon.toml"
    daemon_config.write_text(
        CONFIG.replace("[engine]", "[engine]\nmax_future_s = 1e10")
        + f"""
[kafka]
bootstrap_servers = "{kafka_bootstrap}"
group_id = "g-{tel}"
[topics]
telemetry = "{tel}"
latency = "{lat}"
[output]
dir = "{tmp_path / "daemon-out"}"
[observability]
metrics_port = 0
log_format = "json"
"""
    )
    done = subprocess.run(
        [sys.executable, "-m", "gpuledger", "run", "--config", str(daemon_config), "--until-eof"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    r = CliRunner().invoke(
        main,
        [
            "replay",
            str(sim / "telemetry.jsonl"),
            str(sim / "requests.jsonl"),
            "--out",
            str(tmp_path / "replay-out"),
            "--config",
            str(config),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    for table in TABLES:
        got, want = rows(tmp_path / "daemon-out", table), rows(tmp_path / "replay-out", table)
        assert got == want, table
        assert got or table == "idle_streaks", f"{table} is empty"
    assert rows(tmp_path / "daemon-out", "idle_streaks"), "the forgotten experiments are found"
