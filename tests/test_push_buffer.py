"""`Engine.push_buffer`: many messages in one object (a byte buffer with offsets, a byte
buffer of lines, an Arrow binary or string column), cut apart in Rust. Every way in gives
the rows `push(list[bytes])` gives; malformed batches are refused with a clear error."""

from __future__ import annotations

import array
import re

import numpy as np
import pyarrow as pa
import pytest

import gpuledger
from gpuledger.simulate.small_fleet import default_fleet, prom_json_messages

START = 1_795_867_200
MESSAGES = list(prom_json_messages(default_fleet()[:4], START, 180))
BAD = b'{"timestamp":"2026-11-28T12:00:01Z","value":'  # truncated JSON


def tables(feed: object) -> dict[str, pa.Table]:
    engine = gpuledger.Engine(gpuledger.Config())
    feed(engine)  # type: ignore[operator]
    return dict(engine.finish().tables)


def packed(msgs: list[bytes]) -> tuple[bytes, np.ndarray]:
    offsets = np.zeros(len(msgs) + 1, dtype=np.int64)
    np.cumsum([len(m) for m in msgs], out=offsets[1:])
    return b"".join(msgs), offsets


EXPECTED = tables(lambda e: e.push(MESSAGES, source="s", first_offset=100))


def assert_same(got: dict[str, pa.Table]) -> None:
    assert EXPECTED["gpu_windows"].num_rows > 0
    for name, table in EXPECTED.items():
        assert got[name].equals(table), name


def test_buffer_with_int64_offsets() -> None:
    data, offsets = packed(MESSAGES)
    assert_same(tables(lambda e: e.push_buffer(data, offsets, source="s", first_offset=100)))


def test_buffer_with_int32_offsets_list_offsets_and_other_bytes_likes() -> None:
    data, offsets = packed(MESSAGES)
    o32 = array.array("i", offsets.astype(np.int32).tolist())
    for buf in (data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        assert_same(tables(lambda e, b=buf: e.push_buffer(b, o32, source="s", first_offset=100)))
    as_list = offsets.tolist()
    assert_same(tables(lambda e: e.push_buffer(data, as_list, source="s", first_offset=100)))


def test_non_contiguous_buffer_is_read_through_a_copy() -> None:
    data, offsets = packed(MESSAGES)
    doubled = np.repeat(np.frombuffer(data, np.uint8), 2)[::2]  # a strided view of data
    assert not doubled.flags.c_contiguous
    assert_same(tables(lambda e: e.push_buffer(doubled, offsets, source="s", first_offset=100)))


def test_lines_mode_matches_and_blank_lines_keep_their_numbers() -> None:
    text = b"\n".join(MESSAGES) + b"\n"
    assert_same(tables(lambda e: e.push_buffer(text, source="s", first_offset=100)))
    # Lines 1..5: a message, a blank line, a CRLF-ended message, a lone CR, a bad message.
    mixed = MESSAGES[0] + b"\n\n" + MESSAGES[1] + b"\r\n\r\n" + BAD  # no final newline
    engine = gpuledger.Engine(gpuledger.Config())
    engine.push_buffer(mixed, source="f", first_offset=1)
    out = engine.finish()
    dead = out.dead_letters
    assert dead["offset"].to_pylist() == [5]
    assert dead["raw"].to_pylist() == [BAD]
    stats = engine.stats()
    assert stats["consumed"] == 3
    assert stats["dead"] == 1


@pytest.mark.parametrize("kind", [pa.binary(), pa.large_binary(), pa.string(), pa.binary_view()])
def test_arrow_column(kind: pa.DataType) -> None:
    values = [m.decode() for m in MESSAGES] if pa.types.is_string(kind) else MESSAGES
    column = pa.array(values, type=kind)
    assert_same(tables(lambda e: e.push_buffer(column, source="s", first_offset=100)))
    chunked = pa.chunked_array([column[:500], column[500:]])
    assert_same(tables(lambda e: e.push_buffer(chunked, source="s", first_offset=100)))


def test_arrow_null_is_an_empty_message_dead_letter() -> None:
    engine = gpuledger.Engine(gpuledger.Config())
    engine.push_buffer(pa.array([MESSAGES[0], None, BAD]), source="s", first_offset=10)
    dead = engine.finish().dead_letters
    assert dead["offset"].to_pylist() == [11, 12]
    assert engine.stats()["dead"] == 2


@pytest.mark.parametrize(
    ("data", "offsets", "message"),
    [
        (b"abcdef", [0, 4, 3], "offsets must not decrease: offsets[2] = 3 < offsets[1] = 4"),
        (b"abcdef", [0, 7], "offsets[1] = 7 is past the end of the buffer (6 bytes)"),
        (b"abcdef", [-1, 2], "offsets[0] is negative"),
        (b"abcdef", "0,2", "offsets must be a buffer of int64 or int32"),
        ("text", None, "data must be bytes-like"),
        (pa.array([b"x"]), [0, 1], "offsets are for a byte buffer"),
        (pa.array([1, 2]), None, "a column of messages must be binary or string"),
    ],
)
def test_malformed_batches_are_refused(data: object, offsets: object, message: str) -> None:
    engine = gpuledger.Engine(gpuledger.Config())
    with pytest.raises(gpuledger.InputError, match="^" + re.escape(message)):
        engine.push_buffer(data, offsets)
    assert engine.stats()["consumed"] == 0
