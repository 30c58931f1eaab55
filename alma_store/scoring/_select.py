"""Diversity-aware selection that streams over the store: k-center greedy and k-means++ seeding.

``select`` picks ``k`` unlabeled items far from the labeled ones and from each
other, in an embedding of every item (the store's 2-D features, or a scoring
run of several values per row that includes the labeled rows). The pool is
every item unlabeled at one store version and not under another annotator's
live claim, or the ``candidates`` best of a scoring (uncertainty, then
diversity).

Each pick is one pass over the pool, chunk by chunk: the pass folds the
newest center into every pool item's squared distance to its nearest center
and finds the next pick on the way (the first pass measures the distance to
the labeled items, so ``k`` picks are ``k`` passes). Those distances are the
one per-item state; they live in a scratch file mapped into memory (the page
cache, not this process's heap) and are never trusted after a restart.

With a ``name``, the selection is durable and resumable: its parameters,
version and excluded items are recorded once in ``selections/<name>/meta.json``
and its picks (with their distances) in ``selections/<name>/picks.bin``,
rewritten atomically after every pick::

    b"ALSP" | u32 format (1) | u32 count | i64 picks[count] | f64 radii[count] | u32 CRC-32

A run killed at any instant resumes from the last durable pick: one pass
recomputes every distance (to the labeled items, then to each recorded pick in
order, with the same arithmetic block by block) and the picks go on as if
never interrupted, so a resumed selection returns the same picks.
"""

from __future__ import annotations

import json
import math
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import IndexArray, distinct
from ..engine import Engine, Snapshot
from ..errors import CorruptStoreError, InvalidInputError
from ..sources import FeatureSource
from ..storage import Objects, crash_point, crc_body, with_crc
from ._kcenter import BACKENDS, NearestCenter, farthest, sq_dist_to_point
from ._reduce import Reduce
from ._runs import ScoreRun, check_name
from ._score import open_run, top_k

__all__ = ["METHODS", "Selection", "read_selection", "select"]

METHODS = ("kcenter", "kmeans++")
"""``"kcenter"``: the farthest item from every center (core-set); ``"kmeans++"``: an
item drawn with probability proportional to its squared distance (BADGE's seeding)."""

_MAGIC = b"ALSP"
_HEAD = struct.Struct("<4sII")


@dataclass(frozen=True, slots=True)
class Selection:
    """The picks of a selection, in the order picked, at one store version.

    ``radii[i]`` is pick ``i``'s Euclidean distance to its nearest center (a
    labeled item or an earlier pick) when it was picked: for k-center greedy,
    the covering radius of the centers so far, which never increases.
    Label them with ``store.add_labels(s.dataset_indices, labels,
    relative_to="dataset", expected_version=s.version)``.
    """

    dataset_indices: IndexArray
    radii: np.ndarray
    version: int


