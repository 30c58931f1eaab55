"""The persistent active-learning store: the facade and the commit protocol.

A store is a directory (see ``docs/format.md``)::

    meta.json         geometry, label dtype, feature source and its fingerprint (checksummed)
    journal.bin       append-only, fsynced label journal: the source of truth
    checkpoint.bin    version and per-chunk labeled counts the chunk files hold
    marks-<c>.bin     every chunk's sorted labeled offsets at checkpoint c, chunk file checksums
    state/            Zarr group: labeled mask and labels (see alma_store._state)
    features/         a Zarr copy of the features, only when given in memory
    lock              the writer lock file

Commit protocol (:meth:`Store.add_labels` and the other writes), under the
writer lock: read the journal tail other processes appended
(:meth:`Engine.refresh`), check ``expected_version``, validate the whole batch
against that state, append one record and ``fdatasync`` it
(:meth:`Engine.append`, :meth:`Journal.append`), then return. Every
``checkpoint_rows`` labels the engine folds the tail into the chunk files. A
crash at any point loses nothing acknowledged, and the next reader sees every
acknowledged batch whole and no unacknowledged one.

Reads are those of :class:`~alma_store._version.StoreVersion` at the newest
version; :meth:`Store.at` gives the same reads at a past one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

from . import _history, _io, _scoring, _tools
from ._campaign import Campaign
from ._campaign_methods import CampaignMethods
from ._engine import DEFAULT_CHECKPOINT_ROWS, open_engine
from ._fs import crash_point
from ._labels import parse_provenance, split_batch
from ._shared import LostRace
from ._snapshot import Snapshot
from ._types import IndexArray, PathLike
from ._verify import verify
from ._version import StoreVersion
from .errors import (
    AlmaError,
    AlreadyLabeledError,
    InvalidInputError,
    NotLabeledError,
    StaleIndexError,
)
from .index import parse_indices
from .journal import LabelEvent

__all__ = ["Store"]

TopK = _scoring.TopK
LOST_BACKOFF = 0.5e-3
"""A shared-store commit that lost its version waits up to this x 2^(losses) before retrying ..."""
LOST_BACKOFF_MAX = 0.05
"""... and never more than this (seconds)."""


class Store(StoreVersion, CampaignMethods):
    """A persistent labeled/unlabeled split of a dataset. Use :func:`create` or :func:`open`.

    Its reads (``version``, ``labeled``, ``unlabeled``, ``labels``, ...) are
    those of :class:`StoreVersion` at the newest version. A ``Store`` is a
    context manager; leaving the block closes it. One object may be used from
    several threads; several processes may open the same store and label it at
    the same time.
    """

    def __init__(
        self,
        root: PathLike,
        *,
        mode: str = "r+",
        lock_timeout: float = 60.0,
        checkpoint_rows: int = DEFAULT_CHECKPOINT_ROWS,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if mode not in ("r", "r+"):
            raise InvalidInputError(f"mode must be 'r' or 'r+', got {mode!r}")
        if not isinstance(checkpoint_rows, int) or checkpoint_rows < 1:
            raise InvalidInputError(
                f"checkpoint_rows must be a positive int, got {checkpoint_rows!r}"
            )
        engine, source = open_engine(
            root,
            writable=mode == "r+",
            checkpoint_rows=checkpoint_rows,
            lock_timeout=lock_timeout,
            storage_options=storage_options,
        )
        super().__init__(engine, source)
        self.mode = mode
        """``"r+"`` (read and write) or ``"r"`` (read only)."""
        self._campaign = Campaign(engine)

    # -- the past ------------------------------------------------------------

    def at(self, *, version: int | None = None, round: int | None = None) -> StoreVersion:
        """The store as it was at ``version``, or right after the last commit of ``round``.

        The result is read-only and copies nothing: views, labels, the mask and
        the offset map are computed from the current chunks and the journal.

        Raises
        ------
        InvalidInputError
            Neither or both of ``version`` and ``round`` given, or one that
            does not exist.
        """
        if (version is None) == (round is None):
            raise InvalidInputError("give exactly one of version and round")
        if round is not None:
            version = _history.version_of_round(self._engine, round)
        if not isinstance(version, int | np.integer) or isinstance(version, bool):
            raise InvalidInputError(f"version must be an int, got {version!r}")
        return StoreVersion(self._engine, self._source, self._engine.snapshot_at(int(version)))

    # -- writing -------------------------------------------------------------

    def add_labels(
        self,
        labels: object,
        values: object = None,
        *,
        relative_to: Literal["unlabeled", "dataset"] = "unlabeled",
        annotator: str | None = None,
        round: int | None = None,
        expected_version: int | None = None,
    ) -> IndexArray:
        """Label a batch of items, atomically and durably.

        Two spellings: ``add_labels((i, y))`` / ``add_labels([(i, y), ...])``
        as in ALMa, or ``add_labels(indices, values)`` with arrays.

        Parameters
        ----------
        labels
            ``(index, label)`` tuples, or the indices when ``values`` is given.
        values
            The labels, ``(n, *label_shape)``, when ``labels`` holds the indices.
        relative_to
            ``"unlabeled"``: indices are positions in the Unlabeled view at the
            current version (all of one batch refer to the view before it).
            ``"dataset"``: indices are dataset indices.
        annotator, round
            Provenance recorded in the journal with the batch.
        expected_version
            The version the positions were taken at (``view.version``); if the
            store has moved on, nothing is written and :class:`StaleIndexError`
            is raised.

        Returns
        -------
        numpy.ndarray
            The dataset indices labeled, in the order given.

        Raises
        ------
        InvalidIndexError
            An index is negative, out of range, not an integer, or repeated.
        AlreadyLabeledError
            A dataset index is labeled already.
        InvalidInputError
            Labels of the wrong type, shape or value for the store's label dtype.
        StaleIndexError
            ``expected_version`` is not the current version.
        ReadOnlyError
            The store was opened with ``mode="r"``.
        LockTimeoutError
            Another writer held the lock for longer than ``lock_timeout``.

        Notes
        -----
        Every check runs before anything is written: a failing batch writes
        nothing. When the call returns, the batch is on disk (fsynced).
        """
        self._engine.check_writable()
        indices, vals = split_batch(labels, values)
        if relative_to not in ("unlabeled", "dataset"):
            raise InvalidInputError(
                f"relative_to must be 'unlabeled' or 'dataset', got {relative_to!r}"
            )
        name = "positions" if relative_to == "unlabeled" else "dataset_indices"
        # Type, sign and duplicate checks first; the range is checked under the lock.
        idx = parse_indices(indices, name=name, upper=None)
        vals_arr = self.schema.parse_values(vals, len(idx))
        provenance = parse_provenance(annotator, round, expected_version)
        if self.annotations_per_item > 1:
            if annotator is None:
                raise InvalidInputError(
                    f"this store takes {self.annotations_per_item} annotations per item: "
                    "give the annotator"
                )
            n = len(idx)
            return self._annotate(
                idx, vals_arr, (annotator,) * n, (time.time(),) * n, provenance, relative_to
            )
        return self._add(idx, vals_arr, provenance, relative_to)

    def _add(
        self,
        idx: IndexArray,
        values: np.ndarray,
        provenance: dict[str, Any],
        relative_to: str,
        *,
        row_annotators: tuple[str, ...] | None = None,
        row_times: tuple[float, ...] | None = None,
    ) -> IndexArray:
        """Label unlabeled items (by position or dataset index) in one commit."""

        def build(snap: Snapshot) -> LabelEvent:
            dataset_idx = snap.dataset_indices_of(idx, relative_to)
            if relative_to != "unlabeled":
                is_labeled = snap.is_labeled(dataset_idx)
                if is_labeled.any():
                    raise AlreadyLabeledError([int(v) for v in dataset_idx[is_labeled]])
            return LabelEvent(
                snap.version + 1,
                "add",
                dataset_idx,
                values,
                row_annotators=row_annotators,
                row_times=row_times,
                **provenance,
            )

        return self._commit(build, len(idx), provenance, by_position=relative_to == "unlabeled")

    def relabel(
        self,
        dataset_indices: Any,
        values: Any,
        *,
        annotator: str | None = None,
        round: int | None = None,
        expected_version: int | None = None,
    ) -> IndexArray:
        """Correct the labels of labeled items; the previous labels are kept in the history.

        Parameters
        ----------
        dataset_indices
            Dataset indices of labeled items.
        values
            Their new labels, ``(n, *label_shape)``.
        annotator, round, expected_version
            As for :meth:`add_labels`.

        Returns
        -------
        numpy.ndarray
            The dataset indices relabeled.

        Raises
        ------
        NotLabeledError
            An index is not labeled (label it with :meth:`add_labels`).
        InvalidIndexError, InvalidInputError, StaleIndexError, ReadOnlyError
            As for :meth:`add_labels`; nothing is written.
        """
        self._engine.check_writable()
        idx_raw, vals = split_batch(dataset_indices, values, names=("dataset_indices", "values"))
        provenance = parse_provenance(annotator, round, expected_version)
        idx = parse_indices(idx_raw, name="dataset_indices", upper=len(self))
        vals_arr = self.schema.parse_values(vals, len(idx))

        def build(snap: Snapshot) -> LabelEvent:
            previous = _labeled_values(snap, idx)
            return LabelEvent(
                snap.version + 1, "relabel", idx, vals_arr, previous=previous, **provenance
            )

        return self._commit(build, len(idx), provenance)

    def remove_labels(
        self,
        dataset_indices: object,
        *,
        annotator: str | None = None,
        round: int | None = None,
        expected_version: int | None = None,
    ) -> IndexArray:
        """Return labeled items to the Unlabeled part; their labels are kept in the history.

        Raises
        ------
        NotLabeledError
            An index is not labeled.
        InvalidIndexError, InvalidInputError, StaleIndexError, ReadOnlyError
            As for :meth:`add_labels`; nothing is written.
        """
        self._engine.check_writable()
        provenance = parse_provenance(annotator, round, expected_version)
        idx = parse_indices(dataset_indices, name="dataset_indices", upper=len(self))

        def build(snap: Snapshot) -> LabelEvent:
            removed = _labeled_values(snap, idx)
            return LabelEvent(snap.version + 1, "remove", idx, removed, **provenance)

        return self._commit(build, len(idx), provenance)

    def _commit(
        self,
        build: Callable[[Snapshot], LabelEvent],
        n: int,
        provenance: dict[str, Any],
        *,
        by_position: bool = False,
        locked: bool = False,
    ) -> IndexArray:
        """Build and check the event, append it under the writer lock, then sync it.

        The event is built and checked against the newest snapshot *before* the
        lock is taken. Under the lock, the records committed meanwhile are only
        decoded: if none touches the event's items (and its indices are not
        view positions, which any commit shifts), the event stays right and is
        appended as the next version. Otherwise it is built again under the
        lock. ``fdatasync`` runs after the lock is released, shared by every
        writer waiting for one (group commit, see :mod:`alma_store.journal`).
        ``locked`` builds under the lock only (annotations: their checks read
        every earlier annotation of the items).
        """
        engine = self._engine
        expected = provenance.pop("expected_version")
        if n == 0:
            return np.empty(0, np.int64)
        if engine.needs_upgrade:
            with engine.write_lock():
                engine.refresh(writer=True)
                engine.checkpoint_if_old_format()
        snap = engine.latest_taken_in()  # what came since is checked under the lock
        event: LabelEvent | None = None
        if not (by_position or locked):  # positions: meaningful at the newest version only
            with contextlib.suppress(AlmaError):  # the verdict is given under the lock
                event = build(snap)  # every check runs here, before anything is written
        lost = 0
        while True:
            if lost:  # back off a random while, so that racing writers spread out
                time.sleep(random.uniform(0, min(LOST_BACKOFF_MAX, LOST_BACKOFF * 2**lost)))
            with engine.write_lock():
                engine.pull()  # a shared store: what other writers committed, into the mirror
                newer = engine.events_since(snap.version) if event is not None else None
                if event is None or newer is None or (newer and _touches(newer, event)):
                    engine.refresh(writer=True, pull=False)
                    snap, newer, event = engine.current(pull=False), [], None
                latest = snap.version + len(newer)
                if expected is not None and expected != latest:
                    raise StaleIndexError(expected, latest, by_position=by_position)
                if event is None:
                    event = build(snap)
                elif newer:
                    event = dataclasses.replace(event, version=latest + 1)
                try:
                    end = engine.append(event)
                except LostRace:  # a shared store: another writer took this version first
                    event = None  # built again on the newest version, under the lock
                    lost += 1
                    continue
            break
        crash_point("commit-unsynced")  # appended, lock released, not acknowledged yet
        engine.sync(end)  # outside the lock: one fdatasync covers every waiting writer
        if len(newer) >= REFRESH_AFTER_EVENTS:
            engine.refresh()  # take the newer commits in, in one go
        if engine.tail_rows + n >= engine.checkpoint_rows:
            engine.refresh()
            if engine.tail_rows >= engine.checkpoint_rows:
                engine.checkpoint_if_free()
        engine.compact_if_due(event.version)
        if event.annotations is not None:
            return event.annotations.dataset_indices
        return event.dataset_indices

    def checkpoint(self) -> None:
        """Fold the journal tail into the chunk files now (it also happens automatically).

        On a store of an older format version this also upgrades it.
        """
        with self._engine.write_lock():
            self._engine.refresh(writer=True)
            self._engine.checkpoint()

    upgrade = checkpoint

    # -- files ---------------------------------------------------------------

    def import_labels(
        self,
        path: PathLike,
        *,
        format: Literal["label-studio", "prodigy"] | None = None,
        annotator: str | None = None,
        round: int | None = None,
        expected_version: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> IndexArray:
        """Add the labels of a file as one atomic commit.

        Parameters
        ----------
        path
            Without ``format``: a ``.csv``, ``.jsonl`` or ``.parquet`` file of
            ``dataset_index,label`` rows (a header in CSV; objects with those
            keys in JSON Lines; columns in Parquet). With ``format``: an
            annotation tool's export of tasks written by :meth:`export_tasks`.
        format
            ``"label-studio"``: Label Studio's JSON export (a ``choices``
            result per annotation; ``completed_by`` and ``created_at`` are
            kept as each label's annotator and time; cancelled annotations
            are skipped). ``"prodigy"``: the JSON Lines of ``prodigy db-out``
            (``accept`` or ``label``; ``_annotator_id`` and ``_timestamp``
            kept; rejected and ignored answers skipped).
        annotator
            For plain files: the annotator of every row. Tool exports name
            their own.
        round, expected_version, progress
            As for :meth:`add_labels`; ``progress`` is called with the number
            of rows read (plain files).

        Returns
        -------
        numpy.ndarray
            The dataset indices labeled (annotated, on a store with several
            annotations per item).

        Raises
        ------
        InvalidInputError
            A malformed row or task, an index out of range or repeated, an
            unknown class, an annotator labeling an item twice: the message
            names the line or task. Nothing is written.
        AlreadyLabeledError
            A row names a labeled item (the message names its line).
        """
        self._engine.check_writable()
        path = Path(path)
        if format is not None:
            return self._import_tool(path, _tools.check_format(format), round, expected_version)
        idx, values, lines = _io.read_labels_file(path, len(self), self.schema, progress)
        try:
            return self.add_labels(
                idx,
                values,
                relative_to="dataset",
                annotator=annotator,
                round=round,
                expected_version=expected_version,
            )
        except AlreadyLabeledError as exc:
            raise _io.name_line(exc, idx, lines, path) from None

    def _import_tool(
        self, path: Path, fmt: str, round: int | None, expected_version: int | None
    ) -> IndexArray:
        """One commit of an annotation tool's export (see :mod:`alma_store._tools`)."""
        one = self.annotations_per_item == 1
        batch = _tools.ToolBatch.check(
            _tools.read_tool_export(path, fmt), self.schema, len(self), one_per_item=one
        )
        provenance = parse_provenance(None, round, expected_version)
        idx, values = batch.dataset_indices, batch.values
        try:
            if not one:
                return self._annotate(idx, values, batch.annotators, batch.times, provenance)
            return self._add(
                idx,
                values,
                provenance,
                "dataset",
                row_annotators=batch.annotators,
                row_times=batch.times,
            )
        except AlreadyLabeledError as exc:
            raise AlreadyLabeledError(
                exc.positions, reason=f"{batch.where_of(exc.positions)}: {exc}"
            ) from None
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}: {exc}") from None

    # -- scoring -------------------------------------------------------------

    def score(
        self,
        fn: Callable[[np.ndarray], Any],
        name: str,
        *,
        batch_rows: int = 4096,
        shard: tuple[int, int] | str = (0, 1),
        step_seconds: float = _scoring.DEFAULT_STEP_SECONDS,
        progress: Callable[[int], None] | None = None,
        plan: Callable[[int, int], None] | None = None,
    ) -> int:
        """Score the Unlabeled rows chunk by chunk into ``scores/<name>``, resumably.

        Parameters
        ----------
        fn
            ``fn(rows) -> scores``: one number per row, called with at most
            ``batch_rows`` rows at a time. ``rows`` is a reused buffer: ``fn``
            must not keep it (or a view of it) after it returns.
        name
            Name of the scoring (letters, digits, ``_-.``).
        batch_rows
            Rows per call of ``fn``.
        shard
            ``(i, n)`` or ``"i/n"``: score only chunks ``j`` with ``j % n == i``
            (e.g. ``(SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT)``).
        step_seconds
            Scored chunks are made durable together, one step file (two fsyncs)
            per ``step_seconds`` of work (or 64 MiB of scores), written in the
            background while the next step is scored. A killed job redoes at
            most its last step. ``0`` makes every chunk its own step.
        progress
            Called with the number of unlabeled rows of each chunk scored
            (e.g. ``tqdm(...).update``).
        plan
            Called once, before scoring, with the number of chunks this call
            will score and their unlabeled rows (a progress bar's totals).

        Returns
        -------
        int
            Number of chunks scored by this call; chunks already complete are
            skipped, so a killed or requeued job only redoes unfinished ones.

        Notes
        -----
        Rows labeled when a chunk is scored get no score (NaN); items labeled
        later are skipped by :meth:`top_k`. Items that become unlabeled again
        (``remove_labels``) after their chunk was scored have no score until
        the scoring is redone under a new name.
        """
        return _scoring.score(
            self._engine,
            self._source,
            fn,
            name,
            batch_rows=batch_rows,
            shard=shard,
            step_seconds=step_seconds,
            progress=progress,
            plan=plan,
        )

    def top_k(
        self,
        name: str,
        k: int,
        *,
        largest: bool = True,
        allow_partial: bool = False,
        annotator: str | None = None,
        skip_claimed: bool = True,
    ) -> TopK:
        """The ``k`` best still-unlabeled items of scoring ``name``, streaming.

        Returns a :class:`TopK` (``dataset_indices``, ``scores``, ``version``),
        best first. Memory is ``O(k + 8 * chunk_rows + claimed items)``
        whatever ``N`` is.

        Items under a live claim (:meth:`claim_next`) are passed over unless
        ``skip_claimed`` is false, except those of ``annotator``'s own claims.

        Raises
        ------
        InvalidInputError
            No such scoring, or chunks not scored yet (unless ``allow_partial``).
        """
        self._engine.check_open()
        exclude = None
        if skip_claimed:
            snap = self._engine.current()
            exclude = self._campaign.held(snap, except_annotator=annotator)
        return _scoring.top_k(
            self._engine, name, k, largest=largest, allow_partial=allow_partial, exclude=exclude
        )

    def scoring_progress(self, name: str) -> tuple[int, int]:
        """``(chunks done, chunks in all)`` of scoring ``name``."""
        return _scoring.progress(self._engine, name)

    def load_scores(self, name: str) -> np.ndarray:
        """All ``N`` scores of scoring ``name`` in memory (materialises ``N`` values).

        NaN where an item has no score: it was labeled when its chunk was
        scored, or its chunk is not scored yet. For the best items use the
        streaming :meth:`top_k` instead.
        """
        self._engine.check_open()
        return _scoring.load_scores(self._engine, name)

    # -- checks and lifecycle ------------------------------------------------

    def verify(self, *, progress: Callable[[int], None] | None = None) -> dict[str, int]:
        """Replay the whole journal and check the mask, labels and counts agree with it.

        Reads every journal record, every chunk that holds a label and the
        whole campaign log; memory is ``O(num_labeled)``. Returns a summary
        (``version``, ``num_labeled``, ``records``, ``chunks_checked``,
        ``campaign_records``).

        Raises
        ------
        CorruptStoreError
            The journal or the campaign log is damaged, or the chunk files
            disagree with the journal.
        """
        summary = verify(self._engine, progress)
        engine = self._engine
        log = engine.campaign_log()
        summary["campaign_records"] = len(log.read_new())  # a fresh read checks every record
        return summary

    def close(self, *, checkpoint: bool = True) -> None:
        """Release the store's files; a writer first checkpoints its journal tail.

        The checkpoint is skipped when another writer holds the lock (it will
        checkpoint itself) or when ``checkpoint`` is false; nothing is lost
        either way, the next opener replays the tail from the journal. If the
        checkpoint fails (a full disk, say), every file is released all the
        same and the error is raised.
        """
        engine = self._engine
        if engine.closed:
            return
        try:
            # A shared store's mirror goes with the process: nothing to fold for later.
            if checkpoint and self.mode == "r+" and engine.mirror is None:
                engine.refresh()  # our own last commits are taken in lazily
                if engine.tail_rows:
                    engine.checkpoint_if_free()
        finally:
            engine.close()
            self._source.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        engine = self._engine
        state = "closed" if engine.closed else f"version={self.version}, labeled={self.num_labeled}"
        return f"<alma_store.Store {str(self.path)!r} N={len(self)} {state} mode={self.mode!r}>"


REFRESH_AFTER_EVENTS = 16
"""A writer takes in others' commits (and its own) once this many have piled up."""


def _touches(events: list[LabelEvent], event: LabelEvent) -> bool:
    """Whether any of ``events`` touches an item of ``event``."""
    mine = np.sort(event.dataset_indices)
    for other in events:
        at = np.searchsorted(mine, other.dataset_indices)
        if (mine[np.minimum(at, len(mine) - 1)] == other.dataset_indices).any():
            return True
    return False


def _labeled_values(snap: Snapshot, dataset_indices: IndexArray) -> np.ndarray:
    """Current labels of ``dataset_indices``, which must all be labeled."""
    is_labeled = snap.is_labeled(dataset_indices)
    if not is_labeled.all():
        raise NotLabeledError([int(v) for v in dataset_indices[~is_labeled]])
    return snap.labels_at(dataset_indices)
