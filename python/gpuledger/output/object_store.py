"""Output on object storage: `[output] dir = "s3://bucket/prefix"` (or `gs://`, `abfs://`, any
filesystem `pyarrow.fs.FileSystem.from_uri` knows) with the layout, file names and
exactly-once rule of local output (docs/output-files.md, "Object storage").

A file appears whole or not at all: an object up to `SINGLE_PUT_BYTES` is one PUT; a larger
one is uploaded under `<prefix>/.staging/` and then copied server-side to its name (S3's
CopyObject is atomic), so a multipart upload that fails half-way is never under a table.
An identical existing object is skipped, a different one refused (OutputConflictError), as
for files. A PUT or copy that returned is durable: that is the object-store meaning of the
sink's fsync step and of the daemon's "written, then commit". Credentials come from the
store's standard chain (for S3: the AWS variables, `AWS_PROFILE` / shared credentials file,
web identity, instance metadata), never from the URI, and are never logged.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import pyarrow as pa

if TYPE_CHECKING:
    import pyarrow.fs as pafs

from gpuledger.errors import SinkWriteError

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# pyarrow's S3 output stream uploads at most this much as one PUT at close; more goes
# multipart (parts of 5 MiB or more), which is staged and copied.
SINGLE_PUT_BYTES = 5 * 1024 * 1024
STAGING = ".staging"


def is_uri(out_dir: object) -> bool:
    """True for `scheme://...` other than `file://` (a local path, handled as one)."""
    return isinstance(out_dir, str) and bool(_SCHEME.match(out_dir)) and not is_file_uri(out_dir)


def is_file_uri(out_dir: object) -> bool:
    return isinstance(out_dir, str) and out_dir.lower().startswith("file://")


def local_path(out_dir: str | os.PathLike[str]) -> str:
    """`file:///x/y` as `/x/y`; anything else as it is."""
    if is_file_uri(out_dir):
        return unquote(urlsplit(str(out_dir)).path)
    return os.fspath(out_dir)


class ObjectStore:
    """One output location on an object store: `fs` and the `base` path (bucket/prefix)."""

    def __init__(self, uri: str) -> None:
        parts = urlsplit(uri)
        if parts.username or parts.password:
            # A URI with credentials would end up in logs and error messages.
            raise ValueError(
                f"{parts.scheme}://...@{parts.hostname}: credentials do not belong in the output "
                "URI; use the standard variables (AWS_ACCESS_KEY_ID...) or a credentials file"
            )
        self.uri = uri.rstrip("/")
        import pyarrow.fs as pafs  # only for URIs: local replays and daemons skip its import

        try:
            self.fs, base = pafs.FileSystem.from_uri(self.uri)
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{self.uri}: not an output location pyarrow can open ({e})") from e
        self.base = base.rstrip("/")
        if not self.base:
            raise ValueError(f"{self.uri}: needs a bucket (and optionally a prefix)")

    def __repr__(self) -> str:
        return f"ObjectStore({self.uri!r})"

    def key(self, relative: str | PurePosixPath) -> str:
        return f"{self.base}/{relative}"

    def uri_of(self, key: str) -> str:
        """The URI of a key under `base` (for messages and list results)."""
        return self.uri + key[len(self.base) :]

    def read(self, key: str) -> bytes | None:
        """The object's bytes; None when there is none."""
        try:
            with self.fs.open_input_stream(key) as f:
                return bytes(f.read())
        except FileNotFoundError:
            return None
        except OSError as e:
            if _not_found(e):
                return None
            raise _write_error(e, self.uri_of(key)) from e

    def put(self, key: str, data: bytes, *, staging_name: str) -> None:
        """Makes `key` hold exactly `data`, all at once (see the module's docstring)."""
        try:
            if len(data) <= SINGLE_PUT_BYTES:
                self._upload(key, data)
                return
            tmp = self.key(f"{STAGING}/{staging_name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
            try:
                self._upload(tmp, data)
                size = self.fs.get_file_info(tmp).size
                if size != len(data):
                    raise OSError(f"staged upload {self.uri_of(tmp)} has {size} bytes")
                self.fs.copy_file(tmp, key)
            finally:
                with contextlib.suppress(OSError):  # else the writer's next cleanup_temp
                    self.fs.delete_file(tmp)
        except OSError as e:
            raise _write_error(e, self.uri_of(key)) from e

    def _upload(self, key: str, data: bytes) -> None:
        with self.fs.open_output_stream(key) as out:
            out.write(data)

    def files(self, relative_dir: str) -> list[pafs.FileInfo]:
        """Every object under `base/relative_dir` (recursive); none when it does not exist."""
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.key(relative_dir), recursive=True, allow_not_found=True)
        try:
            infos = self.fs.get_file_info(selector)
        except FileNotFoundError:
            return []
        return [i for i in infos if i.type == pafs.FileType.File]

    def names(self, relative_dir: str) -> list[str]:
        """Base names of the objects directly under `base/relative_dir`."""
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.key(relative_dir), allow_not_found=True)
        try:
            infos = self.fs.get_file_info(selector)
        except FileNotFoundError:
            return []
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.File)

    def children(self) -> list[str]:
        """Names of the entries directly under `base` (tables, `.staging`...)."""
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.base, allow_not_found=True)
        try:
            return sorted(i.base_name for i in self.fs.get_file_info(selector))
        except FileNotFoundError:
            return []

    def delete(self, key: str) -> None:
        try:
            self.fs.delete_file(key)
        except FileNotFoundError:
            pass
        except OSError as e:
            if not _not_found(e):
                raise


def _write_error(cause: OSError, uri: str) -> SinkWriteError:
    """SinkWriteError naming the object's URI (Path would fold its `//`)."""
    code = cause.errno if cause.errno is not None else errno.EIO
    return SinkWriteError(code, cause.strerror or str(cause) or type(cause).__name__, uri)


def _not_found(e: OSError) -> bool:
    text = str(e)
    return "NoSuchKey" in text or "Not Found" in text or "does not exist" in text


_STORES: dict[str, ObjectStore] = {}


def store_for(uri: str) -> ObjectStore:
    """One ObjectStore per URI per process (a filesystem holds connections)."""
    key = uri.rstrip("/")
    if key not in _STORES:
        _STORES[key] = ObjectStore(key)
    return _STORES[key]


def object_files(uri: str, table: str, pattern: re.Pattern[str]) -> list[str]:
    """URIs of the finished files of `table`: `<table>/date=*/hour=*/<name matching pattern>`."""
    store = store_for(uri)
    out = []
    for info in store.files(table):
        rel = PurePosixPath(info.path[len(store.base) + 1 :])
        if (
            len(rel.parts) == 4
            and rel.parts[1].startswith("date=")
            and rel.parts[2].startswith("hour=")
            and pattern.fullmatch(rel.name)
        ):
            out.append(store.uri_of(info.path))
    return sorted(out)


def read_object(uri: str) -> bytes:
    """The bytes of the object at a full URI (of a file `object_files` listed)."""
    for root, store in _STORES.items():
        if uri.startswith(root + "/"):
            data = store.read(store.base + uri[len(root) :])
            if data is None:
                raise FileNotFoundError(uri)
            return data
    import pyarrow.fs as pafs

    fs, key = pafs.FileSystem.from_uri(uri)
    with fs.open_input_stream(key) as f:
        return bytes(f.read())
