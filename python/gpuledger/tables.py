"""The one list of gpuledger's output tables: names, time columns, keys, and which hold single
events. The sink, the daemon's output, combine, replay's summary, the demo and `Windows` read
it here; docs/schema.md describes every column. Also the labels every telemetry form knows and
the (topic, partition) key. Imports nothing of gpuledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "BUILTIN_TABLES",
    "ENGINE_TABLES",
    "EVENT_TABLES",
    "KEYED_TABLES",
    "STANDARD_LABELS",
    "TABLES",
    "OutputTable",
    "PartitionKey",
    "time_column",
]


@dataclass(frozen=True)
class OutputTable:
    """One output table. `time_column` partitions its files by UTC hour; `key` identifies a row
    among the partial rows of several instances (combine), empty for tables never combined by
    key; `per_event` tables hold single events (late, dead), never partial."""

    name: str
    time_column: str
    key: tuple[str, ...] = ()
    per_event: bool = False
    engine: bool = True


_WINDOW = ("window_start", "window_end")

TABLES: Mapping[str, OutputTable] = {
    t.name: t
    for t in (
        OutputTable("gpu_windows", "window_start", (*_WINDOW, "gpu_uuid", "namespace", "pod")),
        OutputTable("pool_windows", "window_start", (*_WINDOW, "team", "model_name")),
        OutputTable("latency_windows", "window_start", (*_WINDOW, "service")),
        OutputTable("service_cost_windows", "window_start", (*_WINDOW, "service")),
        OutputTable("idle_streaks", "as_of"),
        OutputTable("late_events", "event_time", per_event=True),
        OutputTable("dead_letters", "received_at", per_event=True),
        # Written by `gpuledger allocate` from a FOCUS bill, not by the engine (docs/billing.md).
        OutputTable("allocated_costs", "ChargePeriodStart", engine=False),
    )
}
"""Every output table, in the order they are shown and written."""
ENGINE_TABLES = tuple(n for n, t in TABLES.items() if t.engine)
"""The tables the engine writes (`Windows` holds them)."""

BUILTIN_TABLES = frozenset(TABLES)
"""Names no custom aggregation or window function may take."""
KEYED_TABLES: Mapping[str, tuple[str, ...]] = {n: t.key for n, t in TABLES.items() if t.key}
EVENT_TABLES = tuple(n for n, t in TABLES.items() if t.per_event)
DEFAULT_TIME_COLUMN = "window_start"
"""The time column of custom aggregation tables (and any table not listed)."""


def time_column(name: str) -> str:
    """The column whose UTC hour partitions `name`'s files."""
    table = TABLES.get(name)
    return table.time_column if table is not None else DEFAULT_TIME_COLUMN


STANDARD_LABELS = frozenset(("UUID", "gpu", "GPU_I_ID", "Hostname", "hostname", "modelName",
                             "namespace", "pod", "container", "team"))  # fmt: skip
"""Telemetry labels every input form reads into its own column (docs/schema.md); other labels
are extra labels, at most a few per aggregation."""

PartitionKey: TypeAlias = tuple[str, int]
"""A Kafka (topic, partition): the key of the daemon's per-partition state."""
