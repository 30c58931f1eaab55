"""A read-only state of the store at one version: counts, and chunks on demand."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._overlay import Overlay, chunk_state, undo_in_range
from ._types import BoolArray, IndexArray
from .index import chunk_sizes

if TYPE_CHECKING:
    from .store import Store


class Snapshot:
    """The labeled mask and labels of a store at ``version``, read lazily.

    Holds only the per-chunk counts and the overlay of the journal tail; a
    chunk is read when asked for and brought to ``version`` (see
    :mod:`alma_store._overlay`), however far the store has moved on since.
    """

    def __init__(self, store: Store, overlay: Overlay, journal_offset: int) -> None:
        self._store = store
        self._overlay = overlay
        self._offset = journal_offset  # just past the record of `version`
        self.version = overlay.version
        self.chunk_rows = store.chunk_rows
        self.n_items = len(store)
        self.labeled_counts: IndexArray = overlay.counts
        self.chunk_sizes = chunk_sizes(self.n_items, self.chunk_rows)
        self.unlabeled_counts: IndexArray = self.chunk_sizes - overlay.counts
        self.num_labeled = int(overlay.counts.sum())

    def _bounds(self, j: int) -> tuple[int, int]:
        lo = j * self.chunk_rows
        return lo, lo + int(self.chunk_sizes[j])

    def read_chunk(self, j: int, with_labels: bool) -> tuple[BoolArray, np.ndarray | None]:
        lo, hi = self._bounds(j)
        disk = self._store._arrays.read_mask_chunk(j)
        labels = self._store._arrays.read_labels(lo, hi) if with_labels else None
        later = self._store._events_after(self.version, self._offset)  # read after the chunk
        return chunk_state(disk, labels, lo, self._overlay, undo_in_range(later, lo, hi))

    def labeled_chunk(self, j: int) -> BoolArray:
        """Labeled mask of chunk ``j`` at this version."""
        count = int(self.labeled_counts[j])
        if count == 0:
            return np.zeros(int(self.chunk_sizes[j]), bool)
        if count == self.chunk_sizes[j]:
            return np.ones(count, bool)
        return self.read_chunk(j, False)[0]

    def unlabeled_chunk(self, j: int) -> BoolArray:
        """Unlabeled mask of chunk ``j`` at this version."""
        return ~self.labeled_chunk(j)

    def labels_chunk(self, j: int) -> tuple[BoolArray, np.ndarray]:
        """Labeled mask and label rows of chunk ``j`` at this version."""
        mask, labels = self.read_chunk(j, True)
        assert labels is not None
        return mask, labels
