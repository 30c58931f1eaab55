"""Pure index logic: the two index spaces and the per-chunk count index.

alma_store names two index spaces and never mixes them:

``dataset_index``
    A row of the dataset ``D``, ``0 <= dataset_index < N``. It never changes.
``view position``
    A row of a view (Labeled or Unlabeled) at one store version: the
    ``p``-th row of the view in dataset order. Positions shift whenever labels
    are added, which is why every view is a snapshot at a version.

The dataset is cut into chunks of ``chunk_rows`` rows (the chunking of the
on-disk mask). A *count index* holds, per chunk, how many rows of that chunk
belong to a view. Its prefix sum maps a view position to its chunk with one
``searchsorted`` (``select``), and a dataset index to the number of view rows
before its chunk (``rank``); only the few chunks actually hit are then read.
Inside a chunk, the labeled rows are a sorted *run* of offsets. Many chunks'
runs live back to back in one flat array (:class:`Runs`), and every query here
is answered for all chunks at once by one vectorised binary search per query
kind, never a Python loop per chunk. The ``k``-th unlabeled row of a chunk is
at ``k + #{i : run[i] - i <= k}``, so no list of unlabeled rows is ever built,
and the cost of mapping ``k`` positions is ``O(n_chunks + k log chunk_rows)``,
never ``O(N)``.

Nothing in this module does I/O: chunk masks are passed in by the caller.

Examples
--------
>>> import numpy as np
>>> counts = np.array([2, 0, 3])          # view rows in chunks 0, 1, 2
>>> locate_positions(np.array([0, 1, 2, 4]), counts)
(array([0, 0, 2, 2]), array([0, 1, 0, 2]))
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidIndexError, InvalidInputError
from ._types import BoolArray, IndexArray

__all__ = [
    "Arena",
    "BaseRanks",
    "LabeledRows",
    "Runs",
    "block_spans",
    "check_upper",
    "chunk_members",
    "chunk_sizes",
    "distinct",
    "locate_positions",
    "merge_tail",
    "n_chunks",
    "parse_indices",
]


def distinct(values: IndexArray) -> IndexArray:
    """The distinct integers of ``values``, sorted: ``np.unique(values)``.

    Without ``np.unique``'s first-use import of ``numpy.ma`` (10-50 ms, which a
    process's first commit would pay).

    >>> distinct(np.array([5, 1, 5, 3, 1]))
    array([1, 3, 5])
    """
    out = np.sort(values)
    if len(out) > 1:
        keep = np.empty(len(out), bool)
        keep[0] = True
        np.not_equal(out[1:], out[:-1], out=keep[1:])
        out = out[keep]
    return out


def parse_indices(
    value: object, *, name: str, upper: int | None, unique: bool = True
) -> IndexArray:
    """Validate a batch of indices and return it as a 1-D ``int64`` array.

    Accepts a Python or numpy integer, a list/tuple of them, or an integer
    numpy array. Rejects, naming ``name``: booleans, floats (even ``3.0``),
    strings, nested sequences, negative values, values ``>= upper`` and values
    repeated within the batch (unless ``unique`` is false). Nothing is
    coerced. ``upper=None`` checks no upper bound (for a first pass before the
    bound is known).

    Examples
    --------
    >>> parse_indices([3, 1], name="positions", upper=5)
    array([3, 1])
    >>> parse_indices(5, name="positions", upper=5)
    Traceback (most recent call last):
    ...
    alma_store.errors.InvalidIndexError: positions must lie in [0, 5), got [5]
    """
    if isinstance(value, bool | np.bool_):
        raise InvalidInputError(f"{name} must be integers, got a boolean {value!r}")
    if isinstance(value, numbers.Integral):
        arr = np.array([int(value)], dtype=np.int64)
    else:
        if isinstance(value, str | bytes):
            raise InvalidInputError(f"{name} must be integers, got a string {value!r}")
        try:
            raw = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{name} must be a sequence of integers: {exc}") from None
        if raw.ndim == 0:
            raise InvalidInputError(f"{name} must be integers, got {value!r}")
        if raw.ndim != 1:
            raise InvalidInputError(
                f"{name} must be a 1-D sequence of integers, got shape {raw.shape}"
            )
        raw = raw.reshape(-1)
        if raw.size == 0:
            return np.empty(0, dtype=np.int64)
        if raw.dtype.kind == "O":
            for v in raw:
                if not isinstance(v, numbers.Integral) or isinstance(v, bool | np.bool_):
                    raise InvalidInputError(f"{name} must be integers, got {v!r}")
            try:
                raw = raw.astype(np.int64)
            except OverflowError:
                raise InvalidIndexError(name, list(raw), upper=upper) from None
        if raw.dtype.kind not in "iu":
            raise InvalidInputError(
                f"{name} must be integers, got dtype {raw.dtype} (e.g. {raw.flat[0]!r})"
            )
        if raw.dtype.kind == "u" and raw.size and raw.max() > np.iinfo(np.int64).max:
            big = [int(v) for v in raw if v > np.iinfo(np.int64).max]
            raise InvalidIndexError(name, big, upper=upper)
        arr = raw.astype(np.int64)
    negative = arr < 0
    if upper is None:
        if negative.any():
            bad_values = [int(v) for v in arr[negative]]
            raise InvalidIndexError(
                name, bad_values, reason=f"{name} must be >= 0, got {bad_values}"
            )
        bad = negative
    else:
        bad = negative | (arr >= upper)
    if bad.any():
        raise InvalidIndexError(name, [int(v) for v in arr[bad]], upper=upper)
    if unique and arr.size > 1:
        order = np.sort(arr)
        dup = order[1:][order[1:] == order[:-1]]
        if dup.size:
            dups = sorted({int(v) for v in dup})
            raise InvalidIndexError(
                name, dups, upper=upper, reason=f"{name} repeats {dups} within one batch"
            )
    return arr


def check_upper(indices: IndexArray, name: str, upper: int) -> IndexArray:
    """``indices`` (parsed: int64, non-negative) if they are all below ``upper``.

    >>> check_upper(np.array([1, 4]), "positions", 4)
    Traceback (most recent call last):
    ...
    alma_store.errors.InvalidIndexError: positions must lie in [0, 4), got [4]
    """
    bad = indices >= upper
    if bad.any():
        raise InvalidIndexError(name, [int(v) for v in indices[bad]], upper=upper)
    return indices


def n_chunks(n_items: int, chunk_rows: int) -> int:
    """Number of chunks of ``chunk_rows`` rows that cover ``n_items`` rows.

    >>> n_chunks(10, 4), n_chunks(0, 4)
    (3, 0)
    """
    return -(-n_items // chunk_rows)


def chunk_sizes(n_items: int, chunk_rows: int) -> IndexArray:
    """Number of rows in each chunk; the last one may be short.

    >>> chunk_sizes(10, 4)
    array([4, 4, 2])
    """
    count = n_chunks(n_items, chunk_rows)
    sizes = np.full(count, chunk_rows, dtype=np.int64)
    if count:
        sizes[-1] = n_items - chunk_rows * (count - 1)
    return sizes


def locate_positions(
    positions: IndexArray, counts: IndexArray, ends: IndexArray | None = None
) -> tuple[IndexArray, IndexArray]:
    """Select: map view positions to (chunk, rank of the row among the chunk's view rows).

    ``counts[j]`` is the number of view rows in chunk ``j``; ``ends``, when
    given, is ``np.cumsum(counts)`` (kept by the caller). Positions must lie in
    ``[0, counts.sum())``; that is the caller's check.
    """
    if ends is None:
        ends = np.cumsum(counts)
    chunks = np.searchsorted(ends, positions, side="right")
    offsets = positions - (ends[chunks] - counts[chunks])
    return chunks.astype(np.int64), offsets.astype(np.int64)


def ragged_arange(starts: IndexArray, lengths: IndexArray) -> tuple[IndexArray, IndexArray]:
    """Flat indices of the ranges ``[starts[i], starts[i] + lengths[i])`` and their owner ``i``.

    >>> ragged_arange(np.array([5, 0]), np.array([2, 3]))
    (array([5, 6, 0, 1, 2]), array([0, 0, 1, 1, 1]))
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(lengths) - lengths, lengths
    )
    return np.asarray(starts, dtype=np.int64)[owner] + within, owner


