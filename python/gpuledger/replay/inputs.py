"""Replay's input files: each file's compression, format and first event time, found by
`peek()`, then its chunks streamed by the reader of its form (`gpuledger.replay.forms`), in
bounded memory whatever the file's size (docs/replay.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from gpuledger.errors import ReplayInputError
from gpuledger.replay.chunk import Chunk
from gpuledger.replay.detect import HEAD_BYTES, detect_format
from gpuledger.replay.forms import FormReader, InputSpec, reader_for
from gpuledger.replay.opened import OpenedFile

__all__ = ["CHUNK_BYTES", "InputFile"]

CHUNK_BYTES = 8 << 20
"""Default bytes of input per chunk (decompressed, for text; Arrow buffer bytes, columnar)."""


@dataclass
class InputFile:
    """One input file: `peek()` detects its compression and format and the time of its first
    event (opening and closing the file); `chunks()` then streams it. Its `source` (the path)
    is its input partition."""

    path: str
    index: int
    format: str | None = None  # None: detect
    form: str | None = None  # columnar form for push_arrow; None: the engine detects it
    chunk_bytes: int = CHUNK_BYTES
    text_columns: Sequence[str] = ()
    size: int = 0
    compression: str | None = None
    first_ms: int | None = None
    _reader: FormReader | None = field(default=None, repr=False)
    _closed: bool = False

    def __post_init__(self) -> None:
        try:
            self.size = os.path.getsize(self.path)
        except OSError as e:
            raise ReplayInputError(f"{self.path}: {e.strerror or e}") from e

    @property
    def source(self) -> str:
        return self.path

    @property
    def bytes_read(self) -> int:
        """Bytes of the file (as stored) read so far."""
        if self._closed:
            return self.size
        return 0 if self._reader is None else min(self._reader.bytes_read(), self.size)

    @property
    def rejected_rows(self) -> list[tuple[int | None, str]]:
        """Rows the reader could not parse (CSV): (row number, text), the first 20."""
        return [] if self._reader is None else self._reader.rejected_rows

    @property
    def rejected_count(self) -> int:
        return 0 if self._reader is None else self._reader.rejected_count

    def peek(self) -> None:
        opened = OpenedFile(self.path)
        try:
            self.compression = opened.compression
            head = opened.read(HEAD_BYTES)
        finally:
            opened.close()
        self.format = self.format or detect_format(self.path, head)
        spec = InputSpec(self.path, self.size, self.chunk_bytes, self.form, self.text_columns)
        self._reader = reader_for(self.format, spec)
        self.first_ms = self._reader.first_ms(head, self.compression)

    def chunks(self) -> Iterator[Chunk]:
        """The file's chunks, in order; the file is closed when the iterator ends."""
        if self._reader is None:
            self.peek()
        assert self._reader is not None
        try:
            yield from self._reader.chunks()
        finally:
            self.close()

    def close(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.close()
