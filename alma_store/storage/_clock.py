"""Clocks a shared store may trust across hosts, and the one it trusts on a host.

Whatever several hosts must agree on (the age of a segment before its commit
objects are deleted, whether a lease or a claim lapsed) is judged on the
*storage's* clock: the modification time the storage itself stamps on an
object it just wrote (:func:`storage_now`), compared with the times it
stamped on the objects in question. Hosts' wall clocks never enter.

What one process measures about its own work (how long ago it last listed
the log) uses :func:`boottime`: ``CLOCK_BOOTTIME`` where the system has it
(Linux), which keeps counting while the machine is suspended. A laptop or VM
that slept for an hour must not believe its last look at the log is a few
seconds old (``CLOCK_MONOTONIC`` stops during a suspend). Where there is no
such clock (macOS, Windows), it is the larger of the monotonic and the wall
clock's time since the process started, never going back: a suspend moves
the wall clock on when the host wakes up and syncs it.
"""

from __future__ import annotations

import threading
import time
import uuid

from ..errors import ReadOnlyError
from ._objects import Objects

__all__ = ["StorageClock", "boottime", "storage_now"]


_START = (time.monotonic(), time.time())
_fallback = [0.0]
_fallback_lock = threading.Lock()


def boottime() -> float:
    """Seconds of a clock that counts suspended time (``CLOCK_BOOTTIME``) where there is one."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if clock is not None:
        return time.clock_gettime(clock)
    elapsed = max(time.monotonic() - _START[0], time.time() - _START[1])
    with _fallback_lock:
        _fallback[0] = max(_fallback[0], elapsed)
        return _fallback[0]


def storage_now(objects: Objects, name: str | None = None) -> float:
    """The storage's own time now: the modification time it stamps on an object written now.

    ``name``: the object to write (replaced; an object the caller owns, such
    as its lease); by default a scratch ``clock/<random>`` object, removed after.
    """
    scratch = name is None
    key = f"clock/{uuid.uuid4().hex}" if name is None else name
    objects.put(key, b"now")
    try:
        stamped = objects.modified(key)
    finally:
        if scratch:
            objects.delete(key)
    if stamped is None:
        raise OSError(f"{objects.location}/{key} vanished right after it was written")
    return stamped


class StorageClock:
    """Unix seconds by the storage's clock: read from it once every ``resync`` seconds and
    carried on in between with :func:`boottime` (one scratch write a minute, not per call).

    Claims of a shared store expire by it, so that hosts whose clocks disagree
    agree on which claims are live. Credentials that may not write cannot
    read the storage's time: such a reader falls back to its own wall clock.
    """

    def __init__(self, objects: Objects, resync: float = 60.0) -> None:
        self.objects = objects
        self.resync = resync
        self._anchor: tuple[float, float] | None = None
        self._wall = False

    def __call__(self) -> float:
        if self._wall:
            return time.time()
        now = boottime()
        if self._anchor is None or now - self._anchor[0] >= self.resync:
            try:
                self._anchor = (boottime(), storage_now(self.objects))
            except ReadOnlyError:
                self._wall = True
                return time.time()
        return self._anchor[1] + (now - self._anchor[0])
