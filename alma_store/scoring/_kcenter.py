"""Distances for k-center greedy selection, block by block (pure numpy).

k-center greedy (the core-set method) keeps, for every pool item, the squared
Euclidean distance to its nearest center, and picks the farthest item as the
next center. These functions compute that distance for a block of rows, to a
set of centers (the labeled items: BLAS matrix products, ``|x|^2 - 2 x.c +
|c|^2``, in blocks of :data:`BLOCK` rows and centers so that memory stays at a
few MiB) or to one new center (exact differences). Both are row by row: a row's
result does not depend on which rows share its block beyond the fixed block
shapes, so a selection recomputed after a restart reproduces every value.
With faiss (``nn="faiss"``) the first of these is faiss's exact search in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MissingExtraError

__all__ = ["BACKENDS", "BLOCK", "NearestCenter", "farthest", "sq_dist_to_point", "sq_dist_to_set"]

BACKENDS = ("numpy", "faiss")
"""How the distance to the nearest labeled item is found (see :class:`NearestCenter`)."""

BLOCK = 1024
"""Rows and centers per matrix product: a ``BLOCK x BLOCK`` float64 product is 8 MiB."""


def sq_dist_to_set(rows: np.ndarray, centers: np.ndarray, center_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of each row to its nearest center (``inf`` without centers).

    ``rows`` is ``(n, d)`` of any real dtype (computed in float64) and ``centers`` ``(m, d)``
    float64; ``center_sq`` is ``(centers ** 2).sum(1)``.

    >>> c = np.array([[0.0, 0.0], [3.0, 4.0]])
    >>> sq_dist_to_set(np.array([[3.0, 0.0], [3.0, 5.0]]), c, (c**2).sum(1)).tolist()
    [9.0, 1.0]
    """
    out = np.full(len(rows), np.inf)
    for a in range(0, len(rows), BLOCK):
        part = np.asarray(rows[a : a + BLOCK], np.float64)
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


class NearestCenter:
    """Squared distance of rows to the nearest of fixed ``centers`` (``(m, d)`` float64),
    by numpy BLAS blocks in float64 (``"numpy"``) or faiss's exact ``IndexFlatL2`` in
    float32 (``"faiss"``: faster, rounded to float32)."""

    def __init__(self, centers: np.ndarray, backend: str) -> None:
        self.backend = backend
        self.centers = centers
        self.center_sq = np.einsum("ij,ij->i", centers, centers)
        self.index: Any = None
        if backend == "faiss" and len(centers):
            try:
                import faiss
            except ImportError:
                raise MissingExtraError("faiss", "nearest centers by faiss (faiss-cpu)") from None
            self.index = faiss.IndexFlatL2(centers.shape[1])
            self.index.add(np.ascontiguousarray(centers, np.float32))

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if self.index is None:
            return sq_dist_to_set(rows, self.centers, self.center_sq)
        found, _ = self.index.search(np.ascontiguousarray(rows, np.float32), 1)
        return np.asarray(found[:, 0], np.float64)


def sq_dist_to_point(rows: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of each row of ``rows`` (``(n, d)``) to ``center`` (``(d,)``
    float64, so the difference is float64 whatever the rows' dtype).

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
