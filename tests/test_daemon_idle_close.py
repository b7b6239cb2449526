"""Windows close without new data (docs/daemon.md, guarantee 3): a partition that goes silent stops
holding the watermark back after `idle_timeout_s`, and when every partition is quiet for
`idle_timeout_s` plus the lateness, every window the data covers is written, the last one
included: a reading at t covers [t, t + sample_interval_s). Data that arrives afterwards for a
written window is a `late_events` row (docs/daemon.md, guarantee 4)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
from confluent_kafka import Producer

from gpuledger.output.sink import list_files, read_table
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200  # 2026-11-28T12:00:00Z
MINUTES = 5


def window_ends(out: Path) -> set[int]:
    if not list_files(out, "gpu_windows"):
        return set()
    ends = read_table(out, "gpu_windows")["window_end"]
    return {int(t.timestamp()) for t in pc.unique(ends).to_pylist()}


def test_silent_and_quiet_partitions_do_not_hold_windows_back(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    tel, lat = make_topic(partitions=2), make_topic(partitions=1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    # Partition 1 sends one early sample and then nothing; partition 0 sends five minutes.
    msgs = list(prom_json_messages(default_fleet(), START, MINUTES * 60))
    producer.produce(tel, msgs[0], partition=1)
    for m in msgs[1:]:
        producer.produce(tel, m, partition=0)
    producer.flush()
    config = tmp_path / "gpuledger.toml"
    out = tmp_path / "out"
    config.write_text(
        f"""
[engine]
window_s = [60]
allowed_lateness_s = 3
idle_timeout_s = 2
max_future_s = 1e10
[kafka]
bootstrap_servers = "{kafka_bootstrap}"
group_id = "idle-{tel}"
[topics]
telemetry = "{tel}"
latency = "{lat}"
[output]
dir = "{out}"
[observability]
metrics_port = 0
log_format = "json"
[run]
flush_interval_s = 0.3
"""
    )
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpuledger", "run", "--config", str(config)], stderr=log
    )
    try:
        # The data ends at 12:04:59, whose reading covers up to 12:05:00: with every
        # partition quiet for 2 + 3 s, every window up to the one ending at 12:05:00 must be
        # written, although partition 1 and the latency topic never sent anything that
        # would move the watermark there.
        want = {START + 60 * k for k in range(1, MINUTES + 1)}
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and want != window_ends(out):
            time.sleep(0.5)
        assert want == window_ends(out), sorted(window_ends(out))
        assert proc.poll() is None, "the daemon keeps running"
        # A sample for 12:04:30 now is late: a late_events row for the last window, which
        # is written and stays as it is.
        late = msgs[16 * 60].replace(b"12:01:00", b"12:04:30")  # 16 messages a second
        assert b"12:04:30" in late
        delivered: list[int] = []
        producer.produce(
            tel, late, partition=0, on_delivery=lambda e, m: delivered.append(m.offset())
        )
        producer.flush()
        deadline = time.monotonic() + 30
        rows: list[dict[str, object]] = []
        while time.monotonic() < deadline and not rows:
            time.sleep(0.5)
            if list_files(out, "late_events"):
                rows = read_table(out, "late_events").to_pylist()
        assert [(r["source"], r["partition"], r["offset"]) for r in rows] == [
            (tel, 0, delivered[0])
        ]
        # Late for the last window; the quiet close put the watermark exactly at its end.
        assert int(rows[0]["window_end"].timestamp()) == START + 60 * MINUTES
        assert rows[0]["lateness_s"] == 0.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = (tmp_path / "daemon.log").read_text()
    assert '"event": "stopped"' in text
