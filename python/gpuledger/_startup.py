"""Pauses Python's cyclic garbage collector while `import gpuledger` runs, and `resume()`s it
at the end of `gpuledger/__init__.py`, the objects the import made frozen (`gc.freeze`).

Importing the package and its dependencies (pyarrow, numpy, the configuration's dataclasses)
creates a few hundred thousand objects that live as long as the process and no garbage; the
collector's passes over them, during the import, later and at the interpreter's exit, cost
about 12 % of a whole `gpuledger replay` of a 330 MB file (issue 22). Frozen, they are left
out of every collection. The collector's state before the import is restored. If the import
itself fails, the collector stays paused in that process (a failed `import gpuledger`
normally ends it)."""

import gc

_was_enabled = gc.isenabled()
gc.disable()


def resume() -> None:
    """Freezes what the import made and restores the collector's state from before it."""
    gc.freeze()
    if _was_enabled:
        gc.enable()
