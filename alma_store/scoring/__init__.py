"""Scoring at scale: resumable, sharded score runs of the Unlabeled part, and streaming top-k.

A score run's files (:mod:`._runs`: ``scores/<name>/``, one durable step file
per few seconds of work) are read and written through the store's objects, in
its directory or in object storage; :mod:`._score` scores chunks into them,
says which are done, and streams the best still-unlabeled items.
"""

from __future__ import annotations

from ._kcenter import BACKENDS
from ._reduce import REDUCTIONS, Reduce, check_reduce, reduce_rows
from ._runs import ScoreRun, check_name
from ._score import (
    DEFAULT_STEP_SECONDS,
    ScoreFn,
    TopK,
    check_run_args,
    check_score_args,
    load_scores,
    open_run,
    parse_shard,
    progress,
    score,
    score_chunks,
    todo_chunks,
    top_k,
)
from ._select import METHODS, Selection, read_selection, select
from ._tasks import TASK_CHUNKS, plan_tasks, run_task

__all__ = [
    "BACKENDS",
    "DEFAULT_STEP_SECONDS",
    "METHODS",
    "REDUCTIONS",
    "TASK_CHUNKS",
    "Reduce",
    "ScoreFn",
    "ScoreRun",
    "Selection",
    "TopK",
    "check_name",
    "check_reduce",
    "check_run_args",
    "check_score_args",
    "load_scores",
    "open_run",
    "parse_shard",
    "plan_tasks",
    "progress",
    "read_selection",
    "reduce_rows",
    "run_task",
    "score",
    "score_chunks",
    "select",
    "todo_chunks",
    "top_k",
]
