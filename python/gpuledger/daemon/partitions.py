"""What the daemon keeps for each assigned partition, in one record from assignment to revoke:
where its checkpoint says output was written through, which late/dead rows are written, when
it last sent data, and its commits in flight (docs/daemon.md, exactly-once output)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gpuledger.daemon.groups import PartitionGroup
from gpuledger.tables import PartitionKey


@dataclass
class PartitionState:
    """One assigned (topic, partition). `floor`: the event time its windows were written
    through by the run that committed it (None: nothing committed). `rows_through`: late and
    dead rows of offsets below it are written (None until the first offset is consumed).
    `adopted`: offset ranges whose late/dead files a crashed run wrote, taken again with the
    same boundaries so the same files result. `in_flight`: asynchronous commits not yet
    acknowledged, (offset, row bound)."""

    key: PartitionKey
    group: PartitionGroup
    last_data: float  # time.monotonic() of the last message, or of the assignment
    floor: int | None = None
    rows_through: int | None = None
    adopted: list[tuple[int, int]] = field(default_factory=list)
    idle: bool = False  # marked idle in its engine: it no longer holds the watermark back
    at_eof: bool = False  # the end of the partition was reported (`--until-eof`)
    start_offset: int | None = None  # the committed offset reading started from, if any
    consumed: bool = False  # a message of it was read by this run
    end_offset: int | None = None  # read nothing and at its end: the offset of that end
    log_start: int | None = None  # the broker's first offset, when asked (partition_end)
    in_flight: list[tuple[int, int]] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return self.key[0]

    @property
    def partition(self) -> int:
        return self.key[1]


def row_spans(state: PartitionState, next_offset: int) -> list[tuple[int, int]]:
    """Offset ranges of `state`'s partition whose late/dead rows can be written now, up to
    `next_offset`: first the ranges a crashed run recorded (same boundaries, so same files),
    then one new range. Takes the adopted ranges it returns off `state.adopted`."""
    start = state.rows_through
    assert start is not None
    spans = []
    adopted = state.adopted
    while adopted and adopted[0][0] == start and adopted[0][1] <= next_offset:
        spans.append(adopted.pop(0))
        start = spans[-1][1]
    if not adopted and next_offset > start:
        spans.append((start, next_offset))
    return spans
