"""The daemon's garbage-collector tuning: in force while it runs, undone after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gpuledger.daemon.gc_tuning import batched_gc


@pytest.fixture(autouse=True)
def nothing_frozen() -> Iterator[None]:
    """`import gpuledger` freezes what it imported (_startup.py); these tests start from a
    collector with nothing frozen, as a library user's process may be, and leave the import's
    freeze in place after."""
    gc.unfreeze()
    yield
    gc.freeze()


def test_thresholds_raised_and_startup_frozen_then_restored() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with batched_gc(20_000):
        assert gc.get_threshold() == (max(before[0], 80_000), *before[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_young_threshold_bounded_and_never_lowered() -> None:
    before = gc.get_threshold()
    with batched_gc(1):
        assert gc.get_threshold()[0] == max(before[0], 700)
    with batched_gc(10_000_000):
        assert gc.get_threshold()[0] == max(before[0], 1_000_000)
    assert gc.get_threshold() == before


def test_what_the_caller_froze_stays_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with batched_gc(20_000):
            pass
        assert gc.get_freeze_count() >= frozen > 0
    finally:
        gc.unfreeze()


def test_restored_when_the_body_raises() -> None:
    before = gc.get_threshold()
    try:
        with batched_gc(20_000):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
