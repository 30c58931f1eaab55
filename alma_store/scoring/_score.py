"""Resumable, sharded scoring of the Unlabeled part, and streaming top-k.

Scores live in the store (``scores/<name>/``, see :mod:`alma_store.scoring._runs`).
A chunk is scored as a unit: its unlabeled rows are read, ``fn`` is applied in
batches of ``batch_rows``, and the chunk's scores join the current *step*.
A step is made durable as one file (one fsync of the file, one of the
directory) once it holds ``step_seconds`` of work, while the next step is
being scored: a background thread writes it. A job killed at any instant
leaves each chunk either in a step file (complete) or not (redone next time),
so a requeued job (a Slurm array task with the same ``shard``) redoes at most
its last ``step_seconds`` of work. Shard ``(i, n)`` owns the chunks ``j`` with
``j % n == i``, so shards write disjoint work and need no coordination.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np

from ..core import IndexArray, n_chunks, ragged_arange
from ..engine import Engine, Snapshot
from ..errors import InvalidInputError
from ..sources import FeatureSource
from ._reduce import Reduce, check_reduce, reduce_rows
from ._runs import ScoreRun, check_name, create_run, read_run

ScoreFn = Callable[[np.ndarray], Any]
DEFAULT_STEP_SECONDS = 5.0
"""Work a durable progress step holds, so at most what a killed job redoes."""
MAX_STEP_BYTES = 8 << 20
"""A step is made durable once its scores reach this size, whatever the time: steps
are written while the next is scored, so smaller ones leave less to wait for at the end."""
RANGE_LABELED_SHARE = 1 / 8
"""Up to this share of labeled rows, a chunk is scored as whole ranges (see :func:`score_chunk`)."""


@dataclass(frozen=True, slots=True)
class TopK:
    """The best ``k`` still-unlabeled items of a scoring, at one store version.

    Label them with ``store.add_labels(q.dataset_indices, labels,
    relative_to="dataset", expected_version=q.version)`` so that a store that
    moved on in the meantime is noticed.
    """

    dataset_indices: IndexArray
    scores: np.ndarray
    version: int


def parse_shard(shard: object) -> tuple[int, int]:
    """``(i, n)`` or ``"i/n"`` with ``0 <= i < n``."""
    if isinstance(shard, str):
        part, sep, total = shard.partition("/")
        try:
            shard = (int(part), int(total)) if sep else None
        except ValueError:
            shard = None
    if (
        not isinstance(shard, tuple)
        or len(shard) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
        or not 0 <= shard[0] < shard[1]
    ):
        raise InvalidInputError(f"shard must be (i, n) or 'i/n' with 0 <= i < n, got {shard!r}")
    return shard[0], shard[1]


def check_run_args(columns: object, labeled: object) -> None:
    """Refuse a ``columns`` that is neither ``None`` nor an int >= 1, or a ``labeled``
    that is not a bool."""
    if columns is not None and (
        not isinstance(columns, int) or isinstance(columns, bool) or columns < 1
    ):
        raise InvalidInputError(f"columns must be None or an int >= 1, got {columns!r}")
    if not isinstance(labeled, bool):
        raise InvalidInputError(f"labeled must be a bool, got {labeled!r}")


def open_run(
    engine: Engine,
    name: str,
    *,
    create: bool,
    columns: int | None = None,
    all_rows: bool = False,
) -> ScoreRun:
    """The scoring run ``name``; with ``create``, made (or moved to layout 2) under the writer lock.

    With ``create``, the run has ``columns`` values per row (``None``: one score) and
    scores the labeled rows too if ``all_rows``, or :class:`InvalidInputError` says
    what it has.
    """
    check_name(name)
    if not create:
        return read_run(engine.files, name, chunk_rows=engine.chunk_rows, n_items=engine.n_items)
    check_run_args(columns, all_rows)
    with engine.write_lock():
        engine.refresh(writer=True)
        engine.checkpoint_if_old_format()  # step files need format version 3
        run = create_run(
            engine.files,
            name,
            chunk_rows=engine.chunk_rows,
            n_items=engine.n_items,
            store_version=engine.current().version,
            columns=columns,
            all_rows=all_rows,
        )
    if run.columns != columns:
        raise InvalidInputError(
            f"scores {name!r} have {_width(run.columns)} per row; this scoring says "
            f"{_width(columns)} (columns={columns!r}): use the run's, or another name"
        )
    if run.all_rows != all_rows:
        raise InvalidInputError(
            f"scores {name!r} {'include' if run.all_rows else 'leave out'} the labeled rows; "
            f"this scoring says labeled={all_rows}: use the run's, or another name"
        )
    return run


def _width(columns: int | None) -> str:
    return "one score" if columns is None else f"{columns} values"


def progress(engine: Engine, name: str) -> tuple[int, int]:
    """``(chunks done, chunks in all)`` of scoring ``name``."""
    return len(open_run(engine, name, create=False).done()), n_chunks(
        engine.n_items, engine.chunk_rows
    )


def score_chunk(
    source: FeatureSource,
    snap: Snapshot,
    fn: ScoreFn,
    j: int,
    run: ScoreRun,
    buffer: np.ndarray,
) -> np.ndarray:
    """The scores of chunk ``j``'s unlabeled rows at ``snap`` for ``run`` (NaN for its labeled
    rows, unless the run scores all rows).

    ``fn`` gets at most ``len(buffer)`` rows per call, read-only and valid only
    during the call (in an index-only store, their dataset indices instead). Where at most :data:`RANGE_LABELED_SHARE` of the chunk is
    labeled, ``fn`` scores whole row ranges as the source holds them (for a
    ``.npy`` file, the mapped page cache itself: no copy at all) and the scores
    of the few labeled rows among them are dropped; otherwise only the
    unlabeled rows are gathered into ``buffer``.
    """
    batch_rows = len(buffer)
    lo, hi = snap.bounds(j)
    # A run of all rows scores the labeled ones too: none to leave out.
    if snap.labeled_counts[j] and not run.all_rows:
        labeled = snap.labeled_marks(j)
    else:
        labeled = np.empty(0, np.int64)
    shape = run.row_shape
    out = np.full((hi - lo, *shape), np.nan, dtype=run.dtype)
    if len(labeled) <= RANGE_LABELED_SHARE * (hi - lo):
        for a in range(lo, hi, batch_rows):
            b = min(a + batch_rows, hi)
            rows = source.view_range(a, b) if source.has_rows else np.arange(a, b)
            out[a - lo : b - lo] = _call(fn, rows, shape)
        out[labeled] = np.nan
        return out
    members = snap.members(j, of_labeled=False)
    for a in range(0, len(members), batch_rows):
        idx = members[a : a + batch_rows]
        rows = source.read_sorted(idx, buffer) if source.has_rows else idx
        out[idx - lo] = _call(fn, rows, shape)
    return out


def _call(fn: ScoreFn, rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``fn(rows)``, checked: numbers of shape ``(len(rows), *shape)``."""
    scores = np.asarray(fn(rows))
    want = (len(rows), *shape)
    if scores.shape != want:
        hint = (
            f"; for {scores.shape[1]} values per row, score with columns={scores.shape[1]}"
            if not shape and scores.ndim == 2 and scores.shape[0] == len(rows)
            else ""
        )
        raise InvalidInputError(
            f"the scoring function returned shape {scores.shape} for {len(rows)} rows; "
            f"this run takes shape {want} ({_width(shape[0] if shape else None)} per row){hint}"
        )
    if scores.dtype.kind not in "biuf":
        raise InvalidInputError(f"scores must be numbers, got dtype {scores.dtype}")
    return scores


