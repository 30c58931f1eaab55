"""Ray integration: scoring a store's Unlabeled part as Ray tasks.

:func:`score` is :func:`alma_store.dask.score` on Ray: one task per 8 unfinished
chunks, each reopening the store by location in its worker and writing the same
step files a single process would, so the scores (and ``top_k``) are the same. A
task whose worker dies is run again (``max_retries``); an error raised by ``fn``
is not retried, it is raised here. Views and versions travel into Ray tasks as
they do into Dask's (they pickle by location).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InvalidInputError, MissingExtraError, ReadOnlyError
from .scoring import ScoreFn, check_run_args, check_score_args, plan_tasks, run_task
from .storage import Location

if TYPE_CHECKING:
    from .store import Store

__all__ = ["score"]


def score(
    store: Store,
    fn: ScoreFn,
    name: str,
    *,
    batch_rows: int = 4096,
    max_retries: int = 3,
    columns: int | None = None,
    labeled: bool = False,
) -> int:
    """Score ``store``'s unfinished chunks as Ray tasks; returns how many chunks.

    Runs on the Ray the process is connected to (``ray.init(...)`` first; without
    it, Ray starts a local one). ``fn`` must be picklable (a module-level
    function). The tasks carry the store's location and storage options (in
    memory, never to disk). ``columns`` and ``labeled`` are as in
    :meth:`Store.score`.

    Raises
    ------
    MissingExtraError
        Ray is not installed (``pip install ray``).
    ReadOnlyError
        The store was opened with ``mode="r"``.
    """
    try:
        import ray
    except ImportError:
        raise MissingExtraError("ray", "scoring on Ray (ray)") from None
    check_score_args(fn, batch_rows)
    check_run_args(columns, labeled)
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise InvalidInputError(f"max_retries must be an int >= 0, got {max_retries!r}")
    if store.mode != "r+":
        raise ReadOnlyError(f"{store.path} was opened with mode='r'; open it with mode='r+'")
    location = Location.parse(store.location, store.storage_options).absolute()
    groups = plan_tasks(location, name, columns, labeled)
    version = store.version
    task = ray.remote(max_retries=max_retries, retry_exceptions=False)(run_task)
    ray.get([task.remote(location, version, fn, name, chunks, batch_rows) for chunks in groups])
    return sum(len(chunks) for chunks in groups)
