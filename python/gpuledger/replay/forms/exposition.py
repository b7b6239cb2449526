"""dcgm-exporter exposition text: whole lines per chunk (an unfinished last line waits for the
next chunk), scrapes kept open across chunks by the engine's `ExpositionState`; a scrape
without its own times takes the time in the file's name."""

from __future__ import annotations

from collections.abc import Iterator

from gpuledger import _engine
from gpuledger.replay import event_times
from gpuledger.replay.chunk import Chunk, ExpositionText
from gpuledger.replay.detect import time_from_name
from gpuledger.replay.forms.base import TextFormReader


class ExpositionReader(TextFormReader):
    def first_ms(self, head: bytes, compression: str | None) -> int | None:
        return event_times.exposition_ms(head, first=True) or time_from_name(self.spec.path)

    def chunks(self) -> Iterator[Chunk]:
        opened = self.open()
        state = _engine.ExpositionState(time_from_name(self.spec.path))
        carry = b""
        end: int | None = None
        while True:
            data = opened.read(self.spec.chunk_bytes)
            last = not data
            text = carry + data if carry else data
            if last and not text:
                return
            end = event_times.exposition_ms(text, first=False) or end
            # The engine reads whole lines unless `last`: the rest waits for the next chunk.
            cut = len(text) if last else text.rfind(b"\n") + 1
            carry = text[cut:]
            lines = text.count(b"\n", 0, cut)
            yield Chunk(ExpositionText(state, text[:cut], last), end, lines)
            if last:
                return
