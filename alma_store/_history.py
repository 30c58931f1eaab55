"""Reading the past: history filters, round summaries, and the store at a past version."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ._types import IndexArray
from .errors import InvalidIndexError, InvalidInputError
from .index import dataset_to_view_positions, parse_indices
from .journal import KINDS, LabelEvent
from .views import LabeledMask, LabeledView, UnlabeledView

if TYPE_CHECKING:
    from ._snapshot import Snapshot
    from .store import Store


def check_filters(kinds: tuple[str, ...] | None, start: int | None, stop: int | None) -> None:
    if kinds is not None and (isinstance(kinds, str) or not all(k in KINDS for k in kinds)):
        raise InvalidInputError(f"kinds must be a tuple of {KINDS}, got {kinds!r}")
    for name, value in (("start", start), ("stop", stop)):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise InvalidInputError(f"{name} must be a non-negative int or None, got {value!r}")


def filter_event(
    event: LabelEvent,
    annotator: str | None,
    round: int | None,
    kinds: tuple[str, ...] | None,
    start: int | None,
    stop: int | None,
) -> LabelEvent | None:
    """``event`` if it passes the filters, cut to ``[start, stop)``; else None."""
    if annotator is not None and event.annotator != annotator:
        return None
    if round is not None and event.round != round:
        return None
    if kinds is not None and event.kind not in kinds:
        return None
    if start is None and stop is None:
        return event
    idx = event.dataset_indices
    keep = np.ones(idx.shape, bool)
    if start is not None:
        keep &= idx >= start
    if stop is not None:
        keep &= idx < stop
    if not keep.any():
        return None
    return replace(
        event,
        dataset_indices=idx[keep],
        values=event.values[keep],
        previous=None if event.previous is None else event.previous[keep],
    )


@dataclass(frozen=True, slots=True)
class RoundSummary:
    """What happened in one round: commits, label counts by kind, who, when."""

    round: int | None
    commits: int
    added: int
    relabeled: int
    removed: int
    annotators: tuple[str | None, ...]
    first_time: float
    last_time: float
    first_version: int
    last_version: int

    @classmethod
    def extend(cls, summary: RoundSummary | None, event: LabelEvent) -> RoundSummary:
        """``summary`` with ``event`` counted in (a new summary when None)."""
        n = len(event.dataset_indices)
        counts = {"add": 0, "relabel": 0, "remove": 0}
        counts[event.kind] = n
        if summary is None:
            return cls(
                event.round,
                1,
                counts["add"],
                counts["relabel"],
                counts["remove"],
                (event.annotator,),
                event.time,
                event.time,
                event.version,
                event.version,
            )
        annotators = summary.annotators
        if event.annotator not in annotators:
            annotators = (*annotators, event.annotator)
        return cls(
            summary.round,
            summary.commits + 1,
            summary.added + counts["add"],
            summary.relabeled + counts["relabel"],
            summary.removed + counts["remove"],
            annotators,
            min(summary.first_time, event.time),
            max(summary.last_time, event.time),
            summary.first_version,
            event.version,
        )


def unlabeled_positions(snap: Snapshot, dataset_indices: object) -> IndexArray:
    """Positions in the Unlabeled view of ``snap`` of unlabeled ``dataset_indices``."""
    idx = parse_indices(dataset_indices, name="dataset_indices", upper=snap.n_items)
    pos, member = dataset_to_view_positions(
        idx, snap.unlabeled_counts, snap.chunk_rows, snap.labeled_marks, of_labeled=False
    )
    if not member.all():
        bad = [int(v) for v in idx[~member]]
        raise InvalidIndexError(
            "dataset_indices",
            bad,
            reason=f"dataset indices {bad} are labeled, not in the Unlabeled view",
        )
    return pos


class StoreAt:
    """A read-only store at a past version (from :meth:`Store.at`); nothing is copied."""

    def __init__(self, store: Store, snapshot: Snapshot) -> None:
        self._store = store
        self._snap = snapshot

    @property
    def version(self) -> int:
        """The version shown."""
        return self._snap.version

    def __len__(self) -> int:
        return self._snap.n_items

    @property
    def features(self) -> Any:
        """The store's feature array (features do not change over versions)."""
        return self._store.features

    @property
    def num_labeled(self) -> int:
        """Labeled items at this version."""
        return self._snap.num_labeled

    @property
    def num_unlabeled(self) -> int:
        """Unlabeled items at this version."""
        return self._snap.n_items - self._snap.num_labeled

    @property
    def labeled(self) -> LabeledView:
        """The Labeled view at this version."""
        return LabeledView(self._store, self._snap)

    @property
    def unlabeled(self) -> UnlabeledView:
        """The Unlabeled view at this version."""
        return UnlabeledView(self._store, self._snap)

    @property
    def labeled_mask(self) -> LabeledMask:
        """The labeled mask at this version, lazy."""
        return LabeledMask(self._snap)

    @property
    def labels(self) -> np.ndarray:
        """Labels of the labeled items at this version, in dataset order."""
        return self.labeled.labels

    def to_unlabeled_position(self, dataset_indices: object) -> IndexArray:
        """Positions, in the Unlabeled view at this version, of unlabeled ``dataset_indices``."""
        return unlabeled_positions(self._snap, dataset_indices)

    def __repr__(self) -> str:
        return f"<alma_store.StoreAt {str(self._store.path)!r} version={self.version}>"
