"""Claims: a work queue for concurrent annotators, as pure bookkeeping.

A claim reserves items for one annotator until it expires. The
:class:`ClaimBook` is built from the campaign log's ``claim`` and ``release``
records (:mod:`alma_store._records`) and answers which items are held at a
given time, given which items are labeled. It does no I/O and reads no
clock: the store passes ``now``.

Rules
-----
- A claim is *live* while it is not released or closed, ``now < expires``,
  and at least one of its items is unlabeled. Expiry lapses it.
- Labeling all its items closes it for good. So that every process agrees
  on that even if labels are later removed, the first writer to make a claim
  after it happened records a ``close`` (under the writer lock, before its own
  claim); until then, every process sees the same labels and so the same
  answer.
- An item is *held* by a live claim while it is unlabeled. In a store of one
  label per item, two live claims never hold the same item: a new claim is refused (or, for
  ``claim_next``, passes over the item) when another live claim holds it.
- In a store of ``k`` annotations per item, a claim holds an item until its
  annotator annotated it, and up to ``k`` annotators hold or have annotated an
  item at once: ``k`` less its annotations is how many live claims may hold it,
  never two of one annotator, and never one of an annotator who annotated it.
- Labels are never refused because of claims. A claim is a promise about who
  is sent an item, not a lock on writing its label: an annotator whose claim
  lapsed can still submit its labels, and they count, unless the item was
  labeled meanwhile (then the usual :class:`AlreadyLabeledError`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..core import IndexArray, distinct

__all__ = ["Claim", "ClaimBook", "Survey"]


def _iso(t: float) -> str:
    """A Unix time as ISO 8601 UTC, to the second (reprs; the float stays the attribute)."""
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Claim:
    """Items reserved for one annotator until ``expires``.

    Attributes
    ----------
    id
        The claim's id (give it to :meth:`Store.release`).
    dataset_indices
        The items claimed, int64, best first for ``claim_next``.
    annotator
        Who holds the claim.
    expires
        Unix time at which the claim lapses.
    created
        Unix time at which it was made.
    """

    id: str
    dataset_indices: IndexArray
    annotator: str
    expires: float
    created: float

    def __repr__(self) -> str:
        items = self.dataset_indices.tolist()
        shown = [*items[:8], "..."] if len(items) > 8 else items
        return (
            f"Claim(id={self.id!r}, annotator={self.annotator!r}, dataset_indices={shown}, "
            f"created={_iso(self.created)}, expires={_iso(self.expires)})"
        )

    def to_record(self) -> dict[str, Any]:
        """The campaign-log record that makes this claim."""
        return {
            "op": "claim",
            "id": self.id,
            "annotator": self.annotator,
            "indices": self.dataset_indices.tolist(),
            "expires": self.expires,
            "time": self.created,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Claim:
        """The claim a ``claim`` record made."""
        return cls(
            id=str(record["id"]),
            dataset_indices=np.asarray(record["indices"], dtype=np.int64),
            annotator=str(record["annotator"]),
            expires=float(record["expires"]),
            created=float(record["time"]),
        )


class ClaimBook:
    """Every claim not released yet, from the campaign log.

    The claims' items are kept concatenated, with each item's claim, so the
    questions asked on every ``claim_next`` and ``top_k`` (which items are
    held, which claims are live) are one vectorised pass and one
    ``is_labeled`` call over the claimed items, whatever the number of
    claims. Claims found dead are dropped for good.
    """

    def __init__(self) -> None:
        self._open: dict[str, Claim] = {}
        self._flat: tuple[list[Claim], IndexArray, np.ndarray] | None = None

    def apply(self, record: dict[str, Any]) -> None:
        """Take in one campaign-log record (others than claims are ignored)."""
        op = record.get("op")
        if op == "claim":
            claim = Claim.from_record(record)
            self._open[claim.id] = claim
            self._flat = None
        elif op in ("release", "close") and self._open.pop(str(record["id"]), None) is not None:
            self._flat = None

    def get(self, claim_id: str) -> Claim | None:
        """The claim ``claim_id`` unless it was released (live or not)."""
        return self._open.get(claim_id)

    def _items(self) -> tuple[list[Claim], IndexArray, np.ndarray]:
        """Open claims, their items concatenated, and each item's claim number."""
        if self._flat is None:
            claims = list(self._open.values())
            sizes = [len(c.dataset_indices) for c in claims]
            items = (
                np.concatenate([c.dataset_indices for c in claims])
                if claims
                else np.empty(0, np.int64)
            )
            owner = np.repeat(np.arange(len(claims)), sizes)
            self._flat = (claims, items, owner)
        return self._flat

    def survey(
        self,
        now: float,
        is_labeled: Callable[[IndexArray], np.ndarray],
        annotated: Callable[[IndexArray, list[str]], np.ndarray] | None = None,
    ) -> Survey:
        """Every unexpired claim and which of its items are held, in one pass.

        Expired claims are dropped for good: time only moves on, and an
        expired claim never comes back. With ``annotated`` (whether each item
        was annotated by the annotator given for it: a store of several
        annotations per item), a claim's item is done once its annotator
        annotated it, and no longer held by it.
        """
        claims, items, owner = self._items()
        if not claims:
            return Survey(claims, items, owner, np.empty(0, bool))
        unexpired = np.array([c.expires > now for c in claims])
        if not unexpired.all():
            for c in np.flatnonzero(~unexpired).tolist():
                del self._open[claims[c].id]
            keep = unexpired[owner]
            renumber = np.cumsum(unexpired) - 1
            claims = [c for c, a in zip(claims, unexpired.tolist(), strict=True) if a]
            items, owner = items[keep], renumber[owner[keep]]
            self._flat = (claims, items, owner)
        free = ~is_labeled(items)
        if annotated is not None and free.any():
            at = np.flatnonzero(free)
            free[at[annotated(items[at], [claims[o].annotator for o in owner[at].tolist()])]] = (
                False
            )
        return Survey(claims, items, owner, free)


