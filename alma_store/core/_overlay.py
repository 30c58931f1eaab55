"""Pure replay of journal events over chunk data (no I/O).

The checkpoint on disk holds the per-chunk labeled counts at version ``c0``,
while the Zarr chunks themselves may be at *any* version between ``c0`` and
the newest one, because a checkpoint in progress (by this or another process)
rewrites them one by one. Every event sets an absolute state for its dataset
indices, so the state of a chunk at version ``v`` can be computed from a chunk
at any version in ``[c0, now]``:

1. undo, newest first, every event in ``(v, now]`` that touches the chunk
   (setting each index back to its state — labeled or not, and its label —
   before the event), then
2. set every index the overlay holds to its state at ``v``: for ``v >= c0``
   the indices touched in ``(c0, v]`` (:meth:`Overlay.apply_all`), for ``v < c0``
   those touched in ``(v, c0]`` (:meth:`Overlay.rewind`).

Indices touched by no event in ``(c0, now]`` are the same at every version in
that range, so the chunk already holds their state. ``now`` must be read
*after* the chunk was, so no event reflected in the chunk is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._events import KINDS, LabelEvent
from ._types import BoolArray, IndexArray

_NOTHING = slice(0, 0)
NO_UNDO: tuple[IndexArray, BoolArray, None] = (np.empty(0, np.int64), np.empty(0, bool), None)


@dataclass(frozen=True, slots=True)
class Overlay:
    """State at ``version`` where it may differ from checkpoint ``c0``, and the counts at ``version``.

    Immutable: applying an event returns a new overlay, so a snapshot holding an
    older one is never disturbed.
    """

    version: int
    indices: IndexArray  # dataset indices whose state differs from c0's, sorted, unique
    labeled: BoolArray  # their state at version
    base: BoolArray  # their state at c0 (what the chunk files and marks index hold)
    values: np.ndarray  # their label at version, where labeled
    counts: IndexArray  # labeled rows per chunk at version

    @classmethod
    def empty(
        cls, version: int, counts: IndexArray, label_dtype: np.dtype, label_shape: tuple[int, ...]
    ) -> Overlay:
        """The overlay of a checkpoint: nothing touched since it."""
        return cls(
            version=version,
            indices=np.empty(0, np.int64),
            labeled=np.empty(0, bool),
            base=np.empty(0, bool),
            values=np.empty((0, *label_shape), label_dtype),
            counts=counts,
        )

    def apply_all(self, events: list[LabelEvent], chunk_rows: int) -> Overlay:
        """The overlay after ``events`` (consecutive versions), merged into it in one pass.

        Where several events touch an index the last one decides its state, so
        this equals applying them one by one, with one insertion into the
        sorted arrays instead of one per event. An index new to the overlay had,
        at ``c0``, the state the first event touching it found (each event says
        whether its items were labeled before it).
        """
        if not events:
            return self
        for k, event in enumerate(events, start=self.version + 1):
            if event.version != k:
                raise ValueError(f"event version {event.version} does not follow {k - 1}")
        flat = _Flat.of(events)
        state, was = flat.rows(flat.after), flat.rows(flat.before)
        counts = self.counts + flat.count_changes(chunk_rows, len(self.counts))
        vals = np.concatenate([e.values for e in events]) if len(events) > 1 else events[0].values
        new, first, last = flat.occurrences()
        new_labeled, new_values = state[last], vals[last]  # the last occurrence wins
        new_base = was[first]  # the first occurrence's
        at = np.searchsorted(self.indices, new)
        present = np.zeros(new.shape, bool)
        if len(self.indices):
            present = self.indices[np.minimum(at, len(self.indices) - 1)] == new
        fresh = ~present
        merge = _Merge(at[fresh], len(self.indices))
        labeled, values = (
            merge(self.labeled, new_labeled[fresh]),
            merge(self.values, new_values[fresh]),
        )
        kept = merge.kept(at[present])  # the entries already held, where they are now
        labeled[kept] = new_labeled[present]
        values[kept] = new_values[present]
        return Overlay(
            version=events[-1].version,
            indices=merge(self.indices, new[fresh]),
            labeled=labeled,
            base=merge(self.base, new_base[fresh]),
            values=values,
            counts=counts,
        )

    @classmethod
    def rewind(cls, checkpoint: Overlay, events: list[LabelEvent], chunk_rows: int) -> Overlay:
        """The overlay at ``checkpoint.version - len(events)``, relative to the checkpoint.

        ``events`` are the events ``(v, c0]``, oldest first; each index they
        touch is set to its state before the earliest of them (and was, at
        ``c0``, in its state after the latest).
        """
        if not events:
            return checkpoint
        flat = _Flat.of(events)
        before, after = flat.rows(flat.before), flat.rows(flat.after)
        values = np.concatenate([e.values_before for e in events])
        indices, first, last = flat.occurrences()
        counts = checkpoint.counts - flat.count_changes(chunk_rows, len(checkpoint.counts))
        return cls(
            events[0].version - 1, indices, before[first], after[last], values[first], counts
        )

    def in_range(self, lo: int, hi: int) -> slice:
        """Slice of the entries whose dataset index lies in ``[lo, hi)``."""
        if not len(self.indices):
            return _NOTHING
        return slice(int(self.indices.searchsorted(lo)), int(self.indices.searchsorted(hi)))


class _Merge:
    """Sorted insertion of new entries at ``at`` (positions in the old arrays, sorted, as
    :func:`numpy.searchsorted` gives them) into arrays of ``n`` entries: the same as
    :func:`numpy.insert`, with the positions worked out once for all four arrays."""

    def __init__(self, at: IndexArray, n: int) -> None:
        self.at = at
        self.size = n + len(at)
        self.placed = at + np.arange(len(at))  # where each new entry lands
        self.old = np.ones(self.size, bool)
        self.old[self.placed] = False

    def __call__(self, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        out = np.empty((self.size, *old.shape[1:]), old.dtype)
        out[self.placed] = new
        out[self.old] = old
        return out

    def kept(self, positions: IndexArray) -> IndexArray:
        """Where the old entries at ``positions`` are in the merged arrays."""
        return positions + np.searchsorted(self.at, positions, side="right")


@dataclass(frozen=True, slots=True)
class _Flat:
    """Consecutive events' dataset indices back to back, and per event its length and
    whether its items are labeled after and before it: what replay needs, in arrays
    (one pass over the events, not a few array calls per event)."""

    indices: IndexArray
    lengths: IndexArray
    after: BoolArray
    before: BoolArray

    @classmethod
    def of(cls, events: list[LabelEvent]) -> _Flat:
        n = len(events)
        lengths = np.fromiter((len(e.dataset_indices) for e in events), np.int64, n)
        kinds = [KINDS[e.kind] for e in events]
        return cls(
            np.concatenate([e.dataset_indices for e in events]),
            lengths,
            np.fromiter((after for _, after in kinds), bool, n),
            np.fromiter((before for before, _ in kinds), bool, n),
        )

    def occurrences(self) -> tuple[IndexArray, IndexArray, IndexArray]:
        """Each index once, sorted, with where it first and last occurs in :attr:`indices`."""
        order = np.argsort(self.indices, kind="stable")  # equal indices keep their order
        ordered = self.indices[order]
        differs = ordered[1:] != ordered[:-1]
        first, last = np.ones(len(ordered), bool), np.ones(len(ordered), bool)
        first[1:], last[:-1] = differs, differs
        return ordered[first], order[first], order[last]

    def rows(self, per_event: np.ndarray) -> np.ndarray:
        """A per-event value repeated for each of the event's items."""
        return np.repeat(per_event, self.lengths)

    def count_changes(self, chunk_rows: int, n_chunks: int) -> IndexArray:
        """The net change the events make to each chunk's labeled count."""
        steps = self.rows(self.after.astype(np.int64) - self.before)  # +1, -1 or 0 per item
        rows = steps != 0
        if not rows.any():
            return np.zeros(n_chunks, np.int64)
        chunks = self.indices[rows] // chunk_rows
        change = np.bincount(chunks, weights=steps[rows], minlength=n_chunks)
        return change.astype(np.int64)  # sums of +-1 far below 2**53: exact


