"""What differs between Linux, macOS and Windows, in one place.

Nothing here is imported from the platform at import time unless it exists
there: ``import alma_store`` works everywhere.

- **Durable data.** Linux: ``fdatasync``. macOS: ``fcntl(F_FULLFSYNC)``, since
  its ``fsync`` leaves data in the drive's cache (``fsync`` if the filesystem
  refuses it). Elsewhere: ``fsync`` (on Windows, ``FlushFileBuffers``).
- **Durable directory entries.** A directory is opened and ``fsync``-ed where
  that is possible (POSIX); Windows cannot open a directory for it, and NTFS
  journals its metadata: nothing to do.
- **Read-ahead.** ``posix_fadvise(WILLNEED)`` where it exists; a hint only.
- **File locks** (a local store's writer lock and its group-commit hint):
  ``flock`` on POSIX; on Windows, ``msvcrt.locking`` of the file's first byte.
  A platform with neither raises :class:`~alma_store.errors.UnsupportedPlatformError`
  when a local store is written; shared stores need no lock at all.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import UnsupportedPlatformError

__all__ = [
    "advise_mapping",
    "advise_will_need",
    "lock_file",
    "sync_data",
    "sync_dir",
    "sync_file",
    "unlock_file",
]


def _module(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        return None


_fcntl = _module("fcntl")
_msvcrt = _module("msvcrt")


def sync_file(fd: int) -> None:
    """Make a file's data and metadata durable."""
    full = getattr(_fcntl, "F_FULLFSYNC", None) if sys.platform == "darwin" else None
    if full is not None:
        try:
            _fcntl.fcntl(fd, full)
            return
        except OSError:
            pass  # a filesystem without it (some network mounts): plain fsync
    os.fsync(fd)


def sync_data(fd: int) -> None:
    """Make a file's data durable (its size too, as a growing journal needs)."""
    if hasattr(os, "fdatasync") and sys.platform != "darwin":
        os.fdatasync(fd)
    else:
        sync_file(fd)


def sync_dir(path: Path) -> None:
    """Make a directory's entries (creates, renames, unlinks) durable, where the system can."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        sync_file(fd)
    finally:
        os.close(fd)


def advise_will_need(fd: int, length: int, offset: int = 0) -> None:
    """Start reading ``length`` bytes (0: to the end) of ``fd`` from ``offset`` into the page
    cache, where the system can (a hint: nothing else changes)."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        advise(fd, offset, length, os.POSIX_FADV_WILLNEED)


def advise_mapping(mapping: Any, how: str) -> None:
    """``madvise`` a memory map ``"sequential"`` or ``"normal"``, where the system can."""
    flag = getattr(__import__("mmap"), f"MADV_{how.upper()}", None)
    if flag is not None and hasattr(mapping, "madvise"):
        mapping.madvise(flag)


def lock_file(fd: int, *, blocking: bool) -> bool:
    """Take the exclusive lock of the open file ``fd``; False if ``blocking`` is off and it
    is held elsewhere."""
    if _fcntl is not None:
        try:
            _fcntl.flock(fd, _fcntl.LOCK_EX | (0 if blocking else _fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True
    if _msvcrt is not None:
        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            try:
                _msvcrt.locking(fd, _msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not blocking:
                    return False
                time.sleep(1e-3)
    raise UnsupportedPlatformError(
        f"{sys.platform} has no file lock alma_store can use (neither flock nor msvcrt), so "
        "a store in a directory of its own cannot be written here; create a shared store "
        "(shared=True), which needs no lock"
    )


def unlock_file(fd: int) -> None:
    """Release the lock :func:`lock_file` took."""
    if _fcntl is not None:
        _fcntl.flock(fd, _fcntl.LOCK_UN)
    elif _msvcrt is not None:
        os.lseek(fd, 0, os.SEEK_SET)
        _msvcrt.locking(fd, _msvcrt.LK_UNLCK, 1)
