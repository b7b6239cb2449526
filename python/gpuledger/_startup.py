"""Pauses Python's cyclic garbage collector while `import gpuledger` runs, and `resume()`s it
at the end of `gpuledger/__init__.py`.

Importing the package and its dependencies (pyarrow, numpy, the configuration's dataclasses)
creates a few hundred thousand objects and no garbage; the collector's passes over them cost
about 8 % of a whole `gpuledger replay` of a 330 MB file (issue 22). The collector's state
before the import is restored. If the import itself fails, the collector stays paused in
that process (a failed `import gpuledger` normally ends it)."""

import gc

_was_enabled = gc.isenabled()
gc.disable()


def resume() -> None:
    """Restores the collector's state from before `import gpuledger`."""
    if _was_enabled:
        gc.enable()
