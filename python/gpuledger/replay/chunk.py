"""A chunk of a replay input: a plain value saying what to push into the engine, the newest event
time it holds (estimated) and how many records it holds. `push_chunk` is the one place that
hands each kind of payload to the engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import pyarrow as pa

from gpuledger import _engine
from gpuledger.engine import Engine
from gpuledger.errors import InputError, ReplayInputError


@dataclass(frozen=True)
class Lines:
    """Whole JSON lines of `format`, cut into messages in Rust; line numbers from `first_line`
    are their offsets. `text` is any buffer (a `LineChunk` read in Rust, or bytes)."""

    text: bytes | memoryview | _engine.LineChunk
    format: str
    first_line: int


@dataclass(frozen=True)
class ExpositionText:
    """Whole lines of exposition text; `state` carries the open scrape across chunks, `last`
    ends the file."""

    state: _engine.ExpositionState
    text: bytes
    last: bool


@dataclass(frozen=True)
class ArrowRows:
    """Record batches of columnar input (`form`: long, wide, requests; None: detected), rows
    numbered from `first_row`."""

    batches: tuple[pa.RecordBatch, ...]
    form: str | None
    first_row: int


@dataclass(frozen=True)
class ParquetRows:
    """Batches decoded by the Rust Parquet reader, held in Rust (no Python object per batch)."""

    chunk: _engine.ParquetChunk
    form: str | None
    first_row: int


Payload: TypeAlias = Lines | ExpositionText | ArrowRows | ParquetRows


@dataclass(frozen=True)
class Chunk:
    """One bounded piece of an input file. `end_ms`: the largest event time it holds
    (estimated; None: unknown); `records`: lines or rows in it."""

    payload: Payload
    end_ms: int | None
    records: int


def push_chunk(
    engine: Engine,
    chunk: Chunk,
    source: str,
    row_shards: Sequence[pa.Array[Any]] | None = None,
) -> None:
    """Pushes `chunk` of the input `source` into `engine`. A batch whose columns cannot be read
    raises ReplayInputError naming `source` and its first row. `row_shards`: the shard of every
    row of each Arrow batch (`replay.workers`), for an engine made with `shard=`."""
    p = chunk.payload
    try:
        if isinstance(p, Lines):
            engine.push_buffer(p.text, format=p.format, source=source, first_offset=p.first_line)
        elif isinstance(p, ExpositionText):
            engine._core.push_exposition(p.state, p.text, p.last, source, 0)
        elif isinstance(p, ParquetRows):
            engine._core.push_parquet_chunk(p.chunk, p.form, source, 0, p.first_row)
        else:
            row = p.first_row
            for i, batch in enumerate(p.batches):
                ids = row_shards[i] if row_shards is not None else None
                try:
                    engine.push_arrow(
                        batch, form=p.form, source=source, first_row=row, row_shards=ids
                    )
                except InputError as e:
                    raise ReplayInputError(f"{source}: rows from {row}: {e}") from e
                row += batch.num_rows
    except InputError as e:
        raise ReplayInputError(f"{source}: {e}") from None
