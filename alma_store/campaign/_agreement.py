"""Inter-annotator agreement over a store's annotations (needs the ``agreement`` extra).

Two annotators in all: Cohen's kappa over the items both annotated (the
formula of Cohen 1960, cross-checked against scikit-learn in the tests). More: Fleiss' kappa over the items with the
usual number of annotations (the formula of Fleiss 1971, cross-checked
against statsmodels in the tests). Both come with Krippendorff's alpha
(nominal, the ``krippendorff`` package), which takes every item with two or
more annotations whoever gave them. Gwet's AC1 (nominal) and AC2 (quadratic
weights over the classes' order) take every item with two or more annotations too,
and stay meaningful where one class dominates and the kappas collapse (the formulas
of Gwet 2008 and 2014 for several raters with missing ratings, cross-checked
against the published figures of the reference implementation, irrCAC).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import round_order
from ..errors import InvalidInputError, MissingExtraError
from ._annotations import Annotation, value_key

__all__ = [
    "agreement",
    "cohen_kappa",
    "disagreement",
    "fleiss_kappa",
    "gwet_ac",
    "quadratic_weights",
]


def cohen_kappa(a: Sequence[object], b: Sequence[object]) -> float:
    """Cohen's kappa of two raters' labels of the same items, ``(p_o - p_e) / (1 - p_e)``.

    NaN where chance agreement is 1 (both raters gave one and the same label).
    """
    if len(a) != len(b) or not a:
        raise InvalidInputError("Cohen's kappa needs two equally long, non-empty label lists")
    labels = {v: j for j, v in enumerate(sorted(set(a) | set(b), key=repr))}
    table = np.zeros((len(labels), len(labels)))
    np.add.at(table, ([labels[v] for v in a], [labels[v] for v in b]), 1)
    n = table.sum()
    observed = np.trace(table) / n
    chance = float(table.sum(axis=1) @ table.sum(axis=0)) / n**2
    return float((observed - chance) / (1 - chance)) if chance < 1 else np.nan


def fleiss_kappa(counts: np.ndarray) -> tuple[float, np.ndarray]:
    """Fleiss' kappa of an ``(items, categories)`` table of rating counts, and per category.

    Every row must sum to the same number of raters ``n >= 2``. A kappa whose
    chance agreement is 1 (one category only) is NaN.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n_items, _ = counts.shape
    n = counts.sum(axis=1)
    if n_items == 0 or (n != n[0]).any() or n[0] < 2:
        raise InvalidInputError("Fleiss' kappa needs the same number (>= 2) of ratings per item")
    raters = n[0]
    p = counts.sum(axis=0) / (n_items * raters)
    p_item = ((counts**2).sum(axis=1) - raters) / (raters * (raters - 1))
    p_bar, p_e = p_item.mean(), (p**2).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (p_bar - p_e) / (1 - p_e) if p_e < 1 else np.nan
        disagree = (counts * (raters - counts)).sum(axis=0)
        per = 1 - disagree / (n_items * raters * (raters - 1) * p * (1 - p))
    return float(kappa), per


