"""The feature-source interface every kind of features implements, and what they share."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..core import IndexArray
from ..errors import AlmaError, CorruptStoreError, InvalidInputError, SourceChangedError

__all__ = [
    "DENSE_SPAN",
    "SAMPLE_BLOCKS",
    "SAMPLE_ROWS",
    "FeatureSource",
    "IndexOnlySource",
    "check_rows",
    "damaged_source",
    "sample_hash",
]

DENSE_SPAN = 4
"""Sorted rows spread over at most this many times their number are read as their
covering range and gathered in memory; sparser ones by the backend's point selection."""
SAMPLE_BLOCKS = 8
SAMPLE_ROWS = 16


class FeatureSource:
    """A read-only 2-D-or-more array of features, one row per dataset item."""

    kind: str = ""
    has_rows: bool = True
    """False for an index-only store, whose items are read by the user, by dataset index."""
    shape: tuple[int, ...]
    dtype: np.dtype
    path: Path
    storage_options: dict[str, Any] | None = None
    """What reached features in object storage (in memory only: handed to workers, never
    written to disk)."""
    owned_by: Path | None = None
    """The store whose own copy of the features this is (its damage is the store's)."""

    def __len__(self) -> int:
        return self.shape[0]

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``[lo, hi)`` as an in-memory array."""
        raise NotImplementedError

    def read_rows(self, dataset_indices: IndexArray) -> np.ndarray:
        """Rows at sorted, unique ``dataset_indices``, in that order."""
        raise NotImplementedError

    def read_sorted(self, dataset_indices: IndexArray, out: np.ndarray | None = None) -> np.ndarray:
        """Rows at sorted, unique ``dataset_indices``, by the cheapest read.

        A dense run is read as one contiguous range and gathered in memory;
        a sparse set goes to the backend's point selection. With ``out`` (a
        C-contiguous buffer of at least ``len(dataset_indices)`` rows), the rows
        go into its first rows and that part of it is returned: a reused
        buffer saves allocating (and page-faulting) every batch anew.
        """
        rows = self._read_sorted(dataset_indices)
        if out is None:
            return rows
        part = out[: len(rows)]
        part[...] = rows
        return part

    def _read_sorted(self, dataset_indices: IndexArray) -> np.ndarray:
        if len(dataset_indices) == 0:
            return np.empty((0, *self.shape[1:]), self.dtype)
        lo, hi = int(dataset_indices[0]), int(dataset_indices[-1]) + 1
        if hi - lo == len(dataset_indices):
            return self.read_range(lo, hi)
        if hi - lo <= DENSE_SPAN * len(dataset_indices):
            return np.take(self.read_range(lo, hi), dataset_indices - lo, axis=0)
        return self.read_rows(dataset_indices)

    def view_range(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``[lo, hi)``, read-only, without a copy where the source allows it.

        Valid only until the next read; :meth:`read_range` returns an array to keep.
        """
        rows = self.read_range(lo, hi)
        rows.flags.writeable = False
        return rows

    def buffer(self, rows: int) -> np.ndarray:
        """An uninitialised buffer of ``rows`` rows for :meth:`read_sorted`'s ``out``."""
        return np.empty((rows, *self.shape[1:]), self.dtype)

    @property
    def array(self) -> Any:
        """The underlying array object (memmap, ``zarr.Array`` or ``h5py.Dataset``)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Location and fingerprint, as recorded in the store's metadata."""
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        """What must not change: shape, dtype, size in bytes, and a hash of sampled rows.

        The sample is :data:`SAMPLE_BLOCKS` blocks of at most :data:`SAMPLE_ROWS`
        rows spread evenly over the rows, so its cost does not grow with ``N``
        and a same-shape replacement of the features is caught at open.
        """
        return {
            "shape": list(self.shape),
            "dtype": self.dtype.str,
            "nbytes": int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize,
            "sample": self.sample_hash(),
        }

    def sample_hash(self) -> str:
        """BLAKE2b of :data:`SAMPLE_BLOCKS` evenly spread blocks of rows (``O(1)`` reads)."""
        return sample_hash(self.shape[0], self.read_blocks)

    def read_blocks(self, ranges: list[tuple[int, int]]) -> list[np.ndarray]:
        """Rows ``[lo, hi)`` of each range (a source may fetch them all at once)."""
        self.will_read(ranges)
        return [self.read_range(lo, hi) for lo, hi in ranges]

    def will_read(self, ranges: list[tuple[int, int]]) -> None:
        """A hint that rows ``[lo, hi)`` of each range are read next (their I/O may start now)."""

    @contextlib.contextmanager
    def sequential(self) -> Iterator[None]:
        """A hint that the rows are read in order, from start to end, while it is held."""
        yield

    def close(self) -> None:
        """Release file handles."""

    @contextlib.contextmanager
    def _unreadable(self) -> Iterator[None]:
        """Turn data that cannot be read or decoded into an error of the tree, naming it."""
        try:
            yield
        except CorruptStoreError as exc:  # a chunk file the fast path could not decode
            raise damaged_source(self.path, self.owned_by, exc) from None
        except AlmaError:
            raise
        except Exception as exc:  # noqa: BLE001 - zarr, numcodecs and h5py raise bare errors
            raise damaged_source(self.path, self.owned_by, exc) from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


