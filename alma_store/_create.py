"""Creating a store: a new directory built aside and renamed into place."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr

from . import _state
from ._labels import dtype_to_meta, parse_classes, parse_label_dtype, parse_label_shape
from ._types import PathLike
from .errors import InvalidInputError, StoreExistsError
from .features import FeatureSource, source_from
from .journal import FILE_HEADER_SIZE, Journal
from .store import FORMAT_VERSION, Store

__all__ = ["DEFAULT_CHUNK_ROWS", "create"]

DEFAULT_CHUNK_ROWS = 1 << 15


def create(
    path: PathLike,
    features: object,
    *,
    label_dtype: object = "int64",
    label_shape: tuple[int, ...] = (),
    classes: list[str] | None = None,
    chunk_rows: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Store:
    """Create a store for ``features`` at ``path`` and open it for writing.

    Parameters
    ----------
    path
        Directory to create. It must not exist (or be empty), unless
        ``overwrite`` is true and it holds a store.
    features
        The dataset ``D``, one row per item: a ``.npy`` path (memory-mapped,
        never copied), a Zarr array (path or ``zarr.Array``), an HDF5 dataset
        (``"file.h5:/name"`` or ``h5py.Dataset``), or an in-memory numpy array,
        which is copied into the store as Zarr.
    label_dtype
        dtype of one label: numeric, bool, fixed-width ``"U<n>"`` or ``"str"``
        (variable-length strings).
    label_shape
        Shape of one label; ``()`` for scalar labels.
    classes
        Optional class schema: labels are then given as class names (or
        codes) and stored as codes ``0 .. len(classes) - 1`` (``label_dtype``
        must be an integer dtype). An unknown class is an error.
    chunk_rows
        Rows per chunk of the mask and label arrays (and of the count index).
        Default: 32,768 (an offset-map lookup decodes one 32 KiB mask chunk).
    overwrite
        Replace an existing store at ``path``.
    progress
        Called with the number of rows copied, block by block, while an
        in-memory array is copied into the store (e.g. ``tqdm(...).update``).

    Returns
    -------
    Store
        The new store, opened with ``mode="r+"``.

    Raises
    ------
    StoreExistsError
        ``path`` exists and is not an empty directory (and not a store to overwrite).
    InvalidInputError
        A bad argument; nothing is created.
    SourceMissingError
        The feature path does not exist.

    Examples
    --------
    >>> import numpy as np, tempfile, alma_store
    >>> d = tempfile.mkdtemp()
    >>> with alma_store.create(d + "/s", np.zeros((10, 3))) as store:
    ...     store.add_labels([(2, 1), (5, 0)])
    ...     store.unlabeled.to_dataset_index([0, 2, 4])
    array([2, 5])
    array([0, 3, 6])
    """
    root = Path(path)
    dtype = parse_label_dtype(label_dtype)
    shape = parse_label_shape(label_shape)
    class_names = parse_classes(classes)
    if class_names is not None and dtype.kind not in "iu":
        raise InvalidInputError(f"with classes, label_dtype must be an integer dtype, got {dtype}")
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
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.creating-"))
    try:
        if isinstance(features, np.ndarray):
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
            source: FeatureSource = source_from(tmp / "features")
            record = source.describe()
            record["path"] = "features"
        else:
            source = source_from(features)
            record = source.describe()
        n_items = source.shape[0]
        source.close()
        rows = chunk_rows or DEFAULT_CHUNK_ROWS
        uid = uuidlib.uuid4()
        meta = {
            "format": "alma_store",
            "format_version": FORMAT_VERSION,
            "uuid": uid.hex,
            "n_items": n_items,
            "chunk_rows": rows,
            "label_dtype": dtype_to_meta(dtype),
            "label_shape": list(shape),
            "classes": None if class_names is None else list(class_names),
            "features": record,
            "created": time.time(),
        }
        Journal.create(tmp / "journal.bin", uid.bytes)
        _state.create_arrays(tmp, n_items, rows, dtype, shape)
        _state.write_checkpoint(
            tmp,
            version=0,
            journal_offset=FILE_HEADER_SIZE,
            counts=np.zeros(-(-n_items // rows), np.int64),
        )
        _state.atomic_write(tmp / "meta.json", json.dumps(meta, indent=1).encode())
        if root.exists():
            trash = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.old-"))
            os.replace(root, trash / "store")
            os.replace(tmp, root)
            shutil.rmtree(trash)
        else:
            os.replace(tmp, root)
        _state.fsync_dir(root.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Store(root, mode="r+")
