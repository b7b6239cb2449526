"""JSON lines (prom_json, wide_json, latency_json): whole lines handed to the engine as one
buffer per chunk and cut into messages in Rust; line numbers are the messages' offsets.

An uncompressed file is read and cut into chunks in Rust (`_engine.LineFile`: no Python
`bytes` per chunk, no newline counting in Python); a compressed one is decompressed by pyarrow
and cut here, into the same chunks."""

from __future__ import annotations

from collections.abc import Iterator

from gpuledger import _engine
from gpuledger.replay import event_times
from gpuledger.replay.chunk import Chunk, Lines
from gpuledger.replay.forms.base import InputSpec, TextFormReader
from gpuledger.replay.opened import OpenedFile

TAIL_BYTES = 1 << 16
"""How much of a chunk's end is read for its last event time (a few hundred lines)."""


class JsonLinesReader(TextFormReader):
    def __init__(self, spec: InputSpec, format: str) -> None:
        super().__init__(spec)
        self.format = format
        self._file: _engine.LineFile | None = None

    def first_ms(self, head: bytes, compression: str | None) -> int | None:
        return event_times.first_json_ms(head)

    def bytes_read(self) -> int:
        return self._file.position if self._file is not None else super().bytes_read()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        super().close()

    def chunks(self) -> Iterator[Chunk]:
        opened = self.open()
        chunk_bytes = self.spec.chunk_bytes
        # A line longer than this is cut (it is a dead letter as too big anyway).
        max_line = max(chunk_bytes, 1 << 20) * 4
        if opened.compression is None:
            opened.close()
            self._opened = None
            yield from self._file_chunks(chunk_bytes, max_line)
            return
        carry = b""
        line_no = 1  # 1-based number of the first line of the next chunk
        while True:
            data = opened.read(chunk_bytes)
            if not data:
                if carry:  # an unterminated last line (and what followed a skipped line)
                    lines = carry.count(b"\n") + (not carry.endswith(b"\n"))
                    yield self._chunk(carry, line_no, lines)
                return
            buf = carry + data if carry else data
            cut = buf.rfind(b"\n") + 1
            if cut == 0:  # no complete line yet
                carry = buf
                if len(buf) > max_line:  # no newline in sight: cut, skip to the next
                    yield self._chunk(buf, line_no, 1)
                    line_no += 1
                    rest = _skip_line(opened)
                    if rest is None:
                        return
                    carry = rest
                continue
            lines = buf.count(b"\n", 0, cut)
            carry = buf[cut:]
            yield self._chunk(memoryview(buf)[:cut], line_no, lines)
            line_no += lines

    def _file_chunks(self, chunk_bytes: int, max_line: int) -> Iterator[Chunk]:
        """The chunks of an uncompressed file, read and cut in Rust."""
        self._file = _engine.LineFile(self.spec.path, chunk_bytes, max_line)
        while (chunk := self._file.next_chunk()) is not None:
            end = _last_ms(chunk.tail(TAIL_BYTES), len(chunk))
            yield Chunk(Lines(chunk, self.format, chunk.first_line), end, chunk.lines)

    def _chunk(self, text: bytes | memoryview, first: int, lines: int) -> Chunk:
        """Blank lines (empty, or only whitespace such as a lone CR) are not messages; the
        other lines keep their numbers as offsets."""
        end = _last_ms(bytes(text[-TAIL_BYTES:]), len(text))
        return Chunk(Lines(text, self.format, first), end, lines)


def _last_ms(tail: bytes, length: int) -> int | None:
    """The event time of the last lines of a chunk of `length` bytes ending in `tail`."""
    last_lines = tail.split(b"\n")
    if len(tail) < length:
        last_lines = last_lines[1:]  # the first may be cut
    return event_times.last_json_ms(last_lines)


def _skip_line(opened: OpenedFile) -> bytes | None:
    """Reads past the rest of an over-long line; returns what follows it (None: EOF)."""
    while True:
        data = opened.read(1 << 20)
        if not data:
            return None
        cut = data.find(b"\n")
        if cut >= 0:
            return data[cut + 1 :]
