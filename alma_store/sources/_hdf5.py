"""HDF5 features (``h5py`` is imported only when one is used)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core import IndexArray
from ..errors import InvalidInputError, SourceMissingError
from ._base import DENSE_SPAN, FeatureSource, check_rows
from ._rows import take_rows

if TYPE_CHECKING:
    import h5py

__all__ = ["HDF5Source"]


class HDF5Source(FeatureSource):
    """An HDF5 dataset: ``"file.h5:/name"`` or an ``h5py.Dataset``, opened read-only."""

    kind = "hdf5"

    def __init__(self, source: str | h5py.Dataset, dataset: str | None = None) -> None:
        import h5py

        if isinstance(source, h5py.Dataset):
            self.path = Path(source.file.filename).resolve()
            self.dataset = source.name
        else:
            if dataset is None:
                file_part, sep, dataset = str(source).rpartition(":")
                if not sep or not file_part:
                    raise InvalidInputError(
                        f"an HDF5 source must be 'file.h5:/dataset', got {source!r}"
                    )
                source = file_part
            self.path = Path(source).resolve()
            self.dataset = dataset
        if not self.path.exists():
            raise SourceMissingError(f"HDF5 file {self.path} does not exist")
        self._file = h5py.File(self.path, "r")
        try:
            ds = self._file[self.dataset]
        except KeyError:
            self._file.close()
            raise SourceMissingError(
                f"HDF5 file {self.path} has no dataset {self.dataset!r}"
            ) from None
        if not isinstance(ds, h5py.Dataset):
            self._file.close()
            raise InvalidInputError(f"{self.path}:{self.dataset} is a group, not a dataset")
        self._ds = ds
        self._scratch: np.ndarray | None = None
        self._scratch_lock = threading.Lock()
        check_rows(ds.shape, self.path)
        self.shape = tuple(ds.shape)
        self.dtype = np.dtype(ds.dtype)

    @property
    def array(self) -> h5py.Dataset:
        # docstring inherited
        return self._ds

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        # docstring inherited
        with self._unreadable():
            return np.asarray(self._ds[lo:hi])

    def read_rows(self, dataset_indices: IndexArray) -> np.ndarray:
        # docstring inherited
        if len(dataset_indices) == 0:
            return np.empty((0, *self.shape[1:]), self.dtype)
        with self._unreadable():
            return np.asarray(self._ds[dataset_indices])

    def read_sorted(self, dataset_indices: IndexArray, out: np.ndarray | None = None) -> np.ndarray:
        # docstring inherited
        # ``read_direct`` decodes into our buffer: no array allocated per read. A set
        # with gaps is read as its covering range into a reused scratch buffer and
        # gathered from there, far cheaper than HDF5's point selection.
        n = len(dataset_indices)
        part = (self.buffer(n) if out is None else out)[:n]
        if n == 0:
            return part
        lo, hi = int(dataset_indices[0]), int(dataset_indices[-1]) + 1
        if hi - lo > DENSE_SPAN * n or not part.flags.c_contiguous:
            part[...] = self.read_rows(dataset_indices)
            return part
        with self._unreadable():
            if hi - lo == n:
                self._ds.read_direct(part, np.s_[lo:hi])
                return part
            with self._scratch_lock:  # one scratch buffer per source, threads take turns
                if self._scratch is None or len(self._scratch) < hi - lo:
                    self._scratch = self.buffer(hi - lo)
                scratch = self._scratch[: hi - lo]
                self._ds.read_direct(scratch, np.s_[lo:hi])
                take_rows(scratch, dataset_indices - lo, part)
        return part

    def describe(self) -> dict[str, Any]:
        # docstring inherited
        return {
            "kind": self.kind,
            "path": str(self.path),
            "dataset": self.dataset,
            **self.fingerprint(),
        }

    def close(self) -> None:
        # docstring inherited
        if self._file.id.valid:
            self._file.close()
