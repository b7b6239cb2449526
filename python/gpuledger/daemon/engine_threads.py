"""Runs the daemon's engine work (pushing a batch, polling, closing) for every engine at once,
one thread per engine, so a daemon with several engines uses several cores.

The engine's Rust calls release the GIL while they decode and aggregate (`push_kafka` per
partition run, `poll`, `close_quiet`, `finish`); only reading the `Message` objects and
exporting the closed windows to Arrow hold it. `map` waits for every engine before it
returns; `start` returns at once (the daemon pushes a batch while it consumes the next) and
its `result()` waits. The daemon's bookkeeping (offsets, checkpoints, writes, commits) stays on
the main thread and sees every engine at the same point, and each engine is used by one thread
at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class EngineThreads:
    """`map(fn, engines)`: `fn` applied to every item, the first on the calling thread and the
    others on worker threads (grown to the number of items, kept for the next call)."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._workers = 0

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if len(items) <= 1:
            return [fn(x) for x in items]
        pool = self._grow(len(items) - 1)
        futures: list[Future[R]] = [pool.submit(fn, x) for x in items[1:]]
        try:
            first = fn(items[0])
        finally:
            # Every engine's call has ended before the caller goes on (or raises): no engine
            # is left running behind its back.
            wait(futures)
        return [first, *(f.result() for f in futures)]

    def start(self, fn: Callable[[T], R], items: Sequence[T]) -> Started[R]:
        """`fn` applied to every item on the worker threads; returns at once, so the caller
        can do other work (consume the next batch) while the engines run. The caller must
        not touch the engines until `Started.result()` has returned."""
        if not items:
            return Started([])
        pool = self._grow(len(items))
        return Started([pool.submit(fn, x) for x in items])

    def _grow(self, workers: int) -> ThreadPoolExecutor:
        if self._pool is None or self._workers < workers:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="gpuledger-engine")
            self._workers = workers
        return self._pool

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
            self._workers = 0


class Started(Generic[R]):
    """Engine calls running on the worker threads (`EngineThreads.start`)."""

    def __init__(self, futures: list[Future[R]]) -> None:
        self._futures = futures

    def result(self) -> list[R]:
        """Waits for every call, then returns their results in order (or raises the first
        error, once every call has ended)."""
        wait(self._futures)
        return [f.result() for f in self._futures]
