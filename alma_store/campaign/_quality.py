"""Annotator skill and consensus models over a store's annotations (the ``quality`` extra).

Majority vote treats every annotator alike. Dawid-Skene (1979) estimates each
annotator's confusion matrix and the classes' priors by EM, and gives each item
the posterior of every class: a better consensus when annotators differ in skill.
Its one-coin form gives each annotator one skill (the chance of the true class),
which needs fewer annotations per annotator to estimate when mistakes fall on any
class alike.
Both come from ``crowd-kit`` (Toloka's maintained implementations, Apache-2.0),
fitted on every annotation the store holds. Nothing here writes: a consensus is
a proposal that a reviewer commits with :meth:`alma_store.Store.resolve`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import IndexArray
from ..errors import InvalidInputError, MissingExtraError
from ._annotations import Annotation, value_key

__all__ = ["METHODS", "Consensus", "annotator_quality", "consensus"]

METHODS = ("dawid-skene", "one-coin", "majority")


@dataclass(frozen=True)
class Consensus:
    """A model's proposed labels: ``dataset_indices``, ``labels`` (class names where the
    store has classes) and ``confidence`` (the posterior of the label proposed)."""

    dataset_indices: IndexArray
    labels: np.ndarray
    confidence: np.ndarray
    method: str


def _fit(items: dict[int, list[Annotation]], method: str) -> Any:
    """The fitted crowd-kit model and the annotations' frame."""
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    try:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene, MajorityVote, OneCoinDawidSkene
    except ImportError:
        raise MissingExtraError("quality", "annotator skill and consensus (crowd-kit)") from None
    rows = [(i, a.annotator, value_key(a.value)) for i, anns in items.items() for a in anns]
    if not rows:
        raise InvalidInputError("the store holds no annotations yet")
    frame = pd.DataFrame(rows, columns=["task", "worker", "label"])
    if method == "dawid-skene":
        model: Any = DawidSkene(n_iter=100)
    elif method == "one-coin":
        model = OneCoinDawidSkene(n_iter=100)
    else:
        model = MajorityVote()
    with warnings.catch_warnings():  # crowd-kit's use of pandas APIs due to change
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        model.fit(frame)
    return model, frame


def consensus(
    items: dict[int, list[Annotation]],
    method: str,
    wanted: IndexArray,
    name: Callable[[object], object],
) -> Consensus:
    """The model's label and its posterior for each of ``wanted`` (items it saw)."""
    model, _ = _fit(items, method)
    probas = model.probas_
    idx = np.array([i for i in wanted.tolist() if i in probas.index], dtype=np.int64)
    if not len(idx):
        return Consensus(idx, np.array([]), np.empty(0), method)
    rows = probas.loc[idx]
    best = rows.to_numpy().argmax(axis=1)
    classes = list(rows.columns)
    labels = np.array([name(classes[j]) for j in best])
    return Consensus(idx, labels, rows.to_numpy()[np.arange(len(idx)), best], method)


def annotator_quality(
    items: dict[int, list[Annotation]], method: str
) -> dict[str, dict[str, float | int]]:
    """Per annotator: ``items`` annotated, ``accuracy`` as the model estimates it
    (Dawid-Skene: the chance of giving the true class, over the classes' priors;
    one-coin: the annotator's skill; majority: the agreement below), and
    ``agreement`` with the model's consensus."""
    model, frame = _fit(items, method)
    agreed = frame["label"].to_numpy() == model.labels_.loc[frame["task"]].to_numpy()
    out: dict[str, dict[str, float | int]] = {}
    for worker, rows in frame.groupby("worker").groups.items():
        share = float(agreed[frame.index.get_indexer(rows)].mean())
        accuracy = share
        if method == "one-coin":
            accuracy = float(model.skills_[worker])
        elif method == "dawid-skene":
            errors = model.errors_.loc[worker]  # P(given | true): rows given, columns true
            accuracy = float(
                sum(
                    model.priors_[c] * errors.at[c, c]
                    for c in model.priors_.index
                    if c in errors.index
                )
            )
        out[str(worker)] = {"items": len(rows), "accuracy": accuracy, "agreement": share}
    return dict(sorted(out.items()))
