"""Feature sources: which kind a user's features are, and reopening the recorded one.

The kinds live in their own modules (``_npy``, ``_zarr``, ``_hdf5``, ``_arrow``,
and the index-only source in ``_base``); this module picks one for what a
user hands to ``create`` and reopens the one a store recorded.

A source is never loaded whole and never copied: rows are read on demand,
either a contiguous range (:meth:`FeatureSource.read_range`) or a sorted set of
dataset indices (:meth:`FeatureSource.read_rows`). At create the store records
:meth:`FeatureSource.describe` — where the source is and its fingerprint
(shape, dtype, size in bytes) — and :func:`open_source` refuses to reopen a
source that is missing or no longer matches it.

``h5py`` is imported only when an HDF5 source is used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np

from ..errors import (
    CorruptStoreError,
    InvalidInputError,
    SourceChangedError,
    SourceMissingError,
)
from ..storage import is_url, local_path
from ._base import FeatureSource, IndexOnlySource, damaged_source, sample_hash
from ._hdf5 import HDF5Source
from ._npy import NpySource
from ._zarr import RemoteZarrSource, ZarrSource, with_recorded_endpoint

if TYPE_CHECKING:
    import zarr

__all__ = ["check_same_features", "held_rows", "is_hf_dataset", "open_source", "source_from"]


def _is_zarr_array(obj: object) -> TypeGuard[zarr.Array[Any]]:
    """Whether ``obj`` is a ``zarr.Array`` (zarr is not imported to tell: if it is not
    loaded, nothing can be one)."""
    loaded = sys.modules.get("zarr")
    return loaded is not None and isinstance(obj, loaded.Array)


def check_same_features(source: FeatureSource, features: Any) -> None:
    """Raise :class:`SourceChangedError` unless ``features`` has ``source``'s shape,
    dtype and sampled content (what reopening a store checks of its source)."""
    shape, dtype = tuple(np.shape(features)), np.dtype(getattr(features, "dtype", None))
    if shape != source.shape or dtype != source.dtype:
        raise SourceChangedError(
            f"the features given have shape {shape} and dtype {dtype}, but the store's "
            f"features have shape {source.shape} and dtype {source.dtype}"
        )
    given = sample_hash(shape[0], lambda ranges: [np.asarray(features[a:b]) for a, b in ranges])
    if given != source.sample_hash():
        raise SourceChangedError(
            "the features given differ in content from the store's features "
            "(their sampled rows do not match)"
        )


ARROW_SUFFIXES = {".arrow", ".feather", ".ipc"}


def source_from(
    features: object,
    column: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> FeatureSource:
    """Open the source a user handed to ``create``.

    Accepts a ``.npy`` path, a Zarr array path or ``zarr.Array``, an
    ``"file.h5:/name"`` string or ``h5py.Dataset``, and with ``column`` an
    Arrow IPC file path or a ``datasets.Dataset`` saved on disk. (In-memory
    numpy arrays, tables and datasets are copied by the store itself, see
    :func:`alma_store.create`.)
    """
    if column is not None:
        return _arrow_source(features, column)
    if _is_zarr_array(features):
        local = getattr(features.store, "root", None) is not None
        return ZarrSource(features) if local else RemoteZarrSource(features)
    if isinstance(features, str) and is_url(features) and not features.startswith("file://"):
        file_part = features.rpartition(":")[0] if features.count(":") > 1 else features
        if Path(file_part).suffix in {".npy", ".h5", ".hdf5", ".hdf", ".he5", *ARROW_SUFFIXES}:
            raise InvalidInputError(
                f"features {features!r}: from object storage alma_store reads Zarr arrays "
                "(s3://bucket/x.zarr); copy .npy, HDF5 or Arrow files to a local disk, or "
                "convert them to Zarr"
            )
        return RemoteZarrSource(features, storage_options)
    if type(features).__module__.startswith("h5py") and type(features).__name__ == "Dataset":
        return HDF5Source(features)
    if isinstance(features, str | os.PathLike):
        path = local_path(features, "features path")
        text = str(path)
        if path.suffix == ".npy":
            return NpySource(path)
        if path.suffix in ARROW_SUFFIXES:
            raise InvalidInputError(
                f"features {text!r} is an Arrow file: name the column, column='embedding'"
            )
        if path.is_dir():
            return ZarrSource(path)
        file_part, sep, _ = text.rpartition(":")
        if sep and Path(file_part).suffix in {".h5", ".hdf5", ".hdf", ".he5"}:
            return HDF5Source(text)
        if not path.exists():
            raise SourceMissingError(f"features path {text!r} does not exist")
        raise InvalidInputError(
            f"features path {text!r} is not a .npy file, a Zarr array directory, "
            "'file.h5:/dataset', or an Arrow file (with column=)"
        )
    raise InvalidInputError(
        "features must be a numpy array, a .npy path, a Zarr array (path or zarr.Array), "
        "an HDF5 dataset ('file.h5:/name' or h5py.Dataset), or with column= an Arrow file, "
        f"a pyarrow.Table or a datasets.Dataset; got {type(features).__name__}"
    )


def held_rows(features: object, column: str) -> np.ndarray | None:
    """Column ``column`` of a ``pyarrow.Table`` or a ``datasets.Dataset`` held in memory, as
    one numpy array (materialised: the store copies it); None for a file or a saved dataset."""
    if isinstance(features, str | os.PathLike):
        return None
    from ._arrow import in_memory_rows  # pyarrow: the arrow or hf extra

    return in_memory_rows(features, column)


def is_hf_dataset(obj: object) -> bool:
    """Whether ``obj`` is a Hugging Face ``datasets.Dataset`` (without importing datasets)."""
    return type(obj).__module__.startswith("datasets") and type(obj).__name__ == "Dataset"


def _arrow_source(features: object, column: str) -> FeatureSource:
    from ._arrow import ArrowSource, hf_dataset_files  # pyarrow: the arrow or hf extra

    if is_hf_dataset(features):
        files = hf_dataset_files(features)
        if files is None:
            raise InvalidInputError("an in-memory datasets.Dataset is copied into the store")
        return ArrowSource(files, column)
    if isinstance(features, str | os.PathLike):
        return ArrowSource([local_path(features, "features path")], column)
    raise InvalidInputError(
        f"with column=, features must be an Arrow file path, a pyarrow.Table or a "
        f"datasets.Dataset; got {type(features).__name__}"
    )


def open_source(
    record: dict[str, Any],
    store_root: Path,
    n_items: int,
    storage_options: dict[str, Any] | None = None,
) -> FeatureSource:
    """Reopen a recorded source and check its fingerprint.

    Raises
    ------
    SourceMissingError
        The file or dataset is gone.
    SourceChangedError
        Its shape, dtype, size or sampled content differs from the record.
    CorruptStoreError
        The record is damaged, or its rows are not the store's ``n_items``.
    """
    try:
        if "url" in record:
            options = with_recorded_endpoint(record, storage_options)
            return _checked(RemoteZarrSource(record["url"], options), record, n_items, store_root)
        return _open_recorded(record, store_root, n_items)
    except (KeyError, TypeError) as exc:
        raise CorruptStoreError(
            f"{store_root / 'meta.json'}: the feature source record is damaged: {exc!r}"
        ) from None


def _open_recorded(record: dict[str, Any], store_root: Path, n_items: int) -> FeatureSource:
    if record["kind"] == IndexOnlySource.kind:
        if record["shape"] != [n_items]:
            raise CorruptStoreError(
                f"{store_root / 'meta.json'} is damaged: it says the store has {n_items} items, "
                f"but its features record has {record['shape']}"
            )
        return IndexOnlySource(n_items)
    path = Path(record["path"])
    owned = not path.is_absolute()  # a copy made at create, inside the store
    if owned:
        path = store_root / path
    try:
        src = _open_checked(record, path, store_root, n_items, owned)
    except (InvalidInputError, SourceMissingError) as exc:
        if not owned:
            raise
        raise damaged_source(path, store_root, exc) from None
    return src


def _open_checked(
    record: dict[str, Any], path: Path, store_root: Path, n_items: int, owned: bool
) -> FeatureSource:
    kind = record["kind"]
    if kind == "npy":
        src: FeatureSource = NpySource(path)
    elif kind == "zarr":
        src = ZarrSource(path)
        src.owned_by = store_root if owned else None
    elif kind == "hdf5":
        src = HDF5Source(str(path), record["dataset"])
    elif kind == "arrow":
        from ._arrow import ArrowSource

        src = ArrowSource([Path(p) for p in record["paths"]], record["column"])
    else:
        raise InvalidInputError(f"unknown feature source kind {kind!r} in the store metadata")
    return _checked(src, record, n_items, store_root)


def _checked(
    src: FeatureSource, record: dict[str, Any], n_items: int, store_root: Path
) -> FeatureSource:
    """``src`` if it still matches ``record``; else closed, and the error says what changed."""
    if record["shape"][0] != n_items:
        src.close()
        raise CorruptStoreError(
            f"{store_root / 'meta.json'} is damaged: it says the store has {n_items} items, "
            f"but its features record has {record['shape'][0]} rows"
        )
    now = src.describe()
    for key in ("shape", "dtype", "nbytes", "file_size", "sample"):
        if key in record and now.get(key) != record[key]:
            src.close()
            raise SourceChangedError(
                f"feature source {record.get('url', src.path)} has changed since the store was "
                f"created: {key} was {record[key]!r}, now {now.get(key)!r}"
            )
    return src
