"""Dask integration (the ``dask`` extra): views as dask arrays, scoring on a cluster.

Tasks never receive open files: they carry the store's path and the version
their view was taken at, reopen the store read-only in the worker and read
through ``store.at(version=...)``, so every block shows the same snapshot
however many labels land meanwhile.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._scoring import ScoreFn, done_chunks, open_scores, score_chunk
from .errors import InvalidInputError

if TYPE_CHECKING:
    import dask.array as da

    from .store import Store
    from .views import _View

__all__ = ["score", "to_dask"]


def _read_block(path: str, version: int, labeled: bool, j: int) -> np.ndarray:
    from .store import open_store

    with open_store(path, mode="r") as store:
        past = store.at(version=version)
        view = past.labeled if labeled else past.unlabeled
        snap = view._snap
        lo, hi = snap._bounds(j)
        marks = snap.labeled_marks(j)
        if labeled:
            members = lo + marks
        else:
            keep = np.ones(hi - lo, bool)
            keep[marks] = False
            members = lo + np.flatnonzero(keep)
        return store.feature_source.read_sorted(members)


def to_dask(view: _View) -> da.Array:
    """The rows of ``view`` as a dask array, one block per store chunk that has any."""
    import dask
    import dask.array as da

    snap = view._snap
    path = str(view._store.path)
    tail = view.shape[1:]
    blocks = [
        da.from_delayed(
            dask.delayed(_read_block, pure=True)(path, snap.version, view._labeled, int(j)),
            shape=(int(view._counts[j]), *tail),
            dtype=view.dtype,
        )
        for j in np.flatnonzero(view._counts)
    ]
    if not blocks:
        return da.empty((0, *tail), dtype=view.dtype)
    return da.concatenate(blocks, axis=0)


def _score_task(path: str, version: int, fn: ScoreFn, name: str, j: int, batch_rows: int) -> int:
    from .store import open_store

    with open_store(path) as store:
        open_scores(store, name, create=False)  # checks it exists and matches
        arr = _writable(store, name)
        score_chunk(store, store._snapshot_at(version), fn, name, arr, j, batch_rows)
    return j


def _writable(store: Store, name: str) -> Any:
    import zarr

    return zarr.open_array(store.path / "scores" / name / "values", mode="r+")


def score(
    store: Store,
    fn: ScoreFn,
    name: str,
    *,
    batch_rows: int = 4096,
    client: Any = None,
) -> int:
    """Score ``store``'s unfinished chunks as tasks on a dask cluster; returns how many.

    The same chunk routine as :meth:`Store.score` runs in the workers, so the
    scores (and :meth:`Store.top_k`) are the same as a single-process run.
    ``client`` is a ``dask.distributed.Client``; ``None`` uses dask's current
    scheduler. ``fn`` must be picklable (a module-level function).
    """
    import dask

    if not callable(fn):
        raise InvalidInputError(f"fn must be callable, got {fn!r}")
    open_scores(store, name, create=True)
    version = store.version
    todo = sorted(set(range(-(-len(store) // store.chunk_rows))) - done_chunks(store, name))
    path = str(Path(store.path).resolve())
    tasks = [
        dask.delayed(_score_task, pure=False)(path, version, fn, name, j, batch_rows) for j in todo
    ]
    if client is not None:
        futures = client.compute(tasks)
        client.gather(futures)
    else:
        dask.compute(*tasks)
    return len(todo)
