"""The interface every replay input reader offers: the time of the first event, the file's
chunks in order, how far it has read, and rows it rejected."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from gpuledger.replay.chunk import Chunk
from gpuledger.replay.opened import OpenedFile


@dataclass(frozen=True)
class InputSpec:
    """What a reader needs to know of its file: `chunk_bytes` of input per chunk (decompressed
    text, or Arrow buffer bytes), the columnar `form` (None: the engine detects it) and extra
    label columns that CSV must read as text."""

    path: str
    size: int
    chunk_bytes: int
    form: str | None = None
    text_columns: Sequence[str] = ()


class FormReader(ABC):
    """Reads one file of one input form from start to end in bounded chunks, so memory does
    not grow with the file. Not thread-safe; one pass."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self.rejected_rows: list[tuple[int | None, str]] = []  # (row number, text), first 20
        self.rejected_count = 0

    @abstractmethod
    def first_ms(self, head: bytes, compression: str | None) -> int | None:
        """The time of the file's first event (epoch ms; None: unknown), from the first
        decompressed bytes `head` (columnar readers look at the file itself)."""

    @abstractmethod
    def chunks(self) -> Iterator[Chunk]:
        """The file's chunks, in order."""

    @abstractmethod
    def bytes_read(self) -> int:
        """Bytes of the file, as stored, read so far (an estimate for columnar files)."""

    @abstractmethod
    def close(self) -> None:
        """Releases the file; `chunks` ends."""


class TextFormReader(FormReader):
    """A reader of a text form, streamed through one `OpenedFile` (decompressed on the fly)."""

    _opened: OpenedFile | None = None

    def open(self) -> OpenedFile:
        self._opened = OpenedFile(self.spec.path)
        return self._opened

    def bytes_read(self) -> int:
        return self._opened.position if self._opened is not None else 0

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