Undo = tuple[IndexArray, BoolArray, np.ndarray | None]
"""Dataset indices touched by later events, newest first, with their state before each."""


def undo_in_range(events: list[LabelEvent], lo: int, hi: int) -> Undo:
    """Dataset indices in ``[lo, hi)`` touched by ``events``, with their state before.

    Returned newest event first, so applying them in order leaves each index in
    its state before the oldest event that touched it.
    """
    if not events:
        return NO_UNDO
    idx_parts, labeled_parts, value_parts = [], [], []
    for event in reversed(events):
        pick = np.flatnonzero((event.dataset_indices >= lo) & (event.dataset_indices < hi))[::-1]
        idx_parts.append(event.dataset_indices[pick])
        labeled_parts.append(np.full(len(pick), event.labeled_before))
        value_parts.append(event.values_before[pick])
    return np.concatenate(idx_parts), np.concatenate(labeled_parts), np.concatenate(value_parts)


def chunk_labels(disk_labels: np.ndarray, lo: int, overlay: Overlay, undo: Undo) -> np.ndarray:
    """Label rows of the chunk starting at ``lo`` at ``overlay.version`` (same rules).

    Rows labeled at ``overlay.version`` are right; other rows are meaningless.
    """
    u_idx, _, u_values = undo
    sl = overlay.in_range(lo, lo + len(disk_labels))
    if not u_idx.size and sl.start == sl.stop:
        return disk_labels
    labels = disk_labels.copy()
    if u_idx.size:
        labels[u_idx - lo] = u_values
    labels[overlay.indices[sl] - lo] = overlay.values[sl]
    return labels


