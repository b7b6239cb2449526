"""Replay's JSON lines read in Rust (`_engine.LineFile`, uncompressed files): the same chunks,
line numbers and event-time estimates as the Python reader of compressed files, the same
output files, blank and over-long lines, the buffer handed to the engine without a copy, and
errors that name the file."""

from __future__ import annotations

import ctypes
import gzip
import itertools
import os
import re
from pathlib import Path

import pytest

from gpuledger import _engine
from gpuledger.errors import InputError
from gpuledger.output.sink import read_table
from gpuledger.replay import replay
from gpuledger.replay.forms.base import InputSpec
from gpuledger.replay.forms.json_lines import JsonLinesReader
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200  # 2026-11-28T12:00:00Z


def messages(seconds: int = 120) -> list[bytes]:
    return list(prom_json_messages(default_fleet(), START, seconds))


def tricky_text(long_line: bool = True) -> bytes:
    """Blank lines (empty, spaces, a lone CR), CRLF endings, a bad line, a line longer than
    the reader's cut (4 MiB for small chunks; else a short one), no newline at the end."""
    m = messages(60)
    body = [
        *m[:300],
        b"",
        b"   ",
        b"\r",
        m[300] + b"\r",
        b'{"timestamp": "2026-11-28T12:00:0',
        b"x" * (5 << 20 if long_line else 10),  # over-long: cut at 4 MiB, a dead letter
        *m[301:700],
        b"",
        *m[700:],
    ]
    return b"\n".join(body)  # the last line unterminated


def chunks_of(path: Path, chunk_bytes: int) -> list[tuple[int, int, bytes, int | None]]:
    reader = JsonLinesReader(InputSpec(str(path), path.stat().st_size, chunk_bytes), "prom_json")
    out = []
    for c in reader.chunks():
        p = c.payload
        out.append((p.first_line, c.records, bytes(memoryview(p.text)), c.end_ms))  # type: ignore[union-attr,arg-type]
    assert reader.bytes_read() == path.stat().st_size
    reader.close()
    return out


@pytest.mark.parametrize(("chunk_bytes", "long_line"), [(40, False), (4096, True), (1 << 20, True)])
def test_rust_chunks_equal_the_python_readers(
    tmp_path: Path, chunk_bytes: int, long_line: bool
) -> None:
    text = tricky_text(long_line)
    plain = tmp_path / "in.jsonl"
    plain.write_bytes(text)
    packed = tmp_path / "in.jsonl.gz"
    packed.write_bytes(gzip.compress(text, compresslevel=1))
    rust = chunks_of(plain, chunk_bytes)
    python = chunks_of(packed, chunk_bytes)
    assert [c[:2] for c in rust] == [c[:2] for c in python]
    assert rust == python
    # Line numbers run on from chunk to chunk, up to the unterminated last line.
    assert rust[0][0] == 1
    assert all(b[0] == a[0] + a[1] for a, b in itertools.pairwise(rust))
    assert rust[-1][0] + rust[-1][1] - 1 == text.count(b"\n") + 1
    assert rust[-1][3] is not None and rust[-1][3] > START * 1000
    # The chunks hold the text, less the rest of an over-long line (cut at 4 MiB).
    cut = [i for i, c in enumerate(rust) if len(c[2]) >= 4 << 20]
    assert len(cut) == long_line
    if cut:
        before = b"".join(c[2] for c in rust[: cut[0]])
        after = b"".join(c[2] for c in rust[cut[0] + 1 :])
        assert text.startswith(before) and text.endswith(after)
        assert rust[cut[0]][2] == b"x" * len(rust[cut[0]][2])  # the long line's start
    else:
        assert b"".join(c[2] for c in rust) == text


