"""Replay, `gpuledger replay`: recorded telemetry and request files through the engine, closed
windows out as files, deterministically (docs/replay.md). Here: the run (`run`), the input
files and their forms, one reader per form (`inputs`), and the progress line and summary shown
while and after it runs (`progress`, `summary`).
"""

from gpuledger.replay.run import (
    NO_FUTURE_CHECK_S,
    ORDERS,
    Progress,
    ReplayError,
    ReplayInputError,
    ReplaySummary,
    replay,
    replay_config,
)

__all__ = [
    "NO_FUTURE_CHECK_S",
    "ORDERS",
    "Progress",
    "ReplayError",
    "ReplayInputError",
    "ReplaySummary",
    "replay",
    "replay_config",
]
