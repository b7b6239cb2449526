"""`gpuledger report`: the cost report people look at. One self-contained HTML file (and
the headline figures for the terminal or as JSON) from gpuledger output directories.

    import gpuledger
    result = gpuledger.report(["gpuledger-out"], out="report.html", since="7d")
    result.path, result.headline.gpu_spend, result.problems
"""

from __future__ import annotations

import os
import stat
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuledger.config import Config
from gpuledger.errors import ReportError
from gpuledger.report.headline import Headline, summary_lines, to_json

__all__ = ["Report", "ReportError", "report"]


@dataclass(frozen=True)
class Report:
    """What `report` wrote: the HTML file (None when not asked), the headline figures and
    the problems met (files set aside)."""

    path: Path | None
    headline: Headline
    problems: list[str]
    html_bytes: int

    def summary_lines(self) -> list[str]:
        return summary_lines(self.headline)

    def to_json(self) -> str:
        return to_json(self.headline, None if self.path is None else str(self.path), self.problems)


def report(
    dirs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = "report.html",
    *,
    since: str | int | None = None,
    until: str | int | None = None,
    config: Config | str | os.PathLike[str] | None = None,
) -> Report:
    """Reads gpuledger output directories (daemon, replay or combined; Arrow or Parquet;
    local paths or URIs), combines partial rows, aggregates in Arrow and writes the HTML
    report to `out` (None: only the figures). `since`/`until`: RFC 3339, relative (`7d`) or
    epoch milliseconds. `config`: a Config or a TOML path (prices, SLOs, idle TTL).
    Raises ReportError when nothing can be shown."""
    from gpuledger.config import load_config
    from gpuledger.report.build import build
    from gpuledger.report.headline import headline
    from gpuledger.report.period import Period, parse_time

    if isinstance(dirs, (str, os.PathLike)):
        dirs = [dirs]
    cfg = config if isinstance(config, Config) else load_config(config)
    period = Period(
        since_ms=None if since is None else since if isinstance(since, int) else parse_time(since),
        until_ms=None if until is None else until if isinstance(until, int) else parse_time(until),
    )
    data = build(list(dirs), period, cfg)
    head = headline(data)
    path: Path | None = None
    size = 0
    if out is not None:
        from gpuledger.report.html import render

        text = render(data, head).encode("utf-8")
        path = Path(out)
        _write_file(path, text)
        size = len(text)
    return Report(path=path, headline=head, problems=list(data.problems), html_bytes=size)


def _write_file(path: Path, data: bytes) -> None:
    """`data` as the file at `path`, whole or not at all: written beside it and renamed into
    place. A destination that exists and is not a regular file (/dev/null, /dev/stdout, a
    pipe) is written to as it is: renaming over it would replace the device with a file."""
    try:
        existing = path.stat()
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        with open(path, "wb") as f:
            f.write(data)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class _CallableModule(types.ModuleType):
    """`gpuledger.report(...)` is `gpuledger.report.report(...)`: the subpackage that holds the
    report is also the function that writes it (docs/report.md)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Report:
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
