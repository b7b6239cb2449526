"""Local-disk durability for the sink: directories made and files and renames fsynced so that
a crash never leaves a partial file or loses a rename the daemon committed offsets after; or
one syncfs(2) for everything a replay wrote (docs/output-files.md)."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from typing import Any

O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def make_dirs(directory: Path, unsynced: set[Path] | None = None) -> None:
    """`mkdir -p directory`, making each new entry durable (fsync of its parent), or, given
    `unsynced`, adding the parents there for a later sync."""
    missing = []
    d = directory
    while not d.is_dir() and d.parent != d:
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            if not d.is_dir():
                raise
            continue
        if unsynced is None:
            fsync_dir(d.parent)
        else:
            unsynced.add(d.parent)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def syncfs(directory: Path) -> bool:
    """syncfs(2) of the file system holding `directory` (Linux): everything written there
    reaches the disk in one call. False where the call does not exist."""
    if _LIBC_SYNCFS is None:
        return False
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | O_CLOEXEC)
    try:
        if _LIBC_SYNCFS(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(directory))
    finally:
        os.close(fd)
    return True


def _libc_syncfs() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_LIBC_SYNCFS = _libc_syncfs()


def fsync_dir(directory: Path) -> None:
    """Makes a rename or new entry in `directory` durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
