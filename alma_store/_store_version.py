"""The read API of a store at one version: the one class every read goes through.

:meth:`Store.at` returns a :class:`StoreVersion` fixed at a past version, and
:class:`~alma_store.store.Store` *is* a :class:`StoreVersion` that always shows
its newest version. Nothing here writes to the store: every method parses its
arguments and makes one call to the layer that owns the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import engine, exchange, scoring
from .campaign import (
    Annotation,
    Campaign,
    Consensus,
    Replay,
    Simulation,
    plot_progress,
    report_data,
    simulate,
    strategy_of,
    write_report,
)
from .core import IndexArray, LabelEvent, LabelSchema, PathLike, parse_indices
from .engine import Engine, RoundSummary, Snapshot, Writer, worker_engine
from .errors import InvalidIndexError, InvalidInputError
from .sources import FeatureSource
from .storage import Location
from .views import LabeledMask, LabeledView, UnlabeledView

__all__ = ["StoreVersion"]


class StoreVersion:
    """A store as it is at one version: sizes, views, the labeled mask, labels.

    Returned by :meth:`Store.at`; nothing is copied, and everything stays
    exact however far the store moves on.
    """

    def __init__(
        self,
        engine: Engine,
        source: FeatureSource,
        campaign: Campaign,
        snapshot: Snapshot | None = None,
    ) -> None:
        self._engine = engine
        self._source = source
        self._campaign = campaign
        self._fixed = snapshot
        meta = engine.meta
        where = engine.location
        self.location = str(where)
        """The store's directory, or the URL of a shared store in object storage."""
        self.path: Path | str = str(where) if where.path is None else where.path
        """The store directory (a ``Path``); for a store in object storage, its URL."""
        self.storage_options = where.storage_options
        """The storage options the store was opened with (in memory only, never written)."""
        self.chunk_rows = meta.chunk_rows
        """Rows per chunk of the mask, the labels and the count index."""
        self.schema: LabelSchema = campaign.schema
        """The label dtype, shape and class names."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as (location, version): it reopens read-only where it lands, once per
        process, at the same version (storage options travel with it, in memory)."""
        return (open_for_worker, (self._engine.location, self._snap().version))

    def _snap(self) -> Snapshot:
        """The snapshot shown: fixed, or the newest one."""
        if self._fixed is not None:
            self._engine.check_open()
            return self._fixed
        return self._engine.current()

    @property
    def meta(self) -> dict[str, Any]:
        """The fields of ``meta.json`` (format version, geometry, labels, feature source)."""
        return self._engine.meta.to_json()

    @property
    def label_dtype(self) -> np.dtype[Any]:
        """dtype of one label."""
        return self.schema.dtype

    @property
    def label_shape(self) -> tuple[int, ...]:
        """Shape of one label; ``()`` for scalar labels."""
        return self.schema.shape

    @property
    def classes(self) -> tuple[str, ...] | None:
        """The class schema given at create (labels are codes into it), or None."""
        return self.schema.classes

    @property
    def annotations_per_item(self) -> int:
        """Annotations an item needs before it is labeled (1: each label is final)."""
        return self._engine.meta.annotations_per_item

    def __len__(self) -> int:
        return self._engine.n_items

    @property
    def features(self) -> Any:
        """The feature array itself: a read-only memmap, ``zarr.Array`` or ``h5py.Dataset``."""
        return self._source.array

    @property
    def feature_source(self) -> FeatureSource:
        """The feature source wrapper (uniform row reads over every backend)."""
        return self._source

    @property
    def version(self) -> int:
        """Number of commits up to this version (0 for a new store)."""
        return self._snap().version

    @property
    def num_labeled(self) -> int:
        """Number of labeled items."""
        return self._snap().num_labeled

    @property
    def num_unlabeled(self) -> int:
        """Number of unlabeled items."""
        return self._engine.n_items - self._snap().num_labeled

    @property
    def labeled(self) -> LabeledView:
        """The Labeled view ``L``, a snapshot (nothing is copied)."""
        return LabeledView(self._engine, self._source, self._snap())

    @property
    def unlabeled(self) -> UnlabeledView:
        """The Unlabeled view ``U``, a snapshot (nothing is copied)."""
        return UnlabeledView(self._engine, self._source, self._snap())

    @property
    def labeled_mask(self) -> LabeledMask:
        """The labeled mask over dataset indices, lazy; ``np.asarray`` materialises it."""
        return LabeledMask(self._engine, self._snap())

    @property
    def labels(self) -> np.ndarray:
        """Labels of the labeled items in dataset order (materialised, size ``num_labeled``)."""
        return self.labeled.labels

    def to_unlabeled_position(self, dataset_indices: object) -> IndexArray:
        """Positions in the Unlabeled view of unlabeled ``dataset_indices``.

        The inverse of ``unlabeled.to_dataset_index``.

        Raises
        ------
        InvalidIndexError
            An index is out of range or labeled (it has no unlabeled position).
        """
        snap = self._snap()
        idx = parse_indices(dataset_indices, name="dataset_indices", upper=snap.n_items)
        pos, member = snap.positions_of(idx, of_labeled=False)
        if not member.all():
            bad = [int(v) for v in idx[~member]]
            raise InvalidIndexError(
                "dataset_indices",
                bad,
                reason=f"dataset indices {bad} are labeled, not in the Unlabeled view",
            )
        return pos

    def history(
        self,
        *,
        annotator: str | None = None,
        round: int | None = None,
        kinds: tuple[str, ...] | None = None,
        start: int | None = None,
        stop: int | None = None,
        after: int = 0,
    ) -> Iterator[LabelEvent]:
        """Iterate the committed events up to this version, oldest first, streaming the journal.

        Every filter is optional; an event restricted to the dataset index range
        ``[start, stop)`` keeps only its entries in that range (and is skipped
        when none are left); ``after`` skips the events of versions up to it (what
        a reader folded before). Memory stays bounded by one read block of the
        journal, whatever its length.

        Examples
        --------
        >>> import numpy as np, tempfile, alma_store
        >>> with alma_store.create(tempfile.mkdtemp() + "/s", np.zeros((6, 1))) as store:
        ...     _ = store.add_labels([(0, 1), (1, 2)], annotator="ann", round=0)
        ...     _ = store.relabel([0], [5], annotator="bob", round=1)
        ...     [(e.version, e.kind, e.annotator, e.dataset_indices.tolist()) for e in store.history()]
        [(1, 'add', 'ann', [0, 1]), (2, 'relabel', 'bob', [0])]
        """
        return engine.history(
            self._engine,
            annotator=annotator,
            round=round,
            kinds=kinds,
            start=start,
            stop=stop,
            after=after,
            last=self.version,
        )

    def rounds(self) -> list[RoundSummary]:
        """One summary per round tag, in order of first appearance (``None`` for untagged)."""
        return engine.rounds(self._engine, last=self.version)

    def export_labels(
        self,
        path: PathLike,
        *,
        progress: Callable[[int], None] | None = None,
        raw: bool = False,
    ) -> int:
        """Write the labels at this version to ``.csv``, ``.jsonl`` or ``.parquet``, streaming.

        In CSV, text a spreadsheet would run as a formula (``=``, ``+``, ``-``,
        ``@`` first) is written with a leading ``'``; ``raw=True`` writes it as
        it is. :meth:`~alma_store.Store.import_labels` reads an escaped export
        back exactly (it drops one leading ``'`` of a CSV cell).
        Returns the number of rows.
        """
        chunks = self.labeled.labeled_chunks()
        return exchange.export_labels(chunks, self.schema, Path(path), progress, raw=raw)

    def export_history(
        self,
        path: PathLike,
        *,
        progress: Callable[[int], None] | None = None,
        raw: bool = False,
    ) -> int:
        """Write every label entry of every commit up to this version to ``.csv``, ``.jsonl``
        or ``.parquet`` (CSV cells escaped as in :meth:`export_labels` unless ``raw``)."""
        return exchange.export_history(self.history(), self.schema, Path(path), progress, raw=raw)

    # -- scores ----------------------------------------------------------------

    def top_k(
        self,
        name: str,
        k: int,
        *,
        largest: bool = True,
        allow_partial: bool = False,
        annotator: str | None = None,
        skip_claimed: bool = True,
        reduce: scoring.Reduce | None = None,
    ) -> scoring.TopK:
        """The ``k`` best items of scoring ``name`` unlabeled at this version, streaming.

        Parameters
        ----------
        name, k
            The scoring, and how many items.
        largest
            Best means largest (else smallest) score, or reduction of a row.
        allow_partial
            Rank the chunks scored so far instead of refusing an unfinished run.
        annotator, skip_claimed
            Items under a live claim (:meth:`Store.claim_next`) are passed over
            unless ``skip_claimed`` is false, except those of ``annotator``'s own claims.
        reduce
            For a run of several values per row (class probabilities,
            embeddings), what ranks a row: ``"margin"`` (largest value less the
            second largest; pass ``largest=False`` for margin sampling),
            ``"entropy"``, ``"max"`` (``largest=False``: least confident), or a
            callable taking a ``(rows, columns)`` array to ``(rows,)``. A run of
            one score per row takes none.

        Returns
        -------
        TopK
            ``dataset_indices``, ``scores`` (the reductions, for a run of
            several values per row) and ``version``, best first; ties go to
            the lower dataset index. Memory is ``O(k + 8 * chunk_rows x columns
            + claimed items)`` whatever ``N`` is.

        Raises
        ------
        InvalidInputError
            No such scoring, chunks not scored yet (unless ``allow_partial``),
            or ``reduce`` missing for a run of several values per row (or given
            for one of one), or not a known reduction.
        """
        snap = self._snap()
        held = self._campaign.held(snap, except_annotator=annotator) if skip_claimed else None
        return scoring.top_k(
            self._engine,
            snap,
            name,
            k,
            largest=largest,
            allow_partial=allow_partial,
            exclude=held,
            reduce=reduce,
        )

    def scoring_progress(self, name: str) -> tuple[int, int]:
        """``(chunks done, chunks in all)`` of scoring ``name``."""
        self._engine.check_open()
        return scoring.progress(self._engine, name)

    def selection(self, name: str) -> scoring.Selection:
        """The picks of the named selection ``name`` (:meth:`Store.select`) made durable so far.

        All of them once it finished; fewer while it runs or after it was killed.

        Raises
        ------
        InvalidInputError
            No selection of that name.
        """
        self._engine.check_open()
        return scoring.read_selection(self._engine, name)

    def load_scores(self, name: str) -> np.ndarray:
        """All ``N`` scores of scoring ``name`` in memory (materialises ``N`` values,
        or ``N x columns`` for a run of several values per row).

        NaN where an item has no score: it was labeled when its chunk was
        scored, or its chunk is not scored yet. For the best items use the
        streaming :meth:`Store.top_k` instead.
        """
        self._engine.check_open()
        return scoring.load_scores(self._engine, name)

    # -- the campaign at this version --------------------------------------------

    def metrics(self) -> list[dict[str, Any]]:
        """Every metrics record logged up to this version, oldest first (see :meth:`Store.log_metrics`)."""
        self._engine.check_open()
        return self._campaign.metrics(last=self.version)

    def annotations(self, dataset_indices: object) -> list[list[Annotation]]:
        """Every annotation of each item at this version, oldest first.

        The newest version's table is read from the journal once per open and
        then kept up to date; a past version's is replayed from the start.

        Raises
        ------
        InvalidInputError
            The store keeps one label per item (``annotations_per_item=1``).
        """
        self._engine.check_open()
        return self._campaign.annotations(self._snap(), dataset_indices)

    def disputed(self) -> IndexArray:
        """Items with all their annotations and no majority: they wait for :meth:`Store.resolve`."""
        self._engine.check_open()
        return self._campaign.disputed(self._snap())

    def agreement(self) -> dict[str, Any]:
        """Inter-annotator agreement over the items with two or more annotations.

        Needs the ``agreement`` extra. Cohen's kappa when two annotators gave
        all the annotations, Fleiss' kappa when more did; Krippendorff's alpha
        (nominal) either way.

        Returns
        -------
        dict
            ``method`` (``"cohen"`` or ``"fleiss"``), ``kappa``, ``alpha``,
            ``items``, ``annotators``, ``per_class`` (class name to kappa),
            ``per_round`` (round to ``{"kappa", "items", "method", "ac1", "ac2"}``, by
            the round of an item's first annotation), and Gwet's ``ac1``, ``ac2``
            (quadratic weights over the classes' order, for ordinal classes) and
            ``ac1_per_class``, which stay meaningful where one class dominates and
            the kappas fall toward 0. Undefined figures are NaN.

        Raises
        ------
        InvalidInputError
            One label per item, no item with two annotations yet, or the
            extra is missing.
        """
        self._engine.check_open()
        return self._campaign.agreement(self._snap())

    def consensus(self, method: str = "one-coin", *, which: str = "disputed") -> Consensus:
        """A consensus model's labels for the disputed items (the ``quality`` extra).

        ``"dawid-skene"`` estimates each annotator's confusion matrix from every
        annotation the store holds and gives each item the class of highest
        posterior; ``"one-coin"`` gives each annotator one skill instead (fewer
        parameters: better when mistakes fall on any class alike, or annotators
        have few annotations; the default: on scikit-learn's digits with five
        simulated annotators of 2-30 % mistakes, three per item, it gets 43 of 63
        disputed items right, the full model 32, the first annotation 43 and the
        vote 23); ``"majority"`` is the plain vote. Nothing is written: a
        reviewer commits the proposals they accept with :meth:`Store.resolve`
        (naming themselves and the method), so that the history says who
        decided each label and how.

        Parameters
        ----------
        method
            ``"dawid-skene"``, ``"one-coin"`` or ``"majority"``.
        which
            ``"disputed"`` (items with all their annotations and no majority) or
            ``"all"`` (every annotated item, decided or not).

        Returns
        -------
        Consensus
            ``dataset_indices``, ``labels`` (class names where the store has
            classes), ``confidence`` (the posterior of each label) and ``method``.

        Examples
        --------
        ::

            proposal = store.consensus()
            sure = proposal.confidence > 0.9
            store.resolve(proposal.dataset_indices[sure], proposal.labels[sure],
                          annotator="alice (one-coin Dawid-Skene)")
        """
        self._engine.check_open()
        return self._campaign.consensus(self._snap(), method, which)

    def annotator_quality(self, method: str = "one-coin") -> dict[str, dict[str, float | int]]:
        """Each annotator's ``items``, estimated ``accuracy`` and ``agreement`` with the
        consensus (the ``quality`` extra).

        With ``"dawid-skene"``, ``accuracy`` is the chance that the annotator gives
        an item's true class, from their estimated confusion matrix and the
        classes' priors; with ``"one-coin"`` it is their estimated skill; with
        ``"majority"`` it is their agreement with the vote.
        """
        self._engine.check_open()
        return self._campaign.annotator_quality(self._snap(), method)

    def simulate(
        self,
        strategy: str | Callable[[Any, np.ndarray, int], np.ndarray],
        *,
        fit: Callable[[np.ndarray, np.ndarray], Any],
        evaluate: Callable[[Any], object],
        seed: int = 0,
    ) -> Simulation:
        """What ``strategy`` would have given on this campaign's labels (history as the oracle).

        The items labeled at this version are the pool and their labels the
        answers. Starting from the first round's labels, every later round (in
        round order, integer tags) gets the budget the campaign spent in it,
        picked by ``strategy`` among the pool items not picked yet; after each
        round ``fit(rows, labels)`` trains a model and ``evaluate(model)`` scores it.

        Parameters
        ----------
        strategy
            ``"campaign"`` (the rounds' own labels: the real curve, measured the
            same way), ``"random"``, ``"margin"``, ``"entropy"`` or
            ``"least-confident"`` (by the model's ``predict_proba``), or
            ``pick(model, candidate_rows, k) -> positions``.
        fit, evaluate
            ``fit(rows, labels) -> model``; ``evaluate(model)`` returns a number
            or ``{name: number}`` (e.g. accuracy on a held-out set).
        seed
            For ``"random"``.

        Returns
        -------
        Simulation
            ``strategy``, ``rounds``, ``labels`` (per round), ``values`` and
            ``picks``. :meth:`Store.log_simulation` records it for the report.

        Notes
        -----
        Reads the features of the labeled items (materialises ``labeled x d``).
        """
        self._engine.check_open()
        if not self._source.has_rows:
            raise InvalidInputError(
                "an index-only store has no features to fit a model on: simulate needs rows"
            )
        snap = self._snap()
        last = len(snap.chunk_sizes) - 1
        pool = snap.members_between(0, last, of_labeled=True)
        rounds = []
        for summary in sorted(
            (r for r in self.rounds() if r.round is not None), key=lambda r: int(r.round or 0)
        ):
            then = self._engine.snapshot_at(summary.last_version)
            rounds.append((int(summary.round or 0), then.members_between(0, last, of_labeled=True)))
        return simulate(
            strategy,
            rounds,
            pool,
            self._source.read_sorted(pool),
            snap.labels_at(pool),
            fit,
            evaluate,
            seed,
        )

    def replay(self, round: int) -> Replay:
        """Check that ``round`` labeled the picks of the strategy it recorded.

        The round's strategy is its newest :meth:`Store.log_metrics` record with a
        ``strategy``: ``"top_k"`` with ``score_run``, ``k`` and optionally
        ``largest`` (1 or 0), logged before the picks were labeled. The replay asks
        ``top_k`` again of the store as it was at that record's version (claims
        aside) and compares with the items the round labeled (added, in a store
        of one label per item; annotated, in one of several).

        Returns
        -------
        Replay
            ``expected``, ``labeled``, ``missing``, ``extra`` and ``matches``.

        Raises
        ------
        InvalidInputError
            The round recorded no strategy, or one this version cannot replay.
        """
        self._engine.check_open()
        if not isinstance(round, int | np.integer) or isinstance(round, bool):
            raise InvalidInputError(f"round must be an int, got {round!r}")
        record = strategy_of(self.metrics(), int(round))
        then = StoreVersion(
            self._engine,
            self._source,
            self._campaign,
            self._engine.snapshot_at(int(record["version"])),
        )
        picks = then.top_k(
            record["score_run"],
            record["k"],
            largest=bool(record.get("largest", 1)),
            skip_claimed=False,
            reduce=record.get("reduce"),
        ).dataset_indices
        labeled: list[int] = []
        for event in self.history(round=round, kinds=("add",)):
            rows = event.annotations
            labeled += (
                rows.dataset_indices if rows is not None else event.dataset_indices
            ).tolist()
        ordered = np.asarray(list(dict.fromkeys(labeled)), np.int64)
        return Replay.compare(int(round), record, picks, ordered)

    def disagreements(self, k: int) -> tuple[IndexArray, np.ndarray]:
        """The ``k`` items whose annotators disagree most, at this version.

        An item's disagreement is the share of its pairs of annotations that differ
        (0 when all agree, 1 when no two do); ties go to the item with more
        annotations, then the lower index. Items with fewer than two annotations
        are left out.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            Dataset indices (int64), most disagreement first, and their shares.

        Raises
        ------
        InvalidInputError
            One label per item, or ``k`` not an int >= 0.
        """
        self._engine.check_open()
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 0:
            raise InvalidInputError(f"k must be an int >= 0, got {k!r}")
        return self._campaign.disagreements(self._snap(), int(k))

    def export_tasks(
        self,
        path: PathLike,
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
            the tools keep in their exports: :meth:`Store.import_labels` reads it back.
        """
        self._engine.check_open()
        fmt = exchange.check_format(format)
        idx = parse_indices(dataset_indices, name="dataset_indices", upper=self._engine.n_items)
        return exchange.write_tasks(Path(path), idx.tolist(), fmt, data)

    def labelstudio_config(
        self, *, field: str = "text", show: str = "Text", classes: Sequence[object] | None = None
    ) -> str:
        """A Label Studio labeling config (the ``<View>`` XML) for the store's classes.

        Paste it into the project's Settings, Labeling Interface (Code), or pass
        it as ``label_config`` when the project is made through the API. Tasks
        written by :meth:`export_tasks` with ``data(i) -> {field: ...}`` show in
        it, and every export format of the project imports back.

        Parameters
        ----------
        field
            The display field of the tasks to show (``"text"``, ``"image"``, ...).
        show
            The Label Studio object tag that shows it: ``"Text"``, ``"Image"``,
            ``"HyperText"``, ``"Audio"``, ...
        classes
            The choices; default: the store's class names. A store without class
            names needs them given (the values its labels take).

        Returns
        -------
        str
            The XML.
        """
        names = classes if classes is not None else self.schema.classes or ()
        return exchange.labelstudio_config(list(names), field, show)

    def plot_progress(self, path: PathLike) -> Path:
        """Plot the campaign to a PNG (``plot`` extra): learning curve, labels per annotator, class balance.

        The learning curve shows each numeric metric of :meth:`metrics` against
        the number of labels when it was logged; labels per annotator are
        drawn over calendar dates (annotations, on a store with several per
        item); class balance is per round, in numeric order, no round last.
        """
        return plot_progress(self.history(), self.schema, Path(path), self.metrics())

    def report(self, path: PathLike) -> Path:
        """Write a one-page HTML summary: counts, the plots, agreement figures and metrics.

        Needs the ``plot`` extra (and ``agreement`` for the agreement figures
        of a store with several annotations per item).
        """
        self._engine.check_open()
        return write_report(Path(path), report_data(self._campaign, self._snap(), self.location))

    def class_names(self, codes: object) -> np.ndarray:
        """Class names of label codes (stores created with ``classes`` only).

        Examples
        --------
        >>> import numpy as np, tempfile, alma_store
        >>> with alma_store.create(tempfile.mkdtemp() + "/s", np.zeros((4, 1)),
        ...                        classes=["cat", "dog"]) as store:
        ...     _ = store.add_labels([(0, "dog"), (1, "cat")])
        ...     store.labels, store.class_names(store.labels)
        (array([1, 0]), array(['dog', 'cat'], dtype=object))
        """
        return self.schema.class_names(codes)

    def __repr__(self) -> str:
        return f"<alma_store.StoreVersion {str(self.path)!r} version={self.version}>"


def open_for_worker(location: Location, version: int) -> StoreVersion:
    """The store at ``location`` as of ``version``, read-only, for a worker task.

    The store is opened once per process (:func:`alma_store.engine.worker_engine`)
    and shared by every task of it; nothing needs closing.
    """
    engine, source = worker_engine(location)
    campaign = Campaign(engine, Writer(engine), engine.meta.schema)
    return StoreVersion(engine, source, campaign, engine.snapshot_at(version))
