"""The campaign methods of :class:`~alma_store.store.Store`: claims, metrics, annotations, tools.

Each method checks its arguments and calls the store's
:class:`~alma_store._campaign.Campaign` (claims, metrics, the annotation
table) or its commit protocol (annotations, resolves). The class is a part of
``Store``, kept here so that the facade stays the size of its core.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ._annotations import Annotation
from ._campaign import Campaign
from ._claims import Claim
from ._engine import Engine
from ._labels import LabelSchema, parse_provenance, split_batch
from ._plot import plot_progress
from ._snapshot import Snapshot
from ._types import IndexArray
from .errors import InvalidInputError
from .index import parse_indices
from .journal import AnnotationRows, LabelEvent

__all__ = ["CampaignMethods"]


class _Host(Protocol):
    """What the campaign methods use of the :class:`~alma_store.store.Store` they are part of."""

    _campaign: Campaign
    _engine: Engine
    schema: LabelSchema

    @property
    def label_shape(self) -> tuple[int, ...]: ...

    def __len__(self) -> int: ...

    @property
    def _commit(self) -> Callable[..., IndexArray]: ...  # Store._commit

    def history(self) -> Iterator[LabelEvent]: ...

    def metrics(self) -> list[dict[str, Any]]: ...


class CampaignMethods:
    """The campaign part of :class:`~alma_store.store.Store`: claims, metrics, annotations."""

    _campaign: Campaign
    _engine: Engine
    schema: Any

    @property
    def clock(self) -> Callable[[], float]:
        """The clock claims expire by (``time.time``); set it to a fake one in tests."""
        return self._campaign.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        if not callable(clock):
            raise InvalidInputError(f"clock must be callable, got {clock!r}")
        self._campaign.clock = clock

    # -- claims -----------------------------------------------------------------

    def claim_next(
        self,
        k: int,
        *,
        annotator: str,
        ttl: float,
        scores: str | None = None,
        largest: bool = True,
    ) -> Claim:
        """Claim the best ``k`` unlabeled items no live claim holds, for ``annotator``.

        Atomic across processes: two concurrent callers never get the same
        item. The claim is durable when this returns.

        Parameters
        ----------
        k
            How many items (fewer are claimed when fewer are left; none gives
            an empty claim, and nothing is recorded).
        annotator
            Who the items are for.
        ttl
            Seconds until the claim lapses unless its items are labeled.
        scores
            Name of a complete scoring: the ``k`` best by it (``largest``
            first). Without it, the first ``k`` in dataset order.
        largest
            With ``scores``: the largest scores are the best.

        Returns
        -------
        Claim
            ``.id``, ``.dataset_indices`` (best first), ``.annotator``, ``.expires``.

        Raises
        ------
        InvalidInputError
            Bad ``k``, ``annotator`` or ``ttl``, or an unknown or incomplete scoring.

        Notes
        -----
        A claim closes once all its items are labeled and lapses at
        ``expires``. Claims never refuse a label: an annotator whose claim
        lapsed can still submit, and the label counts unless the item was
        labeled meanwhile (:class:`AlreadyLabeledError`).
        """
        self._engine.check_writable()
        return self._campaign.claim_next(k, annotator, ttl, scores, largest)

    def claim(self, dataset_indices: object, *, annotator: str, ttl: float) -> Claim:
        """Claim the given items for ``annotator`` for ``ttl`` seconds.

        Raises
        ------
        ClaimedError
            Another live claim holds some of them (the error names who);
            nothing is claimed.
        AlreadyLabeledError
            Some are labeled already.
        InvalidIndexError, InvalidInputError
            Bad indices, ``annotator`` or ``ttl``.
        """
        self._engine.check_writable()
        return self._campaign.claim(dataset_indices, annotator, ttl)

    def release(self, claim: Claim | str) -> bool:
        """Release a claim (or its id) before it lapses.

        Returns ``False`` when it had ended already (released, its items
        labeled, or lapsed).

        Raises
        ------
        InvalidInputError
            No claim with that id was ever made on this store.
        """
        self._engine.check_writable()
        return self._campaign.release(claim)

    def claims(self) -> list[Claim]:
        """The live claims, oldest first: not released, not lapsed, with an unlabeled item."""
        self._engine.check_open()
        return self._campaign.live(self._engine.current())

    # -- metrics ----------------------------------------------------------------

    def log_metrics(self, *, round: int | None = None, **metrics: float | str) -> dict[str, Any]:
        """Record the model's quality after a round, durably.

        Each record keeps ``round``, the store ``version`` and ``num_labeled``
        at the time, and ``time``, with the metrics given.

        Examples
        --------
        >>> import numpy as np, tempfile, alma_store
        >>> with alma_store.create(tempfile.mkdtemp() + "/s", np.zeros((5, 1))) as store:
        ...     _ = store.add_labels([(0, 1)])
        ...     _ = store.log_metrics(round=0, accuracy=0.5)
        ...     [(m["round"], m["num_labeled"], m["accuracy"]) for m in store.metrics()]
        [(0, 1, 0.5)]

        Raises
        ------
        InvalidInputError
            No metric, a value that is not a finite number or a str, or a
            metric named like a recorded field (``round``, ``version``,
            ``num_labeled``, ``time``).
        """
        self._engine.check_writable()
        return self._campaign.log_metrics(self._engine.current, round, metrics)

    def metrics(self) -> list[dict[str, Any]]:
        """Every metrics record, oldest first (see :meth:`log_metrics`)."""
        self._engine.check_open()
        return self._campaign.metrics()

    # -- annotations ----------------------------------------------------------

    def annotations(self, dataset_indices: object) -> list[list[Annotation]]:
        """Every current annotation of each item, oldest first.

        The first call reads the journal once from the start; later calls
        read only what was committed since.

        Raises
        ------
        InvalidInputError
            The store keeps one label per item (``annotations_per_item=1``).
        """
        self._engine.check_open()
        idx = parse_indices(dataset_indices, name="dataset_indices", upper=self._engine.n_items)
        table = self._campaign.table(self._engine.current())
        return [table.of(i) for i in idx.tolist()]

    def disputed(self) -> IndexArray:
        """Items with all their annotations and no majority: they wait for :meth:`resolve`."""
        self._engine.check_open()
        snap = self._engine.current()
        return self._campaign.table(snap).disputed(snap.is_labeled)

    def agreement(self) -> dict[str, Any]:
        """Inter-annotator agreement over the items with two or more annotations.

        Needs the ``agreement`` extra. Cohen's kappa when two annotators gave
        all the annotations, Fleiss' kappa when more did; Krippendorff's alpha
        (nominal) either way.

        Returns
        -------
        dict
            ``method`` (``"cohen"`` or ``"fleiss"``), ``kappa``, ``alpha``,
            ``items``, ``annotators``, ``per_class`` (class name to kappa) and
            ``per_round`` (round to ``{"kappa", "items", "method"}``, by the round of an
            item's first annotation). Undefined figures are NaN.

        Raises
        ------
        InvalidInputError
            One label per item, no item with two annotations yet, or the
            extra is missing.
        """
        from ._agreement import agreement

        self._engine.check_open()
        table = self._campaign.table(self._engine.current())
        schema = self.schema

        def name(key: object) -> str:
            if schema.classes is not None and isinstance(key, int):
                return str(schema.classes[key])
            return str(key)

        return agreement(table.items, name)

    def export_tasks(
        self,
        path: str | Path,
        dataset_indices: object,
        *,
        format: str,
        data: Callable[[int], dict[str, Any]] | None = None,
    ) -> int:
        """Write tasks for an annotation tool, one per item; returns how many.

        Parameters
        ----------
        path
            The file: JSON for ``"label-studio"`` (import it in the project's
            Import dialog), JSON Lines for ``"prodigy"`` (a source for a
            recipe, e.g. ``textcat.manual``).
        dataset_indices
            The items, e.g. ``claim.dataset_indices`` or ``top_k(...).dataset_indices``.
        format
            ``"label-studio"`` or ``"prodigy"``.
        data
            ``data(i) -> dict``: each item's display fields (``"text"``,
            ``"image"`` URL, ...). Every task carries ``dataset_index``, which
            the tools keep in their exports: :meth:`import_labels` reads it back.
        """
        from ._tools import check_format, write_tasks

        self._engine.check_open()
        fmt = check_format(format)
        idx = parse_indices(dataset_indices, name="dataset_indices", upper=self._engine.n_items)
        return write_tasks(Path(path), idx.tolist(), fmt, data)

    # -- writes of a store with several annotations per item -------------------

    def _annotate(
        self: _Host,
        idx: IndexArray,
        values: np.ndarray,
        annotators: tuple[str, ...],
        times: tuple[float, ...],
        provenance: dict[str, Any],
        relative_to: str = "dataset",
    ) -> IndexArray:
        """Record annotations; items they decide by majority are labeled by the same commit."""

        def build(snap: Snapshot) -> LabelEvent:
            dataset_idx = snap.dataset_indices_of(idx, relative_to, unique=False)
            rows = AnnotationRows(dataset_idx, values, annotators, times)
            decided, labels = self._campaign.table(snap).plan(rows, snap.is_labeled)
            decided_values = np.array(labels, dtype=values.dtype)  # scalar labels
            return LabelEvent(
                snap.version + 1, "add", decided, decided_values, annotations=rows, **provenance
            )

        return self._commit(
            build, len(idx), provenance, by_position=relative_to == "unlabeled", locked=True
        )

    def resolve(
        self: _Host,
        dataset_indices: object,
        values: object,
        *,
        annotator: str,
        round: int | None = None,
        expected_version: int | None = None,
    ) -> IndexArray:
        """Label disputed items with a reviewer's verdict.

        An item is disputed when it has all its ``annotations_per_item``
        annotations and no label has more than half of them
        (:meth:`disputed` lists them). The verdict labels it; the journal
        records it as the reviewer's.

        Parameters
        ----------
        dataset_indices
            Disputed items.
        values
            Their labels.
        annotator
            The reviewer.
        round, expected_version
            As for :meth:`add_labels`.

        Returns
        -------
        numpy.ndarray
            The dataset indices labeled.

        Raises
        ------
        InvalidInputError
            The store keeps one label per item, no reviewer is named, or an
            item is not disputed (it needs more annotations, has a majority,
            or is labeled). Nothing is written.
        """
        self._engine.check_writable()
        if not isinstance(annotator, str) or not annotator:
            raise InvalidInputError(f"resolve needs the reviewer as annotator, got {annotator!r}")
        idx_raw, vals = split_batch(dataset_indices, values, names=("dataset_indices", "values"))
        provenance = parse_provenance(annotator, round, expected_version)
        idx = parse_indices(idx_raw, name="dataset_indices", upper=len(self))
        vals_arr = self.schema.parse_values(vals, len(idx))

        def build(snap: Snapshot) -> LabelEvent:
            disputed = self._campaign.table(snap).disputed(snap.is_labeled)
            fine = ~np.isin(idx, disputed)
            if fine.any():
                raise InvalidInputError(
                    f"dataset indices {idx[fine].tolist()[:8]} are not disputed (they need more "
                    "annotations, have a majority, or are labeled): they need no resolve; "
                    "nothing was written"
                )
            return LabelEvent(snap.version + 1, "add", idx, vals_arr, resolved=True, **provenance)

        return self._commit(build, len(idx), provenance, locked=True)

    # -- plots ------------------------------------------------------------------

    def plot_progress(self: _Host, path: str | Path) -> Path:
        """Plot the campaign to a PNG (``plot`` extra): learning curve, labels per annotator, class balance.

        The learning curve shows each numeric metric of :meth:`metrics` against
        the number of labels when it was logged; labels per annotator are
        drawn over calendar dates (annotations, on a store with several per
        item); class balance is per round.
        """
        return plot_progress(self.history(), self.schema, Path(path), self.metrics())

    def report(self: _Host, path: str | Path) -> Path:
        """Write a one-page HTML summary: counts, the plots, agreement figures and metrics.

        Needs the ``plot`` extra (and ``agreement`` for the agreement figures
        of a store with several annotations per item).
        """
        from ._report import write_report

        return write_report(self, Path(path))
