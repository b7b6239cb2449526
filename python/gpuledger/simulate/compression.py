"""Compressed line files: `.gz` and `.zst` by extension (or magic bytes when reading).

zstd goes through pyarrow's codec (gpuledger depends on pyarrow already: no zstandard
package needed); gzip writing through the standard library at level 3 (pyarrow's gzip is
about 8x slower here), with no time stamp or file name in the header, so the output is
byte-for-byte deterministic."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal

import pyarrow as pa

EXTENSIONS = {"none": "", "gz": ".gz", "zst": ".zst"}
Codec = Literal["gzip", "zstd"]
_CODEC: dict[str, Codec] = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_MAGIC: dict[bytes, Codec] = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}


def codec_of(path: str | Path) -> Codec | None:
    return _CODEC.get(Path(path).suffix.lower())


class GzipWriter:
    """gzip at level 3 without time stamp or name; closes the file it writes to."""

    def __init__(self, path: str | Path) -> None:
        self._raw = open(path, "wb")  # noqa: SIM115 (closed by close())
        self._gz = gzip.GzipFile(
            filename="", mode="wb", compresslevel=3, fileobj=self._raw, mtime=0
        )

    def write(self, data: bytes) -> int:
        return self._gz.write(data)

    def close(self) -> None:
        self._gz.close()
        self._raw.close()


def open_write(path: str | Path) -> pa.NativeFile | GzipWriter:
    """A writable stream, compressed when the name ends in .gz or .zst."""
    codec = codec_of(path)
    if codec == "gzip":
        return GzipWriter(path)
    raw = pa.OSFile(str(path), "wb")
    if codec is None:
        return raw
    return pa.CompressedOutputStream(raw, codec)


def _sniff(path: str | Path) -> Codec | None:
    with open(path, "rb") as f:
        head = f.read(4)
    for magic, codec in _MAGIC.items():
        if head.startswith(magic):
            return codec
    return None


def open_read(path: str | Path) -> BinaryIO | pa.NativeFile:
    codec = _sniff(path)
    if codec is None:
        return open(path, "rb")
    return pa.CompressedInputStream(pa.OSFile(str(path), "rb"), codec)


def read_lines(path: str | Path, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """Non-empty lines of a (possibly compressed) file, without their line ends."""
    f = open_read(path)
    try:
        rest = b""
        while True:
            chunk = f.read(chunk_bytes)
            if not chunk:
                break
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                line = line.rstrip(b"\r")
                if line:
                    yield line
        rest = rest.rstrip(b"\r")
        if rest:
            yield rest
    finally:
        f.close()
