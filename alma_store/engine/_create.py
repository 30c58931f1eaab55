"""Creating a store: a new directory built aside and renamed into place.

The directory is built as a hidden sibling ``.<name>.creating-<random>``
whose ``lock`` file the creator holds until the rename. A create killed
midway leaves such a sibling with its lock free; the next create of the same
path removes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, StoreExistsError
from ..sources import FeatureSource, IndexOnlySource, held_rows, source_from
from ..storage import (
    FORMAT_VERSION,
    SHARED_FORMAT_VERSION,
    DirObjects,
    Location,
    LockTimeout,
    Objects,
    StoreMeta,
    WriterLock,
    create_shared,
    fsync_path,
    init_state,
    open_objects,
    read_meta,
    shared_mode,
    storage_errors,
)
from ._spec import StoreSpec

__all__ = ["DEFAULT_CHUNK_ROWS", "build_shared_store", "build_store", "features_beside"]

DEFAULT_CHUNK_ROWS = 1 << 15


def remove_stale_builds(root: Path) -> None:
    """Remove the half-built stores of creates of ``root`` that were killed."""
    for tmp in root.parent.glob(f".{root.name}.creating-*"):
        lock = WriterLock(tmp / "lock")
        try:
            lock.acquire(timeout=0)
        except (LockTimeout, OSError):
            lock.close()
            continue  # a create in progress holds it (or it is not ours to remove)
        try:
            shutil.rmtree(tmp, ignore_errors=True)
        finally:
            lock.release()
            lock.close()


def build_store(
    root: Path,
    features: object,
    spec: StoreSpec,
    *,
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    private: bool = False,
) -> Path:
    """Build a store for ``features`` in the directory ``root`` and return it.

    The parameters, their checks and the errors are those of :func:`alma_store.create`.
    ``private=True`` says ``root`` lies in a directory no other process looks into
    (a shared store's build aside): the build then takes no file lock, which a
    platform without one cannot give.
    """
    if (features is None) == (spec.n_items is None):
        raise InvalidInputError(
            "give features (the dataset's rows), or n_items alone for an index-only store"
        )
    if not isinstance(overwrite, bool):
        raise InvalidInputError(f"overwrite must be a bool, got {overwrite!r}")
    if root.exists():
        is_store = (root / "meta.json").exists()
        if not root.is_dir() or (any(root.iterdir()) and not (overwrite and is_store)):
            what = "a store" if is_store else "not an empty directory"
            raise StoreExistsError(
                f"cannot create a store at {root}: it exists and is {what}"
                + ("; pass overwrite=True to replace it" if is_store else "")
            )
    with storage_errors(root):
        root.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_builds(root)
        tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.creating-"))
        tmp.chmod(shared_mode(directory=True))  # the store as mkdir would make it
    building = WriterLock(tmp / "lock", processes=not private)
    building.acquire(timeout=60.0)
    try:
        rows = spec.chunk_rows or DEFAULT_CHUNK_ROWS
        source, record = _features(tmp, features, spec, rows, storage_options, progress)
        n_items = source.shape[0]
        source.close()
        meta = StoreMeta(
            format_version=FORMAT_VERSION,
            uuid=uuidlib.uuid4().hex,
            n_items=n_items,
            chunk_rows=rows,
            label_dtype=spec.label_dtype,
            label_shape=spec.label_shape,
            classes=None if spec.classes is None else tuple(spec.classes),
            features=record,
            created=time.time(),
            annotations_per_item=spec.annotations_per_item,
        )
        init_state(tmp, meta)
        with storage_errors(root):
            if root.exists():
                trash = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.old-"))
                os.replace(root, trash / "store")
                os.replace(tmp, root)
                shutil.rmtree(trash)
            else:
                os.replace(tmp, root)
            fsync_path(root.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        with contextlib.suppress(OSError):
            building.release()
            building.close()
    return root


def _features(
    folder: Path,
    features: object,
    spec: StoreSpec,
    rows: int,
    storage_options: dict[str, Any] | None,
    progress: Callable[[int], None] | None,
) -> tuple[FeatureSource, dict[str, Any]]:
    """The source of ``features`` and the record ``meta.json`` keeps of it.

    In-memory features (a numpy array, a table or dataset held in memory) are
    copied into ``folder/features`` as Zarr, block by block.
    """
    column = spec.column
    if column is not None:
        held = held_rows(features, column)
        if held is not None:  # held in memory: copied into the store like an array
            features, column = held, None
    if features is None:
        source: FeatureSource = IndexOnlySource(int(spec.n_items))  # type: ignore[arg-type]
        return source, source.describe()
    if isinstance(features, np.ndarray):
        if features.ndim < 1:
            raise InvalidInputError("features must have at least one dimension, got a scalar")
        import zarr  # only for features given in memory

        copy = zarr.create_array(
            folder / "features",
            shape=features.shape,
            dtype=features.dtype,
            chunks=(min(rows, max(1, len(features))), *features.shape[1:]),
        )
        for lo in range(0, len(features), rows):  # block by block, reporting progress
            copy[lo : lo + rows] = features[lo : lo + rows]
            if progress is not None:
                progress(min(rows, len(features) - lo))
        source = source_from(folder / "features")
        return source, {**source.describe(), "path": "features"}
    source = source_from(features, column, storage_options)
    return source, source.describe()


def build_shared_store(
    location: Location,
    features: object,
    spec: StoreSpec,
    *,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Create a shared store (format 5) at a URL or in a directory.

    The arguments are checked, and the features described, exactly as for a
    local store (one is built aside, in a temporary directory, and its
    metadata taken); then the storage is probed for exclusive creates and
    ``meta.json`` is created. In-memory features are copied next to a
    shared store in a directory; object storage takes them by URL only.
    """
    if overwrite:
        raise InvalidInputError("overwrite=True is not supported for shared stores")
    objects = open_objects(location)
    if isinstance(objects, DirObjects) and objects.root.exists():
        root = objects.root
        if not root.is_dir() or any(root.iterdir()):
            raise StoreExistsError(
                f"cannot create a store at {root}: it exists and is not an empty directory"
            )
    with tempfile.TemporaryDirectory(prefix="alma-create-") as tmp:
        aside = build_store(
            Path(tmp) / "store",
            features,
            spec,
            storage_options=location.storage_options,
            progress=progress,
            private=True,
        )
        meta = read_meta(aside)
        with features_beside(objects, meta, aside):
            create_shared(objects, dataclasses.replace(meta, format_version=SHARED_FORMAT_VERSION))


@contextlib.contextmanager
def features_beside(objects: Objects, meta: StoreMeta, source: Path) -> Iterator[None]:
    """Copy the in-memory features the store at ``source`` holds (if any) next to a shared one.

    They go to ``features/`` of a shared store in a directory, and are removed
    again if the block fails. Object storage takes features by URL only.
    """
    if meta.features.get("path") != "features":  # not an in-memory array copied as Zarr
        yield
        return
    if not isinstance(objects, DirObjects):
        raise InvalidInputError(
            "a store in object storage takes features by URL (a Zarr array, "
            "e.g. s3://bucket/features.zarr), not in memory; write them there first"
        )
    copied = objects.root / "features"
    shutil.copytree(source / "features", copied)
    try:
        yield
    except BaseException:
        shutil.rmtree(copied, ignore_errors=True)
        raise
