"""The checkpoint on disk, and which chunk file contents a reader may trust.

A checkpoint is ``checkpoint.bin`` and its marks index (see
:mod:`alma_store.storage`). :meth:`CheckpointFiles.load` reads both, retrying
when a checkpoint replaces them meanwhile. A chunk file is trusted when its
checksum is the one the marks index of our checkpoint records for it, or the
one a newer marks index records (a checkpoint in progress, or finished since):
anything else is damage, or a checkpoint we have not loaded yet, which the
engine tells apart by :meth:`CheckpointFiles.changed`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CorruptStoreError
from ..storage import (
    Checkpoint,
    MarksIndex,
    file_checksum,
    marks_path,
    marks_versions,
    open_marks,
    read_checkpoint,
)

__all__ = ["CheckpointFiles"]


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CorruptStoreError(f"checkpoint file {path} is missing") from None
    return st.st_ino, st.st_mtime_ns


class CheckpointFiles:
    """The checkpoint of one store directory, and the marks indexes that vouch for chunk files.

    Parameters
    ----------
    root
        The store directory.
    n_chunks
        Chunks of the store.
    with_marks
        False for format version 1, whose checkpoints have no marks index.
    """

    def __init__(self, root: Path, n_chunks: int, *, with_marks: bool) -> None:
        self.root = root
        self.n_chunks = n_chunks
        self.with_marks = with_marks
        self.path = root / "checkpoint.bin"
        self.checkpoint: Checkpoint
        self.marks: MarksIndex
        """The marks index of :attr:`checkpoint` (built from mask chunks in format 1)."""
        self._stat = (-1, -1)
        self._pending: dict[int, MarksIndex | None] = {}

    def load(self) -> MarksIndex | None:
        """Read the checkpoint and map its marks index (None in format version 1)."""
        while True:
            stat = _stat(self.path)
            ckpt = read_checkpoint(self.root, self.n_chunks)
            marks = open_marks(self.root, ckpt.version, ckpt.counts, self.n_chunks)
            if marks is not None or not self.with_marks:
                break
            # A checkpoint may have replaced the file and its marks index since we read it.
            if _stat(self.path) == stat:
                raise CorruptStoreError(
                    f"marks index {marks_path(self.root, ckpt.version)} is missing"
                )
        self._stat = stat
        self.checkpoint = ckpt
        self._pending.clear()
        return marks

    def changed(self) -> bool:
        """Whether another checkpoint replaced ours since :meth:`load`."""
        return _stat(self.path) != self._stat

    def recorded(self, kind: str, j: int, raw: bytes | None) -> bool:
        """Whether a marks index at or after ours vouches for ``raw`` as chunk file ``kind``/``j``."""
        if self.marks.table is None:  # format version 1 records no chunk checksums
            return True
        entry = file_checksum(raw)
        if self.marks.file_entry(kind, j) == entry:
            return True
        for v in marks_versions(self.root):
            if v <= self.marks.version:
                continue
            if v not in self._pending:
                self._pending[v] = open_marks(self.root, v, None, self.n_chunks)
            pending = self._pending[v]
            if pending is not None and pending.file_entry(kind, j) == entry:
                return True
        return False

    def release(self) -> None:
        """Drop the marks indexes held (views of a closed store refuse reads)."""
        self._pending.clear()
        self.marks = MarksIndex.from_runs(self.marks.version, [])
