"""The state of a store at one version: counts, the offset map, and labels on demand.

A :class:`Snapshot` is immutable. It holds the marks index of one checkpoint
``c0`` (every chunk's sorted labeled offsets, memory-mapped) and the overlay of
the journal between ``c0`` and its version, so the labeled rows of any chunk at
its version are the checkpoint's run merged with the overlay
(:func:`alma_store.core.merge_tail`): no mask chunk file is ever read, and
chunks the journal tail touched take the same vectorised path as the others.

Labels come from the label chunk files, which may be at any version in
``[c0, now]`` (a checkpoint may be rewriting them); the snapshot reaches them
only through the two functions it is built with (read a checked chunk file, the
events committed after a version) and brings them to its version with
:mod:`alma_store.core._overlay`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core import (
    Arena,
    BaseRanks,
    BoolArray,
    IndexArray,
    LabeledRows,
    LabelEvent,
    Overlay,
    Runs,
    carried_labels,
    check_upper,
    chunk_labels,
    chunk_mask,
    chunk_members,
    chunk_sizes,
    locate_positions,
    merge_tail,
    ragged_arange,
    undo_in_range,
)
from ..storage import MarksIndex

__all__ = ["ChunkReader", "EventsAfter", "Snapshot"]

ChunkReader = Callable[[str, int], np.ndarray]
"""``read_chunk(kind, j)``: chunk ``j`` of array ``kind`` as on disk now, checked."""
EventsAfter = Callable[[int], list[LabelEvent]]
"""``events_after(version)``: every committed event newer than ``version``, up to now."""


class Snapshot:
    """The labeled mask and labels of a store at ``version``, read lazily."""

    def __init__(
        self,
        read_chunk: ChunkReader,
        events_after: EventsAfter,
        marks: MarksIndex,
        overlay: Overlay,
        *,
        n_items: int,
        chunk_rows: int,
        label_dtype: np.dtype[Any],
        label_shape: tuple[int, ...],
        merged: Runs | None = None,
        labels: dict[int, np.ndarray] | None = None,
        carried: dict[int, tuple[IndexArray, np.ndarray]] | None = None,
        arena: Arena | None = None,
        ranks: BaseRanks | None = None,
    ) -> None:
        self._read_chunk = read_chunk
        self._events_after = events_after
        self._marks = marks
        self._overlay = overlay
        # Runs merged with the overlay, kept (see runs()); the engine hands them on to the
        # next version's snapshot for every chunk the events in between leave alone.
        self.merged = merged if merged is not None else Runs.empty()
        # Labels of each chunk's labeled rows (read-only arrays), handed on the same way:
        # ``O(labeled rows)`` memory, which the labeled set being small keeps small.
        self.labels: dict[int, np.ndarray] = labels if labels is not None else {}
        # Chunks whose labels an earlier version over the same checkpoint had, before
        # commits touched them: ``(marks, labels)`` then, from which this version's
        # labels follow without reading the chunk file (core.carried_labels).
        self.carried: dict[int, tuple[IndexArray, np.ndarray]] = (
            carried if carried is not None else {}
        )
        self._arena = arena if arena is not None else Arena()
        self._cumsums: dict[bool, IndexArray] = {}
        self._rows: LabeledRows | None = None
        self._ranks = ranks if ranks is not None else BaseRanks()
        self.version = overlay.version
        self.n_items = n_items
        self.chunk_rows = chunk_rows
        self.label_dtype = label_dtype
        self.label_shape = label_shape
        self.chunk_sizes = chunk_sizes(n_items, chunk_rows)
        self.labeled_counts: IndexArray = overlay.counts
        self.unlabeled_counts: IndexArray = self.chunk_sizes - overlay.counts
        self.num_labeled = int(overlay.counts.sum())

    def counts(self, *, of_labeled: bool) -> IndexArray:
        """Rows of each chunk in the Labeled (or Unlabeled) view."""
        return self.labeled_counts if of_labeled else self.unlabeled_counts

    def _ends(self, *, of_labeled: bool) -> IndexArray:
        """``np.cumsum`` of the view's per-chunk counts (kept: the snapshot never changes)."""
        if of_labeled not in self._cumsums:
            self._cumsums[of_labeled] = np.cumsum(self.counts(of_labeled=of_labeled))
        return self._cumsums[of_labeled]

    def bounds(self, j: int) -> tuple[int, int]:
        """Dataset index range ``[lo, hi)`` of chunk ``j``."""
        lo = j * self.chunk_rows
        return lo, lo + int(self.chunk_sizes[j])

    def runs(self, chunks: IndexArray) -> Runs:
        """Sorted labeled offsets of ``chunks`` (sorted, unique) at this version.

        Right after a checkpoint they are the marks index's runs, read in place.
        With a journal tail, runs are merged with it (all missing chunks in one
        pass; a chunk the tail leaves alone merges to a copy of its run) and
        kept, and the engine hands them on to the next version's snapshot for
        every chunk the commits in between leave alone: each chunk is merged
        about once per checkpoint, not once per query.
        """
        if not len(self._overlay.indices):
            return self._marks.runs(chunks)
        have = self.merged
        at = np.minimum(np.searchsorted(have.chunks, chunks), max(len(have.chunks) - 1, 0))
        known = have.chunks[at] == chunks if len(have.chunks) else np.zeros(len(chunks), bool)
        missing = chunks[~known]
        if missing.size:
            ov = self._overlay
            fresh = merge_tail(self._marks.runs(missing), self.chunk_rows, ov.indices, ov.labeled)
            have = self.merged = have.union(fresh, self._arena)
        return have.subset(chunks)

    def labeled_marks(self, j: int) -> IndexArray:
        """Sorted offsets, within chunk ``j``, of its labeled rows at this version."""
        return self.runs(np.array([j], np.int64)).run(0)

    def members(self, j: int, *, of_labeled: bool) -> IndexArray:
        """Dataset indices of chunk ``j``'s rows in the Labeled (or Unlabeled) view, sorted."""
        lo, hi = self.bounds(j)
        count = int(self.counts(of_labeled=of_labeled)[j])
        if count == hi - lo:
            return np.arange(lo, hi, dtype=np.int64)
        if count == 0:
            return np.empty(0, np.int64)
        return lo + chunk_members(self.labeled_marks(j), hi - lo, of_labeled=of_labeled)

    def members_between(self, first: int, last: int, *, of_labeled: bool) -> IndexArray:
        """Dataset indices of the view's rows in chunks ``first`` to ``last``, sorted.

        One vectorised pass over all of them (what streaming a view asks for).
        """
        lo, hi = first * self.chunk_rows, self.bounds(last)[1]
        chunks = np.arange(first, last + 1, dtype=np.int64)
        runs = self.runs(chunks[self.labeled_counts[first : last + 1] > 0])
        take, owner = ragged_arange(runs.starts, runs.lengths)
        labeled = np.asarray(runs.flat[take], np.int64) + runs.chunks[owner] * self.chunk_rows
        if of_labeled:
            return labeled
        keep = np.ones(hi - lo, bool)
        keep[labeled - lo] = False
        return lo + np.flatnonzero(keep)

    def dataset_indices_of(self, idx: IndexArray, relative_to: str) -> IndexArray:
        """Dataset indices of parsed ``idx``: positions in the Unlabeled view, or dataset indices.

        ``relative_to`` is ``"unlabeled"`` or ``"dataset"``; ``idx`` (parsed by
        :func:`~alma_store.core.parse_indices`) is checked against this version's bounds.
        """
        if relative_to == "unlabeled":
            upper = self.n_items - self.num_labeled
            return self.map_positions(check_upper(idx, "positions", upper), of_labeled=False)
        return check_upper(idx, "dataset_indices", self.n_items)

    def _labeled_rows(self) -> LabeledRows:
        """Rank and select at this version: the checkpoint's runs and the tail, never merged."""
        if self._rows is None:
            ov = self._overlay
            self._rows = LabeledRows(
                self._marks.runs, self.chunk_rows, ov.indices, ov.labeled, ov.base, self._ranks
            )
        return self._rows

    def map_positions(self, positions: IndexArray, *, of_labeled: bool) -> IndexArray:
        """View positions (validated) -> dataset indices at this version, all at once.

        ``O(k log)`` for ``k`` positions, plus the tail entries of the chunks they
        hit, whatever the number of labels (:class:`~alma_store.core.LabeledRows`).
        """
        counts = self.counts(of_labeled=of_labeled)
        chunks, ranks = locate_positions(positions, counts, self._ends(of_labeled=of_labeled))
        out = chunks * self.chunk_rows + ranks  # right wherever the chunk is all in the view
        need = np.flatnonzero(counts[chunks] != self.chunk_sizes[chunks])
        if need.size:
            q = chunks[need]
            local = self._labeled_rows().select(q, ranks[need], of_labeled=of_labeled)
            out[need] = q * self.chunk_rows + local
        return out

    def locate(self, dataset_indices: IndexArray) -> tuple[IndexArray, IndexArray, BoolArray]:
        """Per dataset index: its chunk, the labeled rows before it there, whether labeled."""
        chunks = dataset_indices // self.chunk_rows
        if not len(chunks):
            return chunks, chunks.copy(), np.zeros(0, bool)
        local = dataset_indices - chunks * self.chunk_rows
        before, labeled = self._labeled_rows().rank(chunks, local)
        return chunks, before, labeled

    def is_labeled(self, dataset_indices: IndexArray) -> BoolArray:
        """Whether each dataset index is labeled at this version (``O(k log)``)."""
        chunks = dataset_indices // self.chunk_rows
        if not len(chunks):
            return np.zeros(0, bool)
        local = dataset_indices - chunks * self.chunk_rows
        return self._labeled_rows().contains(chunks, local)

    def positions_of(
        self, dataset_indices: IndexArray, *, of_labeled: bool
    ) -> tuple[IndexArray, BoolArray]:
        """Rank: view positions of ``dataset_indices``, and which belong to the view at all."""
        chunks, before, labeled = self.locate(dataset_indices)
        counts = self.counts(of_labeled=of_labeled)
        ahead = (self._ends(of_labeled=of_labeled) - counts)[chunks]
        local = dataset_indices - chunks * self.chunk_rows
        ranks = before if of_labeled else local - before
        member = labeled if of_labeled else ~labeled
        return np.where(member, ahead + ranks, -1), member

    def labels_chunk(self, j: int) -> np.ndarray:
        """Label rows of chunk ``j`` at this version (rows not labeled then are meaningless)."""
        lo, _ = self.bounds(j)
        disk = self._read_chunk("labels", j)
        # The events after this version are read after the chunk, so none it reflects is missed.
        undo = undo_in_range(self._events_after(self.version), lo, lo + len(disk))
        return chunk_labels(disk, lo, self._overlay, undo)

    def labeled_labels(self, j: int) -> np.ndarray:
        """Labels of chunk ``j``'s labeled rows, in order (read-only, kept and handed on)."""
        got = self.labels.get(j)
        if got is None:
            marks = self.labeled_marks(j)
            before = self.carried.pop(j, None)
            if before is not None:
                got = carried_labels(*before, marks, j * self.chunk_rows, self._overlay)
            if got is None:
                got = self.labels_chunk(j)[marks]
            got.flags.writeable = False
            self.labels[j] = got
        return got

    def labels_at(self, dataset_indices: IndexArray) -> np.ndarray:
        """Labels of ``dataset_indices`` at this version (meaningless for unlabeled ones)."""
        out = np.empty((len(dataset_indices), *self.label_shape), self.label_dtype)
        chunks = dataset_indices // self.chunk_rows
        order = np.argsort(chunks, kind="stable")
        edges = np.flatnonzero(np.diff(chunks[order])) + 1
        for group in np.split(order, edges) if len(order) else []:
            j = int(chunks[group[0]])
            marks, labels = self.labeled_marks(j), self.labeled_labels(j)
            if len(marks):
                at = np.searchsorted(marks, dataset_indices[group] - j * self.chunk_rows)
                out[group] = labels[np.minimum(at, len(marks) - 1)]
        return out

    def disk_mask(self, j: int) -> BoolArray:
        """The labeled mask of chunk ``j`` at this version, from its mask chunk file.

        Only the full check (:func:`alma_store.engine.verify`) reads mask files:
        the offset map never needs them.
        """
        lo, _ = self.bounds(j)
        disk = self._read_chunk("mask", j)
        undo = undo_in_range(self._events_after(self.version), lo, lo + len(disk))
        return chunk_mask(disk, lo, self._overlay, undo)
