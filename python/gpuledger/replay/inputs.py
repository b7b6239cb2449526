"""Input files for `gpuledger replay`: path expansion, compression and format detection, and
streaming readers that hand the engine bounded chunks (docs/replay.md).

Every reader reads one file from start to end in chunks of about `chunk_bytes` (text) or
record batches adding up to about that much (columnar), so memory does not grow with the
file. A chunk knows the largest event time it holds (estimated from its last records, parsed
in Python: one record per chunk, not per message), which `gpuledger.replay` uses to merge
several files by event time.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import queue
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from gpuledger import _engine
from gpuledger.engine import PARQUET_BATCH_ROWS
from gpuledger.errors import ReplayInputError

T = TypeVar("T")

__all__ = [
    "CHUNK_BYTES",
    "FORMATS",
    "JSON_FORMATS",
    "Chunk",
    "InputFile",
    "ReplayInputError",
    "detect_compression",
    "detect_format",
    "expand_paths",
    "time_from_name",
]

CHUNK_BYTES = 8 << 20
"""Default bytes of input per chunk (decompressed, for text; Arrow buffer bytes, columnar)."""
PARQUET_READ_AHEAD = 2
"""Parquet batches (of `PARQUET_BATCH_ROWS`) a Rust thread decodes ahead of the engine: enough to
overlap decoding with the engine's work on a second core (on one core, 0 to 32 measured
alike; deeper only holds more decoded batches in memory)."""
JSON_FORMATS = ("prom_json", "wide_json", "latency_json")
FORMATS = (*JSON_FORMATS, "exposition", "parquet", "arrow", "csv")
HEAD_BYTES = 1 << 16  # decompressed bytes looked at to detect the format

Compression = Literal["gzip", "zstd", "bz2"]
_MAGIC: dict[bytes, Compression] = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"BZh": "bz2",
}
_ARROW_FILE_MAGIC = b"ARROW1"
_ARROW_STREAM_MAGIC = b"\xff\xff\xff\xff"
_PARQUET_MAGIC = b"PAR1"
_METRIC_LINE = re.compile(rb"[a-zA-Z_:][a-zA-Z0-9_:]*\s*(\{|\s)")
# Columns read as strings from CSV (label columns: the engine wants strings there, and an
# all-empty column would otherwise be inferred as null-typed).
_CSV_TEXT = {
    "gpu", "gpu_uuid", "UUID", "gpu_index", "hostname", "Hostname", "host", "model_name",
    "modelName", "model", "namespace", "pod", "container", "gpu_instance_id", "GPU_I_ID",
    "field", "name", "service", "request_id", "device", "pci_bus_id",
}  # fmt: skip
_CSV_NUMBER = {
    "value", "gr_engine_active", "gpu_util", "sm_active", "fb_used_mib", "power_w",
    "energy_mj", "latency_ms", "ttft_ms", "status", "tokens_in", "tokens_out",
}  # fmt: skip
_TIME_COLUMNS = ("ts", "timestamp", "time")
_DICT_STRING = pa.dictionary(pa.int32(), pa.string())
_NAME_TIME = [
    # 2026-11-28T12:00:01Z, 20261128T120001Z, 2026-11-28T12-00-01 ...
    re.compile(r"(\d{4})-?(\d{2})-?(\d{2})[T_](\d{2})[-:]?(\d{2})[-:]?(\d{2})"),
    re.compile(r"(?<!\d)(\d{13})(?!\d)"),  # epoch ms
    re.compile(r"(?<!\d)(\d{10})(?:\.(\d+))?(?!\d)"),  # epoch seconds
]


def expand_paths(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Files in the order given; a directory stands for the files under it (recursively,
    sorted by path, hidden files and directories, those starting with "." or "_", left
    out). Paths are kept as given (joined for files found in directories)."""
    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
                found += [os.path.join(root, f) for f in files if not f.startswith((".", "_"))]
            out += sorted(found)
        elif os.path.exists(p):
            out.append(p)
        else:
            raise ReplayInputError(f"{p}: no such file or directory")
    return out


