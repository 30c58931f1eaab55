"""The writer lock: an exclusive ``flock`` on the store's ``lock`` file.

One writer at a time, between processes (``flock``) and between the threads
of one process (a reentrant mutex first). A commit holds it for about a
millisecond and never across an fsync (see :mod:`alma_store.journal`), so a
waiter polls ``flock(LOCK_NB)`` with a short back-off, 50 µs growing to 2 ms:
the lock changes hands within a fraction of a commit. (``filelock``, which the
store used before, reopens the file on every attempt and polls every 50 ms by
default: about 70 µs per uncontended acquire and up to 50 ms of idle lock per
hand-over.) It is the same ``flock`` on the same file, so processes of either
kind exclude one another.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from ._platform import lock_file, unlock_file

__all__ = ["LockTimeout", "WriterLock"]

FIRST_WAIT = 50e-6
MAX_WAIT = 2e-3


class LockTimeout(Exception):
    """The lock was not obtained within the timeout."""


class WriterLock:
    """A reentrant, inter-process exclusive lock on ``path`` (created if missing).

    ``processes=False`` makes it a lock between the threads of this process
    only (a shared store's private mirror: no file, no ``flock``).
    """

    def __init__(self, path: Path, *, processes: bool = True) -> None:
        self.path = path
        self.processes = processes
        self._mutex = threading.RLock()
        self._depth = 0
        self._fd = -1
        self._pid = os.getpid()

    def acquire(self, timeout: float) -> None:
        """Take the lock, waiting at most ``timeout`` seconds; raise :class:`LockTimeout`."""
        deadline = time.monotonic() + timeout
        if not self._mutex.acquire(timeout=max(timeout, 0.0)):
            raise LockTimeout(self.path)
        try:
            if self._depth == 0 and self.processes:
                self._lock_file(deadline)
            self._depth += 1
        except BaseException:
            self._mutex.release()
            raise

    def _lock_file(self, deadline: float) -> None:
        if self._pid != os.getpid():  # a forked child: the descriptor is the parent's
            self._fd, self._pid = -1, os.getpid()
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        wait = FIRST_WAIT
        while True:
            if lock_file(self._fd, blocking=False):
                return
            if time.monotonic() >= deadline:
                raise LockTimeout(self.path) from None
            time.sleep(wait)
            wait = min(wait * 1.5, MAX_WAIT)

    def release(self) -> None:
        """Release one level of the lock; the file lock goes with the outermost."""
        try:
            self._depth -= 1
            if self._depth == 0 and self.processes:
                unlock_file(self._fd)
        finally:
            self._mutex.release()

    def close(self) -> None:
        """Close the lock file (the lock must not be held)."""
        if self._fd >= 0 and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = -1