def gwet_ac(counts: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Gwet's AC1 (``weights=None``) or AC2 of an ``(items, categories)`` table of rating counts.

    Every item has two or more ratings (as many as it has: raters may be
    missing). ``p_a`` is the mean over items of the (weighted) share of agreeing
    pairs of ratings, ``p_e = T_w / (q (q - 1)) * sum_k pi_k (1 - pi_k)`` with
    ``pi_k`` the mean share of ratings in category ``k`` and ``T_w`` the sum of
    the weights. NaN with fewer than two categories.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n_items, q = counts.shape
    r = counts.sum(axis=1)
    if n_items == 0 or (r < 2).any():
        raise InvalidInputError("Gwet's AC needs two or more ratings of every item")
    if q < 2:
        return np.nan
    w = np.eye(q) if weights is None else np.asarray(weights, dtype=np.float64)
    pi = (counts / r[:, None]).mean(axis=0)
    star = counts @ w.T  # r*_ik: ratings of item i that agree with category k, weighted
    p_a = float(((counts * (star - 1)).sum(axis=1) / (r * (r - 1))).mean())
    p_e = float(w.sum() / (q * (q - 1)) * (pi * (1 - pi)).sum())
    return (p_a - p_e) / (1 - p_e) if p_e < 1 else np.nan


def quadratic_weights(q: int) -> np.ndarray:
    """``1 - ((k - l) / (q - 1))**2``: AC2's weights for ``q`` ordered categories."""
    x = np.arange(q, dtype=np.float64)
    return 1 - ((x[:, None] - x[None, :]) / max(q - 1, 1)) ** 2


def disagreement(counts: np.ndarray) -> np.ndarray:
    """Per item, the share of its pairs of ratings that disagree (0: all agree)."""
    counts = np.asarray(counts, dtype=np.float64)
    r = counts.sum(axis=1)
    return np.asarray(1 - (counts * (counts - 1)).sum(axis=1) / (r * (r - 1)))


def rating_counts(rated: dict[int, list[Annotation]]) -> np.ndarray:
    """The ``(items, categories)`` table of how many annotations gave each category."""
    return _Ratings.of(rated).counts()


def _order(value: object) -> tuple[bool, object]:
    """Categories in their order: numbers (class codes, numeric labels) by value, then text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (False, float(value))
    return (True, str(value))


@dataclass(frozen=True)
class _Ratings:
    """Annotations as flat arrays: entry ``e`` is annotator ``who[e]`` giving category
    ``cat[e]`` to row ``row[e]`` (one row per item)."""

    row: np.ndarray
    who: np.ndarray
    cat: np.ndarray
    n_rows: int
    annotators: list[str]
    categories: list[object]

    @classmethod
    def of(cls, rated: dict[int, list[Annotation]]) -> _Ratings:
        row, names, keys = [], [], []
        for r, anns in enumerate(rated.values()):
            for a in anns:
                row.append(r)
                names.append(a.annotator)
                keys.append(value_key(a.value))  # once per annotation
        annotators = sorted(set(names))
        categories = sorted(set(keys), key=_order)
        who_code = {a: j for j, a in enumerate(annotators)}
        cat_code = {c: j for j, c in enumerate(categories)}
        return cls(
            np.asarray(row, np.int64),
            np.asarray([who_code[a] for a in names], np.int64),
            np.asarray([cat_code[k] for k in keys], np.int64),
            len(rated),
            annotators,
            categories,
        )

    def subset(self, rows: np.ndarray) -> _Ratings:
        """The ratings of ``rows`` only, with just the annotators and categories they use."""
        keep = np.isin(self.row, rows)
        row = np.searchsorted(rows, self.row[keep])
        who_used, who = np.unique(self.who[keep], return_inverse=True)
        cat_used, cat = np.unique(self.cat[keep], return_inverse=True)
        return _Ratings(
            row,
            who,
            cat,
            len(rows),
            [self.annotators[j] for j in who_used],
            [self.categories[j] for j in cat_used],
        )

    def counts(self) -> np.ndarray:
        """The ``(rows, categories)`` table of rating counts."""
        out = np.zeros((self.n_rows, len(self.categories)))
        np.add.at(out, (self.row, self.cat), 1)
        return out


def _gwet(r: _Ratings) -> tuple[float, float, dict[object, float]]:
    """AC1, AC2 and per-category AC1 ("this category or not")."""
    counts = r.counts()
    total = counts.sum(axis=1)
    per = {
        c: gwet_ac(np.stack([counts[:, j], total - counts[:, j]], axis=1))
        for j, c in enumerate(r.categories)
    }
    return gwet_ac(counts), gwet_ac(counts, quadratic_weights(len(r.categories))), per


def _need(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise MissingExtraError("agreement", "Krippendorff's alpha (krippendorff)") from None


def _kappa(r: _Ratings) -> tuple[float, dict[object, float], int]:
    """Overall and per-category kappa, and the number of items it used."""
    if len(r.annotators) == 2:
        table = np.full((r.n_rows, 2), -1)
        table[r.row, r.who] = r.cat
        both = table[(table >= 0).all(axis=1)]
        if not len(both):
            return np.nan, dict.fromkeys(r.categories, np.nan), 0
        x, y = both[:, 0].tolist(), both[:, 1].tolist()
        per = {
            c: cohen_kappa([v == j for v in x], [w == j for w in y])
            for j, c in enumerate(r.categories)
        }
        return cohen_kappa(x, y), per, len(both)
    counts = r.counts()
    sizes = Counter(counts.sum(axis=1).astype(int).tolist())
    usual = max(sizes, key=lambda s: (sizes[s], s))
    rows = counts[counts.sum(axis=1) == usual]
    kappa, per_category = fleiss_kappa(rows)
    return kappa, dict(zip(r.categories, per_category.tolist(), strict=True)), len(rows)


def _alpha(r: _Ratings) -> float:
    krippendorff = _need("krippendorff")
    if len(r.categories) < 2:
        return np.nan
    data = np.full((len(r.annotators), r.n_rows), np.nan)
    data[r.who, r.row] = r.cat
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def agreement(items: dict[int, list[Annotation]], name: Callable[[object], str]) -> dict[str, Any]:
    """Agreement figures of every item with two or more annotations.

    Returns a dict: ``method`` (``"cohen"`` or ``"fleiss"``), ``kappa``,
    ``alpha`` (Krippendorff, nominal), ``items`` (items the kappa used),
    ``annotators``, ``per_class`` (one kappa per class: for Cohen, the kappa of
    "this class or not"; for Fleiss, his per-category kappa) and
    ``per_round`` (the same figures for the items first annotated in each
    round, each with the method its annotators call for), and Gwet's ``ac1``,
    ``ac2`` (quadratic weights over the classes' order) and ``ac1_per_class``,
    over every item with two or more annotations (also per round). Undefined
    figures (one class only, say) are NaN.
    """
    rated = {i: anns for i, anns in items.items() if len(anns) >= 2}
    if not rated:
        raise InvalidInputError("no item has two annotations yet: there is no agreement to measure")
    ratings = _Ratings.of(rated)
    kappa, per, used = _kappa(ratings)
    first_round = [anns[0].round for anns in rated.values()]
    per_round = {}
    for rnd in sorted(set(first_round), key=round_order):
        group = ratings.subset(np.flatnonzero([f == rnd for f in first_round]))
        r_kappa, _, r_used = _kappa(group) if len(group.annotators) >= 2 else (np.nan, {}, 0)
        r_ac1, r_ac2, _ = _gwet(group)
        per_round[rnd] = {
            "kappa": r_kappa,
            "items": r_used,
            "method": "cohen" if len(group.annotators) == 2 else "fleiss",
            "ac1": r_ac1,
            "ac2": r_ac2,
        }
    ac1, ac2, ac1_per = _gwet(ratings)
    return {
        "method": "cohen" if len(ratings.annotators) == 2 else "fleiss",
        "kappa": kappa,
        "alpha": _alpha(ratings),
        "items": used,
        "annotators": ratings.annotators,
        "per_class": {name(c): v for c, v in per.items()},
        "per_round": per_round,
        "ac1": ac1,
        "ac2": ac2,
        "ac1_per_class": {name(c): v for c, v in ac1_per.items()},
    }
