"""`_engine.pyi` matches the compiled module: mypy's stubtest compares them (issue 18 item 10).

A signature changed in Rust without its stub (a parameter renamed, a default dropped, a class
added) fails here, not in a user's type checker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import gpuledger

PACKAGE = Path(gpuledger.__file__).parent


def stubtest(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs stubtest on `gpuledger._engine` in a fresh interpreter that imports this
    checkout's package (the one pytest imported)."""
    env = dict(os.environ, PYTHONPATH=str(PACKAGE.parent))
    return subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "gpuledger._engine", "--concise", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_stub_matches_the_compiled_module() -> None:
    result = stubtest()
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_drifted_stub_is_caught(tmp_path: Path) -> None:
    # The same check on a copy of the stub with one parameter renamed, found through
    # mypy_path ahead of the package: stubtest must name the mismatch.
    stubs = tmp_path / "gpuledger"
    stubs.mkdir()
    (stubs / "__init__.pyi").write_text("")
    shutil.copy(PACKAGE / "errors.py", stubs / "errors.pyi")
    text = (PACKAGE / "_engine.pyi").read_text()
    assert "first_offset: int = ...," in text
    (stubs / "_engine.pyi").write_text(
        text.replace("first_offset: int = ...,", "first: int = ...,")
    )
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\nmypy_path = {tmp_path}\n")
    result = stubtest("--mypy-config-file", str(config))
    assert result.returncode != 0
    assert "gpuledger._engine.Engine.push" in result.stdout, result.stdout + result.stderr
    assert '"first_offset"' in result.stdout
