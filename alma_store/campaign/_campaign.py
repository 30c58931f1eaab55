"""A labeling campaign's shared state: claims, per-round metrics and annotations.

One :class:`Campaign` per open store, built with what it uses: the store's
engine (its writer lock, its snapshots), its :class:`~alma_store.engine.Writer`
(the commit function) and its label schema. It opens the store's campaign log
itself (:func:`~alma_store.storage.open_campaign_log`).

Claims and metrics are records of the campaign log, appended under the store's
writer lock and durable before the call returns; the claim book
(:mod:`._claims`) and the metrics list are their replay. A shared store has no
lock across processes: an append that finds its place taken
(:meth:`~alma_store.storage.SharedRecordLog.append` returns None) takes the
winner's records in and decides again.

The annotations of a store with several annotations per item are in the label
journal itself; the :class:`~alma_store.campaign._annotations.AnnotationTable`
is their replay, read once per open (the first call that needs it reads the
journal from the start) and then kept up to date record by record. On such a
store a label *is* an annotation: :meth:`Campaign.label` records it, and the
same commit labels the items it decides by majority.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from ..core import (
    AnnotationRows,
    IndexArray,
    LabelEvent,
    LabelSchema,
    Provenance,
    check_text,
    distinct,
    parse_indices,
)
from ..engine import Engine, Snapshot, Writer
from ..errors import AlreadyLabeledError, ClaimedError, InvalidInputError
from ..exchange import ToolBatch
from ..scoring import Reduce, top_k
from ..storage import FILE_HEADER_SIZE, StorageClock, open_campaign_log
from ._agreement import agreement, disagreement, rating_counts
from ._annotations import Annotation, AnnotationTable
from ._claims import Claim, ClaimBook, Survey
from ._metrics import parse_metrics, shown
from ._quality import Consensus, annotator_quality, consensus

__all__ = ["Campaign"]


def _check_annotator(annotator: object) -> str:
    return check_text(annotator, "annotator", empty=False)


class _NothingNew(Exception):
    """Every row of an import is in the store already: no commit."""


def _same_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, whether ``a`` and ``b`` hold the same label (all of its elements)."""
    n = len(a)
    return np.all(np.asarray(a).reshape(n, -1) == np.asarray(b).reshape(n, -1), axis=1)


def _check_ttl(ttl: object) -> float:
    if (
        not isinstance(ttl, numbers.Real)
        or isinstance(ttl, bool)
        or not math.isfinite(float(ttl))
        or ttl <= 0
    ):
        raise InvalidInputError(f"ttl must be a positive number of seconds, got {ttl!r}")
    return float(ttl)


T = TypeVar("T")


def _sorted(items: set[int]) -> IndexArray:
    """A set of dataset indices as a sorted array."""
    return np.sort(np.fromiter(items, np.int64, len(items)))