def detect_compression(head: bytes) -> Compression | None:
    """ "gzip", "zstd", "bz2" from a file's first bytes (magic numbers, not the name)."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def detect_format(path: str, head: bytes) -> str:
    """The input format from the first (decompressed) bytes of a file: Parquet and Arrow by
    their magic numbers, JSON lines by the keys of the first non-empty line (`labels` or
    `name`+`value`: prom_json; `latency_ms`, `service`, `metrics` or `usage`: latency_json;
    `gpu`: wide_json), exposition text by a `#` comment or a metric line, CSV by a header
    with a time column. Raises ReplayInputError when none fits."""
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if head.startswith(_ARROW_FILE_MAGIC) or head.startswith(_ARROW_STREAM_MAGIC):
        return "arrow"
    line = _first_line(head)
    if line is None:
        raise ReplayInputError(f"{path}: empty input, cannot detect its format (use --format)")
    if line.startswith(b"{"):
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            if "labels" in obj or ("name" in obj and "value" in obj):
                return "prom_json"
            if {"latency_ms", "service", "metrics", "usage"} & obj.keys():
                return "latency_json"
            if "gpu" in obj:
                return "wide_json"
        raise ReplayInputError(
            f"{path}: first line is not a known JSON message kind (use --format)"
        )
    csv_header = _looks_like_csv_header(line)
    metric = _METRIC_LINE.match(line) is not None and b"," not in line.split(b"{")[0]
    if (line.startswith(b"#") or metric) and not csv_header:
        return "exposition"
    if csv_header:
        return "csv"
    raise ReplayInputError(f"{path}: cannot detect the input format (use --format)")


def _looks_like_csv_header(line: bytes) -> bool:
    try:
        names = next(csv.reader([line.decode("utf-8", "replace")]))
    except (csv.Error, StopIteration):
        return False
    return len(names) > 1 and any(n.strip() in _TIME_COLUMNS for n in names)


def _first_line(head: bytes) -> bytes | None:
    for line in head.split(b"\n"):
        if line.strip():
            return line.strip()
    return None


def time_from_name(path: str) -> int | None:
    """Epoch ms from a file's name (`...2026-11-28T12:00:01Z...`, `...20261128T120001...`,
    13-digit epoch ms, or 10-digit epoch seconds): the time of exposition scrapes that carry
    neither per-line timestamps nor `# scrape_ts` lines. None when the name holds none."""
    name = os.path.basename(path)
    m = _NAME_TIME[0].search(name)
    if m:
        try:
            y, mo, d, h, mi, s = (int(g) for g in m.groups())
            return int(datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc).timestamp() * 1000)
        except ValueError:
            pass
    m = _NAME_TIME[1].search(name)
    if m:
        return int(m.group(1))
    m = _NAME_TIME[2].search(name)
    if m:
        return round(float(m.group(0)) * 1000)
    return None


# --- event times, estimated per chunk -------------------------------------------------------


def time_value_ms(v: Any) -> int | None:
    """Epoch ms from a JSON time value: Unix seconds, integer ms above 1e11, a string holding
    either, or RFC 3339."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return _rfc3339_ms(v)
    if isinstance(v, (int, float)):
        if not math.isfinite(v):
            return None
        return int(v) if v > 1e11 else round(v * 1000)
    return None


def _rfc3339_ms(s: str) -> int | None:
    s = s.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return round(t.timestamp() * 1000)


def _json_line_ms(line: bytes) -> int | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    return time_value_ms(obj.get("ts", obj.get("timestamp")))


# How much of a chunk's end is read for its last event time (a few hundred lines).
_TAIL_BYTES = 1 << 16


def _last_json_ms(lines: Sequence[bytes], tries: int = 16) -> int | None:
    """The event time of the last parseable line among the last `tries` lines."""
    for line in reversed(lines[-tries:]):
        if line.strip():
            ms = _json_line_ms(line)
            if ms is not None:
                return ms
    return None


