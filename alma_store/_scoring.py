"""Resumable, sharded scoring of the Unlabeled part, and streaming top-k.

Scores live in the store, next to the state::

    scores/<name>/meta.json    dtype, chunk_rows, the store version the run started at
    scores/<name>/values       Zarr float array (N,), chunked like the mask; NaN = no score
    scores/<name>/done/<j>     completion marker of chunk j (written last, atomically)

A chunk is scored as a unit: its unlabeled rows are read, ``fn`` is applied in
batches of ``batch_rows``, the whole chunk of scores is written and fsynced,
and only then is its marker created. A job killed at any instant leaves each
chunk either marked (complete) or not (redone next time), so a requeued job —
a Slurm array task with the same ``shard`` — redoes only unfinished chunks.
Shard ``(i, n)`` owns the chunks ``j`` with ``j % n == i``, so shards write
disjoint chunk files and need no coordination.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from ._fs import atomic_write, crash_point, fsync_path, storage_errors
from ._state import ChunkCodec
from ._types import IndexArray
from .errors import InvalidInputError
from .index import n_chunks

if TYPE_CHECKING:
    from ._engine import Engine
    from ._snapshot import Snapshot
    from .features import FeatureSource

ScoreFn = Callable[[np.ndarray], Any]
TOP_K_BLOCK_CHUNKS = 8
"""Score chunks :func:`top_k` reads per block (memory: ``O(k + 8 * chunk_rows)``)."""
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


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


def scores_root(root: Path, name: str) -> Path:
    """The folder of scoring ``name`` (the name checked)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"a scores name must be 1-100 letters, digits, '_', '-' or '.', got {name!r}"
        )
    return root / "scores" / name


def open_scores(
    engine: Engine, name: str, dtype: str = "float32", *, create: bool
) -> zarr.Array[Any]:
    """The scores array, created (under the writer lock) on first use."""
    root = scores_root(engine.root, name)
    meta_path = root / "meta.json"
    if not meta_path.exists():
        if not create:
            raise InvalidInputError(f"no scores named {name!r} in {engine.root}")
        with engine.write_lock():
            if not meta_path.exists():  # another shard may have won the race
                with storage_errors(root):
                    root.mkdir(parents=True, exist_ok=True)
                    (root / "done").mkdir(exist_ok=True)
                    zarr.create_array(
                        root / "values",
                        shape=(engine.n_items,),
                        chunks=(engine.chunk_rows,),
                        dtype=dtype,
                        fill_value=np.nan,
                        overwrite=True,
                    )
                meta = {
                    "dtype": dtype,
                    "chunk_rows": engine.chunk_rows,
                    "store_version": engine.current().version,
                    "created": time.time(),
                }
                atomic_write(meta_path, json.dumps(meta).encode())
    meta = json.loads(meta_path.read_text())
    if meta["chunk_rows"] != engine.chunk_rows:
        raise InvalidInputError(f"scores {name!r} do not match the store's chunking")
    return zarr.open_array(root / "values", mode="r+" if create else "r")


def done_chunks(root: Path, name: str) -> set[int]:
    """Chunks of scores ``name`` that are complete."""
    folder = scores_root(root, name) / "done"
    if not folder.exists():
        return set()
    return {int(p) for p in os.listdir(folder) if p.isdigit()}


def progress(engine: Engine, name: str) -> tuple[int, int]:
    """``(chunks done, chunks in all)`` of scoring ``name``."""
    open_scores(engine, name, create=False)
    return len(done_chunks(engine.root, name)), n_chunks(engine.n_items, engine.chunk_rows)


def score_chunk(
    root: Path,
    source: FeatureSource,
    snap: Snapshot,
    fn: ScoreFn,
    name: str,
    arr: zarr.Array[Any],
    j: int,
    batch_rows: int,
) -> None:
    """Score the unlabeled rows of chunk ``j`` at ``snap``, write, fsync, mark done."""
    lo, hi = snap.bounds(j)
    members = snap.members(j, of_labeled=False)
    out = np.full(hi - lo, np.nan, dtype=arr.dtype)
    for a in range(0, len(members), batch_rows):
        idx = members[a : a + batch_rows]
        rows = source.read_sorted(idx)
        scores = np.asarray(fn(rows))
        if scores.shape != (len(idx),):
            raise InvalidInputError(
                f"the scoring function returned shape {scores.shape} for {len(idx)} rows; "
                f"it must return one score per row, shape ({len(idx)},)"
            )
        if scores.dtype.kind not in "biuf":
            raise InvalidInputError(f"scores must be numbers, got dtype {scores.dtype}")
        out[idx - lo] = scores
    folder = scores_root(root, name)
    with storage_errors(folder):
        arr[lo:hi] = out
    chunk_file = folder / "values" / "c" / str(j)
    if chunk_file.exists():  # a chunk of all NaN (all labeled) is not stored
        fsync_path(chunk_file)
        fsync_path(chunk_file.parent)
    atomic_write(folder / "done" / str(j), b"")
    crash_point("score-chunk")


