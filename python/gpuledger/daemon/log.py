"""The daemon's log: one line per event, for people ("human") or machines ("json").

Every line names an event (`assigned`, `flushed`, `output_blocked`, `status`...) and its
fields. Secrets never reach it: the daemon logs only the masked configuration.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

LEVELS = ("debug", "info", "warning", "error")


class EventLog:
    def __init__(self, fmt: str = "human", stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.stream = stream if stream is not None else sys.stderr

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        if self.fmt == "json":
            line = json.dumps(
                {"ts": _stamp(), "level": level, "event": event, **fields}, default=str
            )
            self._write(line)
        else:
            self._raw(level, event, " ".join(f"{k}={_human(v)}" for k, v in fields.items()))

    def _write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must not stop the daemon

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)

    def status_line(self, fields: dict[str, Any]) -> None:
        """The periodic one-line status: compact and readable in human mode."""
        if self.fmt == "json":
            self._emit("info", "status", fields)
            return
        f = fields
        text = (
            f"consumed {f['consumed']:,} ({f['rate_per_s']:,.0f}/s) aggregated {f['aggregated']:,} "
            f"skipped {f['skipped']:,} late {f['late']:,} dead {f['dead']:,} | "
            f"windows {f['windows_emitted']:,} files {f['files_written']:,} | lag {f['lag']:,} "
            f"| watermark delay {_human(f['watermark_delay_s'])} s"
            + (" | OUTPUT BLOCKED" if f.get("output_blocked") else "")
        )
        self._raw("info", "status", text)

    def _raw(self, level: str, event: str, text: str) -> None:
        self._write(f"{_stamp()} {level:<7} {event}" + (f" {text}" if text else ""))


def _stamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _human(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v) or "-"
    if v is None:
        return "-"
    return str(v)


class ForwardToEventLog(logging.Handler):
    """Sends the `logging` records of gpuledger's modules (e.g. the sink) through the
    daemon's event log, so every line on stderr has the configured format."""

    def __init__(self, log: EventLog) -> None:
        super().__init__(logging.INFO)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname.lower()
        level = level if level in LEVELS else "error"
        self.log._emit(level, "log", {"logger": record.name, "message": record.getMessage()})


def counters(t: dict[str, int]) -> dict[str, int]:
    """The engine counters a status or stop line shows: consumed = aggregated + skipped +
    late + dead, with the skips by reason."""
    skipped = sum(v for k, v in t.items() if k.startswith("skipped_"))
    return {
        "consumed": t.get("consumed", 0),
        "aggregated": t.get("aggregated", 0),
        "skipped": skipped,
        "late": t.get("late", 0),
        "dead": t.get("dead", 0),
        "windows_emitted": t.get("windows_emitted", 0),
        **{k: v for k, v in t.items() if k.startswith("skipped_")},
    }