def _first_json_ms(head: bytes, tries: int = 16) -> int | None:
    lines = [ln for ln in head.split(b"\n")[:-1] if ln.strip()][:tries]
    for line in lines:
        ms = _json_line_ms(line)
        if ms is not None:
            return ms
    return None


_SCRAPE_TS = b"# scrape_ts "


def _exposition_ms(text: bytes, first: bool) -> int | None:
    """The time of the first (or last) scrape in exposition text: a sample line's own
    timestamp or a `# scrape_ts` line, whichever comes first (last)."""
    lines = text.split(b"\n")
    order = lines if first else reversed(lines)
    for raw in order:
        line = raw.strip()
        if not line:
            continue
        if line.startswith(_SCRAPE_TS):
            return time_value_ms(line[len(_SCRAPE_TS) :].decode("utf-8", "replace").strip())
        if line.startswith(b"#"):
            continue
        tail = line.rsplit(b"}", 1)[-1].split()
        if len(tail) >= 2:
            with contextlib.suppress(ValueError):
                return int(tail[1])
    return None


def batch_time_ms(batch: pa.RecordBatch, *, largest: bool = True) -> int | None:
    """The largest (or smallest) event time of a record batch's time column, in epoch ms."""
    for name in _TIME_COLUMNS:
        i = batch.schema.get_field_index(name)
        if i >= 0:
            break
    else:
        return None
    col = batch.column(i)
    if isinstance(col.type, pa.DictionaryType):
        col = col.cast(col.type.value_type)
    kind = col.type
    if col.null_count == len(col) or len(col) == 0:
        return None
    try:
        mm = pc.min_max(col)
        v = mm["max" if largest else "min"].as_py()
    except (pa.ArrowException, TypeError):
        return None
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return round(v.timestamp() * 1000)
    if pa.types.is_timestamp(kind):  # pragma: no cover - as_py gives datetimes
        return None
    return time_value_ms(v)


# --- chunks -----------------------------------------------------------------------------


@dataclass
class Chunk:
    """One bounded piece of a file, ready to go into the engine: `push(engine)` ingests it.
    `end_ms` is the largest event time it holds (estimated; None: unknown)."""

    push: Callable[[Any], None]
    end_ms: int | None
    records: int


# --- files --------------------------------------------------------------------------------


