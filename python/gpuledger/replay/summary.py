"""What a replay did, as `gpuledger replay` prints it (text or JSON): counts, rows written, and
the largest idle and headroom costs, summed while the replay runs (no second pass over the
output)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gpuledger.engine import Windows
from gpuledger.replay.group_sums import count_distinct, int64_scalar, sum_by
from gpuledger.replay.progress import human_bytes
from gpuledger.tables import EVENT_TABLES

__all__ = ["ReplaySummary", "Totals"]

TOP = 5
"""Rows of the top idle and headroom tables."""


@dataclass
class ReplaySummary:
    """What a replay did. `events` counts input messages/rows/lines the engine consumed;
    `stats` are the engine's counters (consumed = aggregated + skipped + late + dead);
    `rows` the rows written per table; `windows` the distinct windows closed; `top_idle` the
    largest idle costs by (team, namespace, pod) and `top_headroom` the largest headroom
    costs by service, both summed over the smallest tumbling window size."""

    files: list[str]
    out_dir: str
    bytes_read: int
    seconds: float
    stats: dict[str, int]
    rows: dict[str, int]
    windows: int
    files_written: int
    top_idle: list[dict[str, Any]]
    top_headroom: list[dict[str, Any]]
    rejected_csv_rows: int = 0
    rejected_examples: list[str] = field(default_factory=list)
    workers: int = 1
    one_worker_because: str | None = None
    """Why more workers were asked for and one ran (`replay.workers.why_one_worker`)."""

    @property
    def events(self) -> int:
        return self.stats.get("consumed", 0)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def skipped(self) -> int:
        return sum(v for k, v in self.stats.items() if k.startswith("skipped_"))

    @property
    def late(self) -> int:
        return self.stats.get("late", 0)

    @property
    def dead(self) -> int:
        return self.stats.get("dead", 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "out_dir": self.out_dir,
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
            "events": self.events,
            "events_per_s": round(self.events_per_s, 1),
            "windows": self.windows,
            "aggregated": self.stats.get("aggregated", 0),
            "skipped": self.skipped,
            "late": self.late,
            "dead_letters": self.dead,
            "rejected_csv_rows": self.rejected_csv_rows,
            "workers": self.workers,
            "stats": dict(self.stats),
            "rows": dict(self.rows),
            "files_written": self.files_written,
            "top_idle": self.top_idle,
            "top_headroom": self.top_headroom,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def render(self) -> str:
        """A short text summary: counts, then the top idle and headroom costs as tables."""
        out = [
            f"replayed {len(self.files)} file(s), {human_bytes(self.bytes_read)} in "
            f"{self.seconds:.1f} s: {self.events:,} events ({self.events_per_s:,.0f}/s)"
            + (f", {self.workers} workers" if self.workers > 1 else ""),
            f"windows {self.windows:,}  aggregated {self.stats.get('aggregated', 0):,}  "
            f"skipped {self.skipped:,}  late {self.late:,}  dead letters {self.dead:,}"
            + (f"  rejected CSV rows {self.rejected_csv_rows:,}" if self.rejected_csv_rows else ""),
            f"{self.files_written:,} files written under {self.out_dir}: "
            + (", ".join(f"{k} {v:,}" for k, v in self.rows.items() if v) or "no rows"),
        ]
        out += [f"  rejected: {e}" for e in self.rejected_examples[:5]]
        if self.one_worker_because:
            out.append(f"one worker: {self.one_worker_because}")
        out += _table(
            "top idle cost (gpu_windows.idle_cost_usd)",
            ["team", "namespace", "pod", "idle_gpu_h", "idle_cost_usd"],
            self.top_idle,
        )
        out += _table(
            "top headroom cost (service_cost_windows.headroom_cost_usd)",
            ["service", "headroom_gpu_h", "headroom_cost_usd"],
            self.top_headroom,
        )
        return "\n".join(out)


def _table(title: str, cols: list[str], rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["", f"{title}: none"]
    cells = [[_cell(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["", title + ":"]
    lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in cells:
        parts = []
        for i, (v, w) in enumerate(zip(row, widths, strict=True)):
            numeric = isinstance(rows[0][cols[i]], (int, float))
            parts.append(v.rjust(w) if numeric else v.ljust(w))
        lines.append("  ".join(parts).rstrip())
    return lines


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}"
    return "(none)" if v == "" else str(v)


class Totals:
    """Running sums for the summary, over rows of the smallest tumbling window size."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.rows: dict[str, int] = {}
        self.windows = 0
        self.idle: dict[tuple[str, str, str], list[float]] = {}
        self.headroom: dict[str, list[float]] = {}

    def add(self, windows: Windows) -> None:
        # A window closes once, for every table at the same time: counting the distinct
        # windows of each batch and adding up counts each once (no set of every window).
        starts: list[pa.Array[Any]] = []
        ends: list[pa.Array[Any]] = []
        for name, t in windows.tables.items():
            self.rows[name] = self.rows.get(name, 0) + t.num_rows
            if name in EVENT_TABLES or not t.num_rows:
                continue
            if "window_start" in t.column_names and "window_end" in t.column_names:
                starts += t.column("window_start").cast(pa.int64()).chunks
                ends += t.column("window_end").cast(pa.int64()).chunks
        if starts:
            spans = [pa.chunked_array(starts, pa.int64()), pa.chunked_array(ends, pa.int64())]
            self.windows += count_distinct(spans)
        gpu = self._smallest(windows.tables.get("gpu_windows"))
        if gpu is not None and gpu.num_rows:
            keys = [gpu.column(c) for c in ("team", "namespace", "pod")]
            sums = sum_by(keys, [gpu.column("idle_gpu_s"), gpu.column("idle_cost_usd")])
            for (team, namespace, pod), (idle_s, idle_usd) in sums:
                acc = self.idle.setdefault((team or "", namespace or "", pod or ""), [0.0, 0.0])
                acc[0] += idle_s
                acc[1] += idle_usd
        svc = self._smallest(windows.tables.get("service_cost_windows"))
        if svc is not None and svc.num_rows:
            values = [svc.column("headroom_gpus"), svc.column("headroom_cost_usd")]
            for (service,), (gpus, usd) in sum_by([svc.column("service")], values):
                acc = self.headroom.setdefault(service or "", [0.0, 0.0])
                acc[0] += gpus * self.window_ms / 3_600_000
                acc[1] += usd

    def _smallest(self, t: pa.Table | None) -> pa.Table | None:
        if t is None or t.num_rows == 0 or "window_start" not in t.column_names:
            return None
        span = pc.subtract(
            t.column("window_end").cast(pa.int64()), t.column("window_start").cast(pa.int64())
        )
        return t.filter(pc.equal(span, int64_scalar(self.window_ms)))

    def top_idle(self, n: int = TOP) -> list[dict[str, Any]]:
        ranked = sorted(self.idle.items(), key=lambda kv: (-kv[1][1], kv[0]))[:n]
        return [
            {
                "team": k[0],
                "namespace": k[1],
                "pod": k[2],
                "idle_gpu_h": v[0] / 3600,
                "idle_cost_usd": v[1],
            }
            for k, v in ranked
        ]

    def top_headroom(self, n: int = TOP) -> list[dict[str, Any]]:
        ranked = sorted(self.headroom.items(), key=lambda kv: (-kv[1][1], kv[0]))[:n]
        return [
            {"service": k, "headroom_gpu_h": v[0], "headroom_cost_usd": v[1]} for k, v in ranked
        ]
