"""Full consistency check: replay the journal and compare the Zarr state with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import CorruptStoreError
from ._engine import Engine


def verify(engine: Engine, progress: Callable[[int], None] | None) -> dict[str, int]:
    """Replay every journal record up to the current version; see :meth:`Store.verify`."""
    snap = engine.current()
    expected: dict[int, Any] = {}
    n_records = 0
    for event in engine.iter_events(last=snap.version):
        n_records += 1
        for k, i in enumerate(event.dataset_indices.tolist()):
            if (i in expected) != event.labeled_before or (
                event.labeled_before and not np.array_equal(expected[i], event.values_before[k])
            ):
                raise CorruptStoreError(
                    f"journal record {event.version} ({event.kind}) does not follow from the "
                    f"records before it at dataset index {i}"
                )
            if event.labeled_after:
                expected[i] = event.values[k]
            else:
                del expected[i]
    if n_records != snap.version:
        raise CorruptStoreError(
            f"the journal holds {n_records} records but the store is at version {snap.version}"
        )
    idx = np.array(sorted(expected), dtype=np.int64)
    counts = np.bincount(idx // snap.chunk_rows, minlength=len(snap.labeled_counts))
    if not np.array_equal(counts, snap.labeled_counts):
        bad = np.flatnonzero(counts != snap.labeled_counts)
        raise CorruptStoreError(
            f"labeled counts disagree with the journal in chunks {bad.tolist()}"
        )
    for j in range(len(counts)):  # every chunk: a stray True in an empty one is damage too
        if progress is not None:
            progress(1)
        lo, hi = snap.bounds(j)
        want = idx[(idx >= lo) & (idx < hi)]
        if not np.array_equal(np.flatnonzero(snap.disk_mask(j)) + lo, want):
            raise CorruptStoreError(f"the mask of chunk {j} disagrees with the journal")
        if not np.array_equal(snap.labeled_marks(j) + lo, want):  # through the marks index
            raise CorruptStoreError(f"the marks index disagrees with the journal at chunk {j}")
        if len(want):
            labels = snap.labels_chunk(j)
            for i in want.tolist():
                if not np.array_equal(labels[i - lo], expected[i]):
                    raise CorruptStoreError(
                        f"the label of dataset index {i} disagrees with the journal"
                    )
    return {
        "version": snap.version,
        "num_labeled": len(idx),
        "records": n_records,
        "chunks_checked": len(counts),
    }
