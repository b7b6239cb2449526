"""Event times of replay's input, estimated per chunk from a few records at its edges (parsed in
Python: a few records per chunk, never one per message), so files can be merged by event time.
Correctness does not rest on these estimates (docs/replay.md)."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

TIME_COLUMNS = ("ts", "timestamp", "time")
"""Columns that hold event times, in the order they are looked for."""


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


def json_line_ms(line: bytes) -> int | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    return time_value_ms(obj.get("ts", obj.get("timestamp")))


# How much of a chunk's end is read for its last event time (a few hundred lines).
_TAIL_BYTES = 1 << 16


def last_json_ms(lines: Sequence[bytes], tries: int = 16) -> int | None:
    """The event time of the last parseable line among the last `tries` lines."""
    for line in reversed(lines[-tries:]):
        if line.strip():
            ms = json_line_ms(line)
            if ms is not None:
                return ms
    return None


def first_json_ms(head: bytes, tries: int = 16) -> int | None:
    lines = [ln for ln in head.split(b"\n")[:-1] if ln.strip()][:tries]
    for line in lines:
        ms = json_line_ms(line)
        if ms is not None:
            return ms
    return None


_SCRAPE_TS = b"# scrape_ts "


def exposition_ms(text: bytes, first: bool) -> int | None:
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


_MS_PER_UNIT = {"s": 1000, "ms": 1, "us": 1e-3, "ns": 1e-6}


def batch_time_ms(batch: pa.RecordBatch, *, largest: bool = True) -> int | None:
    """The largest (or smallest) event time of a record batch's time column, in epoch ms."""
    for name in TIME_COLUMNS:
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
    if pa.types.is_timestamp(kind):
        # Epoch units read as integers: a timestamp scalar's as_py() imports pandas (0.3-0.5 s
        # of every replay process) to look for its Timestamp type.
        unit = kind.unit
        try:
            edge = pc.min_max(col.cast(pa.int64()))["max" if largest else "min"].as_py()
        except (pa.ArrowException, TypeError):
            return None
        return None if edge is None else round(edge * _MS_PER_UNIT[unit])
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
