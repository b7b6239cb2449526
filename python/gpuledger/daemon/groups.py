"""The daemon's engines: one per group of assigned partitions that share a checkpoint.

After a rebalance, partitions can come with different written-through watermarks (each was
last committed by another member). One engine per distinct watermark keeps each group
exactly-once on its own: its watermark starts where all its partitions' windows were written,
so no window is emitted twice and none is skipped. A fresh process, or one restarted after a
crash, has one group. Each group writes under a writer id naming its partitions, like a
separate member of the consumer group; its rows are partial in the same way.
"""

from __future__ import annotations

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


def group_partitions(
    cfg: Config, resumed: Sequence[tuple[PartitionKey, int | None, int | None]]
) -> list[PartitionGroup]:
    """`resumed`: (partition, written-through watermark or None, replay bound or None)."""
    by_floor: dict[int | None, list[tuple[PartitionKey, int | None]]] = {}
    for key, floor, replay in resumed:
        by_floor.setdefault(floor, []).append((key, replay))
    groups = []
    for floor in sorted(by_floor, key=lambda f: (f is not None, f or 0)):
        members = by_floor[floor]
        engine = Engine(cfg)
        engine.resume([(t, p, NOTHING if r is None else r, floor) for (t, p), r in members])
        keys = [k for k, _ in members]
        groups.append(PartitionGroup(engine, keys, partition_set_id(keys)))
    return groups
