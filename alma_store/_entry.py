"""Opening and creating stores: the two ways to get a :class:`~alma_store.store.Store`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from ._store_version import open_for_worker
from .core import PathLike
from .engine import (
    DEFAULT_CHECKPOINT_ROWS,
    StoreSpec,
    build_shared_store,
    build_store,
    copy_store,
)
from .errors import InvalidInputError
from .sources import array_storage_options
from .storage import Location, writes_refused
from .store import Store

__all__ = ["copy", "create", "open", "open_for_worker", "open_store"]


def open_store(
    path: PathLike,
    mode: Literal["r", "r+"] = "r+",
    *,
    lock_timeout: float = 60.0,
    checkpoint_rows: int = DEFAULT_CHECKPOINT_ROWS,
    storage_options: dict[str, Any] | None = None,
) -> Store:
    """Open an existing store.

    Cost is ``O(number of chunks)`` plus the journal tail since the last
    checkpoint; the dataset, the mask and the labels are not read.

    Parameters
    ----------
    path
        The store directory, or the URL of a shared store in object storage
        (``s3://bucket/prefix``, ``gs://``, ``az://``).
    mode
        ``"r+"`` to read and label, ``"r"`` to read only (no lock file is touched).
    lock_timeout
        Seconds a write waits for the writer lock before :class:`LockTimeoutError`.
    checkpoint_rows
        Journal entries after which a commit folds the tail into the chunk files.
    storage_options
        For a store or features in object storage: options in fsspec's form
        (``endpoint_url``, ``key``, ``secret``, ``token``, ...). They are
        never written to disk (they may hold secrets), so pass them at every
        open. Without them, the usual environment variables
        (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ...) apply.

    Raises
    ------
    StoreNotFoundError
        No store at ``path``.
    CorruptStoreError
        A store file is damaged, truncated, missing or swapped (the message names it).
    SourceMissingError, SourceChangedError
        The feature source is gone or differs from the one recorded at create.
    """
    if mode not in ("r", "r+"):
        raise InvalidInputError(f"mode must be 'r' or 'r+', got {mode!r}")
    if not isinstance(checkpoint_rows, int) or checkpoint_rows < 1:
        raise InvalidInputError(f"checkpoint_rows must be a positive int, got {checkpoint_rows!r}")
    return Store(
        Location.parse(path, storage_options),
        mode=mode,
        lock_timeout=lock_timeout,
        checkpoint_rows=checkpoint_rows,
    )


def create(
    path: PathLike,
    features: object = None,
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
    shared: bool = False,
) -> Store:
    """Create a store for ``features`` at ``path`` and open it for writing.

    Parameters
    ----------
    path
        Directory to create. It must not exist (or be empty), unless
        ``overwrite`` is true and it holds a store. A URL
        (``s3://bucket/prefix``, ``gs://``, ``az://``; the ``s3``, ``gcs`` or
        ``azure`` extra) creates a *shared* store in object storage.
    features
        The dataset ``D``, one row per item: a ``.npy`` path (memory-mapped,
        never copied), a Zarr array (path or ``zarr.Array``), an HDF5 dataset
        (``"file.h5:/name"`` or ``h5py.Dataset``), or an in-memory numpy array,
        which is copied into the store as Zarr. Leave it out, and give
        ``n_items``, for an *index-only* store.
    n_items
        Without ``features``: the number of items of an index-only store. It
        keeps the labels, views, the offset map, history and scoring by
        dataset index, for data that is not one array (images on disk, a
        dataset that decodes files): ``store.score`` then calls ``fn`` with
        dataset indices, and ``alma_store.torch.ViewDataset(view, dataset=...)``
        returns ``dataset[i]`` for the view's items. Reading feature rows from
        it is an error.
    column
        The column holding the features when ``features`` is an Arrow IPC
        file (``.arrow``, also ``datasets``' cache files), a Hugging Face
        ``datasets.Dataset`` or a ``pyarrow.Table``. A dataset saved on disk
        is memory-mapped and read in place (fixed-size list columns, or list
        columns whose rows all have one length, without a copy); an in-memory
        table or dataset is copied into the store. Needs the ``arrow`` (or
        ``hf``) extra.
    storage_options
        For features in object storage (``"s3://bucket/x.zarr"``, ``gs://``,
        ``az://``, ``https://``, or a ``zarr.Array`` opened on an fsspec
        store): options in fsspec's form (``endpoint_url``, ``key``,
        ``secret``, ...), with the ``s3``, ``gcs`` or ``azure`` extra. Never
        written to disk: pass them again to :func:`open`.
    label_dtype
        dtype of one label: numeric, bool, fixed-width ``"U<n>"`` or ``"str"``
        (variable-length strings).
    label_shape
        Shape of one label; ``()`` for scalar labels.
    classes
        Optional class schema: labels are then given as class names (or
        codes) and stored as codes ``0 .. len(classes) - 1`` (``label_dtype``
        must be an integer dtype). An unknown class is an error.
    annotations_per_item
        ``k >= 2`` keeps every annotator's label for an item (scalar labels
        only): ``add_labels`` then records one annotation per item and
        annotator, and an item is labeled once ``k`` annotations are in and
        more than half of them agree. Items without a majority wait for
        :meth:`Store.resolve`. ``1`` (the default): every label is final.
    chunk_rows
        Rows per chunk of the mask and label arrays (and of the count index).
        Default: 32,768 (a label read decodes one chunk of this many labels).
    overwrite
        Replace an existing store at ``path``.
    progress
        Called with the number of rows copied, block by block, while an
        in-memory array is copied into the store (e.g. ``tqdm(...).update``).
    shared
        Create a *shared* store in the directory ``path`` (format version 5):
        writers on several machines of a network filesystem (NFS, Lustre,
        GPFS) commit to it without a lock. Stores at URLs are always shared.
        See :doc:`/shared` for what a shared store costs and offers.

    Returns
    -------
    Store
        The new store, opened with ``mode="r+"``.

    Raises
    ------
    StoreExistsError
        ``path`` exists and is not an empty directory (and not a store to overwrite).
    UnsupportedStorageError
        A shared store's storage does not make creates exclusive (a bucket
        without conditional writes); nothing is written.
    ReadOnlyError
        The credentials for a shared store may read but not write; nothing is written.
    InvalidInputError
        A bad argument (a URL as ``path``, both or neither of ``features`` and
        ``n_items``, ...); nothing is created.
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
    if storage_options is None:  # a zarr.Array in object storage: its own options, in memory
        storage_options = array_storage_options(features)
    location = Location.parse(path, storage_options)
    spec = StoreSpec(
        n_items=n_items,
        column=column,
        label_dtype=label_dtype,
        label_shape=label_shape,
        classes=classes,
        annotations_per_item=annotations_per_item,
        chunk_rows=chunk_rows,
    )
    if not isinstance(shared, bool):
        raise InvalidInputError(f"shared must be a bool, got {shared!r}")
    with writes_refused(location):
        if shared or location.remote:
            build_shared_store(location, features, spec, overwrite=overwrite, progress=progress)
        else:
            assert location.path is not None
            build_store(
                location.path,
                features,
                spec,
                storage_options=location.storage_options,
                overwrite=overwrite,
                progress=progress,
            )
    return Store(location)


