"""Reductions of a run's rows of values (class probabilities, embeddings) to one number.

:func:`alma_store.scoring.top_k` ranks a run of ``columns`` values per row by
one of these, applied a block of rows at a time. They are plain numpy on a
``(rows, columns)`` array; a row with a NaN (an item that was labeled when its
chunk was scored) reduces to NaN, which is no candidate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import InvalidInputError

__all__ = ["REDUCTIONS", "Reduce", "check_reduce", "reduce_rows"]

Reduce = str | Callable[[np.ndarray], np.ndarray]


def _max(values: np.ndarray) -> np.ndarray:
    """The largest value of each row (a classifier's confidence)."""
    return np.asarray(values.max(axis=1))


def _margin(values: np.ndarray) -> np.ndarray:
    """The largest value of each row less the second largest (small: uncertain)."""
    if values.shape[1] < 2:
        raise InvalidInputError("reduce='margin' needs at least 2 columns")
    top2 = np.partition(values, values.shape[1] - 2, axis=1)[:, -2:]
    return np.asarray(top2[:, 1] - top2[:, 0])


def _entropy(values: np.ndarray) -> np.ndarray:
    """``-sum(p * log(p))`` of each row, ``0 * log(0)`` taken as 0 (large: uncertain)."""
    logs = np.log(values, out=np.zeros_like(values), where=values > 0)
    return -(values * logs).sum(axis=1)


REDUCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "max": _max,
    "margin": _margin,
    "entropy": _entropy,
}
"""The named reductions: ``"max"``, ``"margin"`` (largest less second largest) and ``"entropy"``."""


def check_reduce(reduce: object) -> None:
    """Refuse what is neither a named reduction nor a callable."""
    if not (callable(reduce) or reduce in REDUCTIONS):
        raise InvalidInputError(
            f"reduce must be one of {sorted(REDUCTIONS)} or a callable, got {reduce!r}"
        )


def reduce_rows(values: np.ndarray, reduce: Reduce) -> np.ndarray:
    """One number per row of ``values`` (``rows x columns``), NaN for a row with a NaN.

    >>> reduce_rows(np.array([[0.7, 0.2, 0.1], [np.nan] * 3]), "margin").round(3).tolist()
    [0.5, nan]
    """
    check_reduce(reduce)
    fn = REDUCTIONS[reduce] if isinstance(reduce, str) else reduce
    with np.errstate(invalid="ignore"):  # NaN rows are dropped below
        out = np.asarray(fn(values))
    if out.shape != (len(values),):
        raise InvalidInputError(
            f"the reduction returned shape {out.shape} for {len(values)} rows; "
            f"it must return one number per row, shape ({len(values)},)"
        )
    if out.dtype.kind not in "biuf":
        raise InvalidInputError(f"a reduction must return numbers, got dtype {out.dtype}")
    out = out.astype(np.result_type(out.dtype, values.dtype), copy=True)
    out[np.isnan(values).any(axis=1)] = np.nan
    return out