class Campaign:
    """Claims, metrics and annotations of one open store. See the module docstring.

    Parameters
    ----------
    engine
        The store's engine (its writer lock guards every append).
    writer
        The store's writer: every label and annotation is one of its commits.
    schema
        The store's label schema (class names for the agreement figures).
    clock
        Returns the current Unix time; claims expire by it. By default the
        host's wall clock for a store in a directory of its own, and the
        storage's clock for a shared store
        (:class:`~alma_store.storage.StorageClock`), so that hosts whose clocks
        disagree agree on which claims are live. Tests pass a fake clock here.
    """

    def __init__(
        self,
        engine: Engine,
        writer: Writer,
        schema: LabelSchema,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.schema = schema
        if clock is None:  # hosts of a shared store agree on the storage's time, not their own
            clock = StorageClock(engine.files) if engine.shared else time.time
        self.clock = clock
        self.per_item = engine.meta.annotations_per_item
        self.log = open_campaign_log(engine.files, engine.meta, shared=engine.shared)
        self.book = ClaimBook()
        self.known: set[str] = set()
        self._metrics: list[dict[str, Any]] = []
        self._mutex = threading.RLock()
        self._need: dict[int, int] = {}
        self._need_default = self.per_item
        self._table = AnnotationTable(self.per_item, self.required) if self.per_item > 1 else None
        self._cursor = (FILE_HEADER_SIZE, 1)  # where the table's journal replay goes on

    # -- the campaign log -----------------------------------------------------

    def _take(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.book.apply(record)
            if record.get("op") == "claim":
                self.known.add(str(record["id"]))
            elif record.get("op") == "metrics":
                self._metrics.append(record)
            elif record.get("op") == "need":
                self._take_need(record)

    def _take_need(self, record: dict[str, Any]) -> None:
        """A ``need`` record: how many annotations items (or, without ``indices``, every
        item without its own requirement) need from now on."""
        indices = record.get("indices")
        if indices is None:
            self._need_default = int(record["k"])
            changed = None
        else:
            ks = record["k"]
            ks = [ks] * len(indices) if isinstance(ks, int) else ks
            self._need.update(zip((int(i) for i in indices), (int(k) for k in ks), strict=True))
            changed = [int(i) for i in indices]
        if self._table is not None:
            self._table.recheck(changed)

    def required(self, dataset_index: int) -> int:
        """How many annotations item ``dataset_index`` needs now."""
        return self._need.get(dataset_index, self._need_default)

    def _turn(self, body: Callable[[], tuple[T, list[dict[str, Any]]]]) -> T:
        """Run ``body`` under the writer lock, the newest commits and records taken in.

        ``body`` returns its result and the records to append (none: nothing
        is written). On a shared store another process may append first:
        ``body`` then runs again on what it appended.
        """
        while True:
            with self.engine.write_lock(), self._mutex:
                self.engine.refresh(writer=True)
                self.catch_up()
                result, records = body()
                if not records:
                    return result
                before = self.log.append(records)
                if before is None:  # another process appended first: decide again
                    continue
                self._take(before)
                self._take(records)
                return result

    def catch_up(self) -> None:
        """Take in the records other processes appended."""
        with self._mutex:
            self._take(self.log.read_new())

    def check_log(self) -> int:
        """Read the whole campaign log afresh, checking every record; how many there are."""
        return len(
            open_campaign_log(
                self.engine.files, self.engine.meta, shared=self.engine.shared
            ).read_new()
        )

    # -- claims -----------------------------------------------------------------

    def _survey(self, now: float, snap: Snapshot) -> Survey:
        """The claim book at ``now`` and ``snap``: with several annotations per item, a
        claim's item is done once its annotator annotated it."""
        if self._table is None:
            return self.book.survey(now, snap.is_labeled)
        table = self.table(snap)

        def annotated(items: IndexArray, annotators: list[str]) -> np.ndarray:
            return np.array(
                [
                    i in table.open_by.get(a, ())
                    for i, a in zip(items.tolist(), annotators, strict=True)
                ],
                bool,
            )

        return self.book.survey(now, snap.is_labeled, annotated)

    def _unavailable(
        self, snap: Snapshot, survey: Survey, annotator: str | None, *, own: bool
    ) -> IndexArray:
        """Sorted items not to offer ``annotator``: held by others' live claims (with
        several annotations per item: with no annotation left to give, or annotated by
        ``annotator``), and with ``own`` those ``annotator`` holds."""
        if self._table is None:
            return survey.held(except_annotator=None if own else annotator)
        table = self.table(snap)
        items, counts = survey.holds(except_annotator=annotator)
        given = np.fromiter((table.count(i) for i in items.tolist()), np.int64, len(items))
        need = np.fromiter((self.required(i) for i in items.tolist()), np.int64, len(items))
        parts = [items[given + counts >= need], _sorted(table.full)]
        if annotator is not None:
            parts.append(_sorted(table.open_by.get(annotator, set())))
            if own:
                parts.append(survey.held_by(annotator))
        out: IndexArray = distinct(np.concatenate(parts))
        return out

    def held(self, snap: Snapshot, *, except_annotator: str | None = None) -> IndexArray:
        """Sorted unlabeled items not to offer ``except_annotator`` (anyone, if ``None``):
        under others' live claims, and with several annotations per item, those
        with no annotation left to give or annotated by it already."""
        with self._mutex:
            self.catch_up()
            survey = self._survey(self.clock(), snap)
            return self._unavailable(snap, survey, except_annotator, own=False)

    def live(self, snap: Snapshot) -> list[Claim]:
        """The live claims, oldest first."""
        with self._mutex:
            self.catch_up()
            return self._survey(self.clock(), snap).live()

    def left(self, snap: Snapshot, claim: Claim | str) -> IndexArray:
        """The items a live claim still holds (its annotator has them still to do)."""
        claim_id = claim.id if isinstance(claim, Claim) else claim
        if not isinstance(claim_id, str):
            raise InvalidInputError(f"claim_left takes a Claim or its id, got {claim!r}")
        with self._mutex:
            self.catch_up()
            return self._survey(self.clock(), snap).left(claim_id)

    def claim_next(
        self,
        k: int,
        annotator: str,
        ttl: float,
        scores: str | None,
        largest: bool,
        reduce: Reduce | None = None,
    ) -> Claim:
        """Claim the best ``k`` unlabeled, unclaimed items (fewer if fewer are left)."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k must be a positive int, got {k!r}")
        annotator, ttl = _check_annotator(annotator), _check_ttl(ttl)
        engine = self.engine

        def body() -> tuple[Claim, list[dict[str, Any]]]:
            snap = engine.current(pull=False)
            now = self.clock()
            survey = self._survey(now, snap)
            held = self._unavailable(snap, survey, annotator, own=True)
            if scores is not None:
                best = top_k(
                    engine,
                    snap,
                    scores,
                    k,
                    largest=largest,
                    allow_partial=False,
                    exclude=held,
                    reduce=reduce,
                ).dataset_indices
            else:
                m = min(k + len(held), snap.n_items - snap.num_labeled)
                first = snap.map_positions(np.arange(m, dtype=np.int64), of_labeled=False)
                best = first[~np.isin(first, held)][:k]
            return self._make(now, survey, best, annotator, ttl)

        return self._turn(body)

    def claim(self, dataset_indices: object, annotator: str, ttl: float) -> Claim:
        """Claim the given items; refuse labeled ones and ones another live claim holds."""
        annotator, ttl = _check_annotator(annotator), _check_ttl(ttl)
        engine = self.engine
        idx = parse_indices(dataset_indices, name="dataset_indices", upper=engine.n_items)

        def body() -> tuple[Claim, list[dict[str, Any]]]:
            snap = engine.current(pull=False)
            labeled = snap.is_labeled(idx)
            if labeled.any():
                raise AlreadyLabeledError(
                    [int(v) for v in idx[labeled]],
                    reason=f"dataset indices {idx[labeled].tolist()[:8]} are labeled already; "
                    "nothing was claimed",
                )
            now = self.clock()
            survey = self._survey(now, snap)
            if self._table is None:
                holders = survey.holders(idx)
                if holders:
                    raise ClaimedError(dict(sorted(holders.items())))
                return self._make(now, survey, idx, annotator, ttl)
            table = self.table(snap)
            done = idx[np.isin(idx, _sorted(table.open_by.get(annotator, set())))]
            if len(done):
                raise InvalidInputError(
                    f"{annotator!r} annotated dataset indices {done.tolist()[:8]} already "
                    "(an annotator annotates an item once); nothing was claimed"
                )
            taken = idx[np.isin(idx, self._unavailable(snap, survey, annotator, own=True))]
            if len(taken):
                holders = survey.holders(taken)
                if holders:
                    raise ClaimedError(dict(sorted(holders.items())))
                raise InvalidInputError(
                    f"dataset indices {taken.tolist()[:8]} have all the annotations they "
                    "take (disputed ones wait for store.resolve); nothing was claimed"
                )
            return self._make(now, survey, idx, annotator, ttl)

        return self._turn(body)

    def _make(
        self, now: float, survey: Survey, items: IndexArray, annotator: str, ttl: float
    ) -> tuple[Claim, list[dict[str, Any]]]:
        """A claim and the records that make it, after closing claims whose items are labeled.

        ``survey`` is the claim book at ``now`` and the version the claim was chosen at.
        An empty claim holds nothing: no record.
        """
        claim = Claim(uuid.uuid4().hex[:16], items.astype(np.int64), annotator, now + ttl, now)
        if not len(items):
            return claim, []
        closes = [{"op": "close", "id": cid, "time": now} for cid in survey.done()]
        return claim, [*closes, claim.to_record()]

    def release(self, claim: Claim | str) -> bool:
        """Release a claim; ``False`` if it had ended already (released, closed or lapsed,
        or done: every item labeled, and then it is closed, so that a label removed later
        does not bring it back)."""
        claim_id = claim.id if isinstance(claim, Claim) else claim
        if not isinstance(claim_id, str):
            raise InvalidInputError(f"release takes a Claim or its id, got {claim!r}")
        engine = self.engine

        def body() -> tuple[bool, list[dict[str, Any]]]:
            if claim_id not in self.known:
                raise InvalidInputError(
                    f"no claim with id {claim_id!r} was ever made on this store"
                )
            now = self.clock()
            survey = self._survey(now, engine.current(pull=False))
            if claim_id in {c.id for c in survey.live()}:
                return True, [{"op": "release", "id": claim_id, "time": now}]
            if claim_id in survey.done():  # every item labeled: closed for good, as the
                # next claim would close it (a label removed later must not revive it)
                return False, [{"op": "close", "id": claim_id, "time": now}]
            return False, []

        return self._turn(body)

    def require(self, k: object, dataset_indices: object | None) -> None:
        """Record how many annotations items need (every item without its own: ``None``)."""
        if self._table is None:
            raise InvalidInputError(
                "this store keeps one label per item; create it with annotations_per_item=2 "
                "or more to have items annotated by several annotators"
            )
        engine = self.engine
        idx = (
            None
            if dataset_indices is None
            else parse_indices(dataset_indices, name="dataset_indices", upper=engine.n_items)
        )
        ks = np.asarray(k)
        if (
            ks.dtype.kind not in "iu"
            or ks.ndim > 1
            or (ks.ndim == 1 and (idx is None or len(ks) != len(idx)))
            or (ks < 1).any()
        ):
            raise InvalidInputError(
                f"k must be an int >= 1, or one int >= 1 per item of dataset_indices, got {k!r}"
            )

        def body() -> tuple[None, list[dict[str, Any]]]:
            snap = engine.current(pull=False)
            table = self.table(snap)
            if idx is None:
                items = np.array(
                    sorted(i for i in table.undecided if i not in self._need), np.int64
                )
                wanted = np.full(len(items), int(ks))
            else:
                labeled = snap.is_labeled(idx)
                if labeled.any():
                    raise AlreadyLabeledError(
                        [int(v) for v in idx[labeled]],
                        reason=f"dataset indices {idx[labeled].tolist()[:8]} are labeled "
                        "already; nothing was recorded",
                    )
                items, wanted = idx, np.broadcast_to(ks, idx.shape)
            given = np.fromiter((table.count(i) for i in items.tolist()), np.int64, len(items))
            short = given >= wanted
            if short.any():
                i = int(items[short][0])
                raise InvalidInputError(
                    f"dataset index {i} has {table.count(i)} annotations already and no label: "
                    f"it needs more than {int(wanted[short][0])}"
                    + ("" if idx is not None else " (give it its own requirement first)")
                    + "; nothing was recorded"
                )
            record: dict[str, Any] = {"op": "need", "time": self.clock()}
            if idx is None:
                record["k"] = int(ks)
            else:
                record["indices"] = idx.tolist()
                record["k"] = int(ks) if ks.ndim == 0 else ks.astype(int).tolist()
            return None, [record]

        self._turn(body)

    # -- metrics ----------------------------------------------------------------

    def log_metrics(self, round: object, metrics: dict[str, Any]) -> dict[str, Any]:
        """Record ``metrics`` for ``round`` durably; returns the record as :meth:`metrics` shows it."""
        values = parse_metrics(round, metrics)

        def body() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            snap = self.engine.current()
            record = {
                "op": "metrics",
                "round": None if round is None else int(round),  # type: ignore[call-overload]
                "version": snap.version,
                "num_labeled": snap.num_labeled,
                "time": self.clock(),
                "values": values,
            }
            return record, [record]

        return shown(self._turn(body))

    def metrics(self, *, last: int | None = None) -> list[dict[str, Any]]:
        """Every metrics record, oldest first (logged at store versions up to ``last``)."""
        with self._mutex:
            self.catch_up()
            return [shown(r) for r in self._metrics if last is None or r["version"] <= last]

    # -- annotations ------------------------------------------------------------

    def table(self, snap: Snapshot) -> AnnotationTable:
        """The annotation table at ``snap``'s version.

        The newest one is kept and moved forward record by record; an older
        version's is replayed from the start of the journal.
        """
        if self._table is None:
            raise InvalidInputError(
                "this store keeps one label per item; create it with annotations_per_item=2 "
                "or more to keep several annotators' labels"
            )
        with self._mutex:
            table = self._table
            if snap.version < table.version:  # a past version: its own replay
                past = AnnotationTable(self.per_item, self.required)
                for event in self.engine.iter_events(last=snap.version):
                    past.apply(event)
                return past
            offset, version = self._cursor
            if table.version < snap.version:
                for event, end in self.engine.journal.iter_records(offset, version):
                    table.apply(event)
                    offset, version = end, event.version + 1
                    if event.version >= snap.version:
                        break
                self._cursor = (offset, version)
            return table

    def annotations(self, snap: Snapshot, dataset_indices: object) -> list[list[Annotation]]:
        """Every annotation of each item at ``snap``, oldest first."""
        idx = parse_indices(dataset_indices, name="dataset_indices", upper=snap.n_items)
        table = self.table(snap)
        shown = self.schema.to_python
        return [
            [dataclasses.replace(a, label=shown(np.asarray(a.value))) for a in table.of(i)]
            for i in idx.tolist()
        ]

    def disputed(self, snap: Snapshot) -> IndexArray:
        """Items with all their annotations and no majority at ``snap``."""
        return self.table(snap).disputed(snap.is_labeled)

    def _name(self, key: object) -> str:
        """A label key as people read it: the class name where the store has classes."""
        classes = self.schema.classes
        if classes is not None and isinstance(key, int):
            return str(classes[key])
        return str(key)

    def agreement(self, snap: Snapshot) -> dict[str, Any]:
        """Agreement figures over the items with two or more annotations at ``snap``."""
        return agreement(self.table(snap).items, self._name)

    def consensus(self, snap: Snapshot, method: str, which: str) -> Consensus:
        """A consensus model's proposals for the disputed (or all annotated) items."""
        if which not in ("disputed", "all"):
            raise InvalidInputError(f"which must be 'disputed' or 'all', got {which!r}")
        table = self.table(snap)
        if which == "disputed":
            wanted = table.disputed(snap.is_labeled)
        else:
            wanted = np.array(sorted(table.items), dtype=np.int64)
        classes = self.schema.classes
        return consensus(
            table.items, method, wanted, self._name if classes is not None else lambda k: k
        )

    def annotator_quality(self, snap: Snapshot, method: str) -> dict[str, dict[str, float | int]]:
        """Per annotator: items, estimated accuracy and agreement with the consensus."""
        return annotator_quality(self.table(snap).items, method)

    def disagreements(self, snap: Snapshot, k: int) -> tuple[IndexArray, np.ndarray]:
        """The ``k`` items of most disagreement at ``snap``: dataset indices and shares."""
        items = {i: anns for i, anns in self.table(snap).items.items() if len(anns) >= 2}
        if not items:
            return np.empty(0, np.int64), np.empty(0)
        shares = disagreement(rating_counts(items))
        idx = np.fromiter(items, np.int64, len(items))
        sizes = np.array([len(anns) for anns in items.values()])
        order = np.lexsort((idx, -sizes, -shares))[:k]  # most disagreement, then most annotations
        return idx[order], shares[order]

    # -- labels and annotations: the writes ---------------------------------------

    def label(
        self,
        idx: IndexArray,
        values: np.ndarray,
        provenance: Provenance,
        relative_to: str,
        *,
        annotators: tuple[str, ...] | None = None,
        times: tuple[float, ...] | None = None,
    ) -> IndexArray:
        """Label items in one commit; on a store with several annotations per item, annotate.

        ``annotators`` and ``times`` name each row's annotator and time (an
        annotation tool's export); by default they are the provenance's
        annotator and now.
        """
        if self.per_item == 1:
            return self.writer.add(
                idx, values, provenance, relative_to, row_annotators=annotators, row_times=times
            )
        if annotators is None:
            if provenance.annotator is None:
                raise InvalidInputError(
                    f"this store takes {self.per_item} annotations per item: give the annotator"
                )
            annotators = (provenance.annotator,) * len(idx)
        if times is None:
            times = (time.time(),) * len(idx)
        return self._annotate(idx, values, annotators, times, provenance, relative_to)

    def _annotate(
        self,
        idx: IndexArray,
        values: np.ndarray,
        annotators: tuple[str, ...],
        times: tuple[float, ...],
        provenance: Provenance,
        relative_to: str,
    ) -> IndexArray:
        """Record annotations; items they decide by majority are labeled by the same commit."""

        def build(snap: Snapshot) -> LabelEvent:
            dataset_idx = snap.dataset_indices_of(idx, relative_to)
            rows = AnnotationRows(dataset_idx, values, annotators, times)
            self.catch_up()  # the requirements other processes recorded
            decided, labels = self.table(snap).plan(rows, snap.is_labeled)
            decided_values = np.array(labels, dtype=values.dtype)  # scalar labels
            return LabelEvent.following(
                snap.version, "add", decided, decided_values, provenance, annotations=rows
            )

        return self.writer.commit(
            build, len(idx), provenance, by_position=relative_to == "unlabeled", locked=True
        )

    def label_new(
        self,
        batch: ToolBatch,
        provenance: Provenance,
        *,
        on_change: str,
    ) -> tuple[IndexArray, IndexArray, int]:
        """The rows of a tool's export that the store does not hold yet, in one commit.

        A row the store holds as it is (the item labeled with that value; on a store
        of several annotations per item, that annotator's annotation of it) is
        skipped, so importing a cumulative export again writes nothing new. A row
        whose item the store holds with another value is a conflict: with
        ``on_change="error"`` an :class:`InvalidInputError` naming the task and
        both values, nothing written; with ``"relabel"`` (one label per item
        only) a second commit relabels those items, keeping the old labels in
        the history. Decided on the snapshot the commit lands on.

        Returns ``(added, relabeled, skipped)``: dataset indices added (annotated),
        dataset indices relabeled, and the number of rows skipped.
        """
        outcome: dict[str, Any] = {}

        def build(snap: Snapshot) -> LabelEvent:
            keep, changed, skipped = self._new_rows(batch, snap, on_change)
            outcome.update(changed=changed, skipped=skipped, kept=keep)
            if not keep.any():
                raise _NothingNew
            idx, values = batch.dataset_indices[keep], batch.values[keep]
            who = tuple(a for a, k in zip(batch.annotators, keep, strict=True) if k)
            when = tuple(t for t, k in zip(batch.times, keep, strict=True) if k)
            if self.per_item == 1:
                return LabelEvent.following(
                    snap.version, "add", idx, values, provenance, row_annotators=who, row_times=when
                )
            rows = AnnotationRows(idx, values, who, when)
            self.catch_up()  # the requirements other processes recorded
            decided, labels = self.table(snap).plan(rows, snap.is_labeled)
            decided_values = np.array(labels, dtype=values.dtype)
            return LabelEvent.following(
                snap.version, "add", decided, decided_values, provenance, annotations=rows
            )

        added = np.empty(0, np.int64)
        if not len(batch.dataset_indices):
            return added, added, 0
        try:
            self.writer.commit(build, len(batch.dataset_indices), provenance, locked=True)
            added = batch.dataset_indices[outcome["kept"]]
        except _NothingNew:
            pass
        changed = outcome.get("changed", np.empty(0, np.int64))
        relabeled = np.empty(0, np.int64)
        if len(changed):  # on_change="relabel": the second commit, on top of the first
            if provenance.expected_version is not None and len(added):
                provenance = dataclasses.replace(
                    provenance, expected_version=provenance.expected_version + 1
                )
            relabeled = self.writer.relabel(
                batch.dataset_indices[changed],
                batch.values[changed],
                provenance,
                row_annotators=tuple(batch.annotators[r] for r in changed.tolist()),
                row_times=tuple(batch.times[r] for r in changed.tolist()),
            )
        return added, relabeled, int(outcome.get("skipped", len(batch.dataset_indices)))

    def _new_rows(
        self, batch: ToolBatch, snap: Snapshot, on_change: str
    ) -> tuple[np.ndarray, IndexArray, int]:
        """``(rows to add, rows to relabel, rows skipped)`` of ``batch`` at ``snap``."""
        idx, values = batch.dataset_indices, batch.values
        keep = np.ones(len(idx), bool)
        changed: list[int] = []
        if self.per_item == 1:
            held = snap.is_labeled(idx)
            if held.any():
                rows = np.flatnonzero(held)
                stored = snap.labels_at(idx[rows])
                same = _same_rows(stored, values[rows])
                keep[rows] = False
                for r, old in zip(rows[~same].tolist(), stored[~same], strict=True):
                    if on_change != "relabel":
                        raise AlreadyLabeledError(
                            [int(idx[r])],
                            reason=f"dataset index {int(idx[r])} is labeled "
                            f"{self.schema.to_python(old)!r} in the store and "
                            f"{self.schema.to_python(values[r])!r} in the export; pass "
                            "on_change='relabel' to relabel it (the history keeps both); "
                            "nothing was written",
                        )
                    changed.append(r)
        else:
            if on_change == "relabel":
                raise InvalidInputError(
                    "on_change='relabel' is for stores of one label per item; an annotation "
                    "is changed by its annotator in the tool and imported as a new one"
                )
            table = self.table(snap)
            for r, i in enumerate(idx.tolist()):
                mine = [a for a in table.of(i) if a.annotator == batch.annotators[r]]
                if mine:
                    keep[r] = False
                    if not _same_rows(np.array([mine[0].value]), values[r : r + 1]).all():
                        raise InvalidInputError(
                            f"{batch.where[r]}: {batch.annotators[r]!r} annotated dataset "
                            f"index {i} as {self.schema.to_python(mine[0].value)!r} before and "
                            f"{self.schema.to_python(values[r])!r} in the export (an annotation "
                            "is recorded once); nothing was written"
                        )
        skipped = int((~keep).sum()) - len(changed)
        return keep, np.asarray(changed, np.int64), skipped

    def resolve(self, idx: IndexArray, values: np.ndarray, provenance: Provenance) -> IndexArray:
        """Label disputed items with a reviewer's verdict (``provenance.annotator``)."""

        def build(snap: Snapshot) -> LabelEvent:
            disputed = self.table(snap).disputed(snap.is_labeled)
            fine = ~np.isin(idx, disputed)
            if fine.any():
                raise InvalidInputError(
                    f"dataset indices {idx[fine].tolist()[:8]} are not disputed (they need more "
                    "annotations, have a majority, or are labeled): they need no resolve; "
                    "nothing was written"
                )
            return LabelEvent.following(snap.version, "add", idx, values, provenance, resolved=True)

        return self.writer.commit(build, len(idx), provenance, locked=True)