def sample_hash(
    n_rows: int, read_blocks: Callable[[list[tuple[int, int]]], list[np.ndarray]]
) -> str:
    """BLAKE2b of :data:`SAMPLE_BLOCKS` evenly spread blocks of rows read by ``read_blocks``.

    The content part of a feature fingerprint: its cost does not grow with ``n_rows``,
    and the blocks are asked for at once, so a source can fetch them together.

    >>> x = np.arange(100.0).reshape(50, 2)
    >>> blocks = lambda ranges: [x[a:b] for a, b in ranges]
    >>> sample_hash(50, blocks) == sample_hash(50, lambda r: [x.copy()[a:b] for a, b in r])
    True
    """
    rows = min(SAMPLE_ROWS, n_rows)
    digest = hashlib.blake2b(digest_size=16)
    spread = max(SAMPLE_BLOCKS - 1, 1)
    starts = sorted({(k * (n_rows - rows)) // spread for k in range(SAMPLE_BLOCKS)}) if rows else []
    for block in read_blocks([(lo, lo + rows) for lo in starts]) if starts else []:
        block = np.ascontiguousarray(block)
        digest.update(block.astype(block.dtype.newbyteorder("<")).tobytes())
    return f"blake2b:{digest.hexdigest()}"


def check_rows(shape: tuple[int, ...], where: object) -> None:
    if len(shape) < 1:
        raise InvalidInputError(f"features {where} must have at least one dimension, got a scalar")


def damaged_source(path: Path, owned_by: Path | None, exc: BaseException) -> AlmaError:
    """The error for feature data that cannot be read: the store's copy, or the user's source."""
    if owned_by is not None:
        return CorruptStoreError(
            f"{path}, the copy of the features inside the store {owned_by}, is damaged: {exc}"
        )
    return SourceChangedError(f"feature source {path} cannot be read (damaged?): {exc}")


class IndexOnlySource(FeatureSource):
    """The "features" of an index-only store: ``N`` items, no rows to read.

    The store keeps labels, views, the offset map, history and scoring by
    dataset index; reading rows raises :class:`InvalidInputError` saying how
    to reach the items instead.
    """

    kind = "none"
    has_rows = False

    def __init__(self, n_items: int) -> None:
        self.shape = (n_items,)
        self.dtype = np.dtype(np.int64)
        self.path = Path("(index-only)")

    def _no_rows(self) -> InvalidInputError:
        return InvalidInputError(
            "this store is index-only (created with n_items=, no features): it has no rows "
            "to read. Take the view's dataset indices (view.to_dataset_index(positions) or "
            "view.iter_dataset_indices()) and read your items by index; for PyTorch, "
            "alma_store.torch.ViewDataset(view, dataset=your_dataset) returns dataset[i]"
        )

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        # docstring inherited
        raise self._no_rows()

    def read_rows(self, dataset_indices: IndexArray) -> np.ndarray:
        # docstring inherited
        raise self._no_rows()

    def read_sorted(self, dataset_indices: IndexArray, out: np.ndarray | None = None) -> np.ndarray:
        # docstring inherited
        raise self._no_rows()

    @property
    def array(self) -> None:
        # docstring inherited
        return None

    def describe(self) -> dict[str, Any]:
        # docstring inherited
        return {"kind": self.kind, "shape": [self.shape[0]]}
