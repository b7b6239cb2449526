"""`ArrowSink` on object storage: `ArrowSink("s3://bucket/prefix", ...)` is one of these. Same
layout, names, batch keys and exactly-once rule as the local sink (gpuledger.output.sink);
each file is one whole object (gpuledger.output.object_store), so there is no rename step and
nothing to fsync: an upload that returned is durable."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from gpuledger.output import sink as local
from gpuledger.output.object_store import ObjectStore, store_for

log = logging.getLogger("gpuledger.output.sink")

_TEMP = re.compile(
    r"\.part-[A-Za-z0-9._]+-(?P<writer>[A-Za-z0-9._-]+)\.(?:arrow|parquet)\.tmp-\d+-[0-9a-f]+"
)


class ObjectStoreSink(local.ArrowSink):
    """Paths it returns are the objects' keys (`bucket/prefix/<table>/date=.../part-...`)."""

    store: ObjectStore

    def __init__(
        self,
        out_dir: str,
        *,
        format: str = "arrow",
        writer_id: str = "0",
        durable: str = "each",
    ) -> None:
        if format not in local.FORMATS:
            raise ValueError(f"format must be one of {sorted(local.FORMATS)}, not {format!r}")
        if durable not in local.DURABILITY:
            raise ValueError(f"durable must be one of {local.DURABILITY}, not {durable!r}")
        local._check_token(writer_id, local.WRITER_ID, "writer_id")
        self.store = store_for(out_dir)
        self.uri = self.store.uri
        self.out_dir = Path(self.store.base)
        self.format = format
        self.writer_id = writer_id
        self.durable = durable  # both mean the same here: every upload is durable
        self._unsynced_files: list[Path] = []
        self._unsynced_dirs: set[Path] = set()
        self.cleanup_temp()

    def __repr__(self) -> str:
        return (
            f"ObjectStoreSink({self.uri!r}, format={self.format!r}, writer_id={self.writer_id!r})"
        )

    def _read_existing(self, path: Path) -> bytes:
        data = self.store.read(str(path))
        if data is None:
            raise FileNotFoundError(str(path))
        return data

    def _write_atomic(self, planned: local._Planned) -> None:
        self.store.put(str(planned.path), planned.data, staging_name=f".{planned.path.name}")

    def sync(self) -> None:
        """Nothing to do: every upload that returned is durable."""

    def cleanup_temp(self) -> list[Path]:
        """Deletes the staged uploads this writer left behind (a crash between the upload
        and the copy). Incomplete multipart uploads are invisible; an S3 lifecycle rule
        (AbortIncompleteMultipartUpload) reclaims their space."""
        removed = []
        for name in self.store.names(local.STAGING):
            m = _TEMP.fullmatch(name)
            if m is None or m["writer"] != self.writer_id:
                continue
            key = self.store.key(f"{local.STAGING}/{name}")
            try:
                self.store.delete(key)
                removed.append(Path(key))
            except OSError as e:
                log.warning("cannot remove staged upload %s: %s", self.store.uri_of(key), e)
        return removed
