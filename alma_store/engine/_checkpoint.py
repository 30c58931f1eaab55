"""Checkpoints: folding the journal tail into the chunk files.

Checkpoint protocol (the engine holds the writer lock and has synced the
journal up to the tail's end), each step durable before the next:

1. encode the new mask and label chunk files in memory, with their CRC-32s;
2. write ``marks-<c1>.bin``: the new runs and every chunk file's checksum;
3. replace the touched chunk files (each atomically);
4. replace ``checkpoint.bin`` (now naming ``c1``), then delete older marks files.

A reader whose chunk file does not match its checkpoint's checksum accepts it
if a newer marks file (a checkpoint in progress, or finished since) records
it (:class:`~alma_store.engine._chunks.CheckpointFiles`), and reports
:class:`~alma_store.errors.CorruptStoreError` otherwise. A crash between any
two steps leaves the old checkpoint in force and the journal whole.

Format version 1 had no marks index: its first checkpoint writes and
checksums every chunk file, and until then the runs are decoded from the mask
chunk files (:func:`marks_from_mask_chunks`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..core import (
    NO_UNDO,
    LabelEvent,
    Overlay,
    chunk_labels,
    chunk_mask,
    distinct,
    undo_in_range,
)
from ..errors import CorruptStoreError
from ..storage import (
    ENTRY,
    Checkpoint,
    MarksIndex,
    StateArrays,
    crash_point,
    file_checksum,
    remove_marks_except,
    write_checkpoint,
    write_marks,
)
from ._snapshot import Snapshot

__all__ = ["fold_tail", "marks_from_mask_chunks"]


def fold_tail(
    root: Path,
    arrays: StateArrays,
    marks: MarksIndex,
    snap: Snapshot,
    overlay: Overlay,
    read_labels: Callable[[int], np.ndarray],
    journal_offset: int,
) -> None:
    """Write checkpoint ``snap.version`` (steps 1-4 of the module doc).

    Parameters
    ----------
    root, arrays
        The store directory and its chunk files.
    marks
        The marks index of the checkpoint in force.
    snap, overlay
        The snapshot to fold in, and the tail's overlay it was made from.
    read_labels
        ``read_labels(j)``: label chunk ``j`` as on disk, checked.
    journal_offset
        Where the journal records after ``snap.version`` begin.
    """
    n_chunks = len(snap.chunk_sizes)
    chunk_rows = snap.chunk_rows
    if marks.table is None:  # a version-1 store: every chunk file gets written and checksummed
        codecs = arrays.codecs
        touched = np.array(
            [
                j
                for j in range(n_chunks)
                if snap.labeled_counts[j]
                or marks.counts[j]
                or codecs["mask"].path(j).exists()
                or codecs["labels"].path(j).exists()
            ],
            dtype=np.int64,
        )
        table = np.zeros(n_chunks, ENTRY)
    else:
        touched = distinct(overlay.indices // chunk_rows)
        marks.check(np.arange(n_chunks))
        table = marks.table.copy()
    everything = snap.runs(np.arange(n_chunks))
    runs = [everything.run(j) for j in range(n_chunks)]
    files: dict[tuple[str, int], bytes] = {}
    for j in touched.tolist():
        lo = j * chunk_rows
        mask = np.zeros(arrays.rows(j), bool)
        mask[runs[j]] = True
        labels = chunk_labels(read_labels(j), lo, overlay, NO_UNDO)
        for kind, data in (("mask", mask), ("labels", labels)):
            raw = arrays.codecs[kind].encode(data)
            files[kind, j] = raw
            table[kind][j] = file_checksum(raw)
    write_marks(root, overlay.version, runs, table)
    arrays.write(files)
    crash_point("checkpoint-file")
    write_checkpoint(root, Checkpoint(overlay.version, journal_offset, overlay.counts))
    remove_marks_except(root, overlay.version)


def marks_from_mask_chunks(
    arrays: StateArrays,
    ckpt: Checkpoint,
    events_now: Callable[[], list[LabelEvent]],
) -> MarksIndex:
    """Every chunk's labeled offsets at checkpoint ``ckpt``, decoded from its mask file.

    ``events_now()`` returns every event after ``ckpt`` committed by now; it
    is called after each chunk is read, so no event the chunk reflects is missed.
    """
    codec = arrays.codecs["mask"]
    empty = Overlay.empty(ckpt.version, ckpt.counts, np.dtype(bool), ())
    runs = []
    for j in range(len(ckpt.counts)):
        lo = j * arrays.chunk_rows
        rows = arrays.rows(j)
        if not ckpt.counts[j]:  # no labels at the checkpoint, whatever the file holds now
            runs.append(np.empty(0, np.int64))
            continue
        disk = codec.decode(codec.read_raw(j), j, rows)
        undo = undo_in_range(events_now(), lo, lo + rows)
        run = np.flatnonzero(chunk_mask(disk, lo, empty, undo))
        if len(run) != ckpt.counts[j]:
            raise CorruptStoreError(
                f"mask chunk file {codec.path(j)} holds {len(run)} labels where the "
                f"checkpoint counts {int(ckpt.counts[j])}"
            )
        runs.append(run)
    return MarksIndex.from_runs(ckpt.version, runs)
