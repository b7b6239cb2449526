"""How the daemon names and writes output so that a restart rewrites the same files.

* Window tables: one file per window end and input-partition set,
  `part-we<window_end_ms>-<set>.arrow`. `<set>` is a hash of the input partitions whose
  events the rows hold (one engine's partitions: `gpuledger.daemon.groups`), so members of one
  consumer group, which own disjoint partitions, never write the same name, and the same
  input always gives the same name.
* `late_events` and `dead_letters`: one file per input partition and offset range,
  `part-<t|r>.p<partition>.o<from>_<to>-k.arrow`, ranges recorded by `checkpoint.RangeMarkers`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gpuledger.daemon.checkpoint import ObjectRangeMarkers, RangeMarkers
from gpuledger.output.object_store import is_uri
from gpuledger.output.sink import ArrowSink, OutputConflictError
from gpuledger.tables import EVENT_TABLES


def partition_set_id(partitions: Iterable[tuple[str, int]]) -> str:
    """A short stable name for a set of (topic, partition)."""
    text = "\n".join(f"{t}:{p}" for t, p in sorted(partitions))
    return "s" + hashlib.sha256(text.encode()).hexdigest()[:12]


def _millis(column: pa.ChunkedArray[Any]) -> pa.ChunkedArray[Any]:
    return pc.cast(column, pa.timestamp("ms", tz="UTC")).cast(pa.int64())


class OutputWriter:
    def __init__(self, out_dir: str | Path, fmt: str) -> None:
        self.out_dir = out_dir
        self.fmt = fmt
        self.markers: RangeMarkers | ObjectRangeMarkers = (
            ObjectRangeMarkers(str(out_dir)) if is_uri(out_dir) else RangeMarkers(Path(out_dir))
        )
        self._sinks: dict[str, ArrowSink] = {}
        self.conflicts: list[OutputConflictError] = []  # files kept as they were: to log

    def sink(self, writer_id: str) -> ArrowSink:
        if writer_id not in self._sinks:
            self._sinks[writer_id] = ArrowSink(self.out_dir, format=self.fmt, writer_id=writer_id)
        return self._sinks[writer_id]

    def write_windows(self, tables: Mapping[str, pa.Table], writer_id: str) -> int:
        """Writes every window table, one file per window end; returns files written."""
        by_end: dict[int, dict[str, pa.Table]] = {}
        for name, table in tables.items():
            if name in EVENT_TABLES or table.num_rows == 0:
                continue
            # idle_streaks rows belong to the window whose close produced them: `as_of`.
            end_column = "window_end" if "window_end" in table.column_names else "as_of"
            ends = _millis(table.column(end_column))
            for end in sorted({int(e) for e in pc.unique(ends).to_pylist() if e is not None}):
                by_end.setdefault(end, {})[name] = table.filter(pc.equal(ends, pa.scalar(end)))
        files = 0
        for end in sorted(by_end):
            for name, table in by_end[end].items():
                files += self._write_keeping_first(writer_id, {name: table}, f"we{end}")
        return files

    def _write_keeping_first(
        self, writer_id: str, tables: Mapping[str, pa.Table], batch_key: str
    ) -> int:
        """Writes one table's files of a batch. A file that exists with other rows (input that
        broke the ordering assumption, docs/daemon.md) is kept as it is and recorded in
        `conflicts`; the other tables and batches are still written, so one conflict never
        costs rows of other files that the next commit then covers."""
        try:
            return len(self.sink(writer_id).write(tables, batch_key=batch_key))
        except OutputConflictError as e:
            self.conflicts.append(e)
            return 0

    def write_rows(
        self,
        topic: str,
        tag: str,
        partition: int,
        span: tuple[int, int],
        rows: Mapping[str, pa.Table],
    ) -> int:
        """Records the range, then writes its late and dead rows; returns files written."""
        start, end = span
        self.markers.mark(topic, partition, start, end)
        key = f"{tag}.p{partition}.o{start}_{end}"
        return sum(self._write_keeping_first("k", {n: t}, key) for n, t in rows.items())


def rows_in(table: pa.Table, source: str, partition: int, start: int, end: int) -> pa.Table:
    """The rows of one input partition with offsets in [start, end)."""
    if table.num_rows == 0:
        return table
    col = table.column
    mask = pc.and_(
        pc.and_(
            pc.equal(col("source"), pa.scalar(source)),
            pc.equal(col("partition"), pa.scalar(partition, pa.int32())),
        ),
        pc.and_(
            pc.greater_equal(col("offset"), pa.scalar(start, pa.int64())),
            pc.less(col("offset"), pa.scalar(end, pa.int64())),
        ),
    )
    return table.filter(mask)
