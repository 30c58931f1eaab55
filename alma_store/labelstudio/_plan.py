"""What a page of Label Studio tasks changes in a store: pure decisions, no I/O.

A pull reads tasks as the server holds them now and compares each with what the
store holds from Label Studio: ``applied[dataset_index][annotator]`` is the
``updated_at`` (Unix seconds) of the annotation whose label the store records,
folded from the store's history (:mod:`._state`). The annotation's annotator and
``updated_at`` are recorded in the commit that applied it, so they are the
idempotency key: an annotation is applied when its time is newer than the one the
store holds, and skipped otherwise, whatever the order or the number of times a
task is delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidInputError
from ..exchange import ToolRow, labelstudio_task_index, read_tool_export

__all__ = ["Plan", "plan_page", "task_time"]


@dataclass
class Plan:
    """One page's changes: tasks to import, labels to remove, what cannot be recorded."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    remove: list[int] = field(default_factory=list)
    unapplied: list[str] = field(default_factory=list)


def task_time(task: dict[str, Any]) -> datetime:
    """The task's ``updated_at`` (it moves with every annotation made, changed or deleted)."""
    text = task.get("updated_at")
    try:
        return datetime.fromisoformat(str(text)).astimezone(UTC)
    except ValueError:
        raise InvalidInputError(
            f"Label Studio task {task.get('id')!r}: updated_at is not an ISO 8601 time: {text!r}"
        ) from None


def _current(
    task: dict[str, Any], names: dict[str, str]
) -> dict[str, tuple[ToolRow, dict[str, Any]]]:
    """The task's labeling annotations by annotator, the newest of each (skips are none)."""
    out: dict[str, tuple[ToolRow, dict[str, Any]]] = {}
    for ann in task.get("annotations") or []:
        one = {"id": task.get("id"), "data": task.get("data"), "annotations": [ann]}
        for row in read_tool_export([one], "label-studio"):
            who = names.get(row.annotator, row.annotator)
            if who not in out or out[who][0].time < row.time:
                out[who] = (row, ann)
    return out


def plan_page(
    tasks: list[dict[str, Any]],
    applied: dict[int, dict[str, float]],
    seen: dict[int, dict[str, float]],
    names: dict[str, str],
    per_item: int,
    users: set[str],
) -> Plan:
    """Decide what ``tasks`` (as the server holds them) change in the store.

    An annotation is new if its time is newer than any the store recorded for
    its item and annotator (``seen``), held or not: an old delivery never brings
    back a label removed or set otherwise since.

    One label per item: a task with no new annotation is left out; otherwise
    its new annotations and the one whose label the store holds go to the
    import, which skips what the store holds as it is and relabels an edited
    answer (two different labels are an overlap the store refuses). A
    label the store holds from an annotation no longer on the task (deleted, or
    changed to a skip) is removed, if the task changed after that annotation
    and its annotator is one of the server's ``users``.

    Several annotations per item: new annotators' annotations are added; a
    changed or deleted annotation the store recorded is reported in
    ``unapplied`` (such a store records an annotation once).
    """
    plan = Plan()
    newest: dict[object, dict[str, Any]] = {}
    for task in tasks:  # a task given twice: its newest state
        kept = newest.get(task.get("id"))
        if kept is None or task_time(kept) < task_time(task):
            newest[task.get("id")] = task
    for task in newest.values():
        index, _ = labelstudio_task_index(task, "Label Studio task")
        current = _current(task, names)
        held, before = applied.get(index, {}), seen.get(index, {})
        at = task_time(task).timestamp()
        gone = [a for a, t in held.items() if a not in current and a in users and at > t]
        newer = [a for a, (row, _) in current.items() if row.time > before.get(a, float("-inf"))]
        where = f"Label Studio task {task.get('id')!r} (dataset index {index})"
        if per_item == 1:
            if gone:
                plan.remove.append(index)
            if newer:
                anns = [ann for a, (_, ann) in current.items() if a in newer or a in held]
                plan.tasks.append({**task, "annotations": anns})
            continue
        for a in gone:
            plan.unapplied.append(
                f"{where}: {a}'s annotation was deleted or skipped in Label Studio after the "
                "store recorded it; a store of several annotations per item keeps it"
            )
        fresh = [current[a][1] for a in newer if a not in held]
        for a in newer:
            if a in held:
                plan.unapplied.append(
                    f"{where}: {a}'s annotation was changed in Label Studio after the store "
                    "recorded it; a store of several annotations per item records an "
                    "annotation once"
                )
        if fresh:
            plan.tasks.append({**task, "annotations": fresh})
    return plan
