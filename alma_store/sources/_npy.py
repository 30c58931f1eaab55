"""``.npy`` features, memory-mapped by the store itself."""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..core import IndexArray, PathLike
from ..errors import InvalidInputError, SourceMissingError
from ..storage import advise_mapping, advise_will_need
from ._base import FeatureSource, check_rows
from ._rows import take_rows

__all__ = ["NpySource"]


class NpySource(FeatureSource):
    """A ``.npy`` file, memory-mapped read-only.

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(path, np.arange(6.0).reshape(3, 2))
    >>> NpySource(path).read_rows(np.array([0, 2]))
    array([[0., 1.],
           [4., 5.]])
    """

    kind = "npy"

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path).resolve()
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise SourceMissingError(f"feature file {self.path} does not exist") from None
        try:
            self._mm, self._offset, self._map = map_npy(self._fd, self.path)
        except BaseException:
            os.close(self._fd)
            raise
        check_rows(self._mm.shape, self.path)
        self.shape = tuple(self._mm.shape)
        self.dtype = self._mm.dtype

    @property
    def array(self) -> np.memmap[Any, np.dtype[Any]]:
        # docstring inherited
        # A mapping of its own: reads go through the source's mapping, which it advises.
        mm: np.memmap[Any, np.dtype[Any]] = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return mm

    @contextlib.contextmanager
    def sequential(self) -> Iterator[None]:
        # docstring inherited
        # The kernel reads ahead much further on faults in a mapping advised sequential.
        if self._map is not None:
            advise_mapping(self._map, "sequential")
        try:
            yield
        finally:
            if self._map is not None and not self._map.closed:
                advise_mapping(self._map, "normal")

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        # docstring inherited
        return np.array(self._mm[lo:hi])

    def view_range(self, lo: int, hi: int) -> np.ndarray:
        # docstring inherited
        return np.asarray(self._mm[lo:hi])  # the mapping itself (read-only)

    def will_read(self, ranges: list[tuple[int, int]]) -> None:
        # docstring inherited
        # Asynchronous readahead of every range at once: a cold open waits for one
        # round trip to the disk, not one per sampled block.
        row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))
        for lo, hi in ranges:
            start = self._offset + lo * row_bytes
            advise_will_need(self._fd, (hi - lo) * row_bytes, start)

    def read_rows(self, dataset_indices: IndexArray) -> np.ndarray:
        # docstring inherited
        return np.asarray(self._mm[dataset_indices])

    def read_sorted(self, dataset_indices: IndexArray, out: np.ndarray | None = None) -> np.ndarray:
        # docstring inherited
        n = len(dataset_indices)
        if out is None:
            out = self.buffer(n)
        part = out[:n]
        if n == 0:
            return part
        lo, hi = int(dataset_indices[0]), int(dataset_indices[-1]) + 1
        if hi - lo == n:
            np.copyto(part, self._mm[lo:hi])
        else:  # straight from the mapping into the batch, each row copied once
            take_rows(np.asarray(self._mm), dataset_indices, part)
        return part

    def describe(self) -> dict[str, Any]:
        # docstring inherited
        return {
            "kind": self.kind,
            "path": str(self.path),
            **self.fingerprint(),
            "file_size": os.stat(self.path).st_size,
        }

    def close(self) -> None:
        # docstring inherited
        # The mapping is released when the last array using it goes; closing it
        # by hand would leave such arrays pointing at unmapped memory.
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def map_npy(fd: int, path: Path) -> tuple[np.ndarray, int, mmap.mmap | None]:
    """``(read-only array over the mapped file, offset of its data, the mapping)``."""
    with open(fd, "rb", closefd=False) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        except ValueError as exc:
            raise InvalidInputError(f"features {path} is not a readable .npy file: {exc}") from None
        offset = f.tell()
    if dtype.hasobject:
        raise InvalidInputError(f"features {path} hold Python objects, not numbers")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if os.fstat(fd).st_size < offset + nbytes:
        raise InvalidInputError(f"features {path} is not a readable .npy file: it is truncated")
    if nbytes == 0:
        return np.empty(shape, dtype), offset, None
    mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    arr = np.ndarray(shape, dtype, buffer=mapped, offset=offset, order="F" if fortran else "C")
    return arr, offset, mapped
