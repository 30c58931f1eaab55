"""Feature sources: the dataset's rows, read where they are and never loaded whole.

One small interface, :class:`FeatureSource` (:mod:`._base`), and one module per
kind: ``.npy`` files (:mod:`._npy`), Zarr arrays, local or in object storage
(:mod:`._zarr`, with its chunk-file fast path in :mod:`._zarrchunks`), HDF5
datasets (:mod:`._hdf5`), Arrow IPC files and Hugging Face datasets
(:mod:`._arrow`, imported only when used), and the index-only source.
:mod:`._open` picks the kind for what a user hands to ``create`` and reopens
the one a store recorded. A new kind of source is a new module here, a class
deriving from :class:`FeatureSource`, and a branch in :mod:`._open`.
"""

from __future__ import annotations

from ._base import FeatureSource, IndexOnlySource, sample_hash
from ._hdf5 import HDF5Source
from ._npy import NpySource
from ._open import check_same_features, held_rows, is_hf_dataset, open_source, source_from
from ._rows import take_rows
from ._zarr import RemoteZarrSource, ZarrSource, array_storage_options

__all__ = [
    "FeatureSource",
    "HDF5Source",
    "IndexOnlySource",
    "NpySource",
    "RemoteZarrSource",
    "ZarrSource",
    "array_storage_options",
    "check_same_features",
    "held_rows",
    "is_hf_dataset",
    "open_source",
    "sample_hash",
    "source_from",
    "take_rows",
]