def test_replay_of_a_plain_file_writes_what_the_compressed_one_writes(tmp_path: Path) -> None:
    text = tricky_text()
    plain = tmp_path / "a" / "in.jsonl"
    packed = tmp_path / "b" / "in.jsonl"  # same name, so `source` is comparable
    plain.parent.mkdir()
    packed.parent.mkdir()
    plain.write_bytes(text)
    packed.write_bytes(gzip.compress(text, compresslevel=1))
    os.utime(packed, ns=(plain.stat().st_atime_ns, plain.stat().st_mtime_ns))  # received_at
    one = replay([plain], tmp_path / "out-plain", chunk_bytes=64 << 10, flush_bytes=64 << 10)
    two = replay([packed], tmp_path / "out-gz", chunk_bytes=64 << 10, flush_bytes=64 << 10)
    assert one.stats == two.stats and one.rows == two.rows and one.files_written > 2
    files = sorted(
        p.relative_to(tmp_path / "out-plain") for p in (tmp_path / "out-plain").rglob("*.arrow")
    )
    assert files == sorted(
        p.relative_to(tmp_path / "out-gz") for p in (tmp_path / "out-gz").rglob("*.arrow")
    )
    for name in ("gpu_windows", "pool_windows", "dead_letters"):
        a, b = read_table(tmp_path / "out-plain", name), read_table(tmp_path / "out-gz", name)
        assert a is not None and b is not None
        if "source" in a.column_names:
            a = a.drop_columns(["source"])
            b = b.drop_columns(["source"])
        assert a.equals(b), name
    dead = read_table(tmp_path / "out-plain", "dead_letters")
    assert dead is not None
    # The bad line is line 305 and the over-long one 306 (the blank lines keep their numbers).
    assert dead.column("offset").to_pylist() == [305, 306]
    assert "exceeds" in dead.column("reason")[1].as_py()
    assert one.dead == 2 and one.stats["aggregated"] == len(messages(60))


def test_a_chunk_is_a_read_only_buffer(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"b": 2}\n{"c"')
    f = _engine.LineFile(str(path), 1 << 20, 4 << 20)
    chunk = f.next_chunk()
    assert chunk is not None
    view = memoryview(chunk)  # type: ignore[arg-type]
    assert view.readonly and view.format == "B" and view.nbytes == len(chunk) == 19
    assert (
        bytes(view) == b'{"a": 1}\n\n{"b": 2}\n'
        and chunk.tail(4) == b" 2}\n"
        and chunk.tail(99) == bytes(view)
    )
    assert (chunk.first_line, chunk.lines) == (1, 3)
    with pytest.raises(TypeError, match="read-only"):
        view[0:1] = b"x"
    with pytest.raises(TypeError, match="not writable"):
        ctypes.c_char.from_buffer(chunk)  # type: ignore[arg-type]
    # A writable export itself is refused (PyObject_GetBuffer with PyBUF_WRITABLE).
    get_buffer = ctypes.pythonapi.PyObject_GetBuffer
    get_buffer.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
    view_struct = ctypes.create_string_buffer(256)  # larger than a Py_buffer
    with pytest.raises(BufferError, match="read-only"):
        get_buffer(chunk, ctypes.addressof(view_struct), 0x0001)  # PyBUF_WRITABLE
    last = f.next_chunk()
    assert last is not None and bytes(memoryview(last)) == b'{"c"'  # type: ignore[arg-type]
    assert (last.first_line, last.lines) == (4, 1)
    assert f.next_chunk() is None and f.position == path.stat().st_size
    del view


def test_unreadable_files_are_errors_naming_them(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(InputError, match=r"missing\.jsonl"):
        _engine.LineFile(str(missing), 1 << 20, 4 << 20)
    f = _engine.LineFile(str(tmp_path), 1 << 20, 4 << 20)  # a directory opens, but not reads
    with pytest.raises(InputError, match=re.escape(f"{tmp_path}: reading failed")):
        f.next_chunk()
    with pytest.raises(ValueError, match="chunk_bytes"):
        _engine.LineFile(str(tmp_path / "x"), 0, 1)
