"""The daemon's own observability and security against a real broker: the Prometheus endpoint
counts reconcile with what was produced, the human log has its status line, and a secret
given through the environment never appears in the logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Producer

from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200  # 2026-11-28T12:00:00Z
SECRET = "hunter2-do-not-log-me"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_metrics_reconcile_status_line_and_no_secret_in_logs(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    tel, lat = make_topic(partitions=2), make_topic(partitions=1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    good = list(prom_json_messages(default_fleet(), START, 120))
    for i, m in enumerate(good):
        producer.produce(tel, m, partition=i % 2)
    bad = [b'{"truncated', b"\xff\xfe not utf-8", b'{"timestamp": 5}']
    for m in bad:
        producer.produce(tel, m, partition=0)
    producer.produce(lat, b'{"ts": 1795867201.5, "service": "chat", "latency_ms": 12.5}')
    producer.flush()
    produced = len(good) + len(bad) + 1

    port = free_port()
    config = tmp_path / "gpuledger.toml"
    config.write_text(
        f"""
[engine]
window_s = [60]
allowed_lateness_s = 5
idle_timeout_s = 2
max_future_s = 1e9
[kafka]
bootstrap_servers = "{kafka_bootstrap}"
group_id = "obs-{tel}"
[topics]
telemetry = "{tel}"
latency = "{lat}"
[output]
dir = "{tmp_path / "out"}"
[observability]
metrics_port = {port}
log_format = "human"
status_interval_s = 0.5
[run]
flush_interval_s = 0.3
"""
    )
    env = {**os.environ, "GPULEDGER_KAFKA__CLIENT__SASL_PASSWORD": SECRET}
    log = tmp_path / "daemon.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gpuledger", "run", "--config", str(config)], stderr=err, env=env
        )
        try:
            metrics: dict[str, float] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(0.5)
                try:
                    metrics = scrape(port)
                except OSError:
                    continue
                if metrics.get("gpuledger_messages_consumed_total", 0) >= produced:
                    break
            assert metrics.get("gpuledger_messages_consumed_total") == produced, metrics
            skipped = sum(
                v for k, v in metrics.items() if k.startswith("gpuledger_messages_skipped_total{")
            )
            assert metrics["gpuledger_messages_consumed_total"] == (
                metrics["gpuledger_messages_aggregated_total"]
                + skipped
                + metrics["gpuledger_messages_late_total"]
                + metrics["gpuledger_messages_dead_total"]
            )
            assert metrics["gpuledger_messages_dead_total"] == len(bad)
            assert metrics["gpuledger_output_blocked"] == 0
            assert "gpuledger_batch_seconds_count" in metrics
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert SECRET not in text
    assert "sasl.password" in text and "***" in text  # the setting is there, masked
    status = [line for line in text.splitlines() if " status consumed " in line]
    assert status, text[-2000:]
    assert "stopped" in text
    # The final counters in the stop line reconcile too.
    stopped = next(line for line in text.splitlines() if " stopped " in line)
    fields = dict(kv.split("=", 1) for kv in stopped.split() if "=" in kv)
    assert int(fields["consumed"]) == produced
    assert int(fields["dead"]) == len(bad)
    json.dumps(fields)  # plain strings: machine-parsable as key=value too
