"""A new, empty store of the local format: the files a store directory starts with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core import n_chunks
from ._chunkfiles import create_arrays, create_arrays_cached
from ._fs import storage_errors
from ._journal import FILE_HEADER_SIZE, Journal
from ._marks import ENTRY, Checkpoint, write_checkpoint, write_marks
from ._meta import StoreMeta, write_meta

__all__ = ["init_state"]


def init_state(folder: Path, meta: StoreMeta, *, cached: bool = False) -> None:
    """Write an empty store of ``meta``'s geometry into ``folder``: no label, version 0.

    ``meta.json`` is written last: until it is there, the folder is no store.
    ``cached``: the arrays' metadata come from this host's template of the geometry
    (:func:`~alma_store.storage._chunkfiles.create_arrays_cached`; for private mirrors).
    """
    count = n_chunks(meta.n_items, meta.chunk_rows)
    Journal.create(folder / "journal.bin", bytes.fromhex(meta.uuid))
    with storage_errors(folder / "state"):
        create = create_arrays_cached if cached else create_arrays
        create(folder, meta.n_items, meta.chunk_rows, meta.label_dtype, meta.label_shape)
    empty = np.empty(0, np.int64)
    write_marks(folder, 0, [empty] * count, np.zeros(count, ENTRY))
    write_checkpoint(folder, Checkpoint(0, FILE_HEADER_SIZE, np.zeros(count, np.int64)))
    write_meta(folder, meta)
