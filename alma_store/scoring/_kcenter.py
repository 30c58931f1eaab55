"""Distances for k-center greedy selection, block by block (pure numpy).

k-center greedy (the core-set method) keeps, for every pool item, the squared
Euclidean distance to its nearest center, and picks the farthest item as the
next center. These functions compute that distance for a block of rows, to a
set of centers (the labeled items: BLAS matrix products, ``|x|^2 - 2 x.c +
|c|^2``, in blocks of :data:`BLOCK` rows and centers so that memory stays at a
few MiB) or to one new center (exact differences). Both are row by row: a row's
result does not depend on which rows share its block beyond the fixed block
shapes, so a selection recomputed after a restart reproduces every value.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BLOCK", "farthest", "sq_dist_to_point", "sq_dist_to_set"]

BLOCK = 1024
"""Rows and centers per matrix product: a ``BLOCK x BLOCK`` float64 product is 8 MiB."""


def sq_dist_to_set(rows: np.ndarray, centers: np.ndarray, center_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of each row to its nearest center (``inf`` without centers).

    ``rows`` is ``(n, d)`` and ``centers`` ``(m, d)``, float64; ``center_sq`` is
    ``(centers ** 2).sum(1)``.

    >>> c = np.array([[0.0, 0.0], [3.0, 4.0]])
    >>> sq_dist_to_set(np.array([[3.0, 0.0], [3.0, 5.0]]), c, (c**2).sum(1)).tolist()
    [9.0, 1.0]
    """
    out = np.full(len(rows), np.inf)
    for a in range(0, len(rows), BLOCK):
        part = rows[a : a + BLOCK]
        part_sq = np.einsum("ij,ij->i", part, part)
        best = out[a : a + BLOCK]
        for b in range(0, len(centers), BLOCK):
            prod = part @ centers[b : b + BLOCK].T
            prod *= -2.0
            prod += part_sq[:, None]
            prod += center_sq[None, b : b + BLOCK]
            np.minimum(best, prod.min(axis=1), out=best)
    np.maximum(out, 0.0, out=out)  # rounding can take |x - c|^2 just below 0
    return out


def sq_dist_to_point(rows: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of each row of ``rows`` (``(n, d)``) to ``center`` (``(d,)``).

    >>> sq_dist_to_point(np.array([[1.0, 1.0], [4.0, 5.0]]), np.array([1.0, 1.0])).tolist()
    [0.0, 25.0]
    """
    diff = rows - center
    return np.asarray(np.einsum("ij,ij->i", diff, diff))


def farthest(values: np.ndarray, indices: np.ndarray) -> tuple[float, int]:
    """``(largest value, its index)`` over ``values``, ties to the lowest of ``indices``;
    ``(-inf, -1)`` when empty.

    >>> farthest(np.array([1.0, 3.0, 3.0]), np.array([9, 7, 8]))
    (3.0, 7)
    """
    if not len(values):
        return float("-inf"), -1
    top = values.max()
    return float(top), int(indices[values == top].min())
