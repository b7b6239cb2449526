"""What the daemon records to restart exactly once, from Kafka and the output directory only.

* Commit metadata (per partition, with its committed offset): `wt`, the watermark through
  which windows holding this partition's events were written, and `d`, the offset below which
  its late and dead rows were written. The committed offset itself is the oldest event a
  window not yet written still needs, so a restart re-reads from there.
* Range markers in `OUT/.gpuledger/ranges/<topic>/<partition>/<from>_<to>`: written before
  the late and dead rows of input offsets [from, to), so that a restart after a crash writes
  the rows of that range again under the same file names (completing or matching what was
  written) instead of in other ranges that would duplicate them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gpuledger.output.object_store import store_for

VERSION = 1
MARKERS = Path(".gpuledger") / "ranges"


@dataclass(frozen=True)
class PartitionCheckpoint:
    written_through_ms: int | None  # windows ending by then were written with its events
    rows_through: int  # late and dead rows of offsets below this were written


def encode(cp: PartitionCheckpoint) -> str:
    return json.dumps(
        {"v": VERSION, "wt": cp.written_through_ms, "d": cp.rows_through}, separators=(",", ":")
    )


def decode(metadata: str | None) -> PartitionCheckpoint | None:
    """The checkpoint in commit metadata; None when there is none or it is not ours."""
    if not metadata:
        return None
    try:
        d = json.loads(metadata)
        if not isinstance(d, dict) or d.get("v") != VERSION:
            return None
        wt, rows = d.get("wt"), d.get("d")
        if (wt is not None and not isinstance(wt, int)) or not isinstance(rows, int):
            return None
        return PartitionCheckpoint(wt, rows)
    except ValueError:
        return None


def marked_ranges(names: Iterable[str]) -> Iterator[tuple[str, int, int]]:
    """(name, from, to) of every range marker among `names` (`<from>_<to>`); others skipped."""
    for name in names:
        a, _, b = name.partition("_")
        if a.isdigit() and b.isdigit():
            yield name, int(a), int(b)


def chain_of(names: Iterable[str], start: int) -> list[tuple[int, int]]:
    """The marked ranges that follow each other from `start` (the committed row offset), in
    order: what a crashed run wrote, to be written again with the same boundaries."""
    ends: dict[int, int] = {}
    for _, a, b in marked_ranges(names):
        ends[a] = max(ends.get(a, -1), b)
    out, cur = [], start
    while cur in ends and ends[cur] > cur:
        out.append((cur, ends[cur]))
        cur = ends[cur]
    return out


class RangeMarkers:
    """The late/dead row ranges of each partition, as marker files."""

    def __init__(self, out_dir: Path) -> None:
        self.root = out_dir / MARKERS

    def _dir(self, topic: str, partition: int) -> Path:
        # Kafka topic names are [A-Za-z0-9._-] and never "." or "..": safe as a path part.
        return self.root / topic / str(partition)

    def chain(self, topic: str, partition: int, start: int) -> list[tuple[int, int]]:
        """The ranges written after `start` (the committed row offset), in order."""
        try:
            return chain_of(os.listdir(self._dir(topic, partition)), start)
        except FileNotFoundError:
            return []

    def mark(self, topic: str, partition: int, start: int, end: int) -> None:
        d = self._dir(topic, partition)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{start}_{end}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def forget_before(self, topic: str, partition: int, committed: int) -> None:
        """Deletes markers of ranges that end at or before the committed row offset."""
        d = self._dir(topic, partition)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return
        for n in names:
            _, _, b = n.partition("_")
            if b.isdigit() and int(b) <= committed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(d / n)


class ObjectRangeMarkers:
    """`RangeMarkers` on an object store: one empty object per
    range, `<prefix>/.gpuledger/ranges/<topic>/<partition>/<from>_<to>`."""

    def __init__(self, uri: str) -> None:
        self.store = store_for(uri)
        self.root = ".gpuledger/ranges"

    def _dir(self, topic: str, partition: int) -> str:
        return f"{self.root}/{topic}/{partition}"

    def _ranges(self, topic: str, partition: int) -> Iterator[tuple[str, int, int]]:
        return marked_ranges(self.store.names(self._dir(topic, partition)))

    def chain(self, topic: str, partition: int, start: int) -> list[tuple[int, int]]:
        return chain_of(self.store.names(self._dir(topic, partition)), start)

    def mark(self, topic: str, partition: int, start: int, end: int) -> None:
        key = self.store.key(f"{self._dir(topic, partition)}/{start}_{end}")
        self.store.put(key, b"", staging_name="marker")

    def forget_before(self, topic: str, partition: int, committed: int) -> None:
        """Best effort, like the local markers: a marker below the committed offset that
        stays (the store is unreachable now) is never read again, and goes next time."""
        try:
            for name, _, b in self._ranges(topic, partition):
                if b <= committed:
                    self.store.delete(self.store.key(f"{self._dir(topic, partition)}/{name}"))
        except OSError:
            pass
