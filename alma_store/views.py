"""Labeled and Unlabeled views of the dataset: snapshots that copy nothing.

A view is taken at one store version and keeps showing that version, however
many labels are added afterwards, exactly like ALMa's copies ``D[mask]`` did,
but without copying: it holds the per-chunk counts of that version and reads
mask chunks and feature rows only when asked.

Positions in a view are ``0 .. len(view) - 1`` in dataset order.
``view[...]`` follows numpy's rules (negative integers count from the end);
:meth:`to_dataset_index`, the offset map, takes only non-negative positions,
since a position handed to a labeler must be unambiguous.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .core import IndexArray, parse_indices
from .engine import Engine, Snapshot, worker_engine
from .errors import InvalidIndexError, InvalidInputError
from .sources import FeatureSource
from .storage import Location

__all__ = ["LabeledMask", "LabeledView", "UnlabeledView"]

DEFAULT_BATCH_ROWS = 65536


def _parse_key(key: object, length: int) -> tuple[IndexArray, bool]:
    """numpy-style key (int, slice, int array) -> positions, and whether it was a scalar."""
    if isinstance(key, slice):
        return np.arange(*key.indices(length), dtype=np.int64), False
    if isinstance(key, bool | np.bool_):
        raise InvalidInputError(f"a view index must be an int, slice or int array, got {key!r}")
    if isinstance(key, int | np.integer):
        k = int(key)
        if not -length <= k < length:
            raise InvalidIndexError(
                "index", [k], reason=f"index {k} is out of range for a view of length {length}"
            )
        return np.array([k % length], dtype=np.int64), True
    arr = np.asarray(key)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise InvalidInputError(
            f"a view index must be an int, slice or 1-D int array, got {type(key).__name__} "
            f"with dtype {arr.dtype} and shape {arr.shape}"
        )
    arr = arr.astype(np.int64)
    bad = (arr < -length) | (arr >= length)
    if bad.any():
        raise InvalidIndexError(
            "index",
            [int(v) for v in arr[bad]],
            reason=f"indices {arr[bad].tolist()} are out of range for a view of length {length}",
        )
    return arr % max(length, 1), False


class _View:
    """Shared machinery of the two views."""

    _labeled: bool

    def __init__(self, engine: Engine, source: FeatureSource, snapshot: Snapshot) -> None:
        self._engine = engine
        self._snap = snapshot
        self._source = source
        self._counts = snapshot.counts(of_labeled=self._labeled)
        self._len = int(self._counts.sum())

    @property
    def version(self) -> int:
        """The store version this view shows."""
        return self._snap.version

    @property
    def is_labeled_view(self) -> bool:
        """True for the Labeled view, False for the Unlabeled one."""
        return self._labeled

    @property
    def store_path(self) -> str:
        """The directory or URL of the store this view belongs to (workers reopen it by this)."""
        return str(self._engine.location)

    @property
    def storage_options(self) -> dict[str, Any] | None:
        """The storage options the store was opened with (workers reopen it with them)."""
        return self._engine.location.storage_options

    @property
    def feature_source(self) -> FeatureSource:
        """The feature source rows are read from."""
        return self._source

    def chunk_dataset_indices(self, j: int) -> IndexArray:
        """Dataset indices of the view's rows in chunk ``j``, sorted."""
        self._engine.check_open()
        return self._snap.members(j, of_labeled=self._labeled)

    def __len__(self) -> int:
        return self._len

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as (location, version, which view): it reopens where it lands, read-only,
        once per process (:func:`~alma_store.engine.worker_engine`), showing the same version.
        Storage options travel with it, in memory, as they do to Dask tasks."""
        return (_reopen_view, (self._engine.location, self._snap.version, self._labeled))

    @property
    def shape(self) -> tuple[int, ...]:
        """``(len(view), *features.shape[1:])``."""
        return (self._len, *self._source.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        """dtype of the feature rows."""
        return self._source.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions of ``shape``."""
        return len(self.shape)

    def to_dataset_index(self, positions: object) -> IndexArray:
        """The offset map: dataset indices of view ``positions`` (vectorised).

        Parameters
        ----------
        positions
            An int or a 1-D sequence/array of ints in ``[0, len(view))``.

        Returns
        -------
        numpy.ndarray
            int64 dataset indices, one per position (1-D, even for one int).

        Raises
        ------
        InvalidIndexError
            A position is negative, out of range, or repeated.
        InvalidInputError
            Positions that are not integers.
        """
        pos = parse_indices(positions, name="positions", upper=self._len)
        return self._map(pos)

    def _map(self, pos: IndexArray) -> IndexArray:
        self._engine.check_open()
        return self._snap.map_positions(pos, of_labeled=self._labeled)

    def read_rows(self, dataset_indices: IndexArray) -> np.ndarray:
        """Feature rows at ``dataset_indices`` (any order, repeats allowed)."""
        self._engine.check_open()
        if dataset_indices.size > 1 and (np.diff(dataset_indices) > 0).all():
            return self._source.read_sorted(dataset_indices)
        uniq, inverse = np.unique(dataset_indices, return_inverse=True)
        return self._source.read_sorted(uniq)[inverse]

    def __getitem__(self, key: object) -> np.ndarray:
        pos, scalar = _parse_key(key, self._len)
        rows = self.read_rows(self._map(pos))
        return rows[0] if scalar else rows

    def iter_dataset_indices(self, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[IndexArray]:
        """Dataset indices of the view in order, ``batch_rows`` at a time (no feature reads)."""
        if not isinstance(batch_rows, int) or isinstance(batch_rows, bool) or batch_rows < 1:
            raise InvalidInputError(f"batch_rows must be a positive int, got {batch_rows!r}")
        ends = np.cumsum(self._counts)
        for start in range(0, self._len, batch_rows):
            stop = min(start + batch_rows, self._len)
            # The chunks holding view positions [start, stop), their members in one pass.
            first = int(np.searchsorted(ends, start, side="right"))
            last = int(np.searchsorted(ends, stop - 1, side="right"))
            self._engine.check_open()
            members = self._snap.members_between(first, last, of_labeled=self._labeled)
            skip = start - (int(ends[first]) - int(self._counts[first]))
            yield members[skip : skip + stop - start]

    def batches(
        self, batch_rows: int = DEFAULT_BATCH_ROWS, *, reuse: bool = False
    ) -> Iterator[tuple[IndexArray, np.ndarray]]:
        """Stream the view: ``(dataset_indices, rows)`` of at most ``batch_rows`` rows each.

        Memory stays bounded by one batch whatever the view's length; rows are
        read with contiguous range reads wherever the view is dense, and each
        row is copied once, from the page cache into the batch.

        Parameters
        ----------
        batch_rows
            Rows per batch.
        reuse
            Fill one buffer again and again instead of a new array per batch:
            a batch's ``rows`` are then valid only until the next batch is
            asked for (copy what you keep). It saves allocating and zeroing
            fresh memory for every batch, which is most of the cost of
            streaming beside a model that allocates too.
        """
        out = self._source.buffer(batch_rows) if reuse else None
        with self._source.sequential():
            for idx in self.iter_dataset_indices(batch_rows):
                self._engine.check_open()
                yield idx, self._source.read_sorted(idx, out)  # sorted, unique by construction

    def to_dask(self) -> Any:
        """The view's rows as a ``dask.array.Array`` (``dask`` extra), one block per chunk.

        Blocks carry the store's path and this view's version, not open files:
        each reopens the store read-only where it runs and reads this snapshot,
        however many labels land meanwhile. Features in object storage are
        reopened with the storage options the store was opened with (they
        travel with the tasks to the workers; nothing is written to disk).
        """
        import dask
        import dask.array as da

        tail = self.shape[1:]
        where = self._engine.location.absolute()
        blocks = [
            da.from_delayed(
                dask.delayed(read_view_block, pure=True)(where, self.version, self._labeled, j),
                shape=(int(self._counts[j]), *tail),
                dtype=self.dtype,
            )
            for j in np.flatnonzero(self._counts).tolist()
        ]
        if not blocks:
            return da.empty((0, *tail), dtype=self.dtype)
        return da.concatenate(blocks, axis=0)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, rows in self.batches():
            yield from rows

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """Materialise every row of the view in memory (explicit, ``O(len(view))``)."""
        if copy is False:
            raise ValueError("a view cannot be turned into an array without copying")
        out = np.empty(self.shape, dtype=self.dtype)
        at = 0
        for idx in self.iter_dataset_indices():  # each batch read straight into its place
            self._engine.check_open()
            self._source.read_sorted(idx, out[at : at + len(idx)])
            at += len(idx)
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} len={self._len} version={self.version} shape={self.shape}>"


