"""The local journal of a shared store: a private mirror of its commit log.

A process that opens a shared store (:mod:`alma_store._shared`) keeps a
private working directory, a store of the local format whose ``journal.bin``
holds the shared log's records, byte for byte, in version order. The engine
reads it as it reads any journal (views, the offset map, history and time
travel work unchanged); this class fills it:

- :meth:`MirrorJournal.pull` copies the records committed since the last
  pull (each checked by :func:`~alma_store.journal.split_records`);
- :meth:`MirrorJournal.write` *publishes* a commit: it creates the commit
  object of its version, and only then appends the record locally. A lost
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
from pathlib import Path

import numpy as np

from ..core import record_version
from ._journal import FILE_HEADER_SIZE, Journal
from ._layout import init_state
from ._meta import FORMAT_VERSION, StoreMeta
from ._shared import LostRace, SharedLog

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


def make_mirror(meta: StoreMeta) -> Path:
    """A private directory holding an empty local-format store of the shared store ``meta``.

    A process that opens a shared store fills it from the store's commit log
    (:meth:`MirrorJournal.pull`) and removes it when the store is closed.
    """
    remove_dead_mirrors()
    folder = Path(tempfile.mkdtemp(prefix=f"alma-mirror-{os.getpid()}-"))
    try:
        init_state(folder, dataclasses.replace(meta, format_version=FORMAT_VERSION))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
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
    ) -> None:
        super().__init__(path, uuid, label_dtype, label_shape, writable=True)
        self.log = log
        self.ends = [FILE_HEADER_SIZE]
        """``ends[v]``: the offset where the record of version ``v`` ends."""

    @property
    def version(self) -> int:
        """The newest version the mirror holds."""
        return len(self.ends) - 1

    def pull(self) -> int:
        """Copy the records committed since the last pull; how many there were."""
        before = self.version
        for _, record in self.log.read_after(self.version):
            self.ends.append(super().write(record))
        return self.version - before

    def write(self, record: bytes) -> int:
        """Publish ``record`` as the next version, then append it here; where it ends.

        Raises
        ------
        LostRace
            The version was taken by another writer, or is not the one after
            the newest pulled: pull and build the commit again.
        """
        version = record_version(record)
        if version != self.version + 1:
            raise LostRace(version)
        theirs = self.log.publish(version, record)
        if theirs is not None:
            if theirs:  # the winner's record: taken in now, not fetched again
                self.ends.append(super().write(theirs))
            raise LostRace(version)
        self.ends.append(super().write(record))
        return self.ends[-1]

    def sync(self, end: int) -> None:
        """Nothing to do: a commit is durable once its object exists (see :meth:`write`)."""

    def raw(self, first: int, last: int) -> bytes:
        """The record bytes of versions ``first .. last``, back to back."""
        return self.read_bytes(self.ends[first - 1], self.ends[last])

    def compact(self, min_records: int) -> tuple[int, int]:
        """Fold the shared log's newest commit objects into a segment (see :meth:`SharedLog.compact`)."""
        return self.log.compact(
            lambda first, last: [self.raw(first, last)], self.version, min_records=min_records
        )

    def close(self) -> None:
        """Close the file and the shared log's fetch threads."""
        super().close()
        self.log.close()
