"""Copying a store with its whole history: a directory to object storage and back.

A store's history is its journal records, and a shared store's segments are
journal records back to back (:mod:`alma_store._shared`), so a copy moves
records byte for byte: the copy has the same versions, times, annotators and
annotations, and the same uuid (it is the same store, moved). The campaign
log (claims, metrics) is copied record for record. Score runs are not: they
are derived, and scored again under their name on the copy.

Nothing of the copy is visible before it is whole: a directory is built
aside and renamed into place; in object storage the segments are written
first and ``meta.json``, which makes it a store, last.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, StoreExistsError
from ..storage import (
    FORMAT_VERSION,
    SHARED_FORMAT_VERSION,
    DirObjects,
    Journal,
    Location,
    Objects,
    StoreMeta,
    chain_crc,
    check_conditional_create,
    create_shared,
    fsync_fd,
    fsync_path,
    init_state,
    marks_path,
    occupied,
    open_campaign_log,
    open_objects,
    publish_checkpoint,
    shared_log,
    shared_mode,
    storage_errors,
)
from ._create import features_beside
from ._engine import Engine
from ._open import open_engine

__all__ = ["copy_store"]

SEGMENT_BYTES = 8 << 20
"""A copied history is cut into segments of about this many bytes."""


def _records(journal: Journal, version: int) -> Iterator[tuple[int, int, list[bytes]]]:
    """``(first, last, records)`` of the records ``1 .. version``, in pieces of ~``SEGMENT_BYTES``."""
    first, parts, size = 1, [], 0
    for v, record in journal.raw_records(version):
        parts.append(record)
        size += len(record)
        if size >= SEGMENT_BYTES or v == version:
            yield first, v, parts
            first, parts, size = v + 1, [], 0


def copy_store(src: Location, dst: Location, *, shared: bool = False) -> dict[str, Any]:
    """Copy the store at ``src`` to ``dst`` with its whole history; see :func:`alma_store.copy`."""
    if not isinstance(shared, bool):
        raise InvalidInputError(f"shared must be a bool, got {shared!r}")
    engine, source = open_engine(src, writable=False, checkpoint_rows=1 << 62, lock_timeout=0.0)
    try:
        source.close()
        version = engine.current().version
        meta = engine.meta
        campaign = open_campaign_log(engine.files, meta, shared=engine.shared).read_new()
        home = src.path or engine.root  # in-memory features were copied into it at create
        to_shared = shared or dst.remote
        target = dataclasses.replace(
            meta, format_version=SHARED_FORMAT_VERSION if to_shared else FORMAT_VERSION
        )
        pieces = _records(engine.journal, version)
        if to_shared:
            _to_shared(dst, target, pieces, campaign, home, engine)
        else:
            assert dst.path is not None
            _to_directory(dst.path, target, pieces, campaign, home)
    finally:
        engine.close()
    return {"version": version, "campaign_records": len(campaign)}


def _to_shared(
    dst: Location,
    meta: StoreMeta,
    pieces: Iterator[tuple[int, int, list[bytes]]],
    campaign: list[dict[str, Any]],
    home: Path,
    source: Engine,
) -> None:
    objects = open_objects(dst)
    if occupied(objects):
        raise StoreExistsError(f"cannot copy to {dst}: a store (or a copy left half-done) is there")
    with features_beside(objects, meta, home):
        check_conditional_create(objects)  # before any segment: refuse storage that cannot hold it
        log, prev = shared_log(objects, meta), 0
        for first, last, records in pieces:
            log.add_segment(first, last, b"".join(records), prev)
            prev = chain_crc(records[-1])
        if campaign:
            open_campaign_log(objects, meta, shared=True).append(campaign)
        _publish_source_checkpoint(objects, meta, source)
        create_shared(objects, meta, history=True)


def _publish_source_checkpoint(objects: Objects, meta: StoreMeta, source: Engine) -> None:
    """The source's checkpoint as the copy's shared checkpoint (an open of the copy starts
    there), when the source has one with checksums (format 2 and later)."""
    ckpt = source.checkpoints.checkpoint
    if ckpt.version == 0 or source.checkpoints.marks.table is None:
        return
    publish_checkpoint(
        objects,
        meta.uuid,
        ckpt.version,
        (source.root / "checkpoint.bin").read_bytes(),
        marks_path(source.root, ckpt.version).read_bytes(),
        None,
        lambda kind, j: source.arrays.codecs[kind].read_raw(j),
    )


def _to_directory(
    root: Path,
    meta: StoreMeta,
    pieces: Iterator[tuple[int, int, list[bytes]]],
    campaign: list[dict[str, Any]],
    home: Path,
) -> None:
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise StoreExistsError(f"cannot copy to {root}: it exists and is not an empty directory")
    with storage_errors(root):
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.copying-"))
        tmp.chmod(shared_mode(directory=True))  # the store as mkdir would make it
    try:
        init_state(tmp, meta)
        with open(tmp / "journal.bin", "ab") as journal:
            journal.writelines(record for _, _, records in pieces for record in records)
            journal.flush()
            fsync_fd(journal.fileno(), tmp / "journal.bin")
        if campaign:
            open_campaign_log(DirObjects(tmp), meta, shared=False).append(campaign)
        if meta.features.get("path") == "features":  # an in-memory array copied at create
            shutil.copytree(home / "features", tmp / "features")
        # Fold the history into the chunk files once, before the copy is in place.
        engine, source = open_engine(
            Location(tmp, None), writable=True, checkpoint_rows=1 << 62, lock_timeout=60.0
        )
        try:
            with engine.write_lock():
                engine.refresh(writer=True)
                engine.checkpoint()
        finally:
            engine.close()
            source.close()
        with storage_errors(root):
            if root.exists():
                root.rmdir()
            os.replace(tmp, root)
            fsync_path(root.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
