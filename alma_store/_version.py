"""The read API of a store at one version: the one class every read goes through.

:meth:`Store.at` returns a :class:`StoreVersion` fixed at a past version, and
:class:`~alma_store.store.Store` *is* a :class:`StoreVersion` that always shows
its newest version. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _history, _io
from ._fs import is_url
from ._labels import LabelSchema
from ._plot import plot_progress
from ._types import IndexArray, PathLike
from .errors import InvalidIndexError
from .index import parse_indices
from .journal import LabelEvent
from .views import LabeledMask, LabeledView, UnlabeledView

if TYPE_CHECKING:
    from ._engine import Engine
    from ._snapshot import Snapshot
    from .features import FeatureSource

__all__ = ["StoreVersion"]

RoundSummary = _history.RoundSummary


class StoreVersion:
    """A store as it is at one version: sizes, views, the labeled mask, labels.

    Returned by :meth:`Store.at`; nothing is copied, and everything stays
    exact however far the store moves on.
    """

    def __init__(
        self, engine: Engine, source: FeatureSource, snapshot: Snapshot | None = None
    ) -> None:
        self._engine = engine
        self._source = source
        self._fixed = snapshot
        meta = engine.meta
        self.location = engine.location
        """The store's directory, or the URL of a shared store in object storage."""
        self.path: Path | str = self.location if is_url(self.location) else Path(self.location)
        """The store directory (a ``Path``); for a store in object storage, its URL."""
        self.storage_options = engine.storage_options
        """The storage options the store was opened with (in memory only, never written)."""
        self.chunk_rows = meta.chunk_rows
        """Rows per chunk of the mask, the labels and the count index."""
        self.schema = LabelSchema(meta.label_dtype, meta.label_shape, meta.classes)
        """The label dtype, shape and class names."""

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
    ) -> Iterator[LabelEvent]:
        """Iterate the committed events up to this version, oldest first, streaming the journal.

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
        return _history.history(
            self._engine,
            annotator=annotator,
            round=round,
            kinds=kinds,
            start=start,
            stop=stop,
            last=self.version,
        )

    def rounds(self) -> list[RoundSummary]:
        """One summary per round tag, in order of first appearance (``None`` for untagged)."""
        return _history.rounds(self._engine, last=self.version)

    def export_labels(
        self, path: PathLike, *, progress: Callable[[int], None] | None = None
    ) -> int:
        """Write the labels at this version to ``.csv``, ``.jsonl`` or ``.parquet``, streaming; returns rows."""
        chunks = self.labeled.labeled_chunks()
        return _io.export_labels(chunks, self.schema, Path(path), progress)

    def export_history(
        self, path: PathLike, *, progress: Callable[[int], None] | None = None
    ) -> int:
        """Write every label entry of every commit up to this version to ``.csv``, ``.jsonl`` or ``.parquet``."""
        return _io.export_history(self.history(), self.schema, Path(path), progress)

    def plot_progress(self, path: PathLike) -> Path:
        """Plot labels over time per annotator and labels per round to a PNG (``plot`` extra)."""
        return plot_progress(self.history(), self.schema, Path(path))

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
