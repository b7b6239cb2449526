"""What replay's input files are: paths expanded, compression from magic numbers, the input
format from the first bytes, and a scrape time from a file's name (docs/replay.md)."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Literal

from gpuledger.errors import ReplayInputError
from gpuledger.replay.event_times import TIME_COLUMNS

__all__ = [
    "FORMATS",
    "JSON_FORMATS",
    "Compression",
    "detect_compression",
    "detect_format",
    "expand_paths",
    "time_from_name",
]

JSON_FORMATS = ("prom_json", "wide_json", "latency_json")
FORMATS = (*JSON_FORMATS, "exposition", "parquet", "arrow", "csv")
HEAD_BYTES = 1 << 16  # decompressed bytes looked at to detect the format

Compression = Literal["gzip", "zstd", "bz2"]
_MAGIC: dict[bytes, Compression] = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"BZh": "bz2",
}
ARROW_FILE_MAGIC = b"ARROW1"
ARROW_STREAM_MAGIC = b"\xff\xff\xff\xff"
PARQUET_MAGIC = b"PAR1"
_METRIC_LINE = re.compile(rb"[a-zA-Z_:][a-zA-Z0-9_:]*\s*(\{|\s)")
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
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith(ARROW_FILE_MAGIC) or head.startswith(ARROW_STREAM_MAGIC):
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
    return len(names) > 1 and any(n.strip() in TIME_COLUMNS for n in names)


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