def read_view_block(location: Location, version: int, labeled: bool, j: int) -> np.ndarray:
    """The rows of chunk ``j`` in a view at ``version`` of the store at ``location`` (for workers,
    which open the store once per process)."""
    engine, source = worker_engine(location)
    snap = engine.snapshot_at(version)
    return source.read_sorted(snap.members(j, of_labeled=labeled))


class UnlabeledView(_View):
    """The Unlabeled part ``U`` of the dataset at one version. See :mod:`alma_store.views`."""

    _labeled = False


class LabeledView(_View):
    """The Labeled part ``L`` of the dataset at one version, with its labels."""

    _labeled = True

    @property
    def labels(self) -> np.ndarray:
        """Labels of the view's rows, in view order (materialised, ``len(view)`` labels)."""
        self._engine.check_open()
        snap = self._snap
        out = np.empty((self._len, *snap.label_shape), dtype=snap.label_dtype)
        at = 0
        for _, marks, labels in self.labeled_chunks():
            out[at : at + len(marks)] = labels
            at += len(marks)
        return out

    def labeled_chunks(self) -> Iterator[tuple[int, IndexArray, np.ndarray]]:
        """Stream ``(chunk, dataset_indices, labels)`` chunk by chunk, without feature reads."""
        snap = self._snap
        for j in np.flatnonzero(self._counts).tolist():
            self._engine.check_open()
            marks = snap.labeled_marks(j)
            yield j, j * snap.chunk_rows + marks, snap.labeled_labels(j)

    def labels_at(self, dataset_indices: object) -> np.ndarray:
        """Labels of labeled ``dataset_indices`` at this view's version."""
        idx = parse_indices(dataset_indices, name="dataset_indices", upper=self._snap.n_items)
        self._engine.check_open()
        return self._snap.labels_at(idx)

    def batches_with_labels(
        self, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[tuple[IndexArray, np.ndarray, np.ndarray]]:
        """Stream ``(dataset_indices, rows, labels)`` for training, ``batch_rows`` at a time."""
        for idx, rows in self.batches(batch_rows):
            yield idx, rows, self._snap.labels_at(idx)


class LabeledMask:
    """The labeled mask over dataset indices at one version, read lazily.

    ``mask[i]``, ``mask[a:b]`` and ``mask[int_array]`` read only the chunks
    involved; ``np.asarray(mask)`` materialises all ``N`` booleans.
    """

    def __init__(self, engine: Engine, snapshot: Snapshot) -> None:
        self._engine = engine
        self._snap = snapshot

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by location and version, as the views are."""
        return (_reopen_mask, (self._engine.location, self._snap.version))

    def __len__(self) -> int:
        return self._snap.n_items

    @property
    def shape(self) -> tuple[int]:
        """``(N,)``."""
        return (self._snap.n_items,)

    @property
    def dtype(self) -> np.dtype:
        """``bool``."""
        return np.dtype(bool)

    @property
    def version(self) -> int:
        """The store version this mask shows."""
        return self._snap.version

    def count(self) -> int:
        """Number of True entries (labeled items), from the count index."""
        return self._snap.num_labeled

    def __getitem__(self, key: object) -> Any:
        pos, scalar = _parse_key(key, self._snap.n_items)
        self._engine.check_open()
        out = self._snap.is_labeled(pos)
        return bool(out[0]) if scalar else out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """Materialise the whole mask (``N`` booleans)."""
        if copy is False:
            raise ValueError("the lazy mask cannot be turned into an array without copying")
        self._engine.check_open()
        out = np.zeros(self._snap.n_items, bool)
        for j in np.flatnonzero(self._snap.labeled_counts).tolist():
            out[self._snap.members(j, of_labeled=True)] = True
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"<LabeledMask N={len(self)} labeled={self.count()} version={self.version}>"


def _reopen_view(location: Location, version: int, labeled: bool) -> LabeledView | UnlabeledView:
    """A view unpickled: the store reopened read-only in this process, at ``version``."""
    engine, source = worker_engine(location)
    snap = engine.snapshot_at(version)
    return LabeledView(engine, source, snap) if labeled else UnlabeledView(engine, source, snap)


def _reopen_mask(location: Location, version: int) -> LabeledMask:
    """A labeled mask unpickled (see :func:`_reopen_view`)."""
    engine, _ = worker_engine(location)
    return LabeledMask(engine, engine.snapshot_at(version))
