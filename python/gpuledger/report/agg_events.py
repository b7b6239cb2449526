"""The small tables: forgotten experiments from `idle_streaks` (the latest row of each
streak in the period), late events by stream and dead letters by reason."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa

from gpuledger.report.arrow_util import MONEY, money, pc, scalar_decimal
from gpuledger.report.inputs import Inputs, expected_schemas
from gpuledger.report.period import Period

__all__ = ["EventResult", "StreakResult", "read_events", "read_streaks"]

STREAK_COLUMNS = (
    "namespace",
    "pod",
    "team",
    "gpu_uuid",
    "model_name",
    "streak_start",
    "as_of",
    "streak_s",
    "idle_cost_usd",
)
_STREAK_KEY = ["namespace", "pod", "gpu_uuid", "streak_start"]


@dataclass(frozen=True)
class StreakResult:
    """One row per streak, by dollars burned: namespace, pod, team, gpu_uuid, model_name,
    streak_start, as_of, streak_s, idle_cost (decimal), beyond_ttl_s, saving (decimal, the
    cost after the TTL, pro rata of time)."""

    table: pa.Table
    cost: Decimal
    saving: Decimal
    ttl_s: float


@dataclass(frozen=True)
class EventResult:
    late_events: int
    late_by_stream: pa.Table  # stream, count
    dead_letters: int
    dead_by_reason: pa.Table  # reason, count (most first)


def read_streaks(inputs: Inputs, period: Period, ttl_s: float) -> StreakResult | None:
    """None when there is no `idle_streaks` table at all."""
    if "idle_streaks" not in inputs.files:
        return None
    t = inputs.read_all("idle_streaks", STREAK_COLUMNS, expected_schemas()["idle_streaks"])
    if t is None:
        return None
    t = period.filter(t, "as_of")
    # Along a streak as_of, streak_s and idle_cost_usd only grow: the maxima are its latest
    # row, and exact duplicates (one row read twice) change nothing.
    latest = (
        t.group_by(_STREAK_KEY, use_threads=False)
        .aggregate(
            [
                ("as_of", "max"),
                ("streak_s", "max"),
                ("idle_cost_usd", "max"),
                ("team", "max"),
                ("model_name", "max"),
            ]
        )
        .rename_columns([*_STREAK_KEY, "as_of", "streak_s", "idle_cost_usd", "team", "model_name"])
    )
    cost = money(latest.column("idle_cost_usd"))
    streak_s = latest.column("streak_s")
    beyond = pc.max_element_wise(pc.subtract(streak_s, ttl_s), 0.0)
    share = pc.divide(beyond, pc.max_element_wise(streak_s, 1e-9))
    saving = pc.cast(
        pc.multiply(pc.cast(cost, pa.float64()), share),
        money(latest.column("idle_cost_usd")).type,
        safe=False,
    )
    table = pa.table(
        {
            "namespace": latest.column("namespace"),
            "pod": latest.column("pod"),
            "team": latest.column("team"),
            "gpu_uuid": latest.column("gpu_uuid"),
            "model_name": latest.column("model_name"),
            "streak_start": latest.column("streak_start"),
            "as_of": latest.column("as_of"),
            "streak_s": streak_s,
            "idle_cost": cost,
            "beyond_ttl_s": beyond,
            "saving": saving,
        }
    ).sort_by([("idle_cost", "descending"), ("namespace", "ascending"), ("pod", "ascending")])
    return StreakResult(
        table=table,
        cost=scalar_decimal(pc.sum(cost)),
        saving=scalar_decimal(pc.sum(saving)),
        ttl_s=ttl_s,
    )


def no_streaks(ttl_s: float) -> StreakResult:
    """No streak: the engine writes no file for an empty table, so output with GPU windows
    and no `idle_streaks` means no pod stayed idle beyond the TTL."""
    text = pa.string()
    when = pa.timestamp("ms", tz="UTC")
    columns = ["namespace", "pod", "team", "gpu_uuid", "model_name"]
    fields: list[pa.Field[Any]] = [pa.field(c, text) for c in columns]
    fields += [pa.field("streak_start", when), pa.field("as_of", when)]
    fields += [pa.field("streak_s", pa.float64()), pa.field("idle_cost", MONEY)]
    fields += [pa.field("beyond_ttl_s", pa.float64()), pa.field("saving", MONEY)]
    schema = pa.schema(fields)
    return StreakResult(table=schema.empty_table(), cost=Decimal(0), saving=Decimal(0), ttl_s=ttl_s)


def _counts(t: pa.Table, column: str) -> pa.Table:
    out = t.group_by([column], use_threads=False).aggregate([([], "count_all")])
    return out.rename_columns([column, "count"]).sort_by(
        [("count", "descending"), (column, "ascending")]
    )


def read_events(inputs: Inputs, period: Period) -> EventResult:
    schemas = expected_schemas()
    late = inputs.read_all("late_events", ["stream", "event_time"], schemas["late_events"])
    dead = inputs.read_all("dead_letters", ["reason", "received_at"], schemas["dead_letters"])
    if late is not None:
        late = period.filter(late, "event_time")
    if dead is not None:
        dead = period.filter(dead, "received_at")
    empty_late = pa.table({"stream": pa.array([], pa.string()), "count": pa.array([], pa.int64())})
    empty_dead = pa.table({"reason": pa.array([], pa.string()), "count": pa.array([], pa.int64())})
    return EventResult(
        late_events=0 if late is None else late.num_rows,
        late_by_stream=empty_late if late is None else _counts(late, "stream"),
        dead_letters=0 if dead is None else dead.num_rows,
        dead_by_reason=empty_dead if dead is None else _counts(dead, "reason"),
    )
