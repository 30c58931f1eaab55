"""A live sync with a running Label Studio server (the ``labelstudio`` extra).

:func:`push` makes tasks in a project for items the store picked (a ``top_k``, a
claim, any dataset indices), each carrying ``dataset_index`` and the store's score
as a prediction, so that Label Studio Community can sort the queue by it.
:func:`pull` turns the annotations made, changed or deleted since its cursor into
commits. Both are exactly-once:

- a push reads the project's tasks newer than the last it saw before it makes any,
  so re-running one (after a crash, or a lost reply) never makes a task twice;
- a pull applies an annotation only if its ``updated_at`` is newer than the one the
  store records for that item and annotator (the commit records both), so a task
  read twice, out of order, or after a crash changes nothing the second time.

:func:`receiver` serves the project's webhooks: each burst of them wakes a pull.

Each keeps a small state (cursor, task map, a fold of what the store holds from
Label Studio) in a file written after the commits (:mod:`._state`); the store is
the truth and the state is rebuilt from its history when it lags or is lost.

Examples
--------
::

    from alma_store import labelstudio

    server = labelstudio.connect("http://127.0.0.1:8080")  # LABEL_STUDIO_API_KEY
    picks = store.top_k("margin", 100)
    labelstudio.push(store, server, 3, picks, data=lambda i: {"text": texts[i]})
    ...  # annotators work in Label Studio
    result = labelstudio.pull(store, server, 3, round=1)
    result.added, result.relabeled, result.removed
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core import IndexArray, PathLike, parse_indices
from ..errors import InvalidInputError, StaleIndexError, ToolServerError
from ..exchange import tool_task, user_map
from ..storage import crash_point
from ..store import Store
from ._plan import Plan, plan_page, task_time
from ._serve import ACTIONS, TOKEN_HEADER, Receiver
from ._server import Server, ls_time
from ._state import SyncState, default_state_path

__all__ = ["PullResult", "PushResult", "Receiver", "Server", "connect", "pull", "push", "receiver"]

MARK = "label-studio"
"""The annotator of the commits that remove labels whose annotation was deleted."""


def connect(
    url: str, api_key: str | None = None, *, timeout: float = 120.0, retries: int = 2
) -> Server:
    """The Label Studio server at ``url``; ``api_key`` defaults to ``$LABEL_STUDIO_API_KEY``.

    The key is a Personal Access Token (Account & Settings; Label Studio 1.23 has
    legacy tokens off unless an admin turns them on) or a legacy token. Reads are
    retried ``retries`` times; a task import never is (see :func:`push`).

    Raises
    ------
    MissingExtraError
        ``httpx`` is not installed (``pip install 'alma_store[labelstudio]'``).
    InvalidInputError
        No URL or no token.
    """
    key = api_key if api_key is not None else os.environ.get("LABEL_STUDIO_API_KEY", "")
    return Server(url, key, timeout=timeout, retries=retries)


@dataclass
class PushResult:
    """What a push did: ``created`` (dataset indices given new tasks), ``existing``
    (already tasks of the project) and ``task_ids`` (dataset index to task id, of both)."""

    created: IndexArray
    existing: IndexArray
    task_ids: dict[int, int]


@dataclass
class PullResult:
    """What a pull did.

    Attributes
    ----------
    added, relabeled, removed
        Dataset indices labeled (annotated), relabeled (an edited answer) and
        returned to the Unlabeled part (the annotation was deleted or skipped).
    skipped
        Annotations read that the store held already.
    tasks
        Tasks read (changed since the cursor).
    unapplied
        Changes a store of several annotations per item cannot record (an
        annotation changed or deleted after it was recorded), one message each.
    """

    added: list[int] = field(default_factory=list)
    relabeled: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    skipped: int = 0
    tasks: int = 0
    unapplied: list[str] = field(default_factory=list)


def _state(store: Store, server: Server, project: object, state: PathLike | None) -> SyncState:
    if not isinstance(project, int) or isinstance(project, bool) or project < 1:
        raise InvalidInputError(f"project must be a Label Studio project id, got {project!r}")
    store_id = str(store.meta["uuid"])
    path = Path(state) if state is not None else default_state_path(store_id, server.url, project)
    return SyncState.load(path, store, server.url, project)


def _items(items: object, scores: object) -> tuple[object, np.ndarray | None]:
    """The dataset indices of ``items`` (a TopK, a Claim, a Selection or indices) and their
    scores (a TopK's, unless given)."""
    if scores is None and hasattr(items, "scores"):
        scores = items.scores
    if hasattr(items, "dataset_indices"):
        items = items.dataset_indices
    if scores is None:
        return items, None
    out = np.asarray(scores)
    if out.ndim != 1 or out.dtype.kind not in "iuf" or not np.isfinite(out).all():
        raise InvalidInputError("scores must be one finite number per item")
    return items, out.astype(np.float64)


def push(
    store: Store,
    server: Server,
    project: int,
    items: object,
    *,
    data: Callable[[int], dict[str, Any]] | None = None,
    scores: object = None,
    model_version: str = "alma_store",
    chunk_size: int = 1000,
    state: PathLike | None = None,
) -> PushResult:
    """Make a task in ``project`` for each item that has none yet.

    Parameters
    ----------
    store
        The store the items are of.
    server
        From :func:`connect`.
    project
        The project's id (make it with ``store.labelstudio_config()`` as its
        labeling config).
    items
        ``store.top_k(...)`` (its scores become predictions), a claim, or dataset indices.
    data
        ``data(i) -> dict``: each item's display fields (``"text"``, an ``"image"``
        URL, ...), as for :meth:`Store.export_tasks`. Every task carries ``dataset_index``.
    scores
        One score per item, shown as the prediction's score (Label Studio sorts and
        filters by it); default: the scores of a ``top_k``.
    model_version
        The predictions' model version (name the scoring run).
    chunk_size
        Tasks per request.
    state
        The sync state file; default: under ``$XDG_CACHE_HOME/alma_store/labelstudio``.

    Returns
    -------
    PushResult

    Raises
    ------
    InvalidInputError
        Bad items, scores or data: nothing is sent.
    ToolServerError
        The server refused a request or could not be reached. Run the push again:
        what was made is found, not made twice.
    """
    raw, score_values = _items(items, scores)
    idx = parse_indices(raw, name="dataset_indices", upper=len(store))
    if score_values is not None and len(score_values) != len(idx):
        raise InvalidInputError(f"{len(score_values)} scores for {len(idx)} items")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    st = _state(store, server, project, state)
    _find_tasks(server, st)
    todo = [(r, i) for r, i in enumerate(idx.tolist()) if i not in st.tasks]
    tasks = {i: _task(i, data, score_values, r, model_version) for r, i in todo}
    for start in range(0, len(todo), chunk_size):
        chunk = [i for _, i in todo[start : start + chunk_size]]
        for attempt in range(3):
            try:
                server.import_tasks(project, [tasks[i] for i in chunk])
                break
            except ToolServerError as exc:  # the reply may be lost after the tasks were made
                if (exc.status is not None and exc.status < 500) or attempt == 2:
                    raise
                _find_tasks(server, st)
                chunk = [i for i in chunk if i not in st.tasks]
                if not chunk:
                    break
        crash_point("labelstudio-pushed")  # tasks made, not in the state yet
        _find_tasks(server, st)
        st.save()
    st.save(force=True)
    missing = [i for _, i in todo if i not in st.tasks]
    if missing:
        raise ToolServerError(
            f"Label Studio took the tasks of dataset indices {missing[:8]} but does not list "
            "them in the project: run the push again"
        )
    made = {i for _, i in todo}
    return PushResult(
        created=np.array(sorted(made), np.int64),
        existing=np.array(sorted(set(idx.tolist()) - made), np.int64),
        task_ids={i: st.tasks[i] for i in idx.tolist()},
    )


def _task(
    i: int,
    data: Callable[[int], dict[str, Any]] | None,
    scores: np.ndarray | None,
    row: int,
    model_version: str,
) -> dict[str, Any]:
    task = tool_task(i, "label-studio", data)
    if scores is not None:
        task["predictions"] = [
            {"result": [], "score": float(scores[row]), "model_version": model_version}
        ]
    return task


def _find_tasks(server: Server, st: SyncState, page_size: int = 1000) -> None:
    """Read the project's tasks newer than ``st.max_task_id`` into the task map (task ids
    only grow): what a push made, even one whose reply was lost."""
    while True:
        page = server.tasks(
            st.project,
            filters=[
                {
                    "filter": "filter:tasks:id",
                    "operator": "greater",
                    "type": "Number",
                    "value": st.max_task_id,
                }
            ],
            ordering="tasks:id",
            page=1,
            page_size=page_size,
            annotations=False,
        )
        for task in page:
            index = (task.get("data") or {}).get("dataset_index")
            if isinstance(index, int) and not isinstance(index, bool) and index >= 0:
                st.tasks.setdefault(index, int(task["id"]))
            st.max_task_id = max(st.max_task_id, int(task["id"]))
        if len(page) < page_size:
            return


def pull(
    store: Store,
    server: Server,
    project: int,
    *,
    round: int | None = None,
    annotators: Mapping[object, str] | None = None,
    on_change: str = "relabel",
    page_size: int = 1000,
    state: PathLike | None = None,
) -> PullResult:
    """Commit the project's annotations made, changed or deleted since the last pull.

    Tasks are read in the order of their ``updated_at`` from the cursor on, a page
    at a time; each page's changes are commits (an import: the annotations added
    and, with ``on_change="relabel"``, the edited ones relabeled; a removal for
    deleted or skipped annotations), each made on the version they were decided
    at. Every label keeps its annotator (the user's email) and the time Label
    Studio gives.

    Parameters
    ----------
    store, server, project
        As for :func:`push`.
    round
        The round tag of the commits.
    annotators
        Names for user ids, over the emails the server gives.
    on_change
        ``"relabel"``: an answer edited in Label Studio relabels the item (the
        history keeps both; on a store of one label per item). ``"error"``: an edited answer, or one that differs
        from a label the store holds from elsewhere, stops the pull with
        :class:`~alma_store.errors.AlreadyLabeledError` naming the task; the
        pages before it are committed.
    page_size
        Tasks per request (and at most per commit).
    state
        As for :func:`push`.

    Returns
    -------
    PullResult

    Raises
    ------
    InvalidInputError, AlreadyLabeledError
        A task the store cannot take (no ``dataset_index``, an unknown class, two
        different labels for one item of a one-label store): the message names it.
        Earlier pages are committed; the cursor stays before it.
    ToolServerError
        As for :func:`push`; run the pull again.
    """
    if on_change not in ("error", "relabel"):
        raise InvalidInputError(f"on_change must be 'error' or 'relabel', got {on_change!r}")
    if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
        raise InvalidInputError(f"page_size must be an int >= 1, got {page_size!r}")
    st = _state(store, server, project, state)
    names = user_map(server.user_names())
    names.update(user_map(annotators))  # the caller's names over the server's emails
    users = set(names.values()) | set(names)
    result = PullResult()
    page_no = 1
    while True:
        st.catch_up(store)
        filters = []
        if st.cursor is not None:
            filters.append(
                {
                    "filter": "filter:tasks:updated_at",
                    "operator": "greater_or_equal",
                    "type": "Datetime",
                    "value": st.cursor,
                }
            )
        page = server.tasks(
            project,
            filters=filters,
            ordering="tasks:updated_at",
            page=page_no,
            page_size=page_size,
            annotations=True,
        )
        new = [t for t in page if ls_time(task_time(t)) > st.task_times.get(int(t["id"]), "")]
        if new:
            plan = plan_page(new, st.applied, st.seen, names, store.annotations_per_item, users)
            try:
                _apply(store, plan, names, round, on_change, result)
            except StaleIndexError:
                continue  # another writer landed: decide the page again on the new version
            result.tasks += len(new)
            result.unapplied.extend(plan.unapplied)
            crash_point("labelstudio-pulled")  # committed, the state not written yet
            st.catch_up(store)
        before = st.cursor
        _advance(st, page, new, page_size)
        if new or st.cursor != before:
            st.save()
        if len(page) < page_size:
            st.save(force=True)
            result.added = list(dict.fromkeys(result.added))  # annotated twice: once
            return result
        page_no = page_no + 1 if st.cursor == before else 1


def receiver(
    store: Store,
    server: Server,
    project: int,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    every: float = 300.0,
    register: bool = False,
    round: int | None = None,
    state: PathLike | None = None,
    on_pull: Callable[[PullResult], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    secret: str | None = None,
) -> Receiver:
    """A webhook receiver on ``host:port`` whose webhooks wake a :func:`pull` of ``project``.

    Call ``.run()`` to serve (a pull at once, then one per burst of webhooks and
    every ``every`` seconds) and ``.stop()`` from another thread to end it. Its
    ``url`` is the address to give Label Studio (the project's Settings,
    Webhooks); ``register=True`` adds the webhook through the API. Bound to
    127.0.0.1 by default: give ``host`` for a server on another machine, and a
    ``secret`` that webhooks must carry in the ``X-Alma-Token`` header (a registered
    webhook is given it; add it under the webhook's headers otherwise).
    """
    hook = Receiver(
        lambda: pull(store, server, project, round=round, state=state),
        project=project,
        host=host,
        port=port,
        every=every,
        on_pull=on_pull,
        on_error=on_error,
        secret=secret,
    )
    if register:
        headers = {TOKEN_HEADER: secret} if secret is not None else None
        try:
            server.add_webhook(project, hook.url, sorted(ACTIONS), headers)
        except BaseException:
            hook.httpd.server_close()
            raise
    return hook


def _apply(
    store: Store,
    plan: Plan,
    names: dict[str, str],
    round: int | None,
    on_change: str,
    result: PullResult,
) -> None:
    """Commit ``plan`` on the version it was decided at (else StaleIndexError)."""
    version = store.version
    if plan.remove:
        store.remove_labels(plan.remove, annotator=MARK, round=round, expected_version=version)
        result.removed.extend(plan.remove)
        version += 1
    if plan.tasks:
        per_item = store.annotations_per_item
        ids: dict[object, str] = dict(names.items())  # keys: user ids, as str
        out = store.import_labels(
            plan.tasks,
            format="label-studio",
            annotators=ids,
            round=round,
            on_change="relabel" if on_change == "relabel" and per_item == 1 else "error",
            expected_version=version,
        )
        result.added.extend(np.asarray(out).tolist())
        result.relabeled.extend(getattr(out, "relabeled", np.empty(0, np.int64)).tolist())
        result.skipped += int(getattr(out, "skipped", 0))


def _advance(
    st: SyncState, page: list[dict[str, Any]], done: list[dict[str, Any]], page_size: int
) -> None:
    """Record the tasks ``done`` and move the cursor over ``page``.

    A page holds the ``page_size`` oldest task states from the cursor on: the
    cursor moves to the ``page_size``-th oldest time in it (the newest, in a page
    that is not full), so a task delivered twice or out of order never moves it
    past a state not read yet.
    """
    for task in done:
        when = ls_time(task_time(task))
        st.task_times[int(task["id"])] = max(when, st.task_times.get(int(task["id"]), when))
    if not page:
        return
    times = sorted(ls_time(task_time(t)) for t in page)
    bound = times[page_size - 1] if len(page) >= page_size else times[-1]
    st.cursor = max(bound, st.cursor or bound)
