"""An input file opened for replay: decompressed on the fly (gzip, zstd, bz2 by magic number),
with the position in the stored bytes for progress."""

from __future__ import annotations

import contextlib
import io

import pyarrow as pa

from gpuledger.errors import ReplayInputError
from gpuledger.replay.detect import HEAD_BYTES, detect_compression


class OpenedFile:
    """A file opened for reading, decompressed on the fly; `position` is in the file's own
    (compressed) bytes, for progress."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.raw = pa.OSFile(path, "rb")
        except OSError as e:
            raise ReplayInputError(f"{path}: {e}") from e
        try:
            magic = self.raw.read(4)
            self.raw.seek(0)
            self.compression = detect_compression(magic)
            self.stream: pa.NativeFile = (
                pa.CompressedInputStream(self.raw, self.compression)
                if self.compression
                else self.raw
            )
        except BaseException:
            self.raw.close()
            raise

    def read(self, n: int) -> bytes:
        try:
            return self.stream.read(n)
        except (OSError, pa.ArrowException) as e:
            raise ReplayInputError(f"{self.path}: reading failed: {e}") from e

    @property
    def position(self) -> int:
        try:
            return self.raw.tell()
        except (OSError, ValueError):  # closed
            return 0

    def close(self) -> None:
        with contextlib.suppress(OSError, pa.ArrowException):
            self.stream.close()
        with contextlib.suppress(OSError, pa.ArrowException):
            self.raw.close()


class FileView(io.RawIOBase):
    """A file-like view of an `OpenedFile` (for shutil and peeking at a CSV header)."""

    def __init__(self, opened: OpenedFile) -> None:
        self._opened = opened

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._opened.read(n if n >= 0 else 1 << 20)


def first_line(path: str) -> bytes:
    """The first line of `path` (decompressed), read from a handle of its own."""
    other = OpenedFile(path)
    try:
        head = other.read(HEAD_BYTES)
        while b"\n" not in head:
            more = other.read(HEAD_BYTES)
            if not more:
                break
            head += more
        return head.split(b"\n", 1)[0].rstrip(b"\r")
    finally:
        other.close()