class Arena:
    """Append-only int64 storage for runs, shared by the snapshots of successive versions.

    An append never writes below the length any earlier caller was handed, so
    every :class:`Runs` holding an earlier buffer stays valid while later ones
    add to it; a full buffer is copied into one twice its size.
    """

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._data = np.empty(capacity, np.int64)
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """Offsets stored so far (live or not)."""
        return self._used

    def append(self, values: IndexArray) -> tuple[IndexArray, int]:
        """Store ``values``; returns the buffer that holds them and where they start."""
        with self._lock:
            at, end = self._used, self._used + len(values)
            if end > len(self._data):
                grown = np.empty(max(2 * len(self._data), end), np.int64)
                grown[:at] = self._data[:at]
                self._data = grown
            self._data[at:end] = values
            self._used = end
            return self._data, at


@dataclass(frozen=True, slots=True)
class Runs:
    """The sorted labeled offsets of some chunks, back to back in one flat array.

    ``flat[starts[i] : starts[i] + lengths[i]]`` is the run of ``chunks[i]``
    (``chunks`` sorted and unique). ``flat`` may be a read-only memory map.
    """

    chunks: IndexArray
    flat: np.ndarray
    starts: IndexArray
    lengths: IndexArray

    def run(self, i: int) -> IndexArray:
        """The run of the ``i``-th chunk, as int64."""
        a = int(self.starts[i])
        return np.asarray(self.flat[a : a + int(self.lengths[i])], dtype=np.int64)

    @classmethod
    def empty(cls) -> Runs:
        """No runs at all."""
        return cls(*(np.empty(0, np.int64) for _ in range(4)))

    def compact(self) -> Runs:
        """The same runs in a flat array of their own, back to back."""
        take, _ = ragged_arange(self.starts, self.lengths)
        flat = np.asarray(self.flat[take], np.int64)
        return Runs(self.chunks, flat, np.cumsum(self.lengths) - self.lengths, self.lengths)

    def union(self, other: Runs, arena: Arena) -> Runs:
        """These runs and ``other``'s (of other chunks) in one set, ``other`` stored in ``arena``.

        ``self.flat`` must be a buffer of ``arena`` (or ``self`` empty): only
        ``other``'s offsets are copied, never these.
        """
        other = other.compact() if len(other.flat) != int(other.lengths.sum()) else other
        flat, at = arena.append(np.asarray(other.flat, np.int64))
        where = np.searchsorted(self.chunks, other.chunks)  # both sorted, disjoint
        return Runs(
            np.insert(self.chunks, where, other.chunks),
            flat,
            np.insert(self.starts, where, other.starts + at),
            np.insert(self.lengths, where, other.lengths),
        )

    def without(self, chunks: IndexArray) -> Runs:
        """These runs less those of ``chunks`` (nothing is copied)."""
        keep = np.ones(len(self.chunks), bool)
        if len(self.chunks) and len(chunks):
            at = np.minimum(np.searchsorted(self.chunks, chunks), len(self.chunks) - 1)
            keep[at[self.chunks[at] == chunks]] = False
        return Runs(self.chunks[keep], self.flat, self.starts[keep], self.lengths[keep])

    def slot(self, chunks: IndexArray) -> IndexArray:
        """Where each of ``chunks`` (all among ``self.chunks``) is in this set."""
        return np.searchsorted(self.chunks, chunks)

    def subset(self, chunks: IndexArray) -> Runs:
        """These runs restricted to ``chunks`` (sorted, unique, all among ``self.chunks``)."""
        slots = self.slot(chunks)
        return Runs(chunks, self.flat, self.starts[slots], self.lengths[slots])

    def count_at_most(self, slots: IndexArray, targets: IndexArray, *, gaps: bool) -> IndexArray:
        """Per query ``q``: ``#{i : run[i] <= targets[q]}`` in the run of ``slots[q]``.

        With ``gaps``, counts ``#{i : run[i] - i <= targets[q]}`` instead (the
        key of the unlabeled select; it never decreases along a run). When the
        runs are short next to the number of queries, they are gathered into
        one globally sorted key and every query is one ``searchsorted``;
        otherwise all queries climb their runs at once (binary lifting), in
        ``log2`` of the longest run's steps of a few vectorised operations.
        """
        total = int(self.lengths.sum())
        if total <= max(1 << 14, 64 * len(slots)):
            take, owner = ragged_arange(self.starts, self.lengths)
            values = np.asarray(self.flat[take], dtype=np.int64)
            if gaps:
                values -= take - self.starts[owner]
            first = np.cumsum(self.lengths) - self.lengths
            keys = (owner << 33) + values  # runs back to back: one sorted array
            found = np.searchsorted(keys, (slots << 33) + targets, side="right")
            return np.asarray(found - first[slots], dtype=np.int64)
        starts = self.starts[slots]
        ends = starts + self.lengths[slots]
        found = starts.copy()  # entries before ``found`` are known to be <= the target
        if not len(self.flat):
            return found - starts
        step = 1 << max(int(self.lengths[slots].max(initial=0)).bit_length() - 1, 0)
        while step:  # binary lifting: the largest count whose last entry is <= the target
            probe = np.minimum(found + step, ends)  # clamped: the run's end, at most
            at = probe - 1  # -1 (the flat array's last entry) only for an empty run, kept out
            value = self.flat[at] - (at - starts) if gaps else self.flat[at]
            found = np.where(value <= targets, probe, found)
            step >>= 1
        return found - starts

    def select(self, slots: IndexArray, ranks: IndexArray, *, of_labeled: bool) -> IndexArray:
        """Offsets within their chunks of the ``ranks``-th labeled (or unlabeled) rows."""
        if of_labeled:
            return np.asarray(self.flat[self.starts[slots] + ranks], dtype=np.int64)
        return ranks + self.count_at_most(slots, ranks, gaps=True)

    def rank(self, slots: IndexArray, local: IndexArray) -> tuple[IndexArray, BoolArray]:
        """Labeled rows before each offset ``local`` in its chunk, and whether it is labeled."""
        before = self.count_at_most(slots, local - 1, gaps=False)
        last = max(len(self.flat) - 1, 0)
        at = np.minimum(self.starts[slots] + before, last)
        hit = (before < self.lengths[slots]) & (
            self.flat[at].astype(np.int64) == local if len(self.flat) else False
        )
        return before, np.asarray(hit, dtype=bool)


