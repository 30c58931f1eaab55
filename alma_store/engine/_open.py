"""Opening a store: its checked metadata, its feature source and its engine.

A store in a directory of its own is opened in place. A shared store (format 5,
in a directory or in object storage) is opened on a private mirror: an empty
local-format store in a temporary directory, filled from the store's commit
log (:mod:`alma_store.storage._mirror`).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

from ..sources import FeatureSource, open_source
from ..storage import (
    SHARED_FORMAT_VERSION,
    DirObjects,
    Location,
    Objects,
    SharedLog,
    make_mirror,
    marks_path,
    marks_versions,
    open_objects,
    read_meta,
    read_shared_meta,
    will_need,
)
from ._engine import DEFAULT_CHECKPOINT_ROWS, Engine

__all__ = ["open_engine", "open_reader"]

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
    if location.remote:
        return _open_shared(
            open_objects(location), location, writable, checkpoint_rows, lock_timeout
        )
    root = location.path
    assert root is not None
    meta = read_meta(root)
    if meta.format_version == SHARED_FORMAT_VERSION:
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
    """Open a shared store: a private mirror directory, filled from its commit log."""
    meta = read_shared_meta(objects)
    mirror = make_mirror(meta)
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
                shared=SharedLog(objects),
            )
        except BaseException:
            source.close()
            raise
    except BaseException:
        shutil.rmtree(mirror, ignore_errors=True)
        raise
    return engine, source


@contextlib.contextmanager
def open_reader(location: Location) -> Iterator[tuple[Engine, FeatureSource]]:
    """Open the store at ``location`` read-only for one task (a worker)."""
    engine, source = open_engine(location, writable=False, lock_timeout=0.0)
    try:
        yield engine, source
    finally:
        engine.close()
        source.close()
