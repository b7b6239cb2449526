"""`import gpuledger` pauses the garbage collector only while it imports (`gpuledger._startup`):
afterwards the collector is in the state it was in before."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("before", ["enabled", "disabled"])
def test_the_collector_is_restored_after_import(before: str) -> None:
    code = (
        "import gc\n"
        f"{'gc.disable()' if before == 'disabled' else 'gc.enable()'}\n"
        "import gpuledger\n"
        "print(gc.isenabled())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(before == "enabled")
