"""Claims: a work queue for concurrent annotators, as pure bookkeeping.

A claim reserves items for one annotator until it expires. The
:class:`ClaimBook` is built from the campaign log's ``claim`` and ``release``
records (:mod:`alma_store._records`) and answers which items are held at a
given time, given which items are labeled. It does no I/O and reads no
clock: the store passes ``now``.

Rules
-----
- A claim is *live* while it is not released, ``now < expires``, and at least
  one of its items is unlabeled. Labeling all its items closes it; expiry
  lapses it; nothing else ends it.
- An item is *held* by a live claim while it is unlabeled. Two live claims
  never hold the same item: a new claim is refused (or, for
  ``claim_next``, passes over the item) when another live claim holds it.
- Labels are never refused because of claims. A claim is a promise about who
  is sent an item, not a lock on writing its label: an annotator whose claim
  lapsed can still submit its labels, and they count, unless the item was
  labeled meanwhile (then the usual :class:`AlreadyLabeledError`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._types import IndexArray

__all__ = ["Claim", "ClaimBook"]


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
    """Every claim not released yet, from the campaign log."""

    def __init__(self) -> None:
        self._open: dict[str, Claim] = {}

    def apply(self, record: dict[str, Any]) -> None:
        """Take in one campaign-log record (others than claims are ignored)."""
        op = record.get("op")
        if op == "claim":
            claim = Claim.from_record(record)
            self._open[claim.id] = claim
        elif op == "release":
            self._open.pop(str(record["id"]), None)

    def get(self, claim_id: str) -> Claim | None:
        """The claim ``claim_id`` unless it was released (live or not)."""
        return self._open.get(claim_id)

    def live(self, now: float, is_labeled: Callable[[IndexArray], np.ndarray]) -> list[Claim]:
        """Claims not released, not expired and with an unlabeled item, oldest first.

        Claims found dead are forgotten (they can never come back to life).
        """
        out = []
        for claim_id, claim in list(self._open.items()):
            if claim.expires <= now or is_labeled(claim.dataset_indices).all():
                del self._open[claim_id]
            else:
                out.append(claim)
        return out

    def held(
        self,
        now: float,
        is_labeled: Callable[[IndexArray], np.ndarray],
        *,
        except_annotator: str | None = None,
    ) -> IndexArray:
        """Sorted unlabeled items of live claims (except those of ``except_annotator``)."""
        parts = [
            c.dataset_indices
            for c in self.live(now, is_labeled)
            if except_annotator is None or c.annotator != except_annotator
        ]
        if not parts:
            return np.empty(0, np.int64)
        items: IndexArray = np.unique(np.concatenate(parts))
        free: IndexArray = items[~is_labeled(items)]
        return free
