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
No function here touches more than the count index and those chunks, so the
cost of mapping ``k`` positions is ``O(n_chunks + k * chunk_rows)``, never
``O(N)``.

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
from collections.abc import Callable

import numpy as np

from ._types import BoolArray, IndexArray
from .errors import InvalidIndexError, InvalidInputError

__all__ = [
    "chunk_sizes",
    "contains",
    "dataset_to_view_positions",
    "locate_positions",
    "parse_indices",
    "view_to_dataset_indices",
]


def parse_indices(value: object, *, name: str, upper: int | None) -> IndexArray:
    """Validate a batch of indices and return it as a 1-D ``int64`` array.

    Accepts a Python or numpy integer, a list/tuple of them, or an integer
    numpy array. Rejects, naming ``name``: booleans, floats (even ``3.0``),
    strings, nested sequences, negative values, values ``>= upper`` and values
    repeated within the batch. Nothing is coerced. ``upper=None`` checks no
    upper bound (for a first pass before the bound is known).

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
    if arr.size > 1:
        order = np.sort(arr)
        dup = order[1:][order[1:] == order[:-1]]
        if dup.size:
            dups = sorted({int(v) for v in dup})
            raise InvalidIndexError(
                name, dups, upper=upper, reason=f"{name} repeats {dups} within one batch"
            )
    return arr


def chunk_sizes(n_items: int, chunk_rows: int) -> IndexArray:
    """Number of rows in each chunk; the last one may be short.

    >>> chunk_sizes(10, 4)
    array([4, 4, 2])
    """
    n_chunks = -(-n_items // chunk_rows)
    sizes = np.full(n_chunks, chunk_rows, dtype=np.int64)
    if n_chunks:
        sizes[-1] = n_items - chunk_rows * (n_chunks - 1)
    return sizes


def locate_positions(positions: IndexArray, counts: IndexArray) -> tuple[IndexArray, IndexArray]:
    """Select: map view positions to (chunk, rank of the row among the chunk's view rows).

    ``counts[j]`` is the number of view rows in chunk ``j``. Positions must lie
    in ``[0, counts.sum())``; that is the caller's check.
    """
    ends = np.cumsum(counts)
    chunks = np.searchsorted(ends, positions, side="right")
    offsets = positions - (ends[chunks] - counts[chunks])
    return chunks.astype(np.int64), offsets.astype(np.int64)


ChunkMarks = Callable[[int], IndexArray]
"""Returns the sorted offsets of the labeled rows of chunk ``j`` (at the view's version)."""


def contains(marks: IndexArray, local: IndexArray) -> BoolArray:
    """Whether each offset in ``local`` is among the sorted ``marks``."""
    at = np.searchsorted(marks, local)
    return (
        (at < len(marks)) & (marks[np.minimum(at, len(marks) - 1)] == local)
        if len(marks)
        else np.zeros(local.shape, bool)
    )


def select_in_chunk(marks: IndexArray, ranks: IndexArray, *, of_labeled: bool) -> IndexArray:
    """Offsets, within one chunk, of the ``ranks``-th labeled (or unlabeled) rows.

    ``marks`` are the sorted offsets of the chunk's labeled rows. The ``k``-th
    unlabeled row is at ``k + #{i : marks[i] - i <= k}``, so no list of the
    chunk's unlabeled rows is ever built.

    >>> import numpy as np
    >>> marks = np.array([1, 2, 5])          # labeled offsets in a chunk of 7 rows
    >>> select_in_chunk(marks, np.array([0, 1, 3]), of_labeled=False)
    array([0, 3, 6])
    """
    if of_labeled:
        return marks[ranks]
    gaps = marks - np.arange(len(marks))
    return ranks + np.searchsorted(gaps, ranks, side="right")


def rank_in_chunk(marks: IndexArray, local: IndexArray, *, of_labeled: bool) -> IndexArray:
    """How many labeled (or unlabeled) rows of the chunk come before each offset in ``local``."""
    before_labeled = np.searchsorted(marks, local)
    return before_labeled if of_labeled else local - before_labeled


def view_to_dataset_indices(
    positions: IndexArray,
    counts: IndexArray,
    chunk_rows: int,
    chunk_marks: ChunkMarks,
    *,
    of_labeled: bool,
    whole: BoolArray | None = None,
) -> IndexArray:
    """Map view positions to dataset indices, reading only the chunks hit.

    ``counts[j]`` is the number of view rows in chunk ``j``; ``whole[j]``, when
    given, says that every row of chunk ``j`` is in the view, so its positions
    map without reading it (most chunks, for the Unlabeled view of a large
    dataset with few labels).

    Examples
    --------
    >>> import numpy as np
    >>> labeled = np.array([True, False, False, True, False, True])
    >>> counts = np.array([2, 1])              # unlabeled rows in chunks [0:4], [4:6]
    >>> marks = lambda j: np.flatnonzero(labeled[4*j:4*j+4])
    >>> view_to_dataset_indices(np.array([2, 0]), counts, 4, marks, of_labeled=False)
    array([4, 1])
    """
    chunks, offsets = locate_positions(positions, counts)
    out = chunks * chunk_rows + offsets  # right wherever the chunk is all in the view
    read = np.ones(chunks.shape, bool) if whole is None else ~whole[chunks]
    if read.any():
        order = np.flatnonzero(read)
        order = order[np.argsort(chunks[order], kind="stable")]
        sorted_chunks = chunks[order]
        starts = np.flatnonzero(np.r_[True, sorted_chunks[1:] != sorted_chunks[:-1]])
        for a, b in zip(starts, [*starts[1:], len(order)], strict=True):
            j = int(sorted_chunks[a])
            hit = order[a:b]
            out[hit] = j * chunk_rows + select_in_chunk(
                chunk_marks(j), offsets[hit], of_labeled=of_labeled
            )
    return out


def dataset_to_view_positions(
    dataset_indices: IndexArray,
    counts: IndexArray,
    chunk_rows: int,
    chunk_marks: ChunkMarks,
    *,
    of_labeled: bool,
) -> tuple[IndexArray, BoolArray]:
    """Rank: map dataset indices to view positions.

    Returns the positions and a mask telling which indices belong to the view at
    all; the positions of the others are meaningless (``-1``).
    """
    before = np.cumsum(counts) - counts
    positions = np.full(dataset_indices.shape, -1, dtype=np.int64)
    member = np.zeros(dataset_indices.shape, dtype=bool)
    chunks = dataset_indices // chunk_rows
    for j in np.unique(chunks):
        hit = np.flatnonzero(chunks == j)
        marks = chunk_marks(int(j))
        local = dataset_indices[hit] - int(j) * chunk_rows
        is_member = contains(marks, local) if of_labeled else ~contains(marks, local)
        member[hit] = is_member
        ranks = before[j] + rank_in_chunk(marks, local, of_labeled=of_labeled)
        positions[hit] = np.where(is_member, ranks, -1)
    return positions, member
