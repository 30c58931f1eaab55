"""Scoring as independent tasks (Dask, Ray): the plan, and the body each task runs.

A task carries the store's location (with its storage options, in memory only),
the version its view was taken at, and a few chunks; it reopens the store in the
worker and writes the same step files a single process would, so a task run twice
(a retry after its worker died) writes the same scores again.
"""

from __future__ import annotations

from ..engine import open_engine, worker_engine
from ..storage import Location
from ._score import ScoreFn, open_run, score_chunks, todo_chunks

__all__ = ["TASK_CHUNKS", "plan_tasks", "run_task"]

TASK_CHUNKS = 8
"""Chunks per task: each task makes its chunks durable as one step file."""


def plan_tasks(
    location: Location, name: str, columns: int | None, all_rows: bool
) -> list[list[int]]:
    """The unfinished chunks of run ``name`` (made if new, with ``columns`` values per row,
    of all rows or the unlabeled ones), ``TASK_CHUNKS`` per task."""
    engine, source = open_engine(location, writable=True)
    try:
        run = open_run(engine, name, create=True, columns=columns, all_rows=all_rows)
        todo = todo_chunks(run)
    finally:
        engine.close()
        source.close()
    return [todo[a : a + TASK_CHUNKS] for a in range(0, len(todo), TASK_CHUNKS)]


def run_task(
    location: Location,
    version: int,
    fn: ScoreFn,
    name: str,
    chunks: list[int],
    batch_rows: int,
) -> int:
    """Score ``chunks`` of the view at ``version`` in this worker; returns how many."""
    engine, source = worker_engine(location, writable=True)  # once per worker process
    run = open_run(engine, name, create=False)
    snap = engine.snapshot_at(version)
    score_chunks(run, source, snap, fn, chunks, batch_rows=batch_rows, step_seconds=float("inf"))
    return len(chunks)
