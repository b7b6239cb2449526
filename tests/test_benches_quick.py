"""The benchmark suite runs in its quick mode, so it cannot rot; results are not asserted
here (machines are noisy), only that every contender ran and agreed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_suite_quick_mode_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benches" / "run_all.py"), "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "disagree" not in proc.stdout.lower(), proc.stdout[-3000:]


def test_bench_allocate_quick_mode_reconciles() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benches" / "bench_allocate.py"), "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "reconciled: True" in proc.stdout and "PASS" in proc.stdout, proc.stdout[-3000:]


def test_report_bench_quick_mode_runs() -> None:
    """benches/bench_report.py --quick: the report of 1 day x 64 GPUs, timed on one core and
    opened in headless Chromium (its figures are the bench table's, not asserted here)."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "benches" / "bench_report.py"), "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "report written in < 60 s on one core" in proc.stdout, proc.stdout[-3000:]


def test_spark_bench_quick_mode_runs() -> None:
    """benches/bench_spark.py --quick: gpuledger in Spark and the same gpu_windows in Spark
    SQL on one DataFrame in one local session agree, and the ratio is printed (not
    asserted: machines are noisy), with the hand-over floor (`--handover`)."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "benches" / "bench_spark.py"), "--quick", "--handover"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gpu_windows agree" in proc.stdout, proc.stdout[-3000:]
    assert "gpuledger in Spark / Spark SQL speed" in proc.stdout, proc.stdout[-3000:]
    assert "hand-over only, label strings" in proc.stdout, proc.stdout[-3000:]
