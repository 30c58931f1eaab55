"""A read-only state of the store at one version: counts, and chunks on demand."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np

from ._overlay import NO_UNDO, Overlay, Undo, chunk_labels, chunk_marks, undo_in_range
from ._types import BoolArray, IndexArray
from .errors import CorruptStoreError
from .index import (
    chunk_sizes,
    contains,
    locate_positions,
    select_in_chunk,
    view_to_dataset_indices,
)
from .journal import LabelEvent

if TYPE_CHECKING:
    from .store import Store


class MarksIndex:
    """The sorted labeled offsets of every chunk at one checkpoint (memory-mapped).

    Each chunk's run is checked against its crc32 the first time it is used.
    """

    def __init__(
        self, version: int, crcs: np.ndarray, marks: np.ndarray, counts: IndexArray
    ) -> None:
        self.version = version
        self.marks = marks
        self.counts = counts
        self.starts = np.cumsum(counts) - counts
        self._crcs = crcs
        self._checked: set[int] = set()

    def check(self, chunks: IndexArray) -> None:
        """Raise CorruptStoreError unless the runs of ``chunks`` match their checksums."""
        for j in chunks.tolist():
            if j in self._checked:
                continue
            a = int(self.starts[j])
            run = self.marks[a : a + int(self.counts[j])]
            if zlib.crc32(run.tobytes()) != int(self._crcs[j]):
                raise CorruptStoreError(
                    f"the marks index of checkpoint {self.version} is damaged at chunk {j}"
                )
            self._checked.add(j)

    def base(self, j: int) -> IndexArray:
        """Labeled offsets of chunk ``j`` at the checkpoint, checked for damage."""
        self.check(np.array([j]))
        a = int(self.starts[j])
        return self.marks[a : a + int(self.counts[j])].astype(np.int64)


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
        self._touched: IndexArray | None = None
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

    def map_positions(self, positions: IndexArray, *, of_labeled: bool) -> IndexArray:
        """View positions (validated) -> dataset indices at this version.

        With a marks index, chunks the journal tail leaves alone are mapped all
        at once: a vectorised binary search over their (checksummed) runs of
        labeled offsets, no Python loop per chunk and no chunk file read.
        """
        counts = self.labeled_counts if of_labeled else self.unlabeled_counts
        whole = self.all_labeled if of_labeled else self.all_unlabeled
        index = self._marks_index
        if index is None:
            return view_to_dataset_indices(
                positions,
                counts,
                self.chunk_rows,
                self.labeled_marks,
                of_labeled=of_labeled,
                whole=whole,
            )
        chunks, ranks = locate_positions(positions, counts)
        out = chunks * self.chunk_rows + ranks  # right wherever the chunk is all in the view
        need = ~whole[chunks]
        touched = np.isin(chunks, self._touched_chunks())
        fast = np.flatnonzero(need & ~touched)
        if fast.size:
            fc, fr = chunks[fast], ranks[fast]
            index.check(np.unique(fc))
            start, length = index.starts[fc], index.counts[fc]
            if of_labeled:
                local = index.marks[start + fr].astype(np.int64)
            else:  # the fr-th unlabeled row is at fr + #{i : marks[i] - i <= fr}
                lo = np.zeros(len(fc), np.int64)
                hi = length.astype(np.int64)
                while (active := lo < hi).any():
                    mid = (lo + hi) // 2
                    probe = index.marks[start + np.minimum(mid, np.maximum(length - 1, 0))] - mid
                    go_right = active & (probe <= fr)
                    lo = np.where(go_right, mid + 1, lo)
                    hi = np.where(active & ~go_right, mid, hi)
                local = fr + lo
            out[fast] = fc * self.chunk_rows + local
        slow = np.flatnonzero(need & touched)
        for j in np.unique(chunks[slow]).tolist():
            hit = slow[chunks[slow] == j]
            marks = self.labeled_marks(j)
            out[hit] = j * self.chunk_rows + select_in_chunk(
                marks, ranks[hit], of_labeled=of_labeled
            )
        return out

    def _touched_chunks(self) -> IndexArray:
        """Chunks the journal tail since the checkpoint touches (cached)."""
        if self._touched is None:
            self._touched = np.unique(self._overlay.indices // self.chunk_rows)
        return self._touched

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