def merge_tail(
    base: Runs, chunk_rows: int, tail_indices: IndexArray, tail_labeled: BoolArray
) -> Runs:
    """The runs of ``base.chunks`` after the tail sets ``tail_indices`` to ``tail_labeled``.

    ``tail_indices`` are sorted, unique dataset indices (any chunks; those
    outside ``base.chunks`` are ignored). One pass over all chunks at once.

    >>> base = Runs(np.array([0, 2]), np.array([1, 3, 0]), np.array([0, 2]), np.array([2, 1]))
    >>> out = merge_tail(base, 4, np.array([1, 2, 9]), np.array([False, True, True]))
    >>> out.run(0).tolist(), out.run(1).tolist()
    ([2, 3], [0, 1])
    """
    chunks = base.chunks
    lows = chunks * chunk_rows
    take, owner = ragged_arange(base.starts, base.lengths)
    held = np.asarray(base.flat[take], dtype=np.int64) + lows[owner]
    t_lo = np.searchsorted(tail_indices, lows)
    t_hi = np.searchsorted(tail_indices, lows + chunk_rows)
    t_take, _ = ragged_arange(t_lo, t_hi - t_lo)
    t_idx, t_lab = tail_indices[t_take], tail_labeled[t_take]
    keep = np.ones(len(held), bool)
    if len(held):
        at = np.minimum(np.searchsorted(held, t_idx), len(held) - 1)
        keep[at[held[at] == t_idx]] = False  # the tail says what these rows are now
    kept, added = held[keep], t_idx[t_lab]
    merged = np.insert(kept, np.searchsorted(kept, added), added)  # both sorted: no sort
    starts = np.searchsorted(merged, lows)
    lengths = np.searchsorted(merged, lows + chunk_rows) - starts
    local = merged - np.repeat(lows, lengths)
    return Runs(chunks, local, starts, lengths)


