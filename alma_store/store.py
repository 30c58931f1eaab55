"""The persistent active-learning store.

A store is a directory::

    meta.json         geometry, label dtype, feature source and its fingerprint
    journal.bin       append-only, fsynced label journal: the source of truth
    checkpoint.bin    version and per-chunk labeled counts the Zarr arrays hold
    marks-<c>.bin     every chunk's sorted labeled offsets at checkpoint c (memory-mapped)
    state/            Zarr group: labeled mask and labels (see alma_store._state)
    features/         a Zarr copy of the features, only when given in memory
    lock              the writer lock file

Write path (:meth:`Store.add_labels`), under the writer lock: read the journal
tail that other processes appended, validate the whole batch against that
state, append one record and ``fdatasync`` it, then return. The Zarr arrays are
brought up to date later, in batches, by :meth:`Store.checkpoint` (automatic
every ``CHECKPOINT_ROWS`` labels and when a writer closes); until then readers
combine them with the journal tail. A crash at any point therefore loses
nothing acknowledged, and the next reader sees every acknowledged batch whole
and no unacknowledged one.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, Self

import filelock
import numpy as np

from . import _state
from ._history import RoundSummary, StoreAt, check_filters, filter_event, unlabeled_positions
from ._labels import (
    encode_classes,
    parse_label_dtype,
    parse_label_values,
    parse_provenance,
    split_batch,
)
from ._overlay import NO_UNDO, Overlay, chunk_labels
from ._scoring import TopK
from ._snapshot import MarksIndex, Snapshot
from ._types import IndexArray, PathLike
from .errors import (
    AlreadyLabeledError,
    CorruptStoreError,
    InvalidInputError,
    LockTimeoutError,
    NotLabeledError,
    ReadOnlyError,
    StaleIndexError,
    StoreNotFoundError,
)
from .features import FeatureSource, open_source
from .index import parse_indices
from .journal import FILE_HEADER_SIZE, Journal, LabelEvent
from .views import LabeledMask, LabeledView, UnlabeledView

__all__ = ["CHECKPOINT_ROWS", "Store", "open", "open_store"]

FORMAT_VERSION = 1
CHECKPOINT_ROWS = 65536
"""Journal entries after which a writer folds the tail into the Zarr arrays."""


def open_store(
    path: PathLike, mode: Literal["r", "r+"] = "r+", *, lock_timeout: float = 60.0
) -> Store:
    """Open an existing store.

    Cost is ``O(number of chunks)`` plus the journal tail since the last
    checkpoint; the dataset, the mask and the labels are not read.

    Parameters
    ----------
    path
        The store directory.
    mode
        ``"r+"`` to read and label, ``"r"`` to read only (no lock file is touched).
    lock_timeout
        Seconds a write waits for the writer lock before :class:`LockTimeoutError`.

    Raises
    ------
    StoreNotFoundError
        No store at ``path``.
    CorruptStoreError
        A store file is damaged or truncated.
    SourceMissingError, SourceChangedError
        The feature source is gone or differs from the one recorded at create.
    """
    return Store(Path(path), mode=mode, lock_timeout=lock_timeout)


class Store:
    """A persistent labeled/unlabeled split of a dataset. Use :func:`create` or :func:`open`.

    A ``Store`` is a context manager; leaving the block closes it. One object
    may be used from several threads; several processes may open the same
    store and label it at the same time.
    """

    def __init__(self, root: Path, *, mode: str = "r+", lock_timeout: float = 60.0) -> None:
        if mode not in ("r", "r+"):
            raise InvalidInputError(f"mode must be 'r' or 'r+', got {mode!r}")
        self.path = root
        self.mode = mode
        self._lock_timeout = lock_timeout
        self._closed = True
        meta_path = root / "meta.json"
        if not root.is_dir():
            raise StoreNotFoundError(f"no alma_store at {root}: the directory does not exist")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise StoreNotFoundError(f"no alma_store at {root}: meta.json is missing") from None
        except ValueError as exc:
            raise CorruptStoreError(f"{meta_path} is damaged: {exc}") from None
        if self.meta.get("format") != "alma_store":
            raise CorruptStoreError(f"{meta_path} does not describe an alma_store")
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise CorruptStoreError(
                f"{root} has format version {self.meta.get('format_version')}, "
                f"this alma_store reads version {FORMAT_VERSION}"
            )
        self._n = int(self.meta["n_items"])
        self.chunk_rows = int(self.meta["chunk_rows"])
        self.label_dtype = parse_label_dtype(self.meta["label_dtype"])
        self.label_shape = tuple(self.meta["label_shape"])
        classes = self.meta.get("classes")
        self.classes: tuple[str, ...] | None = None if classes is None else tuple(classes)
        """The class schema given at create (labels are codes into it), or None."""
        self._source = open_source(self.meta["features"], root)
        self._mutex = threading.RLock()
        self._lock = filelock.FileLock(root / "lock") if mode == "r+" else None
        try:
            self._journal = Journal(
                root / "journal.bin",
                bytes.fromhex(self.meta["uuid"]),
                self.label_dtype,
                self.label_shape,
                writable=mode == "r+",
            )
        except BaseException:
            self._source.close()
            raise
        self._arrays = _state.StateArrays(root, self._n, self.chunk_rows)
        self._ckpt_file = str(root / "checkpoint.bin")
        self._ckpt_stat: tuple[int, int] | None = None
        self._closed = False
        self._load_checkpoint()
        self._refresh()

    # -- journal tail --------------------------------------------------------

    def _load_checkpoint(self) -> None:
        """(Re)base the in-memory tail on the checkpoint file."""
        st = os.stat(self._ckpt_file)
        version, offset, counts = _state.read_checkpoint(self.path, -(-self._n // self.chunk_rows))
        self._ckpt_stat = (st.st_ino, st.st_mtime_ns)
        old_events = getattr(self, "_events", [])
        old_ends = getattr(self, "_ends", [])
        overlay = Overlay.empty(version, counts, self.label_dtype, self.label_shape)
        self._ckpt = (version, offset, counts)
        mapped = _state.open_marks(self.path, version, int(counts.sum()), len(counts))
        self._marks_index = None if mapped is None else MarksIndex(version, *mapped, counts)
        self._events: list[LabelEvent] = []
        self._ends: list[int] = []
        self._read_offset = offset
        for event, end in zip(old_events, old_ends, strict=True):
            if event.version > version:
                overlay = overlay.apply(event, self.chunk_rows)
                self._events.append(event)
                self._ends.append(end)
                self._read_offset = end
        self._overlay = overlay
        self._snapshot: Snapshot | None = None
        self._arrays.clear_cache()

    def _refresh(self, *, writer: bool = False) -> None:
        """Take in what other processes committed or checkpointed since we last looked."""
        with self._mutex:
            self._check_open()
            if self._journal.size() == self._read_offset:
                # No commit we have not seen, so no chunk on disk holds one: a checkpoint
                # another process may have written since changes nothing we rely on.
                return
            st = os.stat(self._ckpt_file)
            if (st.st_ino, st.st_mtime_ns) != self._ckpt_stat:
                self._load_checkpoint()
            records, end, torn = self._journal.read(self._read_offset, self._overlay.version + 1)
            for event, rec_end in records:
                self._overlay = self._overlay.apply(event, self.chunk_rows)
                self._events.append(event)
                self._ends.append(rec_end)
            self._read_offset = end
            if records:
                self._snapshot = None
            if torn and writer:
                self._journal.truncate(end)  # never acknowledged: its writer died mid-append

    def _events_after(self, version: int) -> list[LabelEvent] | None:
        """Every committed event newer than ``version``; None if older than the tail held."""
        with self._mutex:
            self._refresh()
            base = self._overlay.version - len(self._events)
            if version >= base:
                return self._events[version - base :]
            return None

    def _current(self) -> Snapshot:
        with self._mutex:
            self._refresh()
            if self._snapshot is None:
                offset = self._ends[-1] if self._ends else self._read_offset
                self._snapshot = Snapshot(self, self._overlay, offset, self._marks_index)
            return self._snapshot

    def _snapshot_at(self, version: int) -> Snapshot:
        """A snapshot at any committed version (the current one is cached)."""
        with self._mutex:
            current = self._current()
            if version == current.version:
                return current
            if not 0 <= version < current.version:
                raise InvalidInputError(
                    f"version must lie in [0, {current.version}] (the store's versions), "
                    f"got {version}"
                )
            base, base_offset, base_counts = self._ckpt
            overlay = Overlay.empty(base, base_counts, self.label_dtype, self.label_shape)
            if version >= base:
                for event in self._events[: version - base]:
                    overlay = overlay.apply(event, self.chunk_rows)
                offset = self._ends[version - base - 1] if version > base else base_offset
                return Snapshot(self, overlay, offset, self._marks_index)
            # Older than the checkpoint: take the events back out of its counts.
            counts = base_counts.copy()
            offset = FILE_HEADER_SIZE
            for event, end in self._journal.iter_records():
                if event.version <= version:
                    offset = end
                    continue
                if event.version > base:
                    break
                step = int(event.labeled_after) - int(event.labeled_before)
                if step:
                    np.add.at(counts, event.dataset_indices // self.chunk_rows, -step)
            empty = Overlay.empty(version, counts, self.label_dtype, self.label_shape)
            return Snapshot(self, empty, offset)

    def history(
        self,
        *,
        annotator: str | None = None,
        round: int | None = None,
        kinds: tuple[str, ...] | None = None,
        start: int | None = None,
        stop: int | None = None,
    ) -> Iterator[LabelEvent]:
        """Iterate the committed events, oldest first, streaming the journal.

        Every filter is optional; an event restricted to the dataset index range
        ``[start, stop)`` keeps only its entries in that range (and is skipped
        when none are left). Memory stays bounded by one read block of the
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
        check_filters(kinds, start, stop)
        current = self.version
        for event, _ in self._journal.iter_records():
            if event.version > current:
                return
            picked = filter_event(event, annotator, round, kinds, start, stop)
            if picked is not None:
                yield picked

    def rounds(self) -> list[RoundSummary]:
        """One summary per round tag, in order of first appearance (``None`` for untagged)."""
        summaries: dict[int | None, RoundSummary] = {}
        for event in self.history():
            previous = summaries.get(event.round)
            summaries[event.round] = RoundSummary.extend(previous, event)
        return list(summaries.values())

    def at(self, *, version: int | None = None, round: int | None = None) -> StoreAt:
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
            last = None
            for event in self.history(round=round):
                last = event.version
            if last is None:
                raise InvalidInputError(f"no commit of the store has round {round!r}")
            version = last
        if not isinstance(version, int | np.integer) or isinstance(version, bool):
            raise InvalidInputError(f"version must be an int, got {version!r}")
        return StoreAt(self, self._snapshot_at(int(version)))

    # -- basic properties ----------------------------------------------------

    def __len__(self) -> int:
        return self._n

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
        """Number of commits so far (0 for a new store); +1 per ``add_labels`` batch."""
        return self._current().version

    @property
    def num_labeled(self) -> int:
        """Number of labeled items now."""
        return self._current().num_labeled

    @property
    def num_unlabeled(self) -> int:
        """Number of unlabeled items now."""
        return self._n - self._current().num_labeled

    @property
    def labeled(self) -> LabeledView:
        """The Labeled view ``L``, a snapshot at the current version (nothing is copied)."""
        return LabeledView(self, self._current())

    @property
    def unlabeled(self) -> UnlabeledView:
        """The Unlabeled view ``U``, a snapshot at the current version (nothing is copied)."""
        return UnlabeledView(self, self._current())

    @property
    def labeled_mask(self) -> LabeledMask:
        """The labeled mask over dataset indices, lazy; ``np.asarray`` materialises it."""
        return LabeledMask(self._current())

    @property
    def labels(self) -> np.ndarray:
        """Labels of the labeled items in dataset order (materialised, size ``num_labeled``)."""
        return self.labeled.labels

    def to_unlabeled_position(self, dataset_indices: object) -> IndexArray:
        """Positions in the current Unlabeled view of unlabeled ``dataset_indices``.

        The inverse of ``store.unlabeled.to_dataset_index``.

        Raises
        ------
        InvalidIndexError
            An index is out of range or labeled (it has no unlabeled position).
        """
        return unlabeled_positions(self._current(), dataset_indices)

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
        self._check_writable()
        indices, vals = split_batch(labels, values)
        if relative_to not in ("unlabeled", "dataset"):
            raise InvalidInputError(
                f"relative_to must be 'unlabeled' or 'dataset', got {relative_to!r}"
            )
        provenance = parse_provenance(annotator, round, expected_version)
        name = "positions" if relative_to == "unlabeled" else "dataset_indices"
        # Type, sign and duplicate checks first; the range is checked under the lock.
        idx = parse_indices(indices, name=name, upper=None)
        vals_arr = self._parse_values(vals, len(idx))

        def build(snap: Snapshot) -> LabelEvent:
            if relative_to == "unlabeled":
                pos = parse_indices(idx, name="positions", upper=self._n - snap.num_labeled)
                dataset_idx = snap.map_positions(pos, of_labeled=False)
            else:
                dataset_idx = parse_indices(idx, name="dataset_indices", upper=self._n)
                is_labeled = snap.is_labeled(dataset_idx)
                if is_labeled.any():
                    raise AlreadyLabeledError([int(v) for v in dataset_idx[is_labeled]])
            return LabelEvent(snap.version + 1, "add", dataset_idx, vals_arr, **provenance)

        return self._commit(build, len(idx), provenance)

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
        self._check_writable()
        if np.ndim(values) == 0 or len(values) != np.size(dataset_indices):
            raise InvalidInputError(
                f"values has length {np.size(values) if np.ndim(values) else 'scalar'} "
                f"but dataset_indices has length {np.size(dataset_indices)}"
            )
        provenance = parse_provenance(annotator, round, expected_version)
        idx = parse_indices(dataset_indices, name="dataset_indices", upper=self._n)
        vals_arr = self._parse_values(values, len(idx))

        def build(snap: Snapshot) -> LabelEvent:
            previous = self._labeled_values(snap, idx)
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
        self._check_writable()
        provenance = parse_provenance(annotator, round, expected_version)
        idx = parse_indices(dataset_indices, name="dataset_indices", upper=self._n)

        def build(snap: Snapshot) -> LabelEvent:
            removed = self._labeled_values(snap, idx)
            return LabelEvent(snap.version + 1, "remove", idx, removed, **provenance)

        return self._commit(build, len(idx), provenance)

    def _parse_values(self, values: object, n: int) -> np.ndarray:
        """Labels for ``n`` items as an array of the label dtype (class names encoded)."""
        if self.classes is not None:
            values = encode_classes(values, self.classes)
        return parse_label_values(values, n, self.label_dtype, self.label_shape)

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
        if self.classes is None:
            raise InvalidInputError(f"the store at {self.path} has no class schema")
        codes_arr = np.asarray(codes)
        if codes_arr.dtype.kind not in "iu" or (
            codes_arr.size and ((codes_arr < 0) | (codes_arr >= len(self.classes))).any()
        ):
            raise InvalidInputError(
                f"codes must be ints in [0, {len(self.classes)}), got {codes!r}"
            )
        return np.array(self.classes, dtype=object)[codes_arr]

    def import_labels(
        self,
        path: PathLike,
        *,
        annotator: str | None = None,
        round: int | None = None,
        expected_version: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> IndexArray:
        """Add the labels of a ``.csv``, ``.jsonl`` or ``.parquet`` file as one atomic commit.

        Rows are ``dataset_index,label`` (a header in CSV; objects with those
        keys in JSON Lines; columns in Parquet). Every row is checked before
        anything is written; ``progress`` is called with the number of rows read.

        Raises
        ------
        InvalidInputError
            A malformed row, an index out of range or repeated, a bad label:
            the message names the line. Nothing is written.
        AlreadyLabeledError
            A row names a labeled item (the message names its line).
        """
        from ._io import import_labels

        self._check_writable()
        return import_labels(
            self,
            Path(path),
            annotator=annotator,
            round=round,
            expected_version=expected_version,
            progress=progress,
        )

    def export_labels(
        self, path: PathLike, *, progress: Callable[[int], None] | None = None
    ) -> int:
        """Write the current labels to ``.csv``, ``.jsonl`` or ``.parquet``, streaming; returns rows."""
        from ._io import export_labels

        return export_labels(self, Path(path), progress)

    def export_history(
        self, path: PathLike, *, progress: Callable[[int], None] | None = None
    ) -> int:
        """Write every label entry of every commit to ``.csv``, ``.jsonl`` or ``.parquet``."""
        from ._io import export_history

        return export_history(self, Path(path), progress)

    def score(
        self,
        fn: Callable[[np.ndarray], Any],
        name: str,
        *,
        batch_rows: int = 4096,
        shard: tuple[int, int] | str = (0, 1),
    ) -> int:
        """Score the Unlabeled rows chunk by chunk into ``scores/<name>``, resumably.

        Parameters
        ----------
        fn
            ``fn(rows) -> scores``: one number per row, called with at most
            ``batch_rows`` rows at a time.
        name
            Name of the scoring (letters, digits, ``_-.``); one Zarr array each.
        batch_rows
            Rows per call of ``fn``.
        shard
            ``(i, n)`` or ``"i/n"``: score only chunks ``j`` with ``j % n == i``
            (e.g. ``(SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT)``).

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
        from ._scoring import score

        self._check_open()
        return score(self, fn, name, batch_rows=batch_rows, shard=shard)

    def top_k(
        self, name: str, k: int, *, largest: bool = True, allow_partial: bool = False
    ) -> TopK:
        """The ``k`` best still-unlabeled items of scoring ``name``, streaming.

        Returns a :class:`TopK` (``dataset_indices``, ``scores``, ``version``),
        best first. Memory is ``O(k + chunk_rows)`` whatever ``N`` is.

        Raises
        ------
        InvalidInputError
            No such scoring, or chunks not scored yet (unless ``allow_partial``).
        """
        from ._scoring import top_k

        self._check_open()
        return top_k(self, name, k, largest=largest, allow_partial=allow_partial)

    def scoring_progress(self, name: str) -> tuple[int, int]:
        """``(chunks done, chunks in all)`` of scoring ``name``."""
        from ._scoring import done_chunks, open_scores

        open_scores(self, name, create=False)
        return len(done_chunks(self, name)), -(-self._n // self.chunk_rows)

    def plot_progress(self, path: PathLike) -> Path:
        """Plot labels over time per annotator and labels per round to a PNG (``plot`` extra)."""
        from ._plot import plot_progress

        return plot_progress(self, Path(path))

    def _labeled_values(self, snap: Snapshot, dataset_indices: IndexArray) -> np.ndarray:
        """Current labels of ``dataset_indices``, which must all be labeled."""
        is_labeled = snap.is_labeled(dataset_indices)
        if not is_labeled.all():
            raise NotLabeledError([int(v) for v in dataset_indices[~is_labeled]])
        return snap.labels_at(dataset_indices)

    def _commit(
        self, build: Callable[[Snapshot], LabelEvent], n: int, provenance: dict[str, Any]
    ) -> IndexArray:
        """Under the writer lock: check the version, build the event, append it durably."""
        self._check_writable()
        if n == 0:
            return np.empty(0, np.int64)
        expected = provenance.pop("expected_version")
        with self._write_lock():
            self._refresh(writer=True)
            snap = self._current()
            if expected is not None and expected != snap.version:
                raise StaleIndexError(expected, snap.version)
            event = build(snap)  # every check runs here, before anything is written
            self._journal.append(event.encode(self.label_dtype))
            self._refresh(writer=True)
            if len(self._overlay.indices) >= CHECKPOINT_ROWS:
                self._checkpoint_locked()
        return event.dataset_indices

    def checkpoint(self) -> None:
        """Fold the journal tail into the Zarr arrays now (it also happens automatically)."""
        self._check_writable()
        with self._write_lock():
            self._refresh(writer=True)
            self._checkpoint_locked()

    def _checkpoint_locked(self) -> None:
        overlay = self._overlay
        if not self._events:
            return
        touched = np.unique(overlay.indices // self.chunk_rows)
        chunks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for j in touched.tolist():
            lo, hi = self._arrays.chunk_bounds(j)
            mask = np.zeros(hi - lo, bool)
            mask[self._arrays.read_marks(j)] = True
            sl = overlay.in_range(lo, hi)
            mask[overlay.indices[sl] - lo] = overlay.labeled[sl]
            labels = chunk_labels(self._arrays.read_labels(lo, hi), lo, overlay, NO_UNDO)
            chunks[j] = (mask, labels)
        self._arrays.write_chunks(chunks)
        old = self._marks_index
        parts = (
            np.flatnonzero(chunks[j][0])
            if j in chunks
            else (old.base(j) if old is not None else self._arrays.read_marks(j))
            for j in range(len(overlay.counts))
        )
        _state.write_marks(self.path, overlay.version, parts, len(overlay.counts))
        _state.write_checkpoint(
            self.path,
            version=overlay.version,
            journal_offset=self._read_offset,
            counts=overlay.counts,
        )
        _state.remove_marks_except(self.path, overlay.version)
        self._load_checkpoint()

    def _write_lock(self) -> Any:
        assert self._lock is not None
        try:
            return self._lock.acquire(timeout=self._lock_timeout)
        except filelock.Timeout:
            raise LockTimeoutError(
                f"could not obtain the writer lock of {self.path} within {self._lock_timeout} s"
            ) from None

    def _check_writable(self) -> None:
        self._check_open()
        if self.mode != "r+":
            raise ReadOnlyError(
                f"{self.path} was opened with mode='r'; open it with mode='r+' to label"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInputError(f"the store at {self.path} is closed")

    def verify(self, *, progress: Callable[[int], None] | None = None) -> dict[str, int]:
        """Replay the whole journal and check the mask, labels and counts agree with it.

        Reads every journal record and every chunk that holds a label; memory is
        ``O(num_labeled)``. Returns a summary (``version``, ``num_labeled``,
        ``records``, ``chunks_checked``).

        Raises
        ------
        CorruptStoreError
            The journal is damaged, or the Zarr state disagrees with it.
        """
        from ._verify import verify

        return verify(self, self._current(), progress)

    def close(self, *, checkpoint: bool = True) -> None:
        """Release the store's files; a writer first checkpoints its journal tail.

        The checkpoint is skipped when another writer holds the lock (it will
        checkpoint itself) or when ``checkpoint`` is false; nothing is lost
        either way, the next opener replays the tail from the journal.
        """
        if self._closed:
            return
        if checkpoint and self.mode == "r+" and self._events and self._lock is not None:
            try:
                with self._lock.acquire(timeout=0.1):
                    self._refresh(writer=True)
                    self._checkpoint_locked()
            except filelock.Timeout:
                pass  # another writer is busy and will checkpoint; the journal has it all
        self._closed = True
        self._journal.close()
        self._source.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"version={self.version}, labeled={self.num_labeled}"
        return f"<alma_store.Store {str(self.path)!r} N={self._n} {state} mode={self.mode!r}>"


open = open_store  # the public name: alma_store.open(path)
