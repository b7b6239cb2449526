"""Columnar files: Parquet, read in Rust (label columns as dictionaries from the dictionary
pages, decoded ahead on a Rust thread, no Python object per batch), and Arrow IPC files and
streams, read with pyarrow. Compressed files are first spilled to an uncompressed temporary
copy (both formats need random access)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import pyarrow as pa

from gpuledger import _engine
from gpuledger.engine import PARQUET_BATCH_ROWS
from gpuledger.errors import InputError, ReplayInputError
from gpuledger.replay.chunk import ArrowRows, Chunk, ParquetRows
from gpuledger.replay.detect import ARROW_FILE_MAGIC, ARROW_STREAM_MAGIC, PARQUET_MAGIC
from gpuledger.replay.event_times import batch_time_ms
from gpuledger.replay.forms.base import FormReader
from gpuledger.replay.opened import FileView, OpenedFile

PARQUET_READ_AHEAD = 8
"""Parquet batches (of `PARQUET_BATCH_ROWS`) a Rust thread decodes ahead of the engine: two
replay chunks (8 MiB, ~4 batches each) so the next chunk is decoded on a second core while the
engine (or the shard engines) work on this one. With 2, half of each chunk was decoded while
replay waited (0.13-0.17 s of a 13.8M-row replay, 0.05-0.08 s with 8, 2026-12-07); on one
core 0 to 32 measured alike; deeper only holds more decoded batches (~3 MiB each) in memory."""


class ColumnarReader(FormReader):
    _spill: str | None = None
    _done = 0  # share of the file read, in stored bytes (estimated from rows or positions)

    def bytes_read(self) -> int:
        return min(self._done, self.spec.size)

    def close(self) -> None:
        self._done = self.spec.size
        if self._spill is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._spill)
            self._spill = None

    def first_ms(self, head: bytes, compression: str | None) -> int | None:
        """The smallest time of the first batch; unknown for a compressed file (it is not
        spilled just to look)."""
        if compression is not None:
            return None
        with contextlib.suppress(InputError, ReplayInputError, OSError, pa.ArrowException):
            if head.startswith(PARQUET_MAGIC):
                reader = _engine.ParquetBatches(self.spec.path, 1)
                for batch in reader:
                    return batch_time_ms(batch, largest=False)
            else:
                for batch in self._ipc_batches(self.spec.path, head):
                    return batch_time_ms(batch, largest=False)
        return None

    def chunks(self) -> Iterator[Chunk]:
        path = self._uncompressed_path()
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(PARQUET_MAGIC):
            yield from self._parquet_chunks(path)
            return
        rows = 0
        group: list[pa.RecordBatch] = []
        size = 0
        for batch in self._ipc_batches(path, head):
            group.append(batch)
            size += batch.nbytes
            if size >= self.spec.chunk_bytes:
                yield self._arrow_chunk(group, rows)
                rows += sum(b.num_rows for b in group)
                group, size = [], 0
        if group:
            yield self._arrow_chunk(group, rows)

    def _uncompressed_path(self) -> str:
        opened = OpenedFile(self.spec.path)
        try:
            if opened.compression is None:
                return self.spec.path
            fd, tmp = tempfile.mkstemp(prefix="gpuledger-replay-", suffix=".spill")
            self._spill = tmp
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(FileView(opened), out, 1 << 20)
            return tmp
        finally:
            opened.close()

    def _parquet_chunks(self, path: str) -> Iterator[Chunk]:
        try:
            reader = _engine.ParquetBatches(path, PARQUET_BATCH_ROWS, read_ahead=PARQUET_READ_AHEAD)
        except InputError as e:
            raise ReplayInputError(str(e).replace(path, self.spec.path)) from None
        total = max(1, reader.rows)
        rows = 0
        while True:
            try:
                chunk = reader.next_chunk(self.spec.chunk_bytes)
            except InputError as e:
                raise ReplayInputError(f"{self.spec.path}: {e}") from None
            if chunk is None:
                return
            yield Chunk(ParquetRows(chunk, self.spec.form, rows), chunk.end_ms, chunk.rows)
            rows += chunk.rows
            self._done = self.spec.size * rows // total

    def _ipc_batches(self, path: str, head: bytes) -> Iterator[pa.RecordBatch]:
        src = pa.OSFile(path, "rb")
        stored = max(1, os.path.getsize(path))
        try:
            if head.startswith(ARROW_FILE_MAGIC):
                reader = pa.ipc.open_file(src)
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i)
                    self._done = self.spec.size * src.tell() // stored
            elif head.startswith(ARROW_STREAM_MAGIC):
                for batch in pa.ipc.open_stream(src):
                    yield batch
                    self._done = self.spec.size * src.tell() // stored
            else:
                raise ReplayInputError(f"{self.spec.path}: not a Parquet or Arrow IPC file")
        except pa.ArrowInvalid as e:
            raise ReplayInputError(f"{self.spec.path}: {e}") from e
        finally:
            src.close()

    def _arrow_chunk(self, batches: list[pa.RecordBatch], first_row: int) -> Chunk:
        end = max((t for b in batches if (t := batch_time_ms(b)) is not None), default=None)
        rows = sum(b.num_rows for b in batches)
        return Chunk(ArrowRows(tuple(batches), self.spec.form, first_row), end, rows)