class Embeddings:
    """An embedding of every item: the store's 2-D numeric features or a run of several
    values per row, read as float64, a chunk at a time."""

    def __init__(self, engine: Engine, source: FeatureSource, run: ScoreRun | None) -> None:
        self.engine, self.source, self.run = engine, source, run
        if run is not None:
            self.done = run.done()
            self.dim = int(run.columns or 0)
        else:
            if not source.has_rows:
                raise InvalidInputError(
                    "an index-only store has no features to measure distances in: pass "
                    "embeddings=<a scoring run of several values per row, scored with labeled=True>"
                )
            if len(source.shape) != 2 or source.dtype.kind not in "biuf":
                raise InvalidInputError(
                    f"select measures distances between feature rows of shape (d,) and a "
                    f"numeric dtype; these are {source.shape[1:]} of {source.dtype}: pass "
                    "embeddings=<a scoring run of several values per row>"
                )
            self.dim = int(source.shape[1])

    def chunks(self, chunks: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """``(j, every row of chunk j)`` for ``chunks``, read-only and in the stored dtype
        (a ``.npy`` file's memory map itself), in the cheapest order."""
        if self.run is None:
            for j in chunks:
                lo = j * self.engine.chunk_rows
                hi = min(lo + self.engine.chunk_rows, self.engine.n_items)
                yield j, self.source.view_range(lo, hi)
            return
        yield from self.run.read(self.done, chunks)

    def gather(self, dataset_indices: IndexArray) -> np.ndarray:
        """The rows of sorted, unique ``dataset_indices``, ``(n, d)`` float64."""
        out = np.empty((len(dataset_indices), self.dim))
        if not len(dataset_indices):
            return out
        if self.run is None:
            out[...] = self.source.read_sorted(dataset_indices)
            return out
        rows = self.engine.chunk_rows
        chunk_of = dataset_indices // rows
        starts = np.searchsorted(chunk_of, np.arange(chunk_of[-1] + 2))
        for j, block in self.chunks(distinct(chunk_of).tolist()):
            a, b = starts[j], starts[j + 1]
            out[a:b] = block[dataset_indices[a:b] - j * rows]
        return out


class Pool:
    """The items a selection picks from, as ``(positions, dataset indices, rows, drop)`` blocks.

    ``positions`` index the distance array: a chunk's range of dataset indices (its rows
    are read whole, as the source holds them, and ``drop`` are the offsets of its rows
    outside the pool: labeled or excluded), or candidate ranks (``drop`` empty).
    """

    def __init__(
        self,
        embeddings: Embeddings,
        snap: Snapshot,
        exclude: IndexArray,
        candidates: IndexArray | None,
    ) -> None:
        self.embeddings, self.snap, self.exclude = embeddings, snap, exclude
        self.candidates = candidates
        self.rows: np.ndarray | None = None
        if candidates is not None:
            self.rows = embeddings.gather(candidates)
            self.size = len(candidates)
        else:
            self.size = snap.n_items

    def blocks(self) -> Iterator[tuple[slice, IndexArray, np.ndarray, IndexArray]]:
        none = np.empty(0, np.int64)
        if self.candidates is not None:
            assert self.rows is not None
            step = self.snap.chunk_rows
            for a in range(0, len(self.candidates), step):
                b = min(a + step, len(self.candidates))
                yield slice(a, b), self.candidates[a:b], self.rows[a:b], none
            return
        snap = self.snap
        chunks = np.flatnonzero(snap.unlabeled_counts > 0).tolist()
        for j, block in self.embeddings.chunks(chunks):
            lo, hi = snap.bounds(j)
            drop = snap.labeled_marks(j) if snap.labeled_counts[j] else none
            if len(self.exclude):
                a, b = np.searchsorted(self.exclude, [lo, hi])
                drop = np.union1d(drop, self.exclude[a:b] - lo)
            yield slice(lo, hi), np.arange(lo, hi), block, drop


class PickLog:
    """A named selection's durable state under ``selections/<name>/``."""

    def __init__(self, objects: Objects, name: str) -> None:
        check_name(name)
        self.objects, self.name, self.prefix = objects, name, f"selections/{name}/"
        self.where = f"{objects.location}/{self.prefix}"

    def meta(self) -> dict[str, Any] | None:
        """The recorded parameters (with ``version`` and ``exclude``), ``None`` if none."""
        raw = self.objects.get(self.prefix + "meta.json")
        if raw is None:
            return None
        try:
            recorded = json.loads(raw)
            int(recorded["version"])
        except (ValueError, KeyError, TypeError):
            raise CorruptStoreError(f"{self.where}meta.json is damaged") from None
        assert isinstance(recorded, dict)
        return recorded

    def begin(self, params: dict[str, Any]) -> dict[str, Any]:
        """The recorded parameters: ``params`` if new, else the first run's, which must agree."""
        self.objects.create(self.prefix + "meta.json", json.dumps(params).encode())
        recorded = self.meta()
        if recorded is None:
            raise CorruptStoreError(f"{self.where}meta.json vanished")
        mine = {key: value for key, value in params.items() if key not in ("version", "exclude")}
        theirs = {key: recorded.get(key) for key in mine}
        if mine != theirs:
            changed = sorted(key for key in mine if mine[key] != theirs[key])
            raise InvalidInputError(
                f"selection {self.name!r} was started with other parameters "
                f"({', '.join(f'{key}={theirs[key]!r}' for key in changed)}): resume it with "
                "those, or choose another name"
            )
        return recorded

    def read(self) -> tuple[list[int], list[float]]:
        """The picks made so far and their radii."""
        raw = self.objects.get(self.prefix + "picks.bin")
        if raw is None:
            return [], []
        body = crc_body(raw)
        count = 0
        ok = body is not None and len(body) >= _HEAD.size
        if ok:
            assert body is not None
            magic, fmt, count = _HEAD.unpack_from(body)
            ok = magic == _MAGIC and fmt == 1 and len(body) == _HEAD.size + 16 * count
        if not ok or body is None:
            raise CorruptStoreError(
                f"{self.where}picks.bin is damaged (its checksum does not match); delete it "
                "and select again under the same name: the picks are made again"
            )
        picks = np.frombuffer(body, "<i8", count, _HEAD.size).tolist()
        radii = np.frombuffer(body, "<f8", count, _HEAD.size + 8 * count).tolist()
        return picks, radii

    def write(self, picks: list[int], radii: list[float]) -> None:
        """Make ``picks`` durable (replacing the previous list atomically)."""
        parts = [
            _HEAD.pack(_MAGIC, 1, len(picks)),
            np.asarray(picks, "<i8").tobytes(),
            np.asarray(radii, "<f8").tobytes(),
        ]
        self.objects.put(self.prefix + "picks.bin", with_crc(parts))
        crash_point("select-pick")


def read_selection(engine: Engine, name: str) -> Selection:
    """The picks a named selection has made durable so far (all ``k`` once it finished)."""
    log = PickLog(engine.files, name)
    meta = log.meta()
    if meta is None:
        raise InvalidInputError(f"no selection named {name!r} in {engine.files.location}")
    picks, radii = log.read()
    return Selection(np.asarray(picks, np.int64), np.asarray(radii), int(meta["version"]))


def _draw_keys(
    seed: int, pick: int, dataset_indices: IndexArray, weights: np.ndarray
) -> np.ndarray:
    """k-means++ draw keys: the item with the smallest ``E / w`` (``E`` exponential, fixed by
    ``seed``, the pick number and the item) is drawn with probability ``w / sum(w)``."""
    e = np.random.default_rng([seed, pick, int(dataset_indices[0])]).exponential(
        size=len(dataset_indices)
    )
    with np.errstate(divide="ignore"):
        return np.where(weights > 0, e / np.where(weights > 0, weights, 1.0), np.inf)


def check_select_args(
    k: object, method: object, candidates: object, scores: object, seed: object, nn: object
) -> None:
    """Refuse bad ``select`` arguments before any work."""
    if nn not in BACKENDS:
        raise InvalidInputError(f"nn must be one of {BACKENDS}, got {nn!r}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidInputError(f"k must be a positive int, got {k!r}")
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    if (candidates is None) != (scores is None):
        raise InvalidInputError(
            "candidates= and scores= go together: the best `candidates` items by the "
            "scoring `scores` are the pool"
        )
    if candidates is not None and (
        not isinstance(candidates, int) or isinstance(candidates, bool) or candidates < k
    ):
        raise InvalidInputError(f"candidates must be an int >= k ({k}), got {candidates!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InvalidInputError(f"seed must be an int >= 0, got {seed!r}")


def select(
    engine: Engine,
    source: FeatureSource,
    k: int,
    *,
    exclude: IndexArray,
    method: str = "kcenter",
    embeddings: str | None = None,
    scores: str | None = None,
    candidates: int | None = None,
    reduce: Reduce | None = None,
    largest: bool = True,
    name: str | None = None,
    seed: int = 0,
    nn: str = "numpy",
    progress: Callable[[int, int], None] | None = None,
) -> Selection:
    """``k`` diverse unlabeled items (fewer if the pool is smaller); see the module docstring.

    ``exclude`` (sorted dataset indices: other annotators' live claims) is recorded
    by a named selection, which then ignores it when it resumes. ``progress(picks,
    k)`` is called after each pick.
    """
    check_select_args(k, method, candidates, scores, seed, nn)
    if reduce is not None and not isinstance(reduce, str) and name is not None:
        raise InvalidInputError(
            "a named (resumable) selection takes reduce by name, not a callable"
        )
    run = open_run(engine, embeddings, create=False) if embeddings is not None else None
    if run is not None and run.columns is None:
        raise InvalidInputError(
            f"scores {embeddings!r} have one value per row: embeddings= needs a scoring of "
            "several values per row (score(..., columns=d, labeled=True))"
        )
    snap = engine.current()
    log = PickLog(engine.files, name) if name is not None else None
    picks: list[int] = []
    radii: list[float] = []
    if log is not None:
        params = {
            "method": method,
            "k": k,
            "embeddings": embeddings,
            "scores": scores,
            "candidates": candidates,
            "reduce": reduce,
            "largest": largest,
            "seed": seed,
            "nn": nn,
            "version": snap.version,
            "exclude": exclude.tolist(),
        }
        recorded = log.begin(params)
        snap = engine.snapshot_at(int(recorded["version"]))
        exclude = np.asarray(recorded["exclude"], np.int64)
        picks, radii = log.read()
    if len(picks) >= k:
        return Selection(np.asarray(picks[:k], np.int64), np.asarray(radii[:k]), snap.version)
    emb = Embeddings(engine, source, run)
    if run is not None:
        missing = len(snap.chunk_sizes) - len(emb.done)
        if missing:
            raise InvalidInputError(
                f"scores {embeddings!r} are incomplete: {missing} chunks not scored yet"
            )
        if snap.num_labeled and not run.all_rows:
            raise InvalidInputError(
                f"scores {embeddings!r} leave out the labeled rows, which are the centers: "
                "score the embedding with labeled=True"
            )
    pool_ids = None
    if scores is not None:
        assert candidates is not None
        best = top_k(
            engine,
            snap,
            scores,
            candidates,
            largest=largest,
            allow_partial=False,
            exclude=exclude,
            reduce=reduce,
        )
        pool_ids = np.sort(best.dataset_indices)
    pool = Pool(emb, snap, exclude, pool_ids)
    labeled = snap.members_between(0, len(snap.chunk_sizes) - 1, of_labeled=True)
    nearest = NearestCenter(emb.gather(labeled), nn)
    with tempfile.TemporaryFile() as scratch:
        dist = (
            np.empty(pool.size)
            if pool.candidates is not None or pool.size == 0
            else np.memmap(scratch, np.float64, "w+", shape=(pool.size,))
        )
        _run(pool, dist, nearest, k, picks, radii, method, seed, log, progress)
        del dist
    return Selection(np.asarray(picks, np.int64), np.asarray(radii), snap.version)


def _run(
    pool: Pool,
    dist: np.ndarray,
    nearest: NearestCenter,
    k: int,
    picks: list[int],
    radii: list[float],
    method: str,
    seed: int,
    log: PickLog | None,
    progress: Callable[[int, int], None] | None,
) -> None:
    """The passes: each folds the newest center in and finds the next pick."""
    replay = pool.embeddings.gather(np.sort(np.asarray(picks, np.int64))) if picks else None
    replay_rows = {} if replay is None else dict(zip(sorted(picks), replay, strict=True))
    first, newest = True, None
    while len(picks) < k:
        best: tuple[float, int] = (float("-inf"), -1)
        best_row = None
        for positions, idx, rows, drop in pool.blocks():
            if first:
                d = nearest(rows)
                for p in picks:  # in the order picked, as the interrupted run did
                    np.minimum(d, sq_dist_to_point(rows, replay_rows[p]), out=d)
                d[drop] = -np.inf
                d[np.isin(idx, picks)] = -np.inf
            else:
                assert newest is not None
                d = np.minimum(dist[positions], sq_dist_to_point(rows, newest[1]))
                d[idx == newest[0]] = -np.inf
            dist[positions] = d
            if method == "kmeans++":
                no_center = not len(nearest.centers) and not picks
                weights = np.where(np.isfinite(d), 1.0 if no_center else d, 0.0)
                key = -_draw_keys(seed, len(picks), idx, weights)
                found = farthest(key, idx)
                value = float(d[idx == found[1]][0]) if found[1] >= 0 else float("-inf")
            else:
                found = farthest(d, idx)
                value = found[0]
            better = (
                best[1] < 0 or found[0] > best[0] or (found[0] == best[0] and found[1] < best[1])
            )
            if found[0] > float("-inf") and value > float("-inf") and better:
                best = found
                best_row = (value, rows[idx == found[1]][0].copy())
        first = False
        if best[1] < 0 or best_row is None:
            break  # the pool is exhausted
        picks.append(best[1])
        radii.append(math.sqrt(best_row[0]))
        newest = (best[1], best_row[1])
        if log is not None:
            log.write(picks, radii)
        if progress is not None:
            progress(len(picks), k)