def copy(
    src: PathLike,
    dst: PathLike,
    *,
    storage_options: dict[str, Any] | None = None,
    dst_storage_options: dict[str, Any] | None = None,
    shared: bool = False,
) -> dict[str, Any]:
    """Copy the store at ``src`` to ``dst`` with its whole history.

    Either side may be a directory or the URL of a shared store, so this
    moves a store to object storage and back (``alma copy SRC DST``). The copy
    has the same versions, with the same times, annotators and annotations,
    and the same campaign log (claims, metrics); score runs are not copied
    (score again under the same name). Nothing of the copy is visible until
    it is whole. Its cost is one read of the history and, for a directory
    copy, one checkpoint.

    Parameters
    ----------
    src, dst
        Directories or URLs. ``dst`` must not exist (or be an empty directory).
    storage_options, dst_storage_options
        fsspec-style options for ``src`` and ``dst`` (see :func:`open`).
    shared
        Make a directory ``dst`` a shared store (URLs are always shared).

    Returns
    -------
    dict
        ``version`` (the copy's, the source's at the start of the copy) and
        ``campaign_records``.

    Raises
    ------
    StoreExistsError
        ``dst`` holds something.
    UnsupportedStorageError, ReadOnlyError
        ``dst`` cannot hold a shared store; nothing is written.
    InvalidInputError
        The features were copied into ``src`` from memory and ``dst`` is in
        object storage (which takes features by URL).
    """
    return copy_store(
        Location.parse(src, storage_options),
        Location.parse(dst, dst_storage_options),
        shared=shared,
    )


open = open_store  # the public name: alma_store.open(path)
