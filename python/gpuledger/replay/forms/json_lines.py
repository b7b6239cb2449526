"""JSON lines (prom_json, wide_json, latency_json): whole lines handed to the engine as one
buffer per chunk and cut into messages in Rust; line numbers are the messages' offsets."""

from __future__ import annotations

from collections.abc import Iterator

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

    def first_ms(self, head: bytes, compression: str | None) -> int | None:
        return event_times.first_json_ms(head)

    def chunks(self) -> Iterator[Chunk]:
        opened = self.open()
        chunk_bytes = self.spec.chunk_bytes
        carry = b""
        line_no = 1  # 1-based number of the first line of the next chunk
        # A line longer than this is cut (it is a dead letter as too big anyway).
        max_line = max(chunk_bytes, 1 << 20) * 4
        while True:
            data = opened.read(chunk_bytes)
            if not data:
                if carry:  # an unterminated last line
                    yield self._chunk(carry, line_no, 1)
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

    def _chunk(self, text: bytes | memoryview, first: int, lines: int) -> Chunk:
        """Blank lines (empty, or only whitespace such as a lone CR) are not messages; the
        other lines keep their numbers as offsets."""
        tail = bytes(text[-TAIL_BYTES:])
        last_lines = tail.split(b"\n")
        if len(tail) < len(text):
            last_lines = last_lines[1:]  # the first may be cut
        end = event_times.last_json_ms(last_lines)
        return Chunk(Lines(text, self.format, first), end, lines)


def _skip_line(opened: OpenedFile) -> bytes | None:
    """Reads past the rest of an over-long line; returns what follows it (None: EOF)."""
    while True:
        data = opened.read(1 << 20)
        if not data:
            return None
        cut = data.find(b"\n")
        if cut >= 0:
            return data[cut + 1 :]
