"""The report's own error: input it cannot turn into a report (the lead may move it into
gpuledger.errors with the other classes)."""

from __future__ import annotations

from gpuledger.errors import GpuledgerError

__all__ = ["ReportError"]


class ReportError(GpuledgerError, ValueError):
    """Nothing can be shown: no output under the directories, no rows in the time range,
    an unreadable argument. The message names the directory, file or range at fault."""
