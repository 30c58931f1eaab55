"""The persistent active-learning store: the facade (see ``docs/architecture.md``).

A :class:`Store`'s methods parse their arguments and make one call to the layer
that owns the work: the commit protocol of :mod:`alma_store.engine` for every
write, the :class:`~alma_store.campaign.Campaign` for claims, metrics and
annotations, :mod:`alma_store.scoring` for score runs. Its reads are those of
:class:`~alma_store.StoreVersion` at the newest version.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

from . import engine, scoring
from ._store_version import StoreVersion
from .campaign import Campaign, Claim, Simulation, import_labels
from .core import IndexArray, PathLike, Provenance, parse_indices, split_batch
from .engine import DEFAULT_CHECKPOINT_ROWS, Writer, open_engine
from .errors import InvalidInputError
from .storage import Location

__all__ = ["Store"]


class Store(StoreVersion):
    """A persistent labeled/unlabeled split of a dataset. Use :func:`create` or :func:`open`.

    Its reads (``version``, ``labeled``, ``unlabeled``, ``labels``, ...) are
    those of :class:`StoreVersion` at the newest version. A ``Store`` is a
    context manager; leaving the block closes it. One object may be used from
    several threads; several processes may open the same store and label it at
    the same time.
    """

    def __init__(
        self,
        location: Location,
        *,
        mode: str = "r+",
        lock_timeout: float = 60.0,
        checkpoint_rows: int = DEFAULT_CHECKPOINT_ROWS,
    ) -> None:
        writable = mode == "r+"
        store_engine, source = open_engine(
            location, writable=writable, checkpoint_rows=checkpoint_rows, lock_timeout=lock_timeout
        )
        self._writer = Writer(store_engine)
        campaign = Campaign(store_engine, self._writer, store_engine.meta.schema)
        super().__init__(store_engine, source, campaign)
        self.mode = mode
        """``"r+"`` (read and write) or ``"r"`` (read only)."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as (location, mode, lock timeout): unpickling opens the store again where
        it lands, in the same mode, as a new handle of that process (close it there).
        Storage options travel with it, in memory."""
        return (_reopen, (self._engine.location, self.mode, self._engine.lock_timeout))

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
            version = engine.version_of_round(self._engine, round)
        if not isinstance(version, int | np.integer) or isinstance(version, bool):
            raise InvalidInputError(f"version must be an int, got {version!r}")
        snap = self._engine.snapshot_at(int(version))
        return StoreVersion(self._engine, self._source, self._campaign, snap)

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
        as in ALMa, or ``add_labels(indices, values)`` with arrays. On a store
        with several annotations per item, each label is an annotation by
        ``annotator`` (see :func:`create`).

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
        nothing. When the call returns, the batch is on disk (fsynced). The
        commit is :mod:`alma_store.engine._commit`'s, from the lock to the fsync.
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
        provenance = Provenance.parse(annotator, round, expected_version)
        return self._campaign.label(idx, vals_arr, provenance, relative_to)

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

        ``values`` are the new labels of the labeled ``dataset_indices``,
        ``(n, *label_shape)``; ``annotator``, ``round`` and ``expected_version``
        are as for :meth:`add_labels`. Returns the dataset indices relabeled.

        Raises
        ------
        NotLabeledError
            An index is not labeled (label it with :meth:`add_labels`).
        InvalidIndexError, InvalidInputError, StaleIndexError, ReadOnlyError
            As for :meth:`add_labels`; nothing is written.
        """
        self._engine.check_writable()
        idx, vals = self._parse_batch(dataset_indices, values)
        provenance = Provenance.parse(annotator, round, expected_version)
        return self._writer.relabel(idx, vals, provenance)

    def _parse_batch(self, dataset_indices: object, values: object) -> tuple[IndexArray, Any]:
        """Dataset indices in range and their labels, checked (corrections, verdicts)."""
        raw, vals = split_batch(dataset_indices, values, names=("dataset_indices", "values"))
        idx = parse_indices(raw, name="dataset_indices", upper=len(self))
        return idx, self.schema.parse_values(vals, len(idx))

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
        provenance = Provenance.parse(annotator, round, expected_version)
        idx = parse_indices(dataset_indices, name="dataset_indices", upper=len(self))
        return self._writer.remove(idx, provenance)

    def resolve(
        self,
        dataset_indices: object,
        values: object,
        *,
        annotator: str,
        round: int | None = None,
        expected_version: int | None = None,
    ) -> IndexArray:
        """Label disputed items with a reviewer's verdict (the journal records it as theirs).

        An item is disputed when it has all its ``annotations_per_item``
        annotations and no label has more than half of them (:meth:`disputed`
        lists them). ``annotator`` is the reviewer; ``round`` and
        ``expected_version`` are as for :meth:`add_labels`. Returns the
        dataset indices labeled.

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
        idx, vals = self._parse_batch(dataset_indices, values)
        provenance = Provenance.parse(annotator, round, expected_version)
        return self._campaign.resolve(idx, vals, provenance)

    def import_labels(
        self,
        path: PathLike | Sequence[object],
        *,
        format: Literal["label-studio", "prodigy", "doccano"] | None = None,
        annotator: str | None = None,
        round: int | None = None,
        expected_version: int | None = None,
        progress: Callable[[int], None] | None = None,
        on_change: Literal["error", "relabel"] = "error",
        annotators: Mapping[object, str] | None = None,
    ) -> IndexArray:
        """Add the labels of a file as one atomic commit.

        Parameters
        ----------
        path
            Without ``format``: a ``.csv``, ``.jsonl`` or ``.parquet`` file of
            ``dataset_index,label`` rows (a header in CSV; objects with those
            keys in JSON Lines; columns in Parquet). With ``format``: an
            annotation tool's export of tasks written by :meth:`export_tasks`,
            or those tasks as Python objects (a list of Label Studio tasks as its
            API returns them, of Prodigy or doccano records).
        format
            ``"label-studio"`` (its JSON, JSON-MIN or CSV export, told apart by
            their content), ``"prodigy"`` (``prodigy db-out``) or ``"doccano"``
            (one annotator's JSON Lines export): each label keeps the annotator
            and time the tool recorded; skipped and rejected answers are left
            out (see :mod:`alma_store.exchange._tools`).
        annotator
            For plain files and doccano exports: the annotator of every row.
        round, expected_version, progress
            As for :meth:`add_labels`; ``progress`` is called with the number
            of rows read (plain files).
        on_change
            Tool exports are imported incrementally: an annotation the store
            holds as it is is skipped (exports are cumulative; importing one
            twice writes nothing the second time), and one whose item the store
            holds with another value is a conflict. ``"error"``: refused, naming
            the task and both values, nothing written. ``"relabel"`` (one label
            per item): a second commit relabels those items, the history keeping
            both values.
        annotators
            Names for the tools' user ids: Label Studio's exports name annotators
            by id (``"completed_by": 2``), e.g. ``{1: "alice@lab.org", 2: "bob"}``
            (ids as ints or strs). Label Studio's snapshot export with
            ``"serialization_options": {"annotations__completed_by": {"only_id":
            false}}`` names them by email itself. Ids not in the map stay ids.

        Returns
        -------
        numpy.ndarray
            The dataset indices labeled (annotated, on a store with several
            annotations per item). For a tool export it also carries
            ``.relabeled`` (dataset indices) and ``.skipped`` (rows already in the
            store).

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
        provenance = Provenance.parse(annotator, round, expected_version)
        if on_change not in ("error", "relabel"):
            raise InvalidInputError(f"on_change must be 'error' or 'relabel', got {on_change!r}")
        source = Path(path) if isinstance(path, str | os.PathLike) else path
        if not isinstance(source, Path) and (
            isinstance(source, bytes | dict) or not isinstance(source, Sequence)
        ):
            raise InvalidInputError(
                f"path must be a file or a list of a tool's tasks, got a {type(path).__name__}"
            )
        return import_labels(
            self._campaign, source, format, provenance, progress, on_change, annotators
        )

    def checkpoint(self) -> None:
        """Fold the journal tail into the chunk files now (it also happens automatically).

        On a store of an older format version this also upgrades it.
        """
        with self._engine.write_lock():
            self._engine.refresh(writer=True)
            self._engine.checkpoint()

    upgrade = checkpoint

    def score(
        self,
        fn: Callable[[np.ndarray], Any],
        name: str,
        *,
        batch_rows: int = 4096,
        shard: tuple[int, int] | str = (0, 1),
        step_seconds: float = scoring.DEFAULT_STEP_SECONDS,
        progress: Callable[[int], None] | None = None,
        plan: Callable[[int, int], None] | None = None,
        columns: int | None = None,
        labeled: bool = False,
    ) -> int:
        """Score the Unlabeled rows chunk by chunk into ``scores/<name>``, resumably.

        Parameters
        ----------
        fn
            ``fn(rows) -> scores``: one number per row, shape ``(rows,)``, or
            with ``columns``, shape ``(rows, columns)``. Called with at most
            ``batch_rows`` rows at a time (a reused buffer: ``fn`` must not keep it).
        name
            Name of the scoring (letters, digits, ``_-.``).
        shard
            ``(i, n)`` or ``"i/n"``: score only chunks ``j`` with ``j % n == i``
            (e.g. ``(SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT)``).
        step_seconds
            Scored chunks are made durable together, one step file (two fsyncs)
            per ``step_seconds`` of work (or 8 MiB of scores), written in the
            background while the next step is scored. A killed job redoes at
            most its last step. ``0`` makes every chunk its own step.
        progress, plan
            ``progress(rows)`` is called with the unlabeled rows of each chunk
            scored (e.g. ``tqdm(...).update``); ``plan(chunks, rows)`` once,
            before scoring, with this call's totals (a progress bar's).
        columns
            ``None`` (one score per row), or the number of values ``fn`` gives
            per row: class probabilities or an embedding. The run records it
            (scoring layout 3); rank it with ``top_k(..., reduce=)``, and score
            it again under the same name with the same ``columns``.
        labeled
            Score the labeled rows too: an embedding of every item, whose
            labeled rows are the centers :meth:`select` starts from. ``top_k``
            still ranks only unlabeled items.

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
        return scoring.score(
            self._engine,
            self._source,
            fn,
            name,
            batch_rows=batch_rows,
            shard=shard,
            step_seconds=step_seconds,
            progress=progress,
            plan=plan,
            columns=columns,
            labeled=labeled,
        )

    @property
    def clock(self) -> Callable[[], float]:
        """The clock claims expire by; set it to a fake one in tests.

        ``time.time`` for a store in a directory of its own; for a shared store,
        the storage's clock (read from it once a minute), which every host agrees on.
        """
        return self._campaign.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        if not callable(clock):
            raise InvalidInputError(f"clock must be callable, got {clock!r}")
        self._campaign.clock = clock

    def claim_next(
        self,
        k: int,
        *,
        annotator: str,
        ttl: float,
        scores: str | None = None,
        largest: bool = True,
        reduce: scoring.Reduce | None = None,
    ) -> Claim:
        """Claim the best ``k`` unlabeled items no live claim holds, for ``annotator``.

        Atomic across processes: two concurrent callers never get the same
        item. The claim is durable when this returns. Fewer items are claimed
        when fewer are left (none: an empty claim, and nothing is recorded).
        ``ttl`` is the seconds until the claim lapses unless its items are
        labeled. With ``scores`` (a complete scoring) the ``k`` best by it
        (``largest`` first; ``reduce`` ranks a run of several values per row,
        as in :meth:`top_k`), else the first ``k`` in dataset order.

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
        ``expires``. Claims never refuse a label: a lapsed claim's labels still
        count, unless the item was labeled meanwhile (:class:`AlreadyLabeledError`).
        """
        self._engine.check_writable()
        return self._campaign.claim_next(k, annotator, ttl, scores, largest, reduce)

    def select(
        self,
        k: int,
        *,
        method: str = "kcenter",
        embeddings: str | None = None,
        scores: str | None = None,
        candidates: int | None = None,
        reduce: scoring.Reduce | None = None,
        largest: bool = True,
        name: str | None = None,
        seed: int = 0,
        nn: str = "numpy",
        annotator: str | None = None,
        skip_claimed: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> scoring.Selection:
        """``k`` unlabeled items far from the labeled ones and from each other, streaming.

        k-center greedy (the core-set method): each pick is the pool item
        farthest (Euclidean) from its nearest center, the centers being the
        labeled items and the picks so far. Each pick is one pass over the pool,
        chunk by chunk, so ``k`` picks read the embedding ``k`` times.

        Parameters
        ----------
        k
            How many items (fewer when the pool is smaller).
        method
            ``"kcenter"`` (the farthest item), or ``"kmeans++"``: an item drawn
            with probability proportional to its squared distance (k-means++
            seeding, as BADGE does on gradient embeddings), reproducibly from
            ``seed``.
        embeddings
            ``None`` for the store's features (rows of shape ``(d,)``), or the
            name of a complete scoring of several values per row that includes
            the labeled rows (``score(fn, name, columns=d, labeled=True)``).
        scores, candidates
            Uncertainty, then diversity: the pool is the ``candidates`` best
            items by the scoring ``scores`` (``largest``, ``reduce`` as in
            :meth:`top_k`), and the picks are diverse among them. Without them the
            pool is every unlabeled item.
        name
            Make the selection durable and resumable under
            ``selections/<name>/``: a rerun with the same arguments resumes
            from the last pick a killed run made durable, and returns the same
            picks (a finished one returns them at once). It stays at the store
            version and the claims of its first run.
        nn
            How the first pass finds each item's nearest labeled item:
            ``"numpy"`` (BLAS in float64, exact) or ``"faiss"`` (faiss's exact
            search in float32, the ``faiss`` extra: 1.2-1.8x numpy in float32
            and 3-4x float64 on one core, ``tools/bench_select.py``; distances
            rounded to float32, so near-ties may go the other way).
        annotator, skip_claimed
            Items under another annotator's live claim are not in the pool
            (unless ``skip_claimed`` is false).
        progress
            ``progress(picks, k)`` after each pick (a progress bar's).

        Returns
        -------
        Selection
            ``dataset_indices`` in the order picked, ``radii`` (each pick's
            distance to its nearest center when picked; for k-center, the
            covering radius, which never increases) and ``version``. Label them
            with ``expected_version=selection.version``, or hold them with
            :meth:`claim`.

        Raises
        ------
        InvalidInputError
            Bad arguments; features that are not rows of numbers (or an
            index-only store) without ``embeddings``; an embedding run of one
            value per row, unfinished, or without the labeled rows; a named
            selection resumed with other arguments.
        CorruptStoreError
            A named selection's files are damaged.

        Notes
        -----
        Memory: the labeled items' embeddings (``labeled x d`` float64) and a
        chunk of the pool at a time; each pool item's distance to its nearest
        center (8 bytes per item) lives in a temporary file mapped into
        memory, i.e. in the page cache. With ``candidates``, their embeddings
        (``candidates x d``) are held instead. Time: the first pass measures
        every pool item against every labeled item (``pool x labeled x d``
        multiply-adds, exact brute force; ``nn="faiss"`` does it 3-4x faster),
        each later pass ``pool x d``; with many labeled items, select among
        ``candidates``.
        """
        if name is not None:
            self._engine.check_writable()
        snap = self._snap()
        held = (
            self._campaign.held(snap, except_annotator=annotator)
            if skip_claimed
            else np.empty(0, np.int64)
        )
        return scoring.select(
            self._engine,
            self._source,
            k,
            exclude=held,
            method=method,
            embeddings=embeddings,
            scores=scores,
            candidates=candidates,
            reduce=reduce,
            largest=largest,
            name=name,
            seed=seed,
            nn=nn,
            progress=progress,
        )

    def log_simulation(self, simulation: Simulation) -> None:
        """Record a :meth:`simulate` curve as metrics records, one per round.

        Each record has ``simulation`` (the strategy), ``simulated_labels`` and the
        evaluated values; :meth:`plot_progress` and :meth:`report` draw it dashed
        next to the campaign's own learning curve.
        """
        if not isinstance(simulation, Simulation):
            raise InvalidInputError(f"log_simulation takes a Simulation, got {simulation!r}")
        for r, n, values in zip(
            simulation.rounds, simulation.labels, simulation.values, strict=True
        ):
            self.log_metrics(round=r, simulation=simulation.strategy, simulated_labels=n, **values)

    def require_annotations(self, k: object, dataset_indices: object | None = None) -> None:
        """Set how many annotations items need: variable overlap, by any policy.

        Items get ``annotations_per_item`` annotations unless told otherwise here.
        Route hard items to several annotators and easy ones to one: ``claim_next``
        sends an item to as many different annotators as it needs, and its last
        annotation decides it (by majority; else it is disputed).

        Parameters
        ----------
        k
            An int >= 1, or one per item of ``dataset_indices`` (what a policy
            computed, e.g. ``np.where(margin < 0.2, 3, 1)``).
        dataset_indices
            The items; ``None`` sets the requirement of every item without one
            of its own (the campaign's default from now on).

        Raises
        ------
        InvalidInputError
            A store of one label per item; a bad ``k``; an item with as many
            annotations as the new requirement already (and no label).
        AlreadyLabeledError
            An item is labeled already (nothing to require of it).

        Notes
        -----
        Durable on return, as a record of the campaign log that every process
        reads (alma_store 0.3; see the format page). Send disputed items back for
        one more annotation with ``require_annotations(k + 1, store.disputed())``.
        """
        self._engine.check_writable()
        self._campaign.require(k, dataset_indices)

    def required_annotations(self, dataset_indices: object) -> IndexArray:
        """How many annotations each of ``dataset_indices`` needs now (see
        :meth:`require_annotations`)."""
        self._engine.check_open()
        idx = parse_indices(dataset_indices, name="dataset_indices", upper=len(self))
        self._campaign.catch_up()
        return np.fromiter((self._campaign.required(i) for i in idx.tolist()), np.int64, len(idx))

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
        """Release a claim (or its id) before it lapses; ``False`` if it had ended already.

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
        return self._campaign.live(self._snap())

    def claim_left(self, claim: Claim | str) -> IndexArray:
        """The items a live claim still holds, best first: unlabeled, and with several
        annotations per item, not annotated by its annotator yet (empty once it ended)."""
        self._engine.check_open()
        return self._campaign.left(self._snap(), claim)

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
        return self._campaign.log_metrics(round, metrics)

    def verify(self, *, progress: Callable[[int], None] | None = None) -> dict[str, int]:
        """Replay the whole journal and check the mask, labels and counts agree with it.

        Reads every journal record, every chunk that holds a label and the whole
        campaign log; memory is ``O(num_labeled)``. Returns a summary (``version``,
        ``num_labeled``, ``records``, ``chunks_checked``, ``campaign_records``).

        Raises
        ------
        CorruptStoreError
            The journal or the campaign log is damaged, or the chunk files
            disagree with the journal.
        """
        summary = engine.verify(self._engine, progress)
        return {**summary, "campaign_records": self._campaign.check_log()}

    def close(self, *, checkpoint: bool = True) -> None:
        """Release the store's files; a writer first checkpoints its journal tail.

        The checkpoint is skipped when another writer holds the lock (it will
        checkpoint itself) or when ``checkpoint`` is false: the next opener
        replays the tail. If it fails (a full disk), the files are released
        all the same and the error is raised.
        """
        if not self._engine.closed:
            try:
                self._writer.close(checkpoint=checkpoint)
            finally:
                self._source.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        closed = self._engine.closed
        state = "closed" if closed else f"version={self.version}, labeled={self.num_labeled}"
        return f"<alma_store.Store {str(self.path)!r} N={len(self)} {state} mode={self.mode!r}>"


def _reopen(location: Location, mode: str, lock_timeout: float) -> Store:
    """A store unpickled: opened again at its location, in its mode."""
    return Store(location, mode=mode, lock_timeout=lock_timeout)
