"""The daemon's engines: the assigned partitions dealt over `[run] engines` slots, and within a
slot one engine per group of partitions that share a checkpoint.

Slots spread the work over cores (the engines run in parallel threads:
`gpuledger.daemon.engine_threads`). The deal depends only on the assigned partitions and the
number of slots, so a restart with the same assignment and setting rebuilds the same engines and
rewrites the same file names (docs/daemon.md, "Engines: several cores").

After a rebalance, partitions can come with different written-through watermarks (each was
last committed by another member). One engine per distinct watermark keeps each group
exactly-once on its own: its watermark starts where all its partitions' windows were written,
so no window is emitted twice and none is skipped. Each group writes under a writer id naming
its partitions, like a separate member of the consumer group; its rows are partial in the same
way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from gpuledger.config import Config
from gpuledger.daemon.output import partition_set_id
from gpuledger.engine import Engine, Windows
from gpuledger.tables import PartitionKey

NOTHING = -(2**63)  # no replay bound: nothing of this partition was written before


@dataclass
class PartitionGroup:
    engine: Engine
    partitions: list[PartitionKey]
    writer_id: str
    pending: Windows | None = None
    idle_advanced_to: int | None = None  # the quiet_close_ms the all-idle close used

    def add_pending(self, closed: Windows) -> None:
        self.pending = closed if self.pending is None else self.pending.concat(closed)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def engine_slots(setting: int, partitions: int) -> int:
    """`[run] engines` for `partitions` assigned partitions: 0 means the usable cores; never
    more slots than partitions, never fewer than one."""
    wanted = usable_cores() if setting == 0 else setting
    return max(1, min(wanted, partitions))


def group_partitions(
    cfg: Config,
    resumed: Sequence[tuple[PartitionKey, int | None, int | None]],
    slots: int = 1,
) -> list[PartitionGroup]:
    """`resumed`: (partition, written-through watermark or None, replay bound or None).
    The partitions, sorted, are dealt round robin over `slots` (each topic's partitions
    spread evenly); each slot has one engine per distinct watermark."""
    order = sorted(key for key, _, _ in resumed)
    slot_of = {key: i % max(1, slots) for i, key in enumerate(order)}
    by_slot_floor: dict[tuple[int, int | None], list[tuple[PartitionKey, int | None]]] = {}
    for key, floor, replay in resumed:
        by_slot_floor.setdefault((slot_of[key], floor), []).append((key, replay))
    groups = []
    for slot, floor in sorted(by_slot_floor, key=lambda sf: (sf[0], sf[1] is not None, sf[1] or 0)):
        members = by_slot_floor[(slot, floor)]
        engine = Engine(cfg)
        engine.resume([(t, p, NOTHING if r is None else r, floor) for (t, p), r in members])
        keys = [k for k, _ in members]
        groups.append(PartitionGroup(engine, keys, partition_set_id(keys)))
    return groups
