"""The driver's plan of a sharded backfill: the order replay's scheduler (`replay.run._schedule`)
would push the chunks of every file in, worked out from the first pass's per-chunk stats
(`gpuledger.spark.clocks`) instead of an engine, and after each chunk the watermark clock of
its file as one engine reading every row would hold it. Every shard follows the same plan, so
every shard closes the windows one engine would close, when it would close them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pyarrow as pa

from gpuledger.spark.rows import FileInfo

_LOWEST = -(2**63)


@dataclass(frozen=True)
class Push:
    """Push the shard's rows of chunk `chunk` of file `file_id`, then take the file's clock
    (`newest_ms`, `covered_ms`; None: nothing noted yet), register `expect` (files whose
    first event the data has reached), and poll."""

    file_id: int
    chunk: int
    newest_ms: int | None
    covered_ms: int | None
    expect: tuple[int, ...] = ()


@dataclass(frozen=True)
class Idle:
    """File `file_id` has ended: it stops holding the watermark back (no poll)."""

    file_id: int


Step = Push | Idle


@dataclass
class _File:
    file_id: int
    info: FileInfo
    first_ms: int | None = None
    chunks: list[tuple[int, int | None, int | None, int | None]] = field(default_factory=list)
    """(chunk number, replay's end estimate, newest noted, covered until)"""


def _files(stats: pa.Table, files: Mapping[int, FileInfo]) -> list[_File]:
    by_id: dict[int, _File] = {}
    columns = stats.sort_by([("file_id", "ascending"), ("chunk", "ascending")]).to_pydict()
    for i, file_id in enumerate(columns["file_id"]):
        info = files.get(file_id)
        if info is None:  # a file with rows but not listed: split_files says so in pass two
            continue
        f = by_id.setdefault(file_id, _File(file_id, info))
        if columns["has_first"][i]:
            f.first_ms = columns["first_ms"][i]
        f.chunks.append(
            (
                columns["chunk"][i],
                columns["end_ms"][i],
                columns["newest_ms"][i],
                columns["covered_ms"][i],
            )
        )
    return sorted(by_id.values(), key=lambda f: (f.info.index, f.info.source))


def plan(
    stats: pa.Table, files: Mapping[int, FileInfo], order: str, lateness_ms: int
) -> list[Step]:
    """The steps every shard runs, from the merged stats (one row per file and chunk, the
    columns of `clocks.STATS_DDL`)."""
    ordered = _files(stats, files)
    steps: list[Step] = []
    unstarted = list(ordered)
    waiting: list[_File] = []
    active: dict[int, Iterator[tuple[int, int | None, int | None, int | None]]] = {}
    now_ms: dict[int, int] = {}
    clock: dict[int, tuple[int | None, int | None]] = {}
    seen: int | None = None

    def first(f: _File) -> int:
        return f.first_ms if f.first_ms is not None else _LOWEST

    def next_file() -> _File:
        if order == "given":
            return next((f for f in ordered if f.file_id in active), None) or unstarted.pop(0)
        started = [f for f in ordered if f.file_id in active]
        cands = [(now_ms.get(f.file_id, _LOWEST), f.info.index, f) for f in started]
        cands += [(first(f), f.info.index, f) for f in unstarted + waiting]
        f = min(cands, key=lambda c: (c[0], c[1]))[2]
        if f in unstarted:
            unstarted.remove(f)
        elif f in waiting:
            waiting.remove(f)
        return f

    while unstarted or waiting or active:
        f = next_file()
        chunks = active.setdefault(f.file_id, iter(f.chunks))
        chunk = next(chunks, None)
        if chunk is None:
            del active[f.file_id]
            steps.append(Idle(f.file_id))
            continue
        number, end_ms, newest, covered = chunk
        old_newest, old_covered = clock.get(f.file_id, (None, None))
        newest = _later(old_newest, newest)
        covered = _later(old_covered, covered)
        clock[f.file_id] = (newest, covered)
        seen = _later(seen, newest)
        end = end_ms if end_ms is not None else seen
        if end is not None:
            now_ms[f.file_id] = max(now_ms.get(f.file_id, _LOWEST), end)
        expect: list[int] = []
        if order == "time" and seen is not None:
            for u in [u for u in unstarted if first(u) <= seen + lateness_ms]:
                unstarted.remove(u)
                expect.append(u.file_id)
                waiting.append(u)
        steps.append(Push(f.file_id, number, newest, covered, tuple(expect)))
    return steps


def _later(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
