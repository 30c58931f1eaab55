"""The journal tail: the commits after the checkpoint, replayed into an overlay.

The chunk files hold the store at the checkpoint's version ``c0``; every commit
after it is a journal record the :class:`Tail` has read, decoded and merged
into one :class:`~alma_store.core.Overlay` (the state of every dataset index
those commits touched). Reading is incremental: :meth:`Tail.catch_up` decodes
only what was appended since the last look. A commit built outside the writer
lock is checked against the records appended meanwhile without applying them
(:meth:`Tail.since`); they are applied by the next catch-up.

An open starts from the newest tail file of the checkpoint, if there is one
(:mod:`alma_store.storage._tailfile`): the overlay at its version ``v``, so
only the records after ``v`` are decoded. The events ``(c0, v]`` are then not
held in memory; the few readers that want them (time travel, the history) read
them from the journal.

A short record at the end of the journal was never acknowledged (its writer
died mid-append): a reader stops before it, a writer (writer lock held) cuts
it off.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..core import LabelEvent, Overlay
from ..storage import FILE_HEADER_SIZE, Checkpoint, Journal, TailFile

__all__ = ["Tail"]


class Tail:
    """The commits after checkpoint ``c0`` and their merged overlay.

    Parameters
    ----------
    journal
        The store's journal (or a shared store's mirror of its log).
    label_dtype, label_shape
        Of the store's labels.
    chunk_rows
        Rows per chunk (the overlay counts labels per chunk).
    """

    def __init__(
        self,
        journal: Journal,
        label_dtype: np.dtype,
        label_shape: tuple[int, ...],
        chunk_rows: int,
    ) -> None:
        self.journal = journal
        self.label_dtype = label_dtype
        self.label_shape = label_shape
        self.chunk_rows = chunk_rows
        self.overlay = Overlay.empty(0, np.zeros(0, np.int64), label_dtype, label_shape)
        self.checkpoint = Checkpoint(0, FILE_HEADER_SIZE, np.zeros(0, np.int64))
        """The checkpoint ``c0`` the tail is after."""
        self.loaded = self.overlay
        """The overlay at the version the events held start after (``c0``, or a tail file's)."""
        self.loaded_offset = FILE_HEADER_SIZE
        """Where the records after :attr:`loaded` begin in the journal."""
        self.saved = 0
        """The newest version a tail file of this checkpoint holds (``c0`` if none)."""
        self.events: list[LabelEvent] = []
        """The events after :attr:`loaded` taken in, oldest first."""
        self.ends: list[int] = []
        """Where each of :attr:`events` ends in the journal."""
        self.read_offset = FILE_HEADER_SIZE
        """Everything before this offset is taken in."""
        # Records beyond read_offset decoded (by since) but not taken in yet.
        self._unread: list[tuple[LabelEvent, int]] = []
        # Events after an old version, read once for a past snapshot's chunk reads.
        self._past: tuple[int, list[LabelEvent], int, int] | None = None

    @property
    def version(self) -> int:
        """The newest version taken in."""
        return self.overlay.version

    @property
    def base_version(self) -> int:
        """``c0``: the version the chunk files hold (the tail starts after it)."""
        return self.checkpoint.version

    @property
    def held_from(self) -> int:
        """The version the events held start after (:attr:`loaded`'s)."""
        return self.loaded.version

    @property
    def rows(self) -> int:
        """Dataset indices the tail touches (what a checkpoint would fold in)."""
        return len(self.overlay.indices)

    @property
    def end(self) -> int:
        """Where the last event taken in ends in the journal."""
        return self.ends[-1] if self.ends else self.loaded_offset

    def _empty(self, ckpt: Checkpoint) -> Overlay:
        return Overlay.empty(ckpt.version, ckpt.counts, self.label_dtype, self.label_shape)

    def rebase(self, ckpt: Checkpoint) -> None:
        """Start the tail at checkpoint ``ckpt``, keeping the events held after it."""
        if ckpt.version < self.held_from:  # events (ckpt, held_from] are not held: read again
            self.events, self.ends = [], []
        events, ends, read_offset = [], [], ckpt.journal_offset
        for event, end in zip(self.events, self.ends, strict=True):
            if event.version > ckpt.version:
                events.append(event)
                ends.append(end)
                read_offset = end
        self.checkpoint = ckpt
        self.saved = ckpt.version
        self.loaded = self._empty(ckpt)
        self.loaded_offset = ckpt.journal_offset
        self.events, self.ends = events, ends
        self.overlay = self.loaded.apply_all(events, self.chunk_rows)
        self.read_offset = read_offset
        self._unread = []
        self._past = None

    def load(self, tail: TailFile) -> None:
        """Start from a tail file of the checkpoint (right after :meth:`rebase`, nothing held)."""
        self.loaded = self.overlay = tail.overlay
        self.saved = tail.overlay.version
        self.loaded_offset = self.read_offset = tail.journal_offset
        self.events, self.ends, self._unread = [], [], []

    def unchanged(self) -> bool:
        """Whether nothing was appended to the journal since the last catch-up."""
        return self.journal.size() == self.read_offset

    def _pending(self) -> tuple[list[tuple[LabelEvent, int]], int, bool]:
        """Records beyond ``read_offset``: those decoded already, then the file's rest."""
        have = self._unread
        offset = have[-1][1] if have else self.read_offset
        version = have[-1][0].version if have else self.overlay.version
        records, end, torn = self.journal.read(offset, version + 1)
        return have + records, end, torn

    def catch_up(self, *, writer: bool = False) -> bool:
        """Take in the records appended since the last look; True if there were any.

        ``writer`` (writer lock held): cut off a torn record at the end.
        """
        records, end, torn = self._pending()
        self._unread = []
        self.overlay = self.overlay.apply_all([event for event, _ in records], self.chunk_rows)
        for event, rec_end in records:
            self.events.append(event)
            self.ends.append(rec_end)
        self.read_offset = end
        if torn and writer:
            self.journal.truncate(end)  # never acknowledged: its writer died mid-append
        return bool(records)

    def since(self, version: int) -> list[LabelEvent] | None:
        """Committed events after ``version``, to the end of the journal (writer lock held).

        Records not taken in yet are decoded but not applied: this is the cheap
        check a commit built outside the lock makes. None when ``version`` is
        older than the events held.
        """
        if version < self.held_from:
            return None
        held = self.events[version - self.held_from :]
        records, end, torn = self._pending()
        if torn:
            self.journal.truncate(end)  # never acknowledged: its writer died mid-append
        self._unread = records
        return held + [event for event, _ in records]

    def appended(self, event: LabelEvent, end: int, size: int) -> None:
        """Note our own ``event``, ``size`` bytes appended to end at ``end``.

        Known without reading it back when it follows what the tail knows;
        the next catch-up takes it in like another writer's.
        """
        known = self._unread[-1][1] if self._unread else self.read_offset
        if known == end - size:
            self._unread.append((event, end))

    def held_after(self, version: int) -> list[LabelEvent] | None:
        """The events taken in after ``version``; None when they are not all held."""
        if version < self.held_from:
            return None
        return self.events[version - self.held_from :]

    def overlay_at(self, version: int) -> Overlay:
        """The overlay at a version in ``[c0, now]`` (relative to ``c0``)."""
        if version >= self.held_from:
            return self.loaded.apply_all(self.events[: version - self.held_from], self.chunk_rows)
        first = self.base_version + 1  # before the tail file: read from the journal
        return self._empty(self.checkpoint).apply_all(
            list(self.iter_events(first, version)), self.chunk_rows
        )

    def iter_events(self, first: int, last: int) -> Iterator[LabelEvent]:
        """Committed events ``first .. last``, oldest first, streamed from the journal.

        Memory stays bounded by one read block of the journal, whatever its length.
        """
        if first > last:
            return
        offset, version = FILE_HEADER_SIZE, 1
        if first > self.held_from:  # start inside the events held, or right after them
            k = min(first - self.held_from - 1, len(self.ends))
            offset = self.ends[k - 1] if k else self.loaded_offset
            version = self.held_from + k + 1
        elif first > self.base_version:  # start at the checkpoint
            offset, version = self.checkpoint.journal_offset, self.base_version + 1
        for event, _ in self.journal.iter_records(offset, version):
            if event.version > last:
                return
            if event.version >= first:
                yield event

    def after(self, version: int) -> list[LabelEvent]:
        """Every event taken in that is newer than ``version``.

        Older than the events held: those events are read from the journal
        once, then extended as the journal grows.
        """
        held = self.held_after(version)
        if held is not None:
            return held
        if self._past is None or self._past[0] != version:
            start = (
                (self.checkpoint.journal_offset, self.base_version + 1)
                if version >= self.base_version
                else (FILE_HEADER_SIZE, 1)
            )
            self._past = (version, [], *start)
        _, events, offset, next_version = self._past
        for event, end in self.journal.iter_records(offset, next_version):
            if event.version > version:
                events.append(event)
            offset, next_version = end, event.version + 1
        self._past = (version, events, offset, next_version)
        return events

    def forget_past(self) -> None:
        """Drop the events kept for past snapshots."""
        self._past = None
