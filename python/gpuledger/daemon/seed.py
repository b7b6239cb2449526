"""Restoring the `idle_streaks` state at an assignment: idle streaks span hours, far beyond
the open windows a restart re-reads, so the engine is seeded with the `gpu_windows` rows the
output directory already holds (docs/daemon.md, "idle_streaks after a restart")."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc

from gpuledger.output.sink import output_files, read_file

HOUR_MS = 3_600_000


def _hour_of(path: PurePosixPath) -> int | None:
    """The UTC hour (epoch ms) of a file's `date=YYYY-MM-DD/hour=HH` partition."""
    try:
        date = path.parent.parent.name.removeprefix("date=")
        hour = int(path.parent.name.removeprefix("hour="))
        day = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return int(day.timestamp() * 1000) + hour * HOUR_MS


def written_gpu_windows(out_dir: str | Path, through_ms: int, lookback_ms: int) -> pa.Table | None:
    """The gpu_windows rows written for windows ending in (through - lookback, through]."""
    since = through_ms - lookback_ms
    parts = []
    for f in output_files(out_dir, "gpu_windows"):  # paths, or URIs on object storage
        hour = _hour_of(PurePosixPath(f))
        # Files sit in the hour of their windows' start; a window ending after `since`
        # starts at most one (largest) window before it, so a day of slack is plenty.
        if hour is None or hour + HOUR_MS < since - 24 * HOUR_MS or hour > through_ms:
            continue
        parts.append(read_file(f))
    if not parts:
        return None
    table = pa.concat_tables(parts, promote_options="default")
    ends = pc.cast(table["window_end"], pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    keep = pc.and_(
        pc.greater(ends, pa.scalar(since, pa.int64())),
        pc.less_equal(ends, pa.scalar(through_ms, pa.int64())),
    )
    return table.filter(keep)