def load_scores(engine: Engine, name: str) -> np.ndarray:
    """Every score of ``name`` in one array of ``N`` (or ``N x columns``; NaN where none)."""
    run = open_run(engine, name, create=False)
    out = np.full((engine.n_items, *run.row_shape), np.nan, dtype=run.dtype)
    done = run.done()
    for j, values in run.read(done, sorted(done)):
        lo = j * engine.chunk_rows
        out[lo : lo + len(values)] = values
    return out


class StepWriter:
    """Gathers scored chunks into steps and makes each durable in the background.

    At most one step is being written while the next is scored, so memory stays
    at two steps. Leaving the ``with`` block normally writes the last step and
    waits for it; leaving on an error drops the unfinished step (its chunks are
    simply redone) but still waits for the write in flight.
    """

    def __init__(self, run: ScoreRun, step_seconds: float) -> None:
        self._run = run
        self._step_seconds = step_seconds
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alma-score-step")
        self._pending: Future[object] | None = None
        self._chunks: list[int] = []
        self._values: list[np.ndarray] = []
        self._bytes = 0
        self._started = time.monotonic()

    def add(self, j: int, values: np.ndarray) -> None:
        """Add the complete scores of chunk ``j``; a full step goes to be written."""
        self._chunks.append(j)
        self._values.append(values)
        self._bytes += values.nbytes
        age = time.monotonic() - self._started
        if age >= self._step_seconds or self._bytes >= MAX_STEP_BYTES:
            self._flush()

    def _flush(self) -> None:
        self._wait()
        if self._chunks:
            self._pending = self._pool.submit(self._run.write_step, self._chunks, self._values)
        self._chunks, self._values, self._bytes = [], [], 0
        self._started = time.monotonic()

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self._flush()
            self._wait()
        finally:
            self._pool.shutdown(wait=True)