def block_spans(indices: IndexArray, starts: IndexArray) -> list[tuple[int, int, int]]:
    """``(k, a, b)`` for every block ``k`` that holds some of ``indices``: ``indices[a:b]``.

    ``indices`` are sorted; the blocks begin at the sorted ``starts``, the first at
    or before ``indices[0]`` (record batches, chunks). One search per block.

    >>> block_spans(np.array([1, 2, 9, 10]), np.array([0, 4, 8, 12]))
    [(0, 0, 2), (2, 2, 4)]
    """
    cuts = np.searchsorted(indices, starts)
    ends = np.append(cuts[1:], len(indices))
    return [(int(k), int(cuts[k]), int(ends[k])) for k in np.flatnonzero(ends > cuts)]


def chunk_members(run: IndexArray, size: int, *, of_labeled: bool) -> IndexArray:
    """Offsets, within a chunk of ``size`` rows, of its rows in the view (sorted).

    ``run`` is the chunk's sorted labeled offsets.

    >>> chunk_members(np.array([1, 2]), 4, of_labeled=False)
    array([0, 3])
    """
    if of_labeled:
        return np.asarray(run, dtype=np.int64)
    if len(run) == 0:
        return np.arange(size, dtype=np.int64)
    keep = np.ones(size, bool)
    keep[run] = False
    return np.flatnonzero(keep)