def check_score_args(fn: object, batch_rows: object) -> None:
    """Raise :class:`InvalidInputError` for a bad scoring function or batch size."""
    if not callable(fn):
        raise InvalidInputError(f"fn must be callable, got {fn!r}")
    if not isinstance(batch_rows, int) or isinstance(batch_rows, bool) or batch_rows < 1:
        raise InvalidInputError(f"batch_rows must be a positive int, got {batch_rows!r}")


def todo_chunks(engine: Engine, name: str, shard: tuple[int, int] = (0, 1)) -> list[int]:
    """This shard's chunks of scoring ``name`` that are not complete yet."""
    i, n = shard
    done = done_chunks(engine.root, name)
    count = n_chunks(engine.n_items, engine.chunk_rows)
    return [j for j in range(count) if j % n == i and j not in done]


def score(
    engine: Engine,
    source: FeatureSource,
    fn: ScoreFn,
    name: str,
    *,
    batch_rows: int,
    shard: object,
) -> int:
    """Score this shard's unfinished chunks; returns how many were scored now."""
    engine.check_writable()
    check_score_args(fn, batch_rows)
    parsed = parse_shard(shard)
    arr = open_scores(engine, name, create=True)
    snap = engine.current()
    todo = todo_chunks(engine, name, parsed)
    for j in todo:
        score_chunk(engine.root, source, snap, fn, name, arr, j, batch_rows)
    return len(todo)


def top_k(engine: Engine, name: str, k: int, *, largest: bool, allow_partial: bool) -> TopK:
    """Best ``k`` still-unlabeled items by score, streaming block by block.

    Score chunk files are read and decoded directly (no zarr call per chunk),
    :data:`TOP_K_BLOCK_CHUNKS` chunks at a time. Each block keeps only its
    candidates that can still be among the best ``k`` (``np.partition``, no
    sort), and one ``lexsort`` of at most ``k`` plus those orders the result:
    best first, ties to the lower dataset index.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidInputError(f"k must be a positive int, got {k!r}")
    arr = open_scores(engine, name, create=False)
    snap = engine.current()
    done = done_chunks(engine.root, name)
    missing = [j for j in range(len(snap.chunk_sizes)) if j not in done]
    if missing and not allow_partial:
        raise InvalidInputError(
            f"scores {name!r} are incomplete: {len(missing)} of {len(snap.chunk_sizes)} chunks "
            f"not scored yet (e.g. {missing[:5]}); finish the run or pass allow_partial=True"
        )
    codec = ChunkCodec(
        scores_root(engine.root, name) / "values",
        (engine.n_items,),
        (engine.chunk_rows,),
        arr.dtype,
    )
    best_idx = np.empty(0, np.int64)
    best_key = np.empty(0, np.float64)
    sign = -1.0 if largest else 1.0  # keep the k smallest keys, key = sign * score
    ordered = np.array(sorted(done), dtype=np.int64)
    for a in range(0, len(ordered), TOP_K_BLOCK_CHUNKS):
        block = ordered[a : a + TOP_K_BLOCK_CHUNKS]
        runs = snap.runs(block)
        idx_parts, key_parts = [best_idx], [best_key]
        for i, j in enumerate(block.tolist()):
            lo, hi = snap.bounds(j)
            values = codec.decode(codec.read_raw(j), j, hi - lo).astype(np.float64)
            values[runs.run(i)] = np.nan  # labeled since scoring: not a candidate
            local = np.flatnonzero(~np.isnan(values))
            idx_parts.append(lo + local)
            key_parts.append(sign * values[local])
        idx, key = np.concatenate(idx_parts), np.concatenate(key_parts)
        if len(key) > k:  # only keys up to the k-th smallest can make the cut (ties kept)
            keep = key <= np.partition(key, k - 1)[k - 1]
            idx, key = idx[keep], key[keep]
        order = np.lexsort((idx, key))[:k]  # best first; ties go to the lower index
        best_idx, best_key = idx[order], key[order]
    return TopK(best_idx, sign * best_key, snap.version)