@dataclass(frozen=True, slots=True)
class Survey:
    """The unexpired claims at one time and version: what each question is answered from.

    Attributes
    ----------
    claims
        Unexpired claims not released or closed, oldest first.
    items, owner
        Their items concatenated, and each item's claim number.
    free
        Which items are unlabeled (and, with several annotations per item, not
        annotated by their claim's annotator yet): held, while their claim is live.
    """

    claims: list[Claim]
    items: IndexArray
    owner: np.ndarray
    free: np.ndarray

    def _alive(self) -> list[bool]:
        alive: list[bool] = (
            np.bincount(self.owner[self.free], minlength=len(self.claims)) > 0
        ).tolist()
        return alive

    def live(self) -> list[Claim]:
        """Claims with an unlabeled item, oldest first."""
        return [c for c, a in zip(self.claims, self._alive(), strict=True) if a]

    def done(self) -> list[str]:
        """Ids of claims all of whose items are labeled: to be closed for good."""
        return [c.id for c, a in zip(self.claims, self._alive(), strict=True) if not a]

    def held(self, *, except_annotator: str | None = None) -> IndexArray:
        """Sorted unlabeled items of live claims (except those of ``except_annotator``)."""
        free = self.free
        if except_annotator is not None and self.claims:
            others = np.array([c.annotator != except_annotator for c in self.claims])
            free = free & others[self.owner]
        held: IndexArray = distinct(self.items[free])
        return held

    def left(self, claim_id: str) -> IndexArray:
        """The items claim ``claim_id`` still holds, best first (none if it is not live)."""
        k = next((n for n, c in enumerate(self.claims) if c.id == claim_id), None)
        if k is None:
            return np.empty(0, np.int64)
        left: IndexArray = self.items[self.free & (self.owner == k)]
        return left

    def held_by(self, annotator: str) -> IndexArray:
        """Sorted items ``annotator``'s live claims hold."""
        if not self.claims:
            return np.empty(0, np.int64)
        mine = np.array([c.annotator == annotator for c in self.claims])
        held: IndexArray = distinct(self.items[self.free & mine[self.owner]])
        return held

    def holds(self, *, except_annotator: str | None = None) -> tuple[IndexArray, np.ndarray]:
        """Held items and how many live claims hold each (except ``except_annotator``'s)."""
        free = self.free
        if except_annotator is not None and self.claims:
            others = np.array([c.annotator != except_annotator for c in self.claims])
            free = free & others[self.owner]
        items, counts = np.unique(self.items[free], return_counts=True)
        return items, counts

    def holders(self, dataset_indices: IndexArray) -> dict[int, str]:
        """Which of ``dataset_indices`` live claims hold, and by whom."""
        hit = self.free & np.isin(self.items, dataset_indices)
        return {
            int(i): self.claims[o].annotator
            for i, o in zip(self.items[hit], self.owner[hit], strict=True)
        }
