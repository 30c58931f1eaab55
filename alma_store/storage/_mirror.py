"""The local journal of a shared store: a private mirror of its commit log.

A process that opens a shared store (:mod:`alma_store._shared`) keeps a
private working directory, a store of the local format whose ``journal.bin``
holds the shared log's records, byte for byte, in version order. The engine
reads it as it reads any journal (views, the offset map, history and time
travel work unchanged); this class fills it:

- :meth:`MirrorJournal.pull` copies the records committed since the last
  pull (each checked by :func:`~alma_store.journal.split_records`);
- :meth:`MirrorJournal.write` *publishes* a commit: it creates the commit
  object of its version, and only then appends the record locally
  (:meth:`MirrorJournal.write_group`: several writers' records in one object). A lost
  race raises :class:`LostRace`, and the caller pulls, checks its batch
  against what it lost to, and tries again.

Nothing of the mirror needs to survive the process: the shared log is the
truth, so the mirror is never ``fsync``-ed, and a commit is durable once its
object is created.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..core import LabelEvent, n_chunks, record_version
from ..errors import CorruptStoreError, LocalCopyError
from ._fs import atomic_write, forget_volatile, volatile
from ._journal import FILE_HEADER_SIZE, Journal
from ._layout import init_state
from ._marks import Checkpoint, marks_path, parse_checkpoint, remove_marks_except, write_checkpoint
from ._meta import FORMAT_VERSION, StoreMeta
from ._shared import LostRace, SharedLog
from ._sharedckpt import SharedCheckpoint

__all__ = ["MirrorJournal", "make_mirror", "remove_dead_mirrors"]


def remove_dead_mirrors() -> None:
    """Remove the mirror directories of processes that are gone (killed before closing)."""
    for folder in Path(tempfile.gettempdir()).glob("alma-mirror-*-*"):
        try:
            os.kill(int(folder.name.split("-")[2]), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, PermissionError):  # not ours, or a live process of another user
            continue


def make_mirror(meta: StoreMeta, base: SharedCheckpoint | None = None) -> Path:
    """A private directory holding a local-format store of the shared store ``meta``.

    Empty, or at the shared checkpoint ``base``: its checkpoint and marks index
    (the chunk files stay in the storage until a read needs them), with an
    empty journal whose records start after ``base.version``. A process that
    opens a shared store fills it from the store's commit log
    (:meth:`MirrorJournal.pull`) and removes it when the store is closed.
    """
    remove_dead_mirrors()
    folder = Path(tempfile.mkdtemp(prefix=f"alma-mirror-{os.getpid()}-"))
    volatile(folder)  # never synced: the shared log is the truth
    try:
        local = dataclasses.replace(meta, format_version=FORMAT_VERSION)
        init_state(folder, local, cached=True)
        if base is not None:
            n = n_chunks(meta.n_items, meta.chunk_rows)
            ckpt = parse_checkpoint(base.checkpoint, f"shared checkpoint {base.version}", n)
            if ckpt.version != base.version:
                raise CorruptStoreError(
                    f"shared checkpoint {base.version} holds the checkpoint of {ckpt.version}"
                )
            atomic_write(marks_path(folder, base.version), base.marks)
            write_checkpoint(folder, Checkpoint(base.version, FILE_HEADER_SIZE, ckpt.counts))
            remove_marks_except(folder, base.version)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        forget_volatile(folder)
        raise
    return folder


class MirrorJournal(Journal):
    """A writable journal in a private directory that mirrors a :class:`SharedLog`."""

    def __init__(
        self,
        path: Path,
        uuid: bytes,
        label_dtype: np.dtype,
        label_shape: tuple[int, ...],
        log: SharedLog,
        *,
        start: int = 0,
    ) -> None:
        super().__init__(path, uuid, label_dtype, label_shape, writable=True)
        self.log = log
        self.start = start
        """The records up to this version are in the shared log only (a shared checkpoint's)."""
        self.ends = [FILE_HEADER_SIZE]
        """``ends[i]``: the offset where the record of version ``start + i`` ends here."""
        self.broken: str | None = None
        """Why a record could not be copied here (then nothing more is)."""

    @property
    def version(self) -> int:
        """The newest version the mirror holds."""
        return self.start + len(self.ends) - 1

    def _copy(self, record: bytes, version: int | None) -> None:
        """Append a committed record here; a local failure is a :class:`LocalCopyError`
        (``version``: ours, committed already), and the mirror refuses everything after."""
        if self.broken is not None:
            raise LocalCopyError(None, str(self.path.parent), self.broken)
        try:
            self.ends.append(super().write(record))
        except OSError as exc:
            self.broken = f"{type(exc).__name__}: {exc}"
            raise LocalCopyError(version, str(self.path.parent), self.broken) from exc

    def pull(self, *, chase: bool = True) -> int:
        """Copy the records committed since the last pull; how many there were.

        ``chase=False``: one round of requests (see :meth:`SharedLog.read_after`).
        """
        before = self.version
        for _, record in self.log.read_after(self.version, chase=chase):
            self._copy(record, None)
        return self.version - before

    def write(self, record: bytes) -> int:
        """Publish ``record`` as the next version, then append it here; where it ends.

        Raises
        ------
        LostRace
            The version was taken by another writer, or is not the one after
            the newest pulled: pull and build the commit again.
        """
        return self.write_group([record])[-1]

    def write_group(self, records: list[bytes]) -> list[int]:
        """Publish ``records`` (consecutive versions) as one commit object, then append
        them here; where each ends. Raises :class:`LostRace` as :meth:`write` does."""
        version = record_version(records[0])
        if version != self.version + 1:
            raise LostRace(version)
        if self.broken is not None:
            raise LocalCopyError(None, str(self.path.parent), self.broken)
        theirs = self.log.publish(version, records)
        if theirs is not None:
            for record in theirs:  # the winner's records: taken in now, not fetched again
                self._copy(record, None)
            raise LostRace(version)
        ends = []
        for k, record in enumerate(records):  # durable from here on, whatever the copy does
            self._copy(record, version + k)
            ends.append(self.ends[-1])
        return ends

    def sync(self, end: int) -> None:
        """Nothing to do: a commit is durable once its object exists (see :meth:`write`)."""

    def raw(self, first: int, last: int) -> bytes:
        """The record bytes of versions ``first .. last``, back to back."""
        if first > self.start:
            return self.read_bytes(self.ends[first - 1 - self.start], self.ends[last - self.start])
        remote = b"".join(r for _, r in self.log.records(first, min(last, self.start)))
        if last <= self.start:
            return remote
        return remote + self.read_bytes(self.ends[0], self.ends[last - self.start])

    def raw_records(self, last: int) -> Iterator[tuple[int, bytes]]:
        # docstring inherited
        yield from self.log.records(1, min(last, self.start))
        start = FILE_HEADER_SIZE
        for event, end in super().iter_records(FILE_HEADER_SIZE, self.start + 1):
            if event.version > last:
                return
            yield event.version, self.read_bytes(start, end)
            start = end

    def iter_records(
        self, offset: int = FILE_HEADER_SIZE, first_version: int = 1, *, block: int = 1 << 20
    ) -> Iterator[tuple[LabelEvent, int]]:
        """Like :meth:`Journal.iter_records`; the versions up to :attr:`start` come from the
        shared log (their end offset is this file's first record's start)."""
        if first_version <= self.start:
            where = self.log.location
            for v, record in self.log.records(first_version, self.start):
                event = LabelEvent.from_record(record, self.label_dtype, self.label_shape, where)
                if event.version != v:
                    raise CorruptStoreError(
                        f"{where}: the record of version {v} says {event.version}"
                    )
                yield event, FILE_HEADER_SIZE
            offset, first_version = FILE_HEADER_SIZE, self.start + 1
        yield from super().iter_records(offset, first_version, block=block)

    def compact(self, min_records: int) -> tuple[int, int]:
        """Fold the shared log's newest commit objects into a segment (see :meth:`SharedLog.compact`)."""
        return self.log.compact(
            lambda first, last: [self.raw(first, last)], self.version, min_records=min_records
        )

    def close(self) -> None:
        """Close the file and the shared log's fetch threads."""
        super().close()
        self.log.close()
