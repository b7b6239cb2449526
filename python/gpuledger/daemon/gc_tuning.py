"""The cyclic garbage collector tuned for a loop that allocates batches of short-lived objects.

`Consumer.consume()` returns one GC-tracked `Message` per record. With CPython's default
thresholds (a young collection every 700 allocations), every message of a 20,000-message
batch is traversed by a young collection, survives it (the batch list holds it) and is
traversed again by the older generations: a profile of `gpuledger run` showed 16 % of the
main thread in the collector. With the young threshold above a few batches, most messages are
freed by reference counting before any collection sees them; `gc.freeze()` moves what start-up
imported (Arrow, click, prometheus-client) out of the older generations' traversals. Cycles
are still collected, only less often. The previous state is restored on exit, so a library
user's process is left as it was.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT_YOUNG = 700  # CPython's default first threshold


@contextmanager
def batched_gc(batch_objects: int) -> Iterator[None]:
    """Young collections every ~4 batches of `batch_objects` (never rarer than every
    1,000,000 allocations); start-up's objects frozen for the duration."""
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    young = min(max(DEFAULT_YOUNG, 4 * batch_objects), 1_000_000)
    gc.freeze()
    gc.set_threshold(max(before[0], young), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if frozen_before == 0:  # what the caller froze itself stays frozen
            gc.unfreeze()
