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

import filelock
import numpy as np
import zarr

from . import _state
from ._fs import fsync_path, local_path, storage_errors
from ._labels import parse_classes, parse_label_dtype, parse_label_shape
from ._meta import FORMAT_VERSION, SHARED_FORMAT_VERSION, StoreMeta, read_meta, write_meta
from ._objects import DirObjects, Objects, open_objects
from ._shared import create_shared
from ._types import PathLike
from .errors import InvalidInputError, StoreExistsError
from .features import FeatureSource, IndexOnlySource, source_from
from .index import n_chunks
from .journal import FILE_HEADER_SIZE, Journal

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "build_mirror",
    "build_shared_store",
    "build_store",
    "init_state",
]

DEFAULT_CHUNK_ROWS = 1 << 15


def remove_stale_builds(root: Path) -> None:
    """Remove the half-built stores of creates of ``root`` that were killed."""
    for tmp in root.parent.glob(f".{root.name}.creating-*"):
        lock = filelock.FileLock(tmp / "lock")
        try:
            lock.acquire(timeout=0)
        except (filelock.Timeout, OSError):
            continue  # a create in progress holds it (or it is not ours to remove)
        try:
            shutil.rmtree(tmp, ignore_errors=True)
        finally:
            lock.release()


def init_state(folder: Path, meta: StoreMeta) -> None:
    """Write an empty store of ``meta``'s geometry into ``folder``: no label, version 0."""
    count = n_chunks(meta.n_items, meta.chunk_rows)
    Journal.create(folder / "journal.bin", bytes.fromhex(meta.uuid))
    with storage_errors(folder / "state"):
        _state.create_arrays(
            folder, meta.n_items, meta.chunk_rows, meta.label_dtype, meta.label_shape
        )
    empty = np.empty(0, np.int64)
    _state.write_marks(folder, 0, [empty] * count, np.zeros(count, _state.ENTRY))
    _state.write_checkpoint(
        folder, _state.Checkpoint(0, FILE_HEADER_SIZE, np.zeros(count, np.int64))
    )
    write_meta(folder, meta)


def remove_dead_mirrors() -> None:
    """Remove the mirror directories of processes that are gone (killed before closing)."""
    for folder in Path(tempfile.gettempdir()).glob("alma-mirror-*-*"):
        try:
            os.kill(int(folder.name.split("-")[2]), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, PermissionError):  # not ours, or a live process of another user
            continue


def build_mirror(meta: StoreMeta) -> Path:
    """A private directory holding an empty local-format store of the shared store ``meta``.

    A process that opens a shared store fills it from the store's commit log
    (:mod:`alma_store._mirror`) and removes it when the store is closed.
    """
    remove_dead_mirrors()
    folder = Path(tempfile.mkdtemp(prefix=f"alma-mirror-{os.getpid()}-"))
    try:
        init_state(folder, dataclasses.replace(meta, format_version=FORMAT_VERSION))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def build_store(
    path: PathLike,
    features: object,
    *,
    n_items: int | None = None,
    column: str | None = None,
    storage_options: dict[str, Any] | None = None,
    label_dtype: object = "int64",
    label_shape: tuple[int, ...] = (),
    classes: list[str] | None = None,
    annotations_per_item: int = 1,
    chunk_rows: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Build a store for ``features`` at ``path`` and return its directory.

    The parameters, their checks and the errors are those of :func:`alma_store.create`.
    """
    root = local_path(path, "store path")
    if (features is None) == (n_items is None):
        raise InvalidInputError(
            "give features (the dataset's rows), or n_items alone for an index-only store"
        )
    if n_items is not None and (
        not isinstance(n_items, int | np.integer) or isinstance(n_items, bool) or n_items < 1
    ):
        raise InvalidInputError(f"n_items must be a positive int, got {n_items!r}")
    dtype = parse_label_dtype(label_dtype)
    shape = parse_label_shape(label_shape)
    class_names = parse_classes(classes)
    if class_names is not None and dtype.kind not in "iu":
        raise InvalidInputError(f"with classes, label_dtype must be an integer dtype, got {dtype}")
    if (
        not isinstance(annotations_per_item, int | np.integer)
        or isinstance(annotations_per_item, bool)
        or annotations_per_item < 1
    ):
        raise InvalidInputError(
            f"annotations_per_item must be a positive int, got {annotations_per_item!r}"
        )
    if annotations_per_item > 1 and shape:
        raise InvalidInputError("annotations_per_item > 1 takes scalar labels (label_shape=())")
    if chunk_rows is not None and (
        not isinstance(chunk_rows, int) or isinstance(chunk_rows, bool) or chunk_rows < 1
    ):
        raise InvalidInputError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
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
    building = filelock.FileLock(tmp / "lock")
    building.acquire()
    try:
        if column is not None and not isinstance(features, str | os.PathLike):
            from ._arrow import in_memory_rows  # pyarrow: the arrow or hf extra

            held = in_memory_rows(features, column)
            if held is not None:  # held in memory: copied into the store like an array
                features, column = held, None
        if features is None:
            source: FeatureSource = IndexOnlySource(int(n_items))  # type: ignore[arg-type]
            record = source.describe()
        elif isinstance(features, np.ndarray):
            if features.ndim < 1:
                raise InvalidInputError("features must have at least one dimension, got a scalar")
            rows = chunk_rows or DEFAULT_CHUNK_ROWS
            copy = zarr.create_array(
                tmp / "features",
                shape=features.shape,
                dtype=features.dtype,
                chunks=(min(rows, max(1, len(features))), *features.shape[1:]),
            )
            for lo in range(0, len(features), rows):  # block by block, reporting progress
                copy[lo : lo + rows] = features[lo : lo + rows]
                if progress is not None:
                    progress(min(rows, len(features) - lo))
            source = source_from(tmp / "features")
            record = source.describe()
            record["path"] = "features"
        else:
            source = source_from(features, column, storage_options)
            record = source.describe()
        n_items = source.shape[0]
        source.close()
        rows = chunk_rows or DEFAULT_CHUNK_ROWS
        uid = uuidlib.uuid4()
        meta = StoreMeta(
            format_version=FORMAT_VERSION,
            uuid=uid.hex,
            n_items=n_items,
            chunk_rows=rows,
            label_dtype=dtype,
            label_shape=shape,
            classes=class_names,
            features=record,
            created=time.time(),
            annotations_per_item=int(annotations_per_item),
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
    return root


def build_shared_store(
    location: str,
    features: object,
    *,
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    **options: Any,
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
    objects = open_objects(location, storage_options)
    if isinstance(objects, DirObjects) and objects.root.exists():
        root = objects.root
        if not root.is_dir() or any(root.iterdir()):
            raise StoreExistsError(
                f"cannot create a store at {root}: it exists and is not an empty directory"
            )
    with tempfile.TemporaryDirectory(prefix="alma-create-") as tmp:
        aside = build_store(
            Path(tmp) / "store", features, storage_options=storage_options, **options
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
