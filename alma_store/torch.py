"""A PyTorch map dataset over a view.

Items are the view's feature rows, or, with ``dataset=``, ``dataset[i]`` of any
map-style dataset for the view's dataset indices ``i`` (images on disk, or
anything else that is not one array: the way to train from an index-only store).

Where torch is installed, :class:`ViewDataset` is a ``torch.utils.data.Dataset``
(libraries such as skorch check for one); without torch it is a plain class with
the same methods, which ``DataLoader``-like code can use as well
(``__len__``, ``__getitem__``, and ``__getitems__`` for whole batches). Batches are
read in one sorted read per batch. With
labels, the Labeled view's labels are materialised once per process (the
labeled set is small by nature: ``O(len(view))`` labels), so a shuffled batch
costs what a sorted one does instead of decoding the label chunks it hits. The
dataset pickles by path and version: DataLoader worker processes reopen the
store read-only and see the same snapshot as the parent (forked workers, torch's
default on Linux, reopen it too: the parent's clients do not work in a forked child).
A store in object storage cannot be reached from a forked child at all (see
:class:`~alma_store.UnsupportedStorageError`): give such a ``DataLoader``
``multiprocessing_context="forkserver"`` (or ``"spawn"``).
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidInputError

if TYPE_CHECKING:
    from .views import LabeledView, UnlabeledView

    View = LabeledView | UnlabeledView

__all__ = ["ViewDataset"]

if TYPE_CHECKING or importlib.util.find_spec("torch") is None:
    _Dataset = object
else:  # torch is installed: the user of this module trains with it
    from torch.utils.data import Dataset as _Dataset


class ViewDataset(_Dataset):
    """Rows (and, for the Labeled view, labels) of a view, indexed by view position.

    Parameters
    ----------
    view
        ``store.labeled`` or ``store.unlabeled`` (or a past version's view).
    with_labels
        Return ``(row, label)`` pairs; default: True for the Labeled view.
    transform
        Applied to each row (e.g. ``torch.from_numpy``); must pickle for workers.
    dataset
        Any map-style dataset indexed by dataset index (``dataset[i]``), e.g.
        one that decodes images from disk: the items are then
        ``dataset[i]`` for the view's dataset indices ``i`` instead of
        feature rows (the way to use an index-only store). It must pickle
        for DataLoader workers.
    with_index
        Add each item's dataset index as its last element: ``(row, index)``, or
        ``(row, label, index)`` with labels (what a worker needs to report
        results by dataset index).
    """

    def __init__(
        self,
        view: View,
        *,
        with_labels: bool | None = None,
        transform: Any = None,
        dataset: Any = None,
        with_index: bool = False,
    ) -> None:
        if with_labels is None:
            with_labels = view.is_labeled_view
        if with_labels and not view.is_labeled_view:
            raise InvalidInputError(
                "with_labels needs the Labeled view; unlabeled rows have no labels"
            )
        if dataset is not None and not hasattr(dataset, "__getitem__"):
            raise InvalidInputError(
                f"dataset must be indexable by dataset index, got {type(dataset).__name__}"
            )
        if not isinstance(with_index, bool):
            raise InvalidInputError(f"with_index must be a bool, got {with_index!r}")
        self.dataset = dataset
        self.with_index = with_index
        self.path = view.store_path
        self.storage_options = view.storage_options  # for workers, in memory
        self.version = view.version
        self.labeled = view.is_labeled_view
        self.with_labels = with_labels
        self.transform = transform
        self._view: View | None = view
        self._pid = os.getpid()  # the process _view was opened in
        self._labels: np.ndarray | None = None  # the view's labels, by position (once used)
        self._len = len(view)

    def __len__(self) -> int:
        return self._len

    def _open(self) -> View:
        # In a worker process, pickled (view None) or forked (the parent's view, whose
        # feature source's threads and connections are not in this process): reopen by
        # path, once per process.
        if self._view is None or self._pid != os.getpid():
            from ._store_version import open_for_worker
            from .storage import Location

            where = Location.parse(self.path, self.storage_options)
            past = open_for_worker(where, self.version)
            self._view = past.labeled if self.labeled else past.unlabeled
            self._pid = os.getpid()
        return self._view

    def __getitem__(self, position: int) -> Any:
        return self.__getitems__([position])[0]

    def __getitems__(self, positions: list[int]) -> list[Any]:
        view = self._open()
        pos = np.asarray(positions, dtype=np.int64)
        if pos.size and ((pos < 0) | (pos >= self._len)).any():
            raise IndexError(
                f"positions {pos[(pos < 0) | (pos >= self._len)].tolist()} out of range"
            )
        uniq, inverse = np.unique(pos, return_inverse=True)
        dataset_idx = view.to_dataset_index(uniq)
        if self.dataset is not None:
            items = [self.dataset[int(i)] for i in dataset_idx[inverse]]
        else:  # one sorted read per batch
            items = list(view.feature_source.read_sorted(dataset_idx)[inverse])
        rows = [self.transform(r) for r in items] if self.transform is not None else items
        columns: list[Any] = [rows]
        if self.with_labels:
            if self._labels is None:
                self._labels = view.labels  # type: ignore[union-attr]  # in view order
            columns.append(self._labels[pos])
        if self.with_index:
            columns.append(dataset_idx[inverse].tolist())
        return rows if len(columns) == 1 else list(zip(*columns, strict=True))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_view"] = None
        state["_labels"] = None  # a worker reads them once for itself
        return state

    def __repr__(self) -> str:
        kind = "Labeled" if self.labeled else "Unlabeled"
        return f"<ViewDataset {kind} of {str(self.path)!r} version={self.version} len={self._len}>"
