"""Replay's progress on the terminal: one line redrawn with events, events/s, bytes read of the
total and the ETA; elsewhere a line at the start and one at the end (docs/dependencies.md says
why this is not rich's or click's bar)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "human_bytes"]


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _duration(s: float) -> str:
    s = max(0, round(s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}"


class Progress:
    """Progress of a replay on `stream` (default stderr). On a terminal: one line, redrawn at
    most every `interval` seconds, with events, events/s, bytes read of the total and the
    ETA. Elsewhere: a line at the start and one at the end, nothing in between."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
        width: int = 24,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if tty is None and isatty is not None else bool(tty)
        self.width = width
        self.total_bytes = 0
        self._start = 0.0
        self._last_draw = float("-inf")
        self._drawn = 0  # length of the line on screen

    def start(self, files: int, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self._start = self.clock()
        if not self.tty:
            self._print(f"replay: {files} file(s), {human_bytes(total_bytes)}")

    def line(self, events: int, bytes_read: int) -> str:
        """The progress line for this moment."""
        elapsed = max(self.clock() - self._start, 1e-9)
        rate = events / elapsed
        total = max(self.total_bytes, 1)
        frac = min(1.0, bytes_read / total)
        filled = int(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        eta = _duration(elapsed * (1 - frac) / frac) if frac > 0 else "?"
        return (
            f"[{bar}] {frac:4.0%} {events:,} events {rate:,.0f}/s "
            f"{human_bytes(bytes_read)}/{human_bytes(self.total_bytes)} ETA {eta}"
        )

    def update(self, events: int, bytes_read: int, *, force: bool = False) -> None:
        if not self.tty:
            return
        now = self.clock()
        if not force and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        text = self.line(events, bytes_read)
        pad = " " * max(0, self._drawn - len(text))
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self._drawn = len(text)

    def finish(self, events: int, bytes_read: int) -> None:
        elapsed = self.clock() - self._start
        rate = events / elapsed if elapsed > 0 else 0.0
        end = (
            f"replay: {events:,} events, {human_bytes(bytes_read)} in {elapsed:.1f} s "
            f"({rate:,.0f} events/s)"
        )
        if self.tty:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self._drawn = 0
        self._print(end)

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
