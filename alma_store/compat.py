"""ALMa 0.0.3's ``ActiveLearningManager`` API, backed by an alma_store.

Code written for ALMa keeps working unchanged::

    manager = ActiveLearningManager(X)
    manager.add_labels([(0, "cat"), (3, "dog")])      # positions in the Unlabeled part
    model.fit(manager.labeled, manager.labels)
    scores = model.predict_proba(manager.unlabeled)

and gains what ALMa lacked: with ``path=`` the manager is persistent and resumes
where it stopped; string labels work; negative, out-of-range, non-integer and
repeated indices are rejected instead of silently wrapping or overwriting; a
failing batch writes nothing. Masks and feature subsets are numpy arrays, as in
ALMa, so this class materialises ``O(N)`` arrays: for out-of-core work use
:class:`alma_store.Store` and its views directly.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any, Self

import numpy as np

from ._entry import create, open_store
from .core import STR_DTYPE, PathLike, infer_label_dtype, parse_indices, parse_label_dtype
from .errors import InvalidInputError
from .sources import check_same_features
from .store import Store

__all__ = ["ActiveLearningManager"]


class ActiveLearningManager:
    """Drop-in replacement for ALMa's ``ActiveLearningManager``.

    Parameters
    ----------
    features
        The dataset ``D`` (a numpy array, or anything :func:`alma_store.create` takes).
    labels_dtype
        dtype of the labels. ``None``: inferred from the first batch (strings,
        booleans, ints or floats); later batches must fit it. ``object`` (or
        ``np.object_``, ``"O"``), which ALMa takes for arbitrary labels, keeps
        labels as strings (``"str"``): a label that is not a string is an error,
        never silently converted.
    sources
        The raw items behind the features (e.g. texts), for ``remaining_sources``.
    path
        Keep the labels in a store at this directory and resume from it when it
        exists. ``None``: a temporary store, removed with the manager.

    Examples
    --------
    >>> import numpy as np
    >>> m = ActiveLearningManager(np.arange(10).reshape(5, 2))
    >>> m.add_labels([(1, "a"), (3, "b")])
    >>> m.labels.tolist(), m.get_original_index_from_unlabeled_index([0, 1])
    (['a', 'b'], [0, 2])
    """

    def __init__(
        self,
        features: Any,
        labels_dtype: Any = None,
        sources: Any = None,
        *,
        path: PathLike | None = None,
    ) -> None:
        self.features = features
        self.sources = np.array(sources if sources is not None else [])
        self._dtype = None if labels_dtype is None else _parse_dtype(labels_dtype)
        self._path = None if path is None else Path(path)
        self._tmp: weakref.finalize[Any, Any] | None = None
        self._store: Store | None = None
        self._n = len(features)
        if self._path is not None and (self._path / "meta.json").exists():
            self._store = open_store(self._path)
            try:  # the same check as reopening a store against its own features
                check_same_features(self._store.feature_source, features)
            except BaseException:
                self._store.close()
                raise
        elif self._dtype is not None:
            self._create(self._dtype)

    def _create(self, dtype: np.dtype) -> Store:
        if self._path is None:
            tmp = tempfile.mkdtemp(prefix="alma-manager-")
            self._tmp = weakref.finalize(self, shutil.rmtree, tmp, ignore_errors=True)
            root = Path(tmp) / "store"
        else:
            root = self._path
        self._store = create(root, self.features, label_dtype=dtype)
        return self._store

    @property
    def store(self) -> Store | None:
        """The backing store (``None`` until the label dtype is known)."""
        return self._store

    @property
    def labeled_mask(self) -> np.ndarray:
        """Boolean mask of the labeled items (a numpy array of ``N`` booleans)."""
        if self._store is None:
            return np.zeros(self._n, bool)
        return np.asarray(self._store.labeled_mask)

    @property
    def unlabeled_mask(self) -> np.ndarray:
        """Boolean mask of the unlabeled items."""
        return ~self.labeled_mask

    @property
    def labels(self) -> np.ndarray:
        """Labels of the labeled items, in dataset order."""
        if self._store is None:
            return np.empty(0, self._dtype if self._dtype is not None else np.float64)
        return self._store.labels

    @property
    def labeled(self) -> Any:
        """``features[labeled_mask]``: the labeled feature rows."""
        return self.features[self.labeled_mask]

    @property
    def unlabeled(self) -> Any:
        """``features[unlabeled_mask]``: the unlabeled feature rows."""
        return self.features[self.unlabeled_mask]

    unlabeld = unlabeled  # ALMa's original spelling

    @property
    def remaining_sources(self) -> np.ndarray:
        """``sources[unlabeled_mask]`` (empty when no sources were given)."""
        if self.sources.size == 0:
            return self.sources
        remaining: np.ndarray = self.sources[self.unlabeled_mask]
        return remaining

    def add_labels(self, labels: Any, offset_to_unlabeled: bool = True) -> None:
        """Add ``(index, label)`` tuples; indices are positions in the Unlabeled part.

        With ``offset_to_unlabeled=False`` the indices are dataset indices.
        All indices of one batch refer to the Unlabeled part before the batch.
        """
        if not isinstance(offset_to_unlabeled, bool):
            raise InvalidInputError(
                f"offset_to_unlabeled must be a bool, got {offset_to_unlabeled!r}"
            )
        if self._store is None:
            pairs = [labels] if isinstance(labels, tuple) else labels
            if not isinstance(pairs, list) or not all(
                isinstance(p, tuple | list) and len(p) == 2 for p in pairs
            ):
                raise InvalidInputError(
                    "labels must be an (index, label) tuple or a list of them, "
                    f"got {type(labels).__name__}"
                )
            if not pairs:
                return
            self._create(infer_label_dtype([p[1] for p in pairs]))
        assert self._store is not None
        self._store.add_labels(
            labels, relative_to="unlabeled" if offset_to_unlabeled else "dataset"
        )

    def get_original_index_from_unlabeled_index(self, ixs: Any) -> list[int]:
        """Dataset indices of positions in the Unlabeled part (int, list or array in, list out)."""
        if self._store is None:
            return [int(v) for v in parse_indices(ixs, name="positions", upper=self._n)]
        return [int(v) for v in self._store.unlabeled.to_dataset_index(ixs)]

    def close(self) -> None:
        """Close the backing store (and remove it if temporary)."""
        if self._store is not None:
            self._store.close()
        if self._tmp is not None:
            self._tmp()  # removes the temporary store

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse_dtype(value: object) -> np.dtype[Any]:
    """ALMa's ``labels_dtype``: any label dtype, and ``object`` for labels kept as strings."""
    if (
        value is object
        or value == "O"
        or (isinstance(value, np.dtype | type) and np.dtype(value) == np.dtype(object))
    ):
        return STR_DTYPE
    return parse_label_dtype(value)