def check_score_args(
    fn: object, batch_rows: object, step_seconds: object = DEFAULT_STEP_SECONDS
) -> None:
    """Raise :class:`InvalidInputError` for a bad scoring function, batch size or step."""
    if not callable(fn):
        raise InvalidInputError(f"fn must be callable, got {fn!r}")
    if not isinstance(batch_rows, int) or isinstance(batch_rows, bool) or batch_rows < 1:
        raise InvalidInputError(f"batch_rows must be a positive int, got {batch_rows!r}")
    if (
        not isinstance(step_seconds, int | float)
        or isinstance(step_seconds, bool)
        or not step_seconds >= 0
    ):
        raise InvalidInputError(f"step_seconds must be a number >= 0, got {step_seconds!r}")


def todo_chunks(run: ScoreRun, shard: tuple[int, int] = (0, 1)) -> list[int]:
    """This shard's chunks of ``run`` that are not complete yet."""
    i, n = shard
    done = run.done()
    return [j for j in range(i, len(run.sizes), n) if j not in done]


def score_chunks(
    run: ScoreRun,
    source: FeatureSource,
    snap: Snapshot,
    fn: ScoreFn,
    chunks: list[int],
    *,
    batch_rows: int,
    step_seconds: float,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Score ``chunks`` at ``snap`` into ``run``, durable step by step."""
    buffer = source.buffer(min(batch_rows, run.chunk_rows))
    with StepWriter(run, step_seconds) as steps:
        for j in chunks:
            steps.add(j, score_chunk(source, snap, fn, j, run, buffer))
            if progress is not None:
                progress(int((snap.chunk_sizes if run.all_rows else snap.unlabeled_counts)[j]))


def score(
    engine: Engine,
    source: FeatureSource,
    fn: ScoreFn,
    name: str,
    *,
    batch_rows: int,
    shard: object,
    step_seconds: float = DEFAULT_STEP_SECONDS,
    progress: Callable[[int], None] | None = None,
    plan: Callable[[int, int], None] | None = None,
    columns: int | None = None,
    labeled: bool = False,
) -> int:
    """Score this shard's unfinished chunks; returns how many were scored now."""
    engine.check_writable()
    check_score_args(fn, batch_rows, step_seconds)
    parsed = parse_shard(shard)
    run = open_run(engine, name, create=True, columns=columns, all_rows=labeled)
    todo = todo_chunks(run, parsed)
    snap = engine.current()
    if plan is not None:
        rows = snap.chunk_sizes if run.all_rows else snap.unlabeled_counts
        plan(len(todo), int(rows[np.asarray(todo, dtype=np.int64)].sum()))
    score_chunks(
        run,
        source,
        snap,
        fn,
        todo,
        batch_rows=batch_rows,
        step_seconds=step_seconds,
        progress=progress,
    )
    return len(todo)


SAMPLE_STRIDE = 64
""":func:`top_k` bounds a block's candidates by the k-th best of every so-many keys."""


def _candidates(key: np.ndarray, k: int) -> IndexArray:
    """Positions of ``key`` (NaN: no candidate) among which its ``k`` smallest are, ties kept.

    The ``k``-th smallest key of a strided sample bounds the ``k``-th smallest
    of the whole block from above (the sample holds ``k`` keys at most that
    large), so every key of the ``k`` smallest, ties included, is at most the
    bound: one comparison pass instead of a selection over the whole block.
    A sample with fewer than ``k`` keys (mostly labeled) gives no bound.
    """
    if len(key) >= SAMPLE_STRIDE * k:
        bound = np.partition(key[::SAMPLE_STRIDE], k - 1)[k - 1]  # NaNs sort last
        if not np.isnan(bound):
            return np.flatnonzero(key <= bound)
    return np.flatnonzero(~np.isnan(key))


def top_k(
    engine: Engine,
    snap: Snapshot,
    name: str,
    k: int,
    *,
    largest: bool,
    allow_partial: bool,
    exclude: IndexArray | None = None,
    reduce: Reduce | None = None,
) -> TopK:
    """Best ``k`` items unlabeled at ``snap`` by score, streaming block by block.

    Items in ``exclude`` (sorted dataset indices) are no candidates either. A run
    of several values per row is ranked by ``reduce`` of each row (see
    :mod:`alma_store.scoring._reduce`), which a run of one score per row refuses.

    Step files are read through a memory map, each once and checked, and
    each is searched as one vectorised block: only scores at least as good as
    the ``k``-th best so far are candidates, at most ``k`` of them (ties kept)
    survive an ``np.partition``, and one ``lexsort`` of those and the best so
    far orders the result: best first, ties to the lower dataset index.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidInputError(f"k must be a positive int, got {k!r}")
    run = open_run(engine, name, create=False)
    if (reduce is None) != (run.columns is None):
        raise InvalidInputError(
            f"scores {name!r} have {run.columns} values per row: pass reduce= "
            "('margin', 'entropy', 'max' or a callable)"
            if reduce is None
            else f"scores {name!r} have one value per row: reduce= applies to runs of "
            "several (class probabilities, embeddings)"
        )
    if reduce is not None:
        check_reduce(reduce)
    done = run.done()
    missing = [j for j in range(len(snap.chunk_sizes)) if j not in done]
    if missing and not allow_partial:
        raise InvalidInputError(
            f"scores {name!r} are incomplete: {len(missing)} of {len(snap.chunk_sizes)} chunks "
            f"not scored yet (e.g. {missing[:5]}); finish the run or pass allow_partial=True"
        )
    best_idx = np.empty(0, np.int64)
    best_key = np.empty(0, run.dtype if reduce is None else np.float64)
    sign = -1.0 if largest else 1.0  # keep the k smallest keys, key = sign * score
    sizes = snap.chunk_sizes
    for ids, values in run.read_blocks(done, sorted(done)):
        starts = np.cumsum(sizes[ids]) - sizes[ids]  # of each chunk within the block
        if reduce is not None:
            key = reduce_rows(values, reduce)
            if largest:
                np.negative(key, out=key)
        else:
            key = np.negative(values) if largest else values.copy()  # exact, in the scores' dtype
        order = np.argsort(ids)
        runs = snap.runs(ids[order])
        take, owner = ragged_arange(runs.starts, runs.lengths)
        key[starts[order][owner] + runs.flat[take]] = np.nan  # labeled since: not candidates
        if exclude is not None and len(exclude):
            chunk_of = exclude // snap.chunk_rows
            at = np.minimum(np.searchsorted(ids[order], chunk_of), len(ids) - 1)
            hit = ids[order][at] == chunk_of
            key[starts[order][at[hit]] + exclude[hit] - chunk_of[hit] * snap.chunk_rows] = np.nan
        # Once k are kept, only keys up to the k-th best so far can make the cut.
        cand = np.flatnonzero(key <= best_key[-1]) if len(best_key) == k else _candidates(key, k)
        if len(cand) > k:  # ties with the k-th smallest are kept
            cand = cand[key[cand] <= np.partition(key[cand], k - 1)[k - 1]]
        chunk = np.searchsorted(starts, cand, side="right") - 1
        idx = np.concatenate([best_idx, ids[chunk] * snap.chunk_rows + (cand - starts[chunk])])
        both = np.concatenate([best_key, key[cand]])
        pick = np.lexsort((idx, both))[:k]  # best first; ties go to the lower index
        best_idx, best_key = idx[pick], both[pick]
    return TopK(best_idx, sign * best_key.astype(np.float64), snap.version)
