"""The `gpuledger` command line: version, help and the embedded demo."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

import gpuledger
from gpuledger.cli import main


def test_version_and_help() -> None:
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0
    assert r.output.strip() == f"gpuledger, version {gpuledger.__version__}"
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "demo" in r.output


def test_demo_prints_windows_from_decoded_messages() -> None:
    r = CliRunner().invoke(main, ["demo", "--minutes", "3", "--rows", "5"])
    assert r.exit_code == 0, r.output
    assert "2,880 prometheus-kafka-adapter JSON messages" in r.output
    assert "24 gpu_windows rows" in r.output
    assert "notebook-forgotten" in r.output or "... 19 more rows" in r.output


def test_console_script_is_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gpuledger.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and gpuledger.__version__ in out.stdout
