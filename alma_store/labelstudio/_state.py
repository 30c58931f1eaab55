"""A sync's state: its cursor, the task map, and what the store holds from Label Studio.

The store is the truth. Every annotation a pull applies is recorded in its commit
with the annotator and the annotation's ``updated_at`` (the row provenance of a
tool's import), so :meth:`SyncState.catch_up` can always rebuild ``applied`` by
folding the store's history; the state file is a checkpoint of that fold
(``version``) plus the pull's cursor and the push's task map. It is written after
the commits it reflects: a process killed in between leaves a state that lags the
store, which the next run folds forward, and a cursor that lags, which only makes
the next pull read some tasks again (and skip them). Lose the file and the next
run folds the whole history and reads every task once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import LabelEvent
from ..errors import InvalidInputError
from ..storage import atomic_write

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["SyncState", "default_state_path"]

_KIND = "alma_store.labelstudio"
SAVE_EVERY = 10.0
"""Seconds between writes of the state file during a push or a pull."""


def default_state_path(store_id: str, url: str, project: int) -> Path:
    """``$XDG_CACHE_HOME/alma_store/labelstudio/<store>-<server and project>.json``."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(f"{url.rstrip('/')}|{project}".encode()).hexdigest()[:16]
    return base / "alma_store" / "labelstudio" / f"{store_id}-{key}.json"


@dataclass
class SyncState:
    """What one store's sync with one Label Studio project has done.

    Attributes
    ----------
    version
        The store version ``applied`` is folded up to.
    cursor
        The ``updated_at`` of the newest task a pull has finished (ISO 8601).
    tasks
        Dataset index to task id, for the items pushed (or found in the project).
    max_task_id
        The largest task id of the project seen: newer tasks are read to find pushes
        whose replies were lost.
    applied
        Dataset index to ``{annotator: updated_at}``: the Label Studio annotations
        whose labels the store holds.
    seen
        Dataset index to ``{annotator: updated_at}``: the newest annotation of each
        annotator the store ever recorded, held or not (a label removed since, or
        set otherwise, is not brought back by an old delivery).
    task_times
        Task id to the ``updated_at`` of its newest state a pull finished: an older
        state of it, delivered late, is passed over.
    """

    path: Path
    store_id: str
    url: str
    project: int
    version: int = 0
    cursor: str | None = None
    tasks: dict[int, int] = field(default_factory=dict)
    max_task_id: int = 0
    applied: dict[int, dict[str, float]] = field(default_factory=dict)
    seen: dict[int, dict[str, float]] = field(default_factory=dict)
    task_times: dict[int, str] = field(default_factory=dict)
    saved_at: float = field(default=-math.inf, repr=False)

    @classmethod
    def load(cls, path: Path, store: Store, url: str, project: int) -> SyncState:
        """The state at ``path`` (a fresh one if there is none), checked against the store."""
        store_id = str(store.meta["uuid"])
        fresh = cls(path, store_id, url.rstrip("/"), project)
        try:
            obj = json.loads(path.read_text())
        except FileNotFoundError:
            return fresh
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"{path} is not a sync state: {exc}") from None
        if not isinstance(obj, dict) or obj.get("kind") != _KIND:
            raise InvalidInputError(f"{path} is not a Label Studio sync state of alma_store")
        if (obj.get("store"), obj.get("url"), obj.get("project")) != (
            store_id,
            fresh.url,
            project,
        ):
            raise InvalidInputError(
                f"{path} is the sync state of store {obj.get('store')} with project "
                f"{obj.get('project')} at {obj.get('url')}, not of this store with project "
                f"{project} at {fresh.url}"
            )
        state = cls(
            path,
            store_id,
            fresh.url,
            project,
            version=int(obj["version"]),
            cursor=obj["cursor"],
            tasks={int(i): int(t) for i, t in obj["tasks"].items()},
            max_task_id=int(obj["max_task_id"]),
            applied=_by_item(obj["applied"]),
            seen=_by_item(obj["seen"]),
            task_times={int(t): str(u) for t, u in obj["task_times"].items()},
        )
        if state.version > store.version:  # a store made anew at the same place
            return fresh
        return state

    def save(self, *, force: bool = False) -> None:
        """Write the state durably (a temp file renamed over the old one).

        The file is as large as the project's tasks: unless ``force``, it is written
        at most every :data:`SAVE_EVERY` seconds (a state that lags is safe: the next
        run folds the store forward and reads some tasks again).
        """
        if not force and time.monotonic() - self.saved_at < SAVE_EVERY:
            return
        self.saved_at = time.monotonic()
        obj: dict[str, Any] = {
            "kind": _KIND,
            "store": self.store_id,
            "url": self.url,
            "project": self.project,
            "version": self.version,
            "cursor": self.cursor,
            "tasks": {str(i): t for i, t in self.tasks.items()},
            "max_task_id": self.max_task_id,
            "applied": {str(i): held for i, held in self.applied.items()},
            "seen": {str(i): held for i, held in self.seen.items()},
            "task_times": {str(t): u for t, u in self.task_times.items()},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(obj, separators=(",", ":")).encode())

    def catch_up(self, store: Store) -> None:
        """Fold the store's commits after ``version`` into ``applied``."""
        per_item = store.annotations_per_item
        for event in store.history(after=self.version):
            self._fold(event, per_item)
            self.version = event.version

    def _fold(self, event: LabelEvent, per_item: int) -> None:
        idx = event.dataset_indices.tolist()
        if event.kind == "remove":  # the label, and an item's annotations, are gone
            for i in idx:
                self.applied.pop(i, None)
            return
        if per_item > 1:
            rows = event.annotations
            if rows is not None:
                for i, a, t in zip(
                    rows.dataset_indices.tolist(), rows.annotators, rows.times, strict=True
                ):
                    self._record(i, a, t, alone=False)
            return
        who, when = event.row_annotators, event.row_times
        for r, i in enumerate(idx):
            if who is not None and when is not None and who[r] is not None:
                self._record(i, str(who[r]), float(when[r]), alone=True)
            else:  # labeled by other means than a tool
                self.applied.pop(i, None)

    def _record(self, i: int, annotator: str, t: float, *, alone: bool) -> None:
        if alone:
            self.applied[i] = {annotator: t}
        else:
            self.applied.setdefault(i, {})[annotator] = t
        seen = self.seen.setdefault(i, {})
        seen[annotator] = max(t, seen.get(annotator, t))


def _by_item(obj: dict[str, dict[str, float]]) -> dict[int, dict[str, float]]:
    return {int(i): {str(a): float(t) for a, t in held.items()} for i, held in obj.items()}
