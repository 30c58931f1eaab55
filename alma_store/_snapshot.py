"""A read-only state of the store at one version: counts, and chunks on demand."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._overlay import NO_UNDO, Overlay, Undo, chunk_labels, chunk_marks, undo_in_range
from ._types import BoolArray, IndexArray
from .errors import CorruptStoreError
from .index import chunk_sizes, contains
from .journal import LabelEvent

if TYPE_CHECKING:
    from .store import Store


class MarksIndex:
    """The sorted labeled offsets of every chunk at one checkpoint (memory-mapped)."""

    def __init__(self, version: int, marks: np.ndarray, counts: IndexArray) -> None:
        self.version = version
        self._marks = marks
        self._counts = counts
        self._ends = np.cumsum(counts)

    def base(self, j: int) -> IndexArray:
        """Labeled offsets of chunk ``j`` at the checkpoint, checked for damage."""
        hi = int(self._ends[j])
        out = np.asarray(self._marks[hi - int(self._counts[j]) : hi], dtype=np.int64)
        if (len(out) > 1 and not (out[1:] > out[:-1]).all()) or (len(out) and out[0] < 0):
            raise CorruptStoreError(
                f"the marks index of checkpoint {self.version} is damaged at chunk {j}"
            )
        return out


class Snapshot:
    """The labeled mask and labels of a store at ``version``, read lazily.

    Holds only the per-chunk counts and the overlay of the journal tail; a
    chunk is read when asked for and brought to ``version`` (see
    :mod:`alma_store._overlay`), however far the store has moved on since.
    """

    def __init__(
        self,
        store: Store,
        overlay: Overlay,
        journal_offset: int,
        marks_index: MarksIndex | None = None,
    ) -> None:
        self._store = store
        self._overlay = overlay
        # Given only when the overlay starts at the index's checkpoint.
        self._marks_index = marks_index
        self._offset = journal_offset  # just past the record of `version`
        self._old: list[LabelEvent] = []
        self._old_end = journal_offset
        self.version = overlay.version
        self.chunk_rows = store.chunk_rows
        self.n_items = len(store)
        self.labeled_counts: IndexArray = overlay.counts
        self.chunk_sizes = chunk_sizes(self.n_items, self.chunk_rows)
        self.unlabeled_counts: IndexArray = self.chunk_sizes - overlay.counts
        self.num_labeled = int(overlay.counts.sum())
        self.all_unlabeled = overlay.counts == 0  # chunks mapped without reading them
        self.all_labeled = overlay.counts == self.chunk_sizes

    def _bounds(self, j: int) -> tuple[int, int]:
        lo = j * self.chunk_rows
        return lo, lo + int(self.chunk_sizes[j])

    def labeled_marks(self, j: int) -> IndexArray:
        """Sorted offsets, within chunk ``j``, of its labeled rows at this version."""
        count = int(self.labeled_counts[j])
        size = int(self.chunk_sizes[j])
        if count == 0:
            return _EMPTY
        if count == size:
            return np.arange(size, dtype=np.int64)
        if self._marks_index is not None:
            # The checkpoint's offsets plus the tail since: no chunk file is read.
            lo, hi = self._bounds(j)
            base = self._marks_index.base(j)
            if len(base) and base[-1] >= hi - lo:
                raise CorruptStoreError(
                    f"the marks index of checkpoint {self._marks_index.version} is damaged at chunk {j}"
                )
            return chunk_marks(base, lo, hi - lo, self._overlay, NO_UNDO)
        return self.read_marks(j)

    def read_marks(self, j: int) -> IndexArray:
        """Like :meth:`labeled_marks`, always from the chunk on disk (no count shortcut)."""
        lo, hi = self._bounds(j)
        disk = self._store._arrays.read_marks(j)
        return chunk_marks(disk, lo, hi - lo, self._overlay, self._undo(lo, hi))

    def _undo(self, lo: int, hi: int) -> Undo:
        # Called after the chunk was read, so every event it may reflect is known.
        return undo_in_range(self._later_events(), lo, hi)

    def _later_events(self) -> list[LabelEvent]:
        """Every committed event after this version, up to now."""
        store = self._store
        later = store._events_after(self.version)
        if later is not None:
            return later
        # Older than the store's in-memory tail (a past version, or the store has
        # checkpointed since): keep our own list, extended as the journal grows.
        records, end, _ = store._journal.read(self._old_end, self.version + len(self._old) + 1)
        self._old.extend(event for event, _ in records)
        self._old_end = end
        return self._old

    def labeled_chunk(self, j: int) -> BoolArray:
        """Labeled mask of chunk ``j`` at this version."""
        mask = np.zeros(int(self.chunk_sizes[j]), bool)
        mask[self.labeled_marks(j)] = True
        return mask

    def is_labeled(self, dataset_indices: IndexArray) -> BoolArray:
        """Whether each dataset index is labeled at this version."""
        out = np.zeros(dataset_indices.shape, bool)
        chunks = dataset_indices // self.chunk_rows
        for j in np.unique(chunks):
            hit = chunks == j
            out[hit] = contains(
                self.labeled_marks(int(j)), dataset_indices[hit] - int(j) * self.chunk_rows
            )
        return out

    def labels_at(self, dataset_indices: IndexArray) -> np.ndarray:
        """Labels of ``dataset_indices`` at this version (meaningless for unlabeled ones)."""
        store = self._store
        out = np.empty((len(dataset_indices), *store.label_shape), store.label_dtype)
        chunks = dataset_indices // self.chunk_rows
        for j in np.unique(chunks):
            hit = chunks == j
            _, labels = self.labels_chunk(int(j))
            out[hit] = labels[dataset_indices[hit] - int(j) * self.chunk_rows]
        return out

    def labels_chunk(self, j: int) -> tuple[IndexArray, np.ndarray]:
        """Labeled offsets and label rows of chunk ``j`` at this version."""
        lo, hi = self._bounds(j)
        marks = self.labeled_marks(j)
        disk = self._store._arrays.read_labels(lo, hi)
        return marks, chunk_labels(disk, lo, self._overlay, self._undo(lo, hi))


_EMPTY = np.empty(0, np.int64)
_EMPTY.flags.writeable = False
