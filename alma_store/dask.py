"""Dask integration (the ``dask`` extra): views as dask arrays, scoring on a cluster.

Tasks never receive open files: they carry the store's path and the version
their view was taken at, reopen the store read-only in the worker and read that
snapshot, so every block shows the same state however many labels land
meanwhile. ``view.to_dask()`` builds the array; :func:`score` scores the
Unlabeled part with one task per 8 unfinished chunks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .engine import Engine, open_engine, worker_engine
from .errors import ReadOnlyError
from .scoring import ScoreFn, check_score_args, open_run, score_chunks, todo_chunks
from .sources import FeatureSource
from .storage import Location

if TYPE_CHECKING:
    import dask.array as da

    from .store import Store
    from .views import LabeledView, UnlabeledView

__all__ = ["score", "to_dask"]


def to_dask(view: LabeledView | UnlabeledView) -> da.Array:
    """The rows of ``view`` as a dask array, one block per store chunk (``view.to_dask()``)."""
    return view.to_dask()


def _writer(location: Location) -> tuple[Engine, FeatureSource]:
    return open_engine(location, writable=True)


TASK_CHUNKS = 8
"""Chunks per task: each task makes its chunks durable as one step file."""


def _score_task(
    location: Location,
    version: int,
    fn: ScoreFn,
    name: str,
    chunks: list[int],
    batch_rows: int,
) -> int:
    engine, source = worker_engine(location, writable=True)  # once per worker process
    run = open_run(engine, name, create=False)
    snap = engine.snapshot_at(version)
    score_chunks(run, source, snap, fn, chunks, batch_rows=batch_rows, step_seconds=float("inf"))
    return len(chunks)


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
    scheduler. ``fn`` must be picklable (a module-level function). The tasks
    carry the store's location and storage options (in memory, never to disk).
    """
    import dask

    check_score_args(fn, batch_rows)
    if store.mode != "r+":
        raise ReadOnlyError(f"{store.path} was opened with mode='r'; open it with mode='r+'")
    location = Location.parse(store.location, store.storage_options).absolute()
    engine, source = _writer(location)
    try:
        todo = todo_chunks(open_run(engine, name, create=True))
    finally:
        engine.close()
        source.close()
    version = store.version
    tasks = [
        dask.delayed(_score_task, pure=False)(
            location, version, fn, name, todo[a : a + TASK_CHUNKS], batch_rows
        )
        for a in range(0, len(todo), TASK_CHUNKS)
    ]
    if client is not None:
        client.gather(client.compute(tasks))
    else:
        dask.compute(*tasks)
    return len(todo)
