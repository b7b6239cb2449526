"""The report's period: `--since`/`--until` (RFC 3339 or relative like `7d`) and the time
bucket of its charts, chosen by the period's length."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa

from gpuledger.errors import ReportError
from gpuledger.report.arrow_util import pc

__all__ = ["BUCKETS_S", "Period", "choose_bucket_s", "parse_time"]

_RELATIVE = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNIT_S = (7 * 86400, 86400, 3600, 60, 1)

BUCKETS_S = (60, 300, 900, 1800, 3600, 10_800, 21_600, 43_200, 86_400, 7 * 86_400)
"""Chart time buckets, smallest first; the report takes the smallest giving at most
MAX_POINTS points over the period (a 2 h demo: minutes; 30 days: hours)."""
MAX_POINTS = 800


def parse_time(text: str, *, now_s: float | None = None) -> int:
    """Milliseconds since the epoch of an RFC 3339 time (`2026-11-28T00:00:00Z`; a date
    alone is midnight UTC; no offset means UTC) or of a relative time before now (`7d`,
    `12h`, `90m`, `1d12h`, `2w`). Raises ReportError naming the text."""
    s = text.strip()
    m = _RELATIVE.fullmatch(s)
    if s and m is not None and any(m.groups()):
        ago = sum(int(g) * u for g, u in zip(m.groups(), _UNIT_S, strict=False) if g)
        base = time.time() if now_s is None else now_s
        return round((base - ago) * 1000)
    try:
        dt = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
    except ValueError:
        raise ReportError(
            f"cannot read time {text!r}: give RFC 3339 (2026-11-28T00:00:00Z) or a "
            "relative time before now (7d, 12h, 90m)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return round(dt.timestamp() * 1000)


def choose_bucket_s(span_s: float) -> int:
    """The smallest bucket of BUCKETS_S with at most MAX_POINTS buckets in `span_s`."""
    for b in BUCKETS_S:
        if span_s / b <= MAX_POINTS:
            return b
    return BUCKETS_S[-1]


@dataclass(frozen=True)
class Period:
    """Rows count when their time (window start, streak end, event time) is in
    [since_ms, until_ms); None: unbounded on that side."""

    since_ms: int | None = None
    until_ms: int | None = None

    def __post_init__(self) -> None:
        lo, hi = self.since_ms, self.until_ms
        if lo is not None and hi is not None and lo >= hi:
            raise ReportError(
                f"empty time range: --since {fmt_ms(lo)} is not before --until {fmt_ms(hi)}"
            )

    def overlaps_hour(self, hour_start_ms: int) -> bool:
        """Whether the UTC hour starting at `hour_start_ms` can hold rows of the period."""
        if self.until_ms is not None and hour_start_ms >= self.until_ms:
            return False
        return not (self.since_ms is not None and hour_start_ms + 3_600_000 <= self.since_ms)

    def filter(self, table: pa.Table, time_column: str) -> pa.Table:
        """The rows of `table` whose `time_column` lies in the period (the table itself when
        the period is unbounded)."""
        ms = pc.cast(table.column(time_column), pa.int64())
        mask = None
        if self.since_ms is not None:
            mask = pc.greater_equal(ms, self.since_ms)
        if self.until_ms is not None:
            upper = pc.less(ms, self.until_ms)
            mask = upper if mask is None else pc.and_(mask, upper)
        return table if mask is None else table.filter(mask)

    def describe(self) -> str:
        lo = "the beginning" if self.since_ms is None else fmt_ms(self.since_ms)
        hi = "the end" if self.until_ms is None else fmt_ms(self.until_ms)
        return f"from {lo} to {hi}"


def fmt_ms(ms: int) -> str:
    """RFC 3339 UTC, to the second."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
