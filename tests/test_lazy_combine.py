"""`import gpuledger` does not load combine (replay and the daemon start without it), yet
`gpuledger.combine`, `from gpuledger.combine import ...` and `gpuledger.combine_tables` /
`combine_dirs` are what they were: `gpuledger.output.combine` and its functions."""

from __future__ import annotations

import subprocess
import sys


def test_combine_is_loaded_on_first_use_and_is_the_same_module() -> None:
    code = (
        "import sys\n"
        "import gpuledger\n"
        "print('loaded at import:', 'gpuledger.output.combine' in sys.modules)\n"
        "from gpuledger.combine import combine_tables\n"
        "import gpuledger.combine\n"
        "import gpuledger.output.combine as real\n"
        "print('same:', gpuledger.combine is real, combine_tables is real.combine_tables,\n"
        "      gpuledger.combine_tables is real.combine_tables,\n"
        "      gpuledger.combine_dirs is real.combine_dirs,\n"
        "      sys.modules['gpuledger.combine'] is real)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["loaded at import: False", "same: True True True True True"]


def test_attribute_access_loads_it_too() -> None:
    code = "import gpuledger\nprint(gpuledger.combine.__name__)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "gpuledger.output.combine"
