"""Several annotations per item: the table of annotations and the majority rule.

A store created with ``annotations_per_item=k`` (k >= 2) keeps every
annotator's label for an item. The journal records them (format 4, the
``annotations`` of a record, see :class:`~alma_store.journal.AnnotationRows`);
an :class:`AnnotationTable` is their replay, kept up to date event by event.

Rules
-----
- An annotator annotates an item at most once, and an item takes at most
  ``k`` annotations: the store's ``annotations_per_item``, or what the campaign
  requires of that item (:meth:`Store.require_annotations`).
- With its ``k``-th annotation an item is decided: if more than half of the
  ``k`` agree, the item is labeled with their label by the same commit (its
  ``"add"`` items). Otherwise it is *disputed* and waits for
  :meth:`Store.resolve`, whose verdict labels it.
- ``remove_labels`` puts an item back to the start: its annotations are
  dropped from the table (they stay in the journal's history).

This module does no I/O: the store feeds it events and snapshots.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..core import AnnotationRows, IndexArray, LabelEvent
from ..errors import AlreadyLabeledError, InvalidInputError

__all__ = ["Annotation", "AnnotationTable"]


@dataclass(frozen=True, slots=True)
class Annotation:
    """One annotator's label for one item.

    Attributes
    ----------
    dataset_index
        The item.
    annotator
        Who gave the label.
    value
        The label (a class code for stores with classes).
    time
        Unix time it was given.
    version
        The store version of the commit that recorded it.
    round
        The round given with that commit.
    label
        The label as people read it: the class name where the store has
        classes, else the value (None only inside the annotation table).
    """

    dataset_index: int
    annotator: str
    value: Any
    time: float
    version: int
    round: int | None
    label: Any = None

    def __repr__(self) -> str:
        when = datetime.fromtimestamp(self.time, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        shown = self.value if self.label is None else self.label
        return (
            f"Annotation(dataset_index={self.dataset_index}, annotator={self.annotator!r}, "
            f"label={shown!r}, time={when}, version={self.version}, round={self.round})"
        )


def value_key(value: object) -> object:
    """A hashable key for comparing labels (arrays compare by content)."""
    out = np.asarray(value).tolist()
    return repr(out) if isinstance(out, list) else out


def majority(values: Sequence[object]) -> tuple[bool, object]:
    """``(True, label)`` if more than half of ``values`` agree, else ``(False, None)``."""
    counts = Counter(value_key(v) for v in values)
    key, top = counts.most_common(1)[0]
    if 2 * top <= len(values):
        return False, None
    return True, next(v for v in values if value_key(v) == key)


class AnnotationTable:
    """Every item's current annotations, replayed from the journal.

    Parameters
    ----------
    per_item
        ``k``, the annotations an item needs.
    required
        The annotations item ``i`` needs, where the campaign says (``per_item`` if
        ``None``): :meth:`Store.require_annotations`.
    """

    def __init__(self, per_item: int, required: Callable[[int], int] | None = None) -> None:
        self.per_item = per_item
        self.required: Callable[[int], int] = required or (lambda i: per_item)
        self.items: dict[int, list[Annotation]] = {}
        self.version = 0
        self.open_by: dict[str, set[int]] = {}
        """Per annotator, the items it annotated that no label decided yet."""
        self.undecided: set[int] = set()
        """Items with annotations that no label decided yet."""
        self.full: set[int] = set()
        """Undecided items with all the annotations they need (disputed)."""

    def apply(self, event: LabelEvent) -> None:
        """Take in one journal event (events must come in version order)."""
        if event.kind == "remove":
            for i in event.dataset_indices.tolist():
                self._settle(i)
                self.items.pop(i, None)
        rows = event.annotations
        if rows is not None:
            for r, i in enumerate(rows.dataset_indices.tolist()):
                anns = self.items.setdefault(i, [])
                anns.append(
                    Annotation(
                        i,
                        rows.annotators[r],
                        rows.values[r].item() if rows.values.ndim == 1 else rows.values[r],
                        rows.times[r],
                        event.version,
                        event.round,
                    )
                )
                self.open_by.setdefault(rows.annotators[r], set()).add(i)
                self.undecided.add(i)
                if len(anns) >= self.required(i):
                    self.full.add(i)
        if event.kind != "remove":  # items labeled now: decided, open to nobody
            for i in event.dataset_indices.tolist():
                self._settle(i)
        self.version = event.version

    def _settle(self, i: int) -> None:
        """Item ``i`` is decided or starts again: it leaves the open indexes."""
        self.full.discard(i)
        self.undecided.discard(i)
        for a in self.items.get(i, ()):
            self.open_by.get(a.annotator, set()).discard(i)

    def recheck(self, items: Iterable[int] | None = None) -> None:
        """Requirements changed for ``items`` (every undecided item if ``None``): which are full."""
        for i in self.undecided if items is None else items:
            if i not in self.undecided:
                continue
            if len(self.items[i]) >= self.required(i):
                self.full.add(i)
            else:
                self.full.discard(i)

    def count(self, dataset_index: int) -> int:
        """How many annotations item ``dataset_index`` has."""
        return len(self.items.get(dataset_index, ()))

    def of(self, dataset_index: int) -> list[Annotation]:
        """The annotations of one item, oldest first."""
        return list(self.items.get(dataset_index, ()))

    def disputed(self, is_labeled: Callable[[IndexArray], np.ndarray]) -> IndexArray:
        """Sorted items with all the annotations they need, no majority and no label yet."""
        items = np.array(sorted(self.full), dtype=np.int64)
        if not len(items):
            return items
        items = items[~is_labeled(items)]
        return np.array(
            [i for i in items.tolist() if not majority([a.value for a in self.items[i]])[0]],
            dtype=np.int64,
        )

    def plan(
        self,
        rows: AnnotationRows,
        is_labeled: Callable[[IndexArray], np.ndarray],
    ) -> tuple[IndexArray, list[object]]:
        """Check a batch of annotations; return the items it decides by majority, and their labels.

        Raises
        ------
        AlreadyLabeledError
            An item is labeled already.
        InvalidInputError
            An annotator annotates an item twice (in this batch or before), or
            an item would get more than ``k`` annotations (a disputed item
            waits for :meth:`Store.resolve`).
        """
        idx = rows.dataset_indices
        labeled = is_labeled(idx)
        if labeled.any():
            raise AlreadyLabeledError(sorted({int(v) for v in idx[labeled]}))
        seen: dict[int, list[int]] = {}
        for r, i in enumerate(idx.tolist()):
            seen.setdefault(i, []).append(r)
        decided: list[int] = []
        labels: list[object] = []
        for i, batch_rows in seen.items():
            before = self.items.get(i, [])
            who = [a.annotator for a in before] + [rows.annotators[r] for r in batch_rows]
            twice = sorted({a for a in who if who.count(a) > 1})
            if twice:
                raise InvalidInputError(
                    f"annotator {twice[0]!r} annotates dataset index {i} twice "
                    "(an annotator labels an item once); nothing was written"
                )
            need = self.required(i)
            if len(who) > need:
                state = (
                    "is disputed and waits for store.resolve"
                    if len(before) >= need
                    else f"would get {len(who)}"
                )
                raise InvalidInputError(
                    f"dataset index {i} takes {need} annotations and {state}; nothing was written"
                )
            if len(who) == need:
                values = [a.value for a in before] + [rows.values[r] for r in batch_rows]
                agreed, label = majority(values)
                if agreed:
                    decided.append(i)
                    labels.append(label)
        return np.array(decided, dtype=np.int64), labels
