"""A labeling campaign's shared state: claims, per-round metrics and annotations.

One :class:`Campaign` per open store. Claims and metrics are records of the
campaign log (:mod:`alma_store._records`), written under the store's writer
lock and fsynced before the call returns; the claim book
(:mod:`alma_store._claims`) and the metrics list are their replay. The
annotations of a store with several annotations per item are in the label
journal itself; the :class:`~alma_store._annotations.AnnotationTable` is their
replay, read once per open (the first call that needs it reads the journal
from the start) and then kept up to date record by record.
"""

from __future__ import annotations

import math
import numbers
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from . import _scoring
from ._annotations import AnnotationTable
from ._claims import Claim, ClaimBook, Survey
from ._engine import Engine
from ._records import METRIC_FIELDS
from ._shared import LostRace
from ._snapshot import Snapshot
from ._types import IndexArray
from .errors import AlreadyLabeledError, ClaimedError, InvalidInputError
from .index import parse_indices
from .journal import FILE_HEADER_SIZE

__all__ = ["Campaign"]


def _check_annotator(annotator: object) -> str:
    if not isinstance(annotator, str) or not annotator:
        raise InvalidInputError(f"annotator must be a non-empty str, got {annotator!r}")
    return annotator


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


class Campaign:
    """Claims, metrics and annotations of one open store. See the module docstring.

    Parameters
    ----------
    engine
        The store's engine (its writer lock guards every append).
    clock
        Returns the current Unix time; claims expire by it. Tests pass a
        fake clock here.
    """

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self.log = engine.campaign_log()
        self.book = ClaimBook()
        self.known: set[str] = set()
        self._metrics: list[dict[str, Any]] = []
        self._mutex = threading.RLock()
        per_item = engine.meta.annotations_per_item
        self._table = AnnotationTable(per_item) if per_item > 1 else None
        self._cursor = (FILE_HEADER_SIZE, 1)  # where the table's journal replay goes on

    # -- the campaign log -----------------------------------------------------

    def _take(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.book.apply(record)
            if record.get("op") == "claim":
                self.known.add(str(record["id"]))
            elif record.get("op") == "metrics":
                self._metrics.append(record)

    def _append(self, records: list[dict[str, Any]]) -> None:
        """Append ``records`` durably, in one write (writer lock held), after others' records."""
        self._take(self.log.append(records))
        self._take(records)

    def _locked(self, body: Callable[[], T]) -> T:
        """Run ``body`` under the writer lock, the newest commits and records taken in.

        On a shared store another process may append first (``LostRace``):
        ``body`` then runs again on what it appended.
        """
        while True:
            with self.engine.write_lock(), self._mutex:
                self.engine.refresh(writer=True)
                self.catch_up()
                try:
                    return body()
                except LostRace:
                    continue

    def catch_up(self) -> None:
        """Take in the records other processes appended."""
        with self._mutex:
            self._take(self.log.read_new())

    # -- claims -----------------------------------------------------------------

    def held(self, snap: Snapshot, *, except_annotator: str | None = None) -> IndexArray:
        """Sorted unlabeled items under live claims (except ``except_annotator``'s)."""
        with self._mutex:
            self.catch_up()
            survey = self.book.survey(self.clock(), snap.is_labeled)
            return survey.held(except_annotator=except_annotator)

    def live(self, snap: Snapshot) -> list[Claim]:
        """The live claims, oldest first."""
        with self._mutex:
            self.catch_up()
            return self.book.survey(self.clock(), snap.is_labeled).live()

    def claim_next(
        self, k: int, annotator: str, ttl: float, scores: str | None, largest: bool
    ) -> Claim:
        """Claim the best ``k`` unlabeled, unclaimed items (fewer if fewer are left)."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k must be a positive int, got {k!r}")
        annotator, ttl = _check_annotator(annotator), _check_ttl(ttl)
        engine = self.engine

        def body() -> Claim:
            snap = engine.current(pull=False)
            now = self.clock()
            survey = self.book.survey(now, snap.is_labeled)
            held = survey.held()
            if scores is not None:
                best = _scoring.top_k(
                    engine, scores, k, largest=largest, allow_partial=False, exclude=held
                ).dataset_indices
            else:
                m = min(k + len(held), snap.n_items - snap.num_labeled)
                first = snap.map_positions(np.arange(m, dtype=np.int64), of_labeled=False)
                best = first[~np.isin(first, held)][:k]
            return self._make(now, survey, best, annotator, ttl)

        return self._locked(body)

    def claim(self, dataset_indices: object, annotator: str, ttl: float) -> Claim:
        """Claim the given items; refuse labeled ones and ones another live claim holds."""
        annotator, ttl = _check_annotator(annotator), _check_ttl(ttl)
        engine = self.engine
        idx = parse_indices(dataset_indices, name="dataset_indices", upper=engine.n_items)

        def body() -> Claim:
            snap = engine.current(pull=False)
            labeled = snap.is_labeled(idx)
            if labeled.any():
                raise AlreadyLabeledError(
                    [int(v) for v in idx[labeled]],
                    reason=f"dataset indices {idx[labeled].tolist()[:8]} are labeled already; "
                    "nothing was claimed",
                )
            now = self.clock()
            survey = self.book.survey(now, snap.is_labeled)
            holders = survey.holders(idx)
            if holders:
                raise ClaimedError(dict(sorted(holders.items())))
            return self._make(now, survey, idx, annotator, ttl)

        return self._locked(body)

    def _make(
        self, now: float, survey: Survey, items: IndexArray, annotator: str, ttl: float
    ) -> Claim:
        """Record a claim (writer lock held), after closing the claims whose items are labeled.

        ``survey`` is the claim book at ``now`` and the version the claim was chosen at.
        """
        claim = Claim(uuid.uuid4().hex[:16], items.astype(np.int64), annotator, now + ttl, now)
        if len(items):  # an empty claim holds nothing: nothing to record
            closes = [{"op": "close", "id": cid, "time": now} for cid in survey.done()]
            self._append([*closes, claim.to_record()])
        return claim

    def release(self, claim: Claim | str) -> bool:
        """Release a claim; ``False`` if it had ended already (released, closed or lapsed)."""
        claim_id = claim.id if isinstance(claim, Claim) else claim
        if not isinstance(claim_id, str):
            raise InvalidInputError(f"release takes a Claim or its id, got {claim!r}")
        engine = self.engine

        def body() -> bool:
            if claim_id not in self.known:
                raise InvalidInputError(
                    f"no claim with id {claim_id!r} was ever made on this store"
                )
            live = self.book.survey(self.clock(), engine.current(pull=False).is_labeled).live()
            if claim_id not in {c.id for c in live}:
                return False
            self._append([{"op": "release", "id": claim_id, "time": self.clock()}])
            return True

        return self._locked(body)

    # -- metrics ----------------------------------------------------------------

    def log_metrics(
        self, snap_of: Callable[[], Snapshot], round: object, metrics: dict[str, Any]
    ) -> dict[str, Any]:
        """Record ``metrics`` for ``round`` durably; returns the record as :meth:`metrics` shows it."""
        if round is not None and (
            not isinstance(round, numbers.Integral) or isinstance(round, bool)
        ):
            raise InvalidInputError(f"round must be an int or None, got {round!r}")
        if not metrics:
            raise InvalidInputError(
                "give at least one metric, e.g. log_metrics(round=3, accuracy=0.91)"
            )
        for name, value in metrics.items():
            if name in METRIC_FIELDS:
                raise InvalidInputError(
                    f"{name!r} is recorded with every metric; choose another name"
                )
            ok = isinstance(value, str) or (
                isinstance(value, numbers.Real) and math.isfinite(float(value))
            )
            if not ok:
                raise InvalidInputError(
                    f"metric {name!r} must be a finite number or a str, got {value!r}"
                )
        values = {
            k: (
                v
                if isinstance(v, str | bool)
                else int(v)
                if isinstance(v, numbers.Integral)
                else float(v)
            )
            for k, v in metrics.items()
        }

        def body() -> dict[str, Any]:
            snap = snap_of()
            record = {
                "op": "metrics",
                "round": None if round is None else int(round),
                "version": snap.version,
                "num_labeled": snap.num_labeled,
                "time": self.clock(),
                "values": values,
            }
            self._append([record])
            return record

        return _shown(self._locked(body))

    def metrics(self) -> list[dict[str, Any]]:
        """Every metrics record, oldest first."""
        with self._mutex:
            self.catch_up()
            return [_shown(r) for r in self._metrics]

    # -- annotations ------------------------------------------------------------

    def table(self, snap: Snapshot) -> AnnotationTable:
        """The annotation table at ``snap`` (the newest version taken in)."""
        if self._table is None:
            raise InvalidInputError(
                "this store keeps one label per item; create it with annotations_per_item=2 "
                "or more to keep several annotators' labels"
            )
        with self._mutex:
            table = self._table
            offset, version = self._cursor
            if table.version < snap.version:
                for event, end in self.engine.journal.iter_records(offset, version):
                    table.apply(event)
                    offset, version = end, event.version + 1
                    if event.version >= snap.version:
                        break
                self._cursor = (offset, version)
            return table


def _shown(record: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {k: record[k] for k in METRIC_FIELDS}
    shown.update(record["values"])
    return shown