class _Opened:
    """A file opened for reading, decompressed on the fly; `position` is in the file's own
    (compressed) bytes, for progress."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.raw = pa.OSFile(path, "rb")
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


@dataclass
class InputFile:
    """One input file: `peek()` detects its compression and format and the time of its first
    event (opening and closing the file); `chunks()` then streams it."""

    path: str
    index: int
    format: str | None = None  # None: detect
    form: str | None = None  # columnar form for push_arrow; None: the engine detects it
    chunk_bytes: int = CHUNK_BYTES
    text_columns: Sequence[str] = ()
    size: int = 0
    compression: str | None = None
    first_ms: int | None = None
    rejected_rows: list[tuple[int | None, str]] = field(default_factory=list)
    rejected_count: int = 0
    _opened: _Opened | None = None
    _spill: str | None = None
    _done_bytes: int = 0
    _progress: Callable[[], int] | None = None

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
        if self._opened is not None:
            return max(self._done_bytes, min(self._opened.position, self.size))
        if self._progress is not None:
            with contextlib.suppress(OSError, ValueError, pa.ArrowException):
                return max(self._done_bytes, min(self._progress(), self.size))
        return self._done_bytes

    def peek(self) -> None:
        try:
            opened = _Opened(self.path)
        except OSError as e:
            raise ReplayInputError(f"{self.path}: {e}") from e
        try:
            self.compression = opened.compression
            head = opened.read(HEAD_BYTES)
            fmt = self.format or detect_format(self.path, head)
            self.format = fmt
            if fmt in JSON_FORMATS:
                self.first_ms = _first_json_ms(head)
            elif fmt == "exposition":
                self.first_ms = _exposition_ms(head, first=True) or time_from_name(self.path)
            elif fmt == "csv":
                self.first_ms = self._csv_first_ms(head)
        finally:
            opened.close()
        if fmt in ("parquet", "arrow") and self.compression is None:
            with contextlib.suppress(ReplayInputError, OSError, pa.ArrowException):
                for batch in self._columnar_batches(first_only=True):
                    self.first_ms = batch_time_ms(batch, largest=False)
                    break

    def _csv_first_ms(self, head: bytes) -> int | None:
        lines = head.split(b"\n")
        if len(lines) < 3:
            return None
        with contextlib.suppress(pa.ArrowException, ValueError):
            table = pacsv.read_csv(
                io.BytesIO(b"\n".join(lines[:2])),
                convert_options=self._csv_convert(lines[0]),
            )
            return batch_time_ms(table.combine_chunks().to_batches()[0], largest=False)
        return None

    def close(self) -> None:
        self._done_bytes = self.size
        self._progress = None
        if self._opened is not None:
            self._opened.close()
            self._opened = None
        if self._spill is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._spill)
            self._spill = None

    def chunks(self) -> Iterator[Chunk]:
        """The file's chunks, in order; the file is closed when the iterator ends."""
        if self.format is None:
            self.peek()
        try:
            if self.format in JSON_FORMATS:
                yield from self._json_chunks()
            elif self.format == "exposition":
                yield from self._exposition_chunks()
            elif self.format == "csv":
                yield from self._csv_chunks()
            else:
                yield from self._columnar_chunks()
        finally:
            self.close()

    # JSON lines ---------------------------------------------------------------------------

    def _json_chunks(self) -> Iterator[Chunk]:
        opened = self._opened = _Opened(self.path)
        fmt = str(self.format)
        source = self.source
        carry = b""
        line_no = 1  # 1-based number of the first line of the next chunk
        # A line longer than this is cut (it is a dead letter as too big anyway).
        max_line = max(self.chunk_bytes, 1 << 20) * 4
        while True:
            data = opened.read(self.chunk_bytes)
            if not data:
                if carry:  # an unterminated last line
                    yield self._json_chunk(carry, fmt, source, line_no, 1)
                return
            buf = carry + data if carry else data
            cut = buf.rfind(b"\n") + 1
            if cut == 0:  # no complete line yet
                carry = buf
                if len(buf) > max_line:  # no newline in sight: cut, skip to the next
                    yield self._json_chunk(buf, fmt, source, line_no, 1)
                    line_no += 1
                    rest = self._skip_line(opened)
                    if rest is None:
                        return
                    carry = rest
                continue
            lines = buf.count(b"\n", 0, cut)
            carry = buf[cut:]
            yield self._json_chunk(memoryview(buf)[:cut], fmt, source, line_no, lines)
            line_no += lines

    @staticmethod
    def _skip_line(opened: _Opened) -> bytes | None:
        """Reads past the rest of an over-long line; returns what follows it (None: EOF)."""
        while True:
            data = opened.read(1 << 20)
            if not data:
                return None
            cut = data.find(b"\n")
            if cut >= 0:
                return data[cut + 1 :]

    @staticmethod
    def _json_chunk(
        text: bytes | memoryview, fmt: str, source: str, first: int, lines: int
    ) -> Chunk:
        """Whole lines, handed to the engine as one buffer and cut into messages in Rust.
        Blank lines (empty, or only whitespace such as a lone CR) are not messages; the
        other lines keep their numbers as offsets."""
        tail = bytes(text[-_TAIL_BYTES:])
        last_lines = tail.split(b"\n")
        if len(tail) < len(text):
            last_lines = last_lines[1:]  # the first may be cut
        end = _last_json_ms(last_lines)

        def push(engine: Any) -> None:
            engine.push_buffer(text, format=fmt, source=source, first_offset=first)

        return Chunk(push, end, lines)

    # exposition text -----------------------------------------------------------------------

    def _exposition_chunks(self) -> Iterator[Chunk]:
        opened = self._opened = _Opened(self.path)
        source = self.source
        state = _engine.ExpositionState(time_from_name(self.path))
        carry = b""
        end: int | None = None
        while True:
            data = opened.read(self.chunk_bytes)
            last = not data
            text = carry + data if carry else data
            if last and not text:
                return
            end = _exposition_ms(text, first=False) or end
            box: list[bytes] = []

            def push(
                engine: Any, text: bytes = text, last: bool = last, box: list[bytes] = box
            ) -> None:
                used = engine._core.push_exposition(state, text, last, source, 0)
                box.append(text[used:])

            lines = text.count(b"\n")
            yield Chunk(push, end, lines)
            carry = box[0] if box else b""
            if last:
                return

    # columnar ---------------------------------------------------------------------------

    def _columnar_path(self) -> str:
        """A seekable, uncompressed copy for Parquet and Arrow files that are compressed
        (spilled to a temporary file: both formats need random access)."""
        if self.compression is None:
            return self.path
        if self._spill is None:
            opened = _Opened(self.path)
            fd, tmp = tempfile.mkstemp(prefix="gpuledger-replay-", suffix=".spill")
            self._spill = tmp
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(_Reader(opened), out, 1 << 20)
            finally:
                opened.close()
        return self._spill

    def _columnar_batches(self, first_only: bool = False) -> Iterator[pa.RecordBatch]:
        path = self._columnar_path()
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(_PARQUET_MAGIC):
            # Read in Rust: string label columns come as dictionaries straight from
            # Parquet's dictionary pages, and each batch is decoded without the GIL.
            try:
                batches = _engine.ParquetBatches(path, 1 if first_only else PARQUET_BATCH_ROWS)
            except _engine.InputError as e:
                raise ReplayInputError(str(e).replace(path, self.path)) from None
            total = max(1, batches.rows)
            done = 0
            try:
                for batch in batches if first_only else read_ahead(batches, depth=32):
                    yield batch
                    done += batch.num_rows
                    self._progress = lambda d=done: self.size * d // total
            except _engine.InputError as e:
                raise ReplayInputError(f"{self.path}: {e}") from None
            return
        src = pa.OSFile(path, "rb")
        self._progress = lambda: self.size * src.tell() // max(1, os.path.getsize(path))
        try:
            if head.startswith(_ARROW_FILE_MAGIC):
                reader = pa.ipc.open_file(src)
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i)
            elif head.startswith(_ARROW_STREAM_MAGIC):
                yield from pa.ipc.open_stream(src)
            else:
                raise ReplayInputError(f"{self.path}: not a Parquet or Arrow IPC file")
        except pa.ArrowInvalid as e:
            raise ReplayInputError(f"{self.path}: {e}") from e
        finally:
            self._progress = None
            src.close()

    def _columnar_chunks(self) -> Iterator[Chunk]:
        path = self._columnar_path()
        with open(path, "rb") as f:
            if f.read(len(_PARQUET_MAGIC)) == _PARQUET_MAGIC:
                yield from self._parquet_chunks(path)
                return
        rows = 0
        group: list[pa.RecordBatch] = []
        size = 0
        for batch in self._columnar_batches():
            group.append(batch)
            size += batch.nbytes
            if size >= self.chunk_bytes:
                yield self._arrow_chunk(group, rows)
                rows += sum(b.num_rows for b in group)
                group, size = [], 0
        if group:
            yield self._arrow_chunk(group, rows)

    def _parquet_chunks(self, path: str) -> Iterator[Chunk]:
        """Parquet: each chunk's push has the engine pull `chunk_bytes` of batches straight
        from the Rust reader (decoded ahead on its thread), with no Python object per batch.
        A chunk's `end_ms` and `records` are known once it is pushed."""
        try:
            reader = _engine.ParquetBatches(path, PARQUET_BATCH_ROWS, read_ahead=PARQUET_READ_AHEAD)
        except _engine.InputError as e:
            raise ReplayInputError(str(e).replace(path, self.path)) from None
        total = max(1, reader.rows)
        rows = 0
        ended = False
        while rows < reader.rows and not ended:
            pushed = False
            chunk = Chunk(lambda e: None, None, 0)  # its push is set below

            def push(engine: Any, chunk: Chunk = chunk) -> None:
                nonlocal rows, ended, pushed
                pushed = True
                try:
                    n, end = engine.push_parquet(
                        reader,
                        self.chunk_bytes,
                        form=self.form,
                        source=self.source,
                        first_row=rows,
                    )
                except _engine.InputError as e:
                    raise ReplayInputError(f"{self.path}: {e}") from None
                ended = n == 0  # the footer promised more rows than the file holds
                rows += n
                chunk.records, chunk.end_ms = n, end
                self._progress = lambda d=rows: self.size * d // total

            chunk.push = push
            yield chunk
            if not pushed:
                raise RuntimeError("a Parquet chunk must be pushed before the next is read")
        self._progress = None

    def _arrow_chunk(self, batches: list[pa.RecordBatch], first_row: int) -> Chunk:
        source, form = self.source, self.form
        end = max((t for b in batches if (t := batch_time_ms(b)) is not None), default=None)

        def push(engine: Any) -> None:
            row = first_row
            for b in batches:
                try:
                    engine.push_arrow(b, form=form, source=source, first_row=row)
                except _engine.InputError as e:
                    raise ReplayInputError(f"{source}: rows from {row}: {e}") from e
                row += b.num_rows

        return Chunk(push, end, sum(b.num_rows for b in batches))

    # CSV ------------------------------------------------------------------------------

    def _csv_convert(self, header: bytes) -> pacsv.ConvertOptions:
        names = next(csv.reader([header.decode("utf-8", "replace").lstrip("\ufeff")]))
        text = _CSV_TEXT | set(self.text_columns)
        types: dict[str, pa.DataType] = {}
        for n in names:
            if n in text:
                types[n] = _DICT_STRING
            elif n in _CSV_NUMBER or n.startswith("DCGM_FI_"):
                types[n] = pa.float64()
            elif n == "error":
                types[n] = pa.bool_()
        return pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False
        )

    def _csv_chunks(self) -> Iterator[Chunk]:
        opened = self._opened = _Opened(self.path)
        header = _Reader(opened).peek_line()
        path = self.path

        def invalid(row: Any) -> Literal["skip"]:
            self.rejected_count += 1
            if len(self.rejected_rows) < 20:
                self.rejected_rows.append((row.number, str(row.text)[:200]))
            return "skip"

        try:
            reader = pacsv.open_csv(
                opened.stream,  # type: ignore[arg-type]  # any NativeFile works
                read_options=pacsv.ReadOptions(block_size=max(1 << 16, self.chunk_bytes)),
                parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
                convert_options=self._csv_convert(header),
            )
        except pa.ArrowException as e:
            raise ReplayInputError(f"{path}: {e}") from e
        rows = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowException as e:
                raise ReplayInputError(f"{path}: CSV rows after row {rows}: {e}") from e
            yield self._arrow_chunk([batch], rows)
            rows += batch.num_rows


class _Reader(io.RawIOBase):
    """A file-like view of an `_Opened` input (for shutil and peeking at the CSV header)."""

    def __init__(self, opened: _Opened) -> None:
        self._opened = opened

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._opened.read(n if n >= 0 else 1 << 20)

    def peek_line(self) -> bytes:
        """The first line, read from a separate handle of the same file."""
        other = _Opened(self._opened.path)
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


def read_ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """`items`, produced by a background thread up to `depth` ahead: Parquet decoding
    (which releases the GIL) overlaps with the engine's work on the previous batches (which
    releases it too) instead of alternating with it."""
    q: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((False, None))
        except BaseException as e:  # handed to the consumer, raised there
            q.put((False, e))

    worker = threading.Thread(target=produce, name="gpuledger-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                if item is not None:
                    raise item  # type: ignore[misc]
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