MEMO_BITS_BYTES = 32 << 20
"""Packed labeled bits of chunks a :class:`BaseRanks` keeps at most (then it starts anew)."""


class BaseRanks:
    """What never changes between two checkpoints, kept across versions: counts and bits.

    The runs of a checkpoint never change, so neither do the counts of labeled
    rows before a dataset index in them: the tail entries a version asks about
    are mostly the ones the versions before it asked about, and each is counted
    once per checkpoint (:meth:`lookup`). The chunks' labeled bits are kept
    packed, 1 bit per row, for the chunks asked about (:meth:`member`), so that
    the check a commit makes of its items is one gather. Appends replace arrays
    whole (readers of the old ones are never disturbed).
    """

    def __init__(self, bits_bytes: int = MEMO_BITS_BYTES) -> None:
        self._bits_bytes = bits_bytes
        self._keys = np.empty(0, np.int64)
        self._ranks = np.empty(0, np.int64)
        self._lock = threading.Lock()
        # (chunk -> row of the bits or -1, the bits): replaced together, read together
        self._packed = (np.empty(0, np.int64), np.empty((0, 0), np.uint8))

    def member(
        self, chunks: IndexArray, local: IndexArray, runs: Callable[[IndexArray], Runs], rows: int
    ) -> BoolArray:
        """Whether offset ``local`` of each chunk is in its run (``runs(sorted chunks)``,
        ``rows`` rows per chunk); the bits of chunks not kept yet are packed once."""
        row_of, bits = self._packed
        kept = np.full(len(chunks), -1, np.int64)
        inside = chunks < len(row_of)
        kept[inside] = row_of[chunks[inside]]
        if (kept < 0).any():
            with self._lock:
                row_of, bits = self._packed
                need = distinct(chunks)
                have = np.zeros(len(need), bool)
                have[need < len(row_of)] = row_of[need[need < len(row_of)]] >= 0
                new = need[~have]
                if bits.nbytes + len(new) * (-(-rows // 8)) > self._bits_bytes:  # start anew
                    row_of, bits, new = np.empty(0, np.int64), np.empty((0, 0), np.uint8), need
                base = runs(new)
                mask = np.zeros((len(new), rows), bool)
                take, owner = ragged_arange(base.starts, base.lengths)
                mask[owner, np.asarray(base.flat[take], np.int64)] = True
                packed = np.packbits(mask, axis=1)
                top = max(int(need[-1]) + 1, len(row_of))
                grown = np.full(top, -1, np.int64)  # a new array: readers of the old are safe
                grown[: len(row_of)] = row_of
                grown[new] = len(bits) + np.arange(len(new))
                bits = np.concatenate([bits, packed]) if len(bits) else packed
                row_of = grown
                self._packed = (row_of, bits)
            kept = row_of[chunks]
        found: BoolArray = ((bits[kept, local >> 3] >> (7 - (local & 7))) & 1).astype(bool)
        return found

    def lookup(
        self, dataset_indices: IndexArray, count: Callable[[BoolArray], IndexArray]
    ) -> IndexArray:
        """The counts of sorted, unique ``dataset_indices``; ``count(pick)`` counts those not
        known yet (``pick`` marks them)."""
        keys, ranks = self._keys, self._ranks
        at = np.minimum(np.searchsorted(keys, dataset_indices), max(len(keys) - 1, 0))
        known = keys[at] == dataset_indices if len(keys) else np.zeros(len(dataset_indices), bool)
        out = np.where(known, ranks[at] if len(keys) else 0, 0)
        if not known.all():
            pick = ~known
            out[pick] = count(pick)
            with self._lock:
                keys, ranks = self._keys, self._ranks
                where = np.searchsorted(keys, dataset_indices[pick])
                fresh = (
                    keys[np.minimum(where, max(len(keys) - 1, 0))] != dataset_indices[pick]
                    if len(keys)
                    else np.ones(len(where), bool)
                )
                self._keys = np.insert(keys, where[fresh], dataset_indices[pick][fresh])
                self._ranks = np.insert(ranks, where[fresh], out[pick][fresh])
        return out


class LabeledRows:
    """Rank and select over the labeled rows of chunks at one version, whatever their density.

    The labeled set of chunk ``c`` at a version is its *base* run ``B_c`` (its
    sorted labeled offsets at the checkpoint, from the marks index) changed by
    the journal tail: every dataset index the tail touched is labeled or not
    now, and was labeled or not at the checkpoint. Nothing is merged. Let the
    tail entries of a chunk be ``t_1 < t_2 < ...`` and ``c_i`` the number of
    view rows (labeled ones, or unlabeled ones) before ``t_i`` now: it is the
    base's count before ``t_i`` (one binary search in ``B_c``) plus the net
    change of the entries before it. The ``r``-th view row is ``t_i`` itself if
    ``c_i == r`` and ``t_i`` is in the view (``i`` the last entry with
    ``c_i <= r``); otherwise it lies between ``t_i`` and ``t_{i+1}``, where the
    view is the base's, so it is the base's ``r'``-th view row for the ``r'``
    that skips the changes. Rank is the base's rank plus the net change before
    the offset.

    Mapping ``k`` positions costs ``O(k log + T log)`` for the ``T`` tail
    entries of the chunks hit, and never reads or merges a whole run: the cost
    does not grow with the number of labels.

    Parameters
    ----------
    base
        ``base(chunks)``: the checkpoint's runs of sorted, unique ``chunks``.
    chunk_rows
        Rows per chunk.
    tail_indices, tail_labeled, tail_base
        The tail's dataset indices (sorted, unique), whether each is labeled
        now, and whether it was at the checkpoint.
    ranks
        The memo of base counts of the checkpoint (kept across versions).

    Examples
    --------
    >>> base = Runs(np.array([0]), np.array([1, 2]), np.array([0]), np.array([2]))
    >>> rows = LabeledRows(lambda c: base, 4, np.array([2, 3]), np.array([False, True]),
    ...                    np.array([True, False]))
    >>> rows.select(np.array([0, 0]), np.array([0, 1]), of_labeled=True)  # labeled: {1, 3}
    array([1, 3])
    >>> rows.rank(np.array([0, 0]), np.array([2, 3]))
    (array([1, 1]), array([False,  True]))
    """

    def __init__(
        self,
        base: Callable[[IndexArray], Runs],
        chunk_rows: int,
        tail_indices: IndexArray,
        tail_labeled: BoolArray,
        tail_base: BoolArray,
        ranks: BaseRanks | None = None,
    ) -> None:
        self._base = base
        self._ranks = BaseRanks() if ranks is None else ranks
        self.chunk_rows = chunk_rows
        self._indices = tail_indices
        self._labeled = tail_labeled
        self._was = tail_base

    def _tail(
        self, chunks: IndexArray
    ) -> tuple[IndexArray, IndexArray, IndexArray, BoolArray, BoolArray]:
        """The tail entries of sorted ``chunks``: offsets, owner slots, each slot's first
        entry, and whether each entry is labeled now and was at the checkpoint."""
        lows = chunks * self.chunk_rows
        lo = np.searchsorted(self._indices, lows)
        hi = np.searchsorted(self._indices, lows + self.chunk_rows)
        take, owner = ragged_arange(lo, hi - lo)
        local = self._indices[take] - lows[owner]
        first = np.cumsum(hi - lo) - (hi - lo)
        return local, owner, first, self._labeled[take], self._was[take]

    def contains(self, chunks: IndexArray, local: IndexArray) -> BoolArray:
        """Whether the row at each offset ``local`` of its chunk is labeled (``O(k)``)."""
        if not len(chunks):
            return np.zeros(0, bool)
        labeled = self._ranks.member(chunks, local, self._base, self.chunk_rows)
        if len(self._indices):
            idx = chunks * self.chunk_rows + local
            at = np.minimum(np.searchsorted(self._indices, idx), len(self._indices) - 1)
            hit = self._indices[at] == idx
            labeled = np.where(hit, self._labeled[at], labeled)
        return labeled

    def rank(self, chunks: IndexArray, local: IndexArray) -> tuple[IndexArray, BoolArray]:
        """Labeled rows before each offset ``local`` of its chunk, and whether it is labeled."""
        uniq, slot = np.unique(chunks, return_inverse=True)
        runs = self._base(uniq)
        before, labeled = runs.rank(slot, local)
        t, owner, first, now, was = self._tail(uniq)
        if not len(t):
            return before, labeled
        key = (owner << 33) + t
        want = (slot << 33) + local
        at = np.searchsorted(key, want)
        total = np.concatenate([[0], np.cumsum(now.astype(np.int64) - was)])
        before = before + total[at] - total[first[slot]]  # net change of the entries before
        j = np.minimum(at, len(key) - 1)
        return before, np.where(key[j] == want, now[j], labeled)

    def select(self, chunks: IndexArray, ranks: IndexArray, *, of_labeled: bool) -> IndexArray:
        """Offsets within their chunks of the ``ranks``-th labeled (or unlabeled) rows."""
        uniq, slot = np.unique(chunks, return_inverse=True)
        runs = self._base(uniq)
        t, owner, first, now, was = self._tail(uniq)
        if not len(t):
            return runs.select(slot, ranks, of_labeled=of_labeled)
        in_base = self._ranks.lookup(  # base labeled rows before t, counted once per checkpoint
            uniq[owner] * self.chunk_rows + t,
            lambda pick: runs.count_at_most(owner[pick], t[pick] - 1, gaps=False),
        )
        if not of_labeled:  # the view's rows are the unlabeled ones
            in_base, now, was = t - in_base, ~now, ~was
        change = now.astype(np.int64) - was
        moved = np.cumsum(change) - change  # net change of the entries before, all slots
        before = in_base + moved - moved[first[owner]]  # view rows before t now
        key = (owner << 33) + before  # nondecreasing within a slot, slots in order
        at = np.searchsorted(key, (slot << 33) + ranks, side="right") - 1
        after = (at >= 0) & (at >= first[slot])  # the answer is at or after entry `at`
        i = np.where(after, at, 0)
        itself = after & (before[i] == ranks) & now[i]
        skip = in_base[i] + was[i] - before[i] - now[i]  # base rows of the view up to t_i, less
        rank = np.where(after, ranks + skip, ranks)
        out = np.empty(len(ranks), np.int64)
        out[itself] = t[i[itself]]
        rest = ~itself
        out[rest] = runs.select(slot[rest], rank[rest], of_labeled=of_labeled)
        return out