def carried_labels(
    old_marks: IndexArray,
    old_labels: np.ndarray,
    marks: IndexArray,
    lo: int,
    overlay: Overlay,
) -> np.ndarray | None:
    """Labels of a chunk's labeled rows ``marks`` (offsets from ``lo``) at ``overlay.version``,
    from an earlier version's ``old_marks`` and ``old_labels`` over the same checkpoint.

    A row the overlay holds has its label there; any other labeled row was
    left alone since the checkpoint, so it was labeled at the earlier version,
    with the same label. ``O(labeled rows of the chunk)``, no chunk file read.
    None if a row is in neither (the versions do not share the checkpoint).
    """
    out = np.empty((len(marks), *old_labels.shape[1:]), old_labels.dtype)
    sl = overlay.in_range(lo, lo + (int(marks[-1]) + 1 if len(marks) else 0))
    touched = overlay.indices[sl] - lo
    at = np.minimum(np.searchsorted(touched, marks), max(len(touched) - 1, 0))
    fresh = touched[at] == marks if len(touched) else np.zeros(len(marks), bool)
    out[fresh] = overlay.values[sl][at[fresh]]
    kept = marks[~fresh]
    where = np.minimum(np.searchsorted(old_marks, kept), max(len(old_marks) - 1, 0))
    if len(kept) and (not len(old_marks) or (old_marks[where] != kept).any()):
        return None
    out[~fresh] = old_labels[where]
    return out


def chunk_mask(disk_mask: BoolArray, lo: int, overlay: Overlay, undo: Undo) -> BoolArray:
    """Labeled mask of the chunk starting at ``lo`` at ``overlay.version`` (same rules)."""
    u_idx, u_labeled, _ = undo
    sl = overlay.in_range(lo, lo + len(disk_mask))
    mask = disk_mask.copy()
    if u_idx.size:
        # Newest first: numpy applies repeated fancy indices in order, so the
        # oldest prior state, written last, wins.
        mask[u_idx - lo] = u_labeled
    mask[overlay.indices[sl] - lo] = overlay.labeled[sl]
    return mask
