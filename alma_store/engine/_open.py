"""Opening a store: its checked metadata, its feature source and its engine.

A store in a directory of its own is opened in place. A shared store (format 5,
in a directory or in object storage) is opened on a private mirror: an empty
local-format store in a temporary directory, filled from the store's commit
log (:mod:`alma_store.storage._mirror`).

Workers (Dask tasks, DataLoader workers) open a store by its location once per
process: :func:`worker_engine` keeps the last few engines a process opened,
keyed by location and storage options, and hands the same one to every task
(an engine serves any committed version, and its reads are thread-safe). A
forked child starts with none of its parent's; they are closed when the
process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import threading
from collections import OrderedDict

from ..core import n_chunks
from ..sources import FeatureSource, open_source
from ..storage import (
    SHARED_CHECKPOINTS_FORMAT,
    SHARED_FORMATS,
    DirObjects,
    Location,
    Objects,
    checkpoints_listed,
    latest_checkpoint,
    make_mirror,
    marks_path,
    marks_versions,
    open_objects,
    read_meta,
    read_shared_meta,
    shared_log,
    will_need,
    writes_refused,
)
from ._engine import DEFAULT_CHECKPOINT_ROWS, Engine

__all__ = ["open_engine", "worker_engine"]

OPEN_READ_BYTES = 1 << 18
"""Bytes of each store file an open fetches ahead (all of the small ones)."""


def open_engine(
    location: Location,
    *,
    writable: bool,
    checkpoint_rows: int = DEFAULT_CHECKPOINT_ROWS,
    lock_timeout: float = 60.0,
) -> tuple[Engine, FeatureSource]:
    """Open the store at ``location``: its checked metadata, feature source and engine.

    The location's storage options reach features and shared stores in object
    storage (never written anywhere).
    """
    if not writable:
        return _open_engine(location, writable, checkpoint_rows, lock_timeout)
    with writes_refused(location):
        return _open_engine(location, writable, checkpoint_rows, lock_timeout)


def _open_engine(
    location: Location, writable: bool, checkpoint_rows: int, lock_timeout: float
) -> tuple[Engine, FeatureSource]:
    if location.remote:
        return _open_shared(
            open_objects(location), location, writable, checkpoint_rows, lock_timeout
        )
    root = location.path
    assert root is not None
    meta = read_meta(root)
    if meta.format_version in SHARED_FORMATS:
        return _open_shared(DirObjects(root), location, writable, checkpoint_rows, lock_timeout)
    # What the open reads next, fetched at once rather than one cold read after another.
    for name in ("checkpoint.bin", "journal.bin", "state/mask/zarr.json", "state/labels/zarr.json"):
        will_need(root / name, OPEN_READ_BYTES)
    with contextlib.suppress(OSError):
        for version in marks_versions(root)[-1:]:
            will_need(marks_path(root, version), OPEN_READ_BYTES)
    source = open_source(meta.features, root, meta.n_items, location.storage_options)
    try:
        engine = Engine(
            root,
            meta,
            location=location,
            writable=writable,
            checkpoint_rows=checkpoint_rows,
            lock_timeout=lock_timeout,
        )
    except BaseException:
        source.close()
        raise
    return engine, source


def _open_shared(
    objects: Objects,
    location: Location,
    writable: bool,
    checkpoint_rows: int,
    lock_timeout: float,
) -> tuple[Engine, FeatureSource]:
    """Open a shared store: a private mirror directory, from its newest shared checkpoint
    (format 7), filled from its commit log after it."""
    listed = checkpoints_listed(objects)  # beside meta.json's get: one round trip for both
    meta = read_shared_meta(objects)
    base = None
    if meta.format_version >= SHARED_CHECKPOINTS_FORMAT:
        n = n_chunks(meta.n_items, meta.chunk_rows)
        base = latest_checkpoint(objects, meta.uuid, n, listed)
    mirror = make_mirror(meta, base)
    try:
        # Relative feature paths (an in-memory array copied at create) are the store directory's.
        home = location.path or mirror
        source = open_source(meta.features, home, meta.n_items, location.storage_options)
        try:
            engine = Engine(
                mirror,
                meta,  # format 5: the mirror is an implementation detail
                location=location,
                writable=writable,
                checkpoint_rows=checkpoint_rows,
                lock_timeout=lock_timeout,
                shared=shared_log(objects, meta),
                shared_base=base,
            )
        except BaseException:
            source.close()
            raise
    except BaseException:
        shutil.rmtree(mirror, ignore_errors=True)
        raise
    return engine, source


WORKER_ENGINES = 8
"""Engines a worker process keeps open at most (the least recently used one is closed)."""


class _WorkerEngines:
    """The engines this process opened for workers, by location, options and mode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._open: OrderedDict[tuple[str, str, bool], tuple[Engine, FeatureSource]] = OrderedDict()
        self.opened = 0
        """How many stores this process opened for workers (tests count them)."""

    def get(self, location: Location, *, writable: bool) -> tuple[Engine, FeatureSource]:
        options = json.dumps(location.storage_options, sort_keys=True, default=repr)
        key = (str(location.absolute()), options, writable)
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's engines are not ours to use
                self._open, self._pid, self.opened = OrderedDict(), os.getpid(), 0
            got = self._open.get(key)
            if got is not None and not got[0].closed:
                self._open.move_to_end(key)
                return got
            got = open_engine(location, writable=writable)
            self.opened += 1
            self._open[key] = got
            while len(self._open) > WORKER_ENGINES:
                _close(*self._open.popitem(last=False)[1])
            return got

    def close(self) -> None:
        """Close every engine kept (at exit: a shared store's mirror goes with it)."""
        with self._lock:
            if self._pid == os.getpid():
                while self._open:
                    _close(*self._open.popitem()[1])


def _close(engine: Engine, source: FeatureSource) -> None:
    with contextlib.suppress(Exception):  # at exit or eviction: nothing to report to
        engine.close()
        source.close()


_WORKERS = _WorkerEngines()
atexit.register(_WORKERS.close)


def worker_engine(location: Location, *, writable: bool = False) -> tuple[Engine, FeatureSource]:
    """The engine and source of the store at ``location`` for a worker task, open once per process.

    The caller must not close them: the next task of this process uses them again.
    """
    return _WORKERS.get(location, writable=writable)
