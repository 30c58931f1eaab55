"""Dask integration (the ``dask`` extra): views as dask arrays, scoring on a cluster.

Tasks never receive open files: they carry the store's path and the version
their view was taken at, reopen the store read-only in the worker and read that
snapshot, so every block shows the same state however many labels land
meanwhile. ``view.to_dask()`` builds the array; :func:`score` scores the
Unlabeled part with one task per 8 unfinished chunks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ReadOnlyError
from .scoring import ScoreFn, check_run_args, check_score_args, plan_tasks, run_task
from .storage import Location

if TYPE_CHECKING:
    import dask.array as da

    from .store import Store
    from .views import LabeledView, UnlabeledView

__all__ = ["score", "to_dask"]


def to_dask(view: LabeledView | UnlabeledView) -> da.Array:
    """The rows of ``view`` as a dask array, one block per store chunk (``view.to_dask()``)."""
    return view.to_dask()


def score(
    store: Store,
    fn: ScoreFn,
    name: str,
    *,
    batch_rows: int = 4096,
    client: Any = None,
    columns: int | None = None,
    labeled: bool = False,
) -> int:
    """Score ``store``'s unfinished chunks as tasks on a dask cluster; returns how many.

    The same chunk routine as :meth:`Store.score` runs in the workers, so the
    scores (and :meth:`Store.top_k`) are the same as a single-process run.
    ``client`` is a ``dask.distributed.Client``; ``None`` uses dask's current
    scheduler. ``fn`` must be picklable (a module-level function). The tasks
    carry the store's location and storage options (in memory, never to disk).
    ``columns`` and ``labeled`` are as in :meth:`Store.score`.
    """
    import dask

    check_score_args(fn, batch_rows)
    check_run_args(columns, labeled)
    if store.mode != "r+":
        raise ReadOnlyError(f"{store.path} was opened with mode='r'; open it with mode='r+'")
    location = Location.parse(store.location, store.storage_options).absolute()
    groups = plan_tasks(location, name, columns, labeled)
    version = store.version
    tasks = [
        dask.delayed(run_task, pure=False)(location, version, fn, name, chunks, batch_rows)
        for chunks in groups
    ]
    if client is not None:
        client.gather(client.compute(tasks))
    else:
        dask.compute(*tasks)
    return sum(len(chunks) for chunks in groups)
