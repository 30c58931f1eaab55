"""The state of a store at one version: counts, the offset map, and labels on demand.

A :class:`Snapshot` is immutable. It holds the marks index of one checkpoint
``c0`` (every chunk's sorted labeled offsets, memory-mapped) and the overlay of
the journal between ``c0`` and its version, so the labeled rows of any chunk at
its version are the checkpoint's run merged with the overlay
(:func:`alma_store.index.merge_tail`): no mask chunk file is ever read, and
chunks the journal tail touched take the same vectorised path as the others.

Labels come from the label chunk files, which may be at any version in
``[c0, now]`` (a checkpoint may be rewriting them); the snapshot reaches them
only through the narrow :class:`ChunkSource` interface and brings them to its
version with :mod:`alma_store._overlay`.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ._overlay import Overlay, chunk_labels, chunk_mask, undo_in_range
from ._state import MarksIndex
from ._types import BoolArray, IndexArray
from .index import (
    Runs,
    chunk_members,
    chunk_sizes,
    locate_positions,
    merge_tail,
    ragged_arange,
)
from .journal import LabelEvent

__all__ = ["ChunkSource", "Snapshot"]


class ChunkSource(Protocol):
    """What a snapshot needs from the engine that made it."""

    def read_chunk(self, kind: str, j: int) -> np.ndarray:
        """Chunk ``j`` of array ``kind`` as on disk now, checked against its checksum."""
        ...

    def events_after(self, version: int) -> list[LabelEvent]:
        """Every committed event newer than ``version``, oldest first, up to now."""
        ...


class Snapshot:
    """The labeled mask and labels of a store at ``version``, read lazily."""

    def __init__(
        self,
        source: ChunkSource,
        marks: MarksIndex,
        overlay: Overlay,
        *,
        n_items: int,
        chunk_rows: int,
        label_dtype: np.dtype[Any],
        label_shape: tuple[int, ...],
        merged: Runs | None = None,
    ) -> None:
        self._source = source
        self._marks = marks
        self._overlay = overlay
        # Runs of chunks the overlay touches, merged once and kept: the engine hands them on
        # to the next version's snapshot for every chunk the events in between leave alone.
        self.merged = merged if merged is not None else _NO_RUNS
        self._ends: dict[bool, IndexArray] = {}
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

    def bounds(self, j: int) -> tuple[int, int]:
        """Dataset index range ``[lo, hi)`` of chunk ``j``."""
        lo = j * self.chunk_rows
        return lo, lo + int(self.chunk_sizes[j])

    @property
    def marks_version(self) -> int:
        """The checkpoint whose marks index this snapshot builds on."""
        return self._marks.version

    def _touched(self, chunks: IndexArray) -> BoolArray:
        """Which of ``chunks`` (sorted, unique) the overlay has entries in."""
        ov = self._overlay
        if not len(ov.indices):
            return np.zeros(len(chunks), bool)
        lows = chunks * self.chunk_rows
        after = np.searchsorted(ov.indices, lows + self.chunk_rows)
        return np.asarray(after > np.searchsorted(ov.indices, lows))

    def _merged_runs(self, touched: IndexArray) -> Runs:
        """The merged runs, covering at least ``touched`` (merging the missing ones at once)."""
        have = self.merged
        missing = touched[~np.isin(touched, have.chunks)] if len(have.chunks) else touched
        if missing.size:
            ov = self._overlay
            fresh = merge_tail(self._marks.runs(missing), self.chunk_rows, ov.indices, ov.labeled)
            chunks = np.concatenate([have.chunks, fresh.chunks])
            order = np.argsort(chunks, kind="stable")
            self.merged = Runs(
                chunks[order],
                np.concatenate([np.asarray(have.flat, np.int64), fresh.flat]),
                np.concatenate([have.starts, fresh.starts + len(have.flat)])[order],
                np.concatenate([have.lengths, fresh.lengths])[order],
            )
        return self.merged

    def _groups(self, queries: IndexArray) -> list[tuple[Runs, BoolArray]]:
        """The runs that answer each query chunk: the marks index's or the merged ones."""
        wanted = np.unique(queries)
        hit = self._touched(wanted)
        where = hit[np.searchsorted(wanted, queries)]
        groups = []
        if not hit.all():
            groups.append((self._marks.runs(wanted[~hit]), ~where))
        if hit.any():
            groups.append((self._merged_runs(wanted[hit]), where))
        return groups

    def runs(self, chunks: IndexArray) -> Runs:
        """Sorted labeled offsets of ``chunks`` (sorted, unique) at this version, gathered."""
        lengths = np.zeros(len(chunks), np.int64)
        parts = []
        for runs, sel in self._groups(chunks):
            slots = runs.slot(chunks[sel])
            lengths[sel] = runs.lengths[slots]
            parts.append((runs, slots, sel))
        starts = np.cumsum(lengths) - lengths
        flat = np.empty(int(lengths.sum()), np.int64)
        for runs, slots, sel in parts:
            take, _ = ragged_arange(runs.starts[slots], runs.lengths[slots])
            flat[ragged_arange(starts[sel], lengths[sel])[0]] = runs.flat[take]
        return Runs(chunks, flat, starts, lengths)

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

    def map_positions(self, positions: IndexArray, *, of_labeled: bool) -> IndexArray:
        """View positions (validated) -> dataset indices at this version, all at once."""
        counts = self.counts(of_labeled=of_labeled)
        if of_labeled not in self._ends:
            self._ends[of_labeled] = np.cumsum(counts)
        chunks, ranks = locate_positions(positions, counts, self._ends[of_labeled])
        out = chunks * self.chunk_rows + ranks  # right wherever the chunk is all in the view
        need = np.flatnonzero(counts[chunks] != self.chunk_sizes[chunks])
        if need.size:
            q, r = chunks[need], ranks[need]
            local = np.empty(len(need), np.int64)
            for runs, sel in self._groups(q):
                local[sel] = runs.select(runs.slot(q[sel]), r[sel], of_labeled=of_labeled)
            out[need] = q * self.chunk_rows + local
        return out

    def locate(self, dataset_indices: IndexArray) -> tuple[IndexArray, IndexArray, BoolArray]:
        """Per dataset index: its chunk, the labeled rows before it there, whether labeled."""
        chunks = dataset_indices // self.chunk_rows
        local = dataset_indices - chunks * self.chunk_rows
        before = np.zeros(len(chunks), np.int64)
        labeled = np.zeros(len(chunks), bool)
        for runs, sel in self._groups(chunks) if len(chunks) else []:
            before[sel], labeled[sel] = runs.rank(runs.slot(chunks[sel]), local[sel])
        return chunks, before, labeled

    def is_labeled(self, dataset_indices: IndexArray) -> BoolArray:
        """Whether each dataset index is labeled at this version."""
        return self.locate(dataset_indices)[2]

    def positions_of(
        self, dataset_indices: IndexArray, *, of_labeled: bool
    ) -> tuple[IndexArray, BoolArray]:
        """Rank: view positions of ``dataset_indices``, and which belong to the view at all."""
        chunks, before, labeled = self.locate(dataset_indices)
        counts = self.counts(of_labeled=of_labeled)
        if of_labeled not in self._ends:
            self._ends[of_labeled] = np.cumsum(counts)
        ahead = (self._ends[of_labeled] - counts)[chunks]
        local = dataset_indices - chunks * self.chunk_rows
        ranks = before if of_labeled else local - before
        member = labeled if of_labeled else ~labeled
        return np.where(member, ahead + ranks, -1), member

    def labels_chunk(self, j: int) -> np.ndarray:
        """Label rows of chunk ``j`` at this version (rows not labeled then are meaningless)."""
        lo, _ = self.bounds(j)
        disk = self._source.read_chunk("labels", j)
        # The events after this version are read after the chunk, so none it reflects is missed.
        undo = undo_in_range(self._source.events_after(self.version), lo, lo + len(disk))
        return chunk_labels(disk, lo, self._overlay, undo)

    def labels_at(self, dataset_indices: IndexArray) -> np.ndarray:
        """Labels of ``dataset_indices`` at this version (meaningless for unlabeled ones)."""
        out = np.empty((len(dataset_indices), *self.label_shape), self.label_dtype)
        chunks = dataset_indices // self.chunk_rows
        order = np.argsort(chunks, kind="stable")
        edges = np.flatnonzero(np.diff(chunks[order])) + 1
        for group in np.split(order, edges) if len(order) else []:
            j = int(chunks[group[0]])
            out[group] = self.labels_chunk(j)[dataset_indices[group] - j * self.chunk_rows]
        return out

    def disk_mask(self, j: int) -> BoolArray:
        """The labeled mask of chunk ``j`` at this version, from its mask chunk file.

        Only the full check (:func:`alma_store._verify.verify`) reads mask files:
        the offset map never needs them.
        """
        lo, _ = self.bounds(j)
        disk = self._source.read_chunk("mask", j)
        undo = undo_in_range(self._source.events_after(self.version), lo, lo + len(disk))
        return chunk_mask(disk, lo, self._overlay, undo)


_NO_RUNS = Runs(
    np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
)
