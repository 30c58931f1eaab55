"""The state engine of one open store: its checkpoint, its journal tail, its snapshots.

One :class:`Engine` per open store owns every piece of mutable state:

- the checkpoint on disk and the chunk files it vouches for
  (:class:`~alma_store.engine._chunks.CheckpointFiles`);
- the journal records after it, merged into an overlay
  (:class:`~alma_store.engine._tail.Tail`);
- the snapshot of the current version, cached until the next commit, and the
  merged runs one version's snapshot hands on to the next;
- checkpointing (:mod:`alma_store.engine._checkpoint`) and, for a shared
  store, the private mirror of its commit log and the pull of other writers'
  commits into it (:mod:`alma_store.storage._mirror`).

It hands out immutable :class:`~alma_store.engine._snapshot.Snapshot` objects
and serves their chunk reads, checking every chunk file. Commits are made by
:mod:`alma_store.engine._commit`, which uses :meth:`Engine.write_lock`,
:meth:`Engine.events_since`, :meth:`Engine.append` and :meth:`Engine.sync`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..core import Arena, BaseRanks, IndexArray, LabelEvent, Overlay, Runs, distinct, n_chunks
from ..errors import (
    CorruptStoreError,
    InvalidInputError,
    LocalCopyError,
    LockTimeoutError,
    ReadOnlyError,
    StoreClosedError,
)
from ..storage import (
    FORMAT_VERSION,
    TAIL_FILES_FORMAT,
    DirObjects,
    Journal,
    Location,
    LockTimeout,
    MarksIndex,
    MirrorJournal,
    Objects,
    SharedCheckpoint,
    SharedLog,
    StateArrays,
    StoreMeta,
    TailFile,
    WriterLock,
    forget_volatile,
    marks_path,
    newest_tail_version,
    publish_checkpoint,
    read_tail_file,
    remove_tail_files,
    write_meta,
    write_tail_file,
)
from ._checkpoint import fold_tail, marks_from_mask_chunks
from ._chunks import CheckpointFiles
from ._snapshot import Snapshot
from ._tail import Tail

__all__ = ["DEFAULT_CHECKPOINT_ROWS", "TAIL_FILE_RECORDS", "Engine"]

DEFAULT_CHECKPOINT_ROWS = 65536
"""Journal entries after which a writer folds the tail into the chunk files."""
TAIL_FILE_RECORDS = 256
"""Commits after which a writer saves the tail in a tail file (an open replays fewer)."""


class Engine:
    """The mutable state of one open store. See the module docstring.

    Parameters
    ----------
    root
        The directory the engine works in: the store directory or, for a
        shared store, this process's private mirror of it.
    meta
        The store's checked ``meta.json``.
    location
        Where the store is (what workers reopen).
    writable
        Open for writing (takes the writer lock to commit).
    checkpoint_rows
        Journal entries after which a commit folds the tail into the chunk files.
    lock_timeout
        Seconds to wait for the writer lock before :class:`LockTimeoutError`.
    shared
        For a shared store: its commit log.
    shared_base
        For a shared store: the shared checkpoint its mirror starts from (its
        chunk files are fetched from the storage when a read first needs them).
    """

    def __init__(
        self,
        root: Path,
        meta: StoreMeta,
        *,
        location: Location,
        writable: bool,
        checkpoint_rows: int,
        lock_timeout: float,
        shared: SharedLog | None = None,
        shared_base: SharedCheckpoint | None = None,
    ) -> None:
        self.root = root
        self.location = location
        """Where the store is, with the storage options it was opened with (in memory only)."""
        self.meta = meta
        self.writable = writable
        self.checkpoint_rows = checkpoint_rows
        self.lock_timeout = lock_timeout
        self.n_items = meta.n_items
        self.chunk_rows = meta.chunk_rows
        self.n_chunks = n_chunks(meta.n_items, meta.chunk_rows)
        self._mutex = threading.RLock()
        self._lock: WriterLock | None = None
        if writable or shared:  # a mirror is private: its lock is between threads only
            self._lock = WriterLock(root / "lock", processes=shared is None)
        uuid = bytes.fromhex(meta.uuid)
        self.journal: Journal
        self.mirror: MirrorJournal | None = None
        self._shared_base = shared_base
        if shared is not None:
            self.journal = self.mirror = MirrorJournal(
                root / "journal.bin",
                uuid,
                meta.label_dtype,
                meta.label_shape,
                shared,
                start=0 if shared_base is None else shared_base.version,
            )
        else:
            self.journal = Journal(
                root / "journal.bin", uuid, meta.label_dtype, meta.label_shape, writable=writable
            )
        self.files: Objects = shared.objects if shared is not None else DirObjects(root)
        """Where the store's other files live (scoring runs, the campaign log of a shared store)."""
        self._closed = False
        self._mirror_checkpointing = False
        # Format 6 keeps tail files; a mirror never does (it is filled from the shared log).
        self._tail_files = shared is None and meta.format_version >= TAIL_FILES_FORMAT
        try:
            self.arrays = StateArrays(
                root,
                meta.n_items,
                meta.chunk_rows,
                meta.label_dtype,
                meta.label_shape,
                fetch=None if shared is None else self._fetch_chunk,
            )
            self.tail = Tail(self.journal, meta.label_dtype, meta.label_shape, meta.chunk_rows)
            self.checkpoints = CheckpointFiles(
                root, self.n_chunks, with_marks=meta.format_version >= 2
            )
            self._snapshot: Snapshot | None = None
            self._previous: Snapshot | None = None
            self._arena = Arena()
            self._ranks = BaseRanks()
            self._load_checkpoint()
            self.refresh()
        except BaseException:
            self.journal.close()
            raise

    # -- lifecycle -----------------------------------------------------------

    @property
    def shared(self) -> bool:
        """Whether this is a shared store (its engine works on a private mirror)."""
        return self.mirror is not None

    def check_open(self) -> None:
        """Raise :class:`StoreClosedError` once the store is closed."""
        if self._closed:
            raise StoreClosedError(f"the store at {self.root} is closed; open it again to use it")

    def check_writable(self) -> None:
        """Raise unless the store is open for writing."""
        self.check_open()
        if not self.writable:
            raise ReadOnlyError(
                f"{self.root} was opened with mode='r'; open it with mode='r+' to write"
            )

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def tail_rows(self) -> int:
        """Dataset indices the journal tail holds (what a checkpoint would fold in)."""
        return self.tail.rows

    def close(self) -> None:
        """Release the journal, the marks index and the cached snapshot."""
        with self._mutex:
            self._closed = True
            self.journal.close()
            if self._lock is not None:
                self._lock.close()
            self._snapshot = self._previous = None
            self.tail.forget_past()
            # Unmapped once no snapshot of ours is left (views of a closed store refuse reads).
            self.checkpoints.release()
            if self.mirror is not None:  # the private mirror: the shared log keeps it all
                shutil.rmtree(self.root, ignore_errors=True)
                forget_volatile(self.root)

    @contextlib.contextmanager
    def _copying(self) -> Iterator[None]:
        """A shared store's mirror that failed closes this engine (the error says why)."""
        try:
            yield
        except LocalCopyError:
            self.close()
            raise

    @contextlib.contextmanager
    def write_lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the store's writer lock (between processes and threads)."""
        self.check_writable()
        assert self._lock is not None
        wait = self.lock_timeout if timeout is None else timeout
        try:
            self._lock.acquire(timeout=wait)
        except LockTimeout:
            raise LockTimeoutError(
                f"could not obtain the writer lock of {self.root} within {wait} s"
            ) from None
        try:
            yield
        finally:
            self._lock.release()

    def _fetch_chunk(self, kind: str, j: int) -> bytes | None:
        """A chunk file the mirror does not have: the shared checkpoint's object of it."""
        base = self._shared_base
        name = None if base is None else base.object_of(kind, j)
        return None if name is None else self.files.get(name)

    # -- the checkpoint and the tail -------------------------------------------

    def _load_checkpoint(self) -> None:
        """(Re)base the tail and the marks index on the checkpoint on disk."""
        marks = self.checkpoints.load()
        ckpt = self.checkpoints.checkpoint
        self._ranks = BaseRanks()  # counts in this checkpoint's runs, kept across versions
        self._arena = Arena()  # merged runs build on this checkpoint's marks index ...
        self._previous = None  # ... and none from before it is handed on
        self.tail.rebase(ckpt)
        if self._tail_files and not self.tail.events:  # a fresh start: the newest tail file
            meta = self.meta
            saved = read_tail_file(
                self.root,
                meta.uuid,
                ckpt.version,
                self.n_chunks,
                meta.label_dtype,
                meta.label_shape,
            )
            if saved is not None:
                self.tail.load(saved)
        self._snapshot = None
        if marks is None:  # a version-1 store without a marks index: built from mask chunks
            self.checkpoints.marks = MarksIndex.from_runs(ckpt.version, [])
            marks = marks_from_mask_chunks(self.arrays, ckpt, self._events_now)
        self.checkpoints.marks = marks

    def _events_now(self) -> list[LabelEvent]:
        """The tail's events, after taking in what was committed meanwhile."""
        self.tail.catch_up()
        return self.tail.events

    def _reload_if_checkpointed(self) -> bool:
        """Load the checkpoint another process wrote since ours; whether there was one."""
        if not self.checkpoints.changed():
            return False
        self._load_checkpoint()
        return True

    def pull(self, *, chase: bool = True) -> int:
        """Copy what other writers committed to a shared store into the mirror (else
        nothing); how many commits that was.

        Every other method reads the mirror; :meth:`refresh` pulls first.
        ``chase=False``: one round of requests, which may stop before the end of a
        log that writers extend meanwhile.
        """
        if self.mirror is None:
            return 0
        with self._mutex, self._copying():
            self.check_open()
            return self.mirror.pull(chase=chase)

    def compact_log(self, min_records: int) -> tuple[int, int]:
        """Fold a shared store's newest commit objects into a segment (see :class:`SharedLog`)."""
        assert self.mirror is not None
        with self._mutex:
            return self.mirror.compact(min_records)

    def publish_checkpoint(self) -> SharedCheckpoint | None:
        """Fold the mirror's tail, and upload its chunk state as a shared checkpoint (format 7).

        Only the chunk files that changed since the shared checkpoint the
        mirror knows are uploaded (:func:`~alma_store.storage.publish_checkpoint`).
        Returns the checkpoint published, or None when there was nothing newer.
        """
        assert self.mirror is not None
        with self.write_lock():  # a mirror's lock: between this process's threads
            self.refresh(writer=True)
            self.checkpoint()
            base, version = self._shared_base, self.tail.base_version
            if version == 0 or (base is not None and base.version >= version):
                return None
            self._shared_base = publish_checkpoint(
                self.files,
                self.meta.uuid,
                version,
                (self.root / "checkpoint.bin").read_bytes(),
                marks_path(self.root, version).read_bytes(),
                base,
                lambda kind, j: self.arrays.codecs[kind].read_raw(j),
            )
            return self._shared_base

    @property
    def shared_base(self) -> SharedCheckpoint | None:
        """The newest shared checkpoint this engine knows (a shared store of format 7)."""
        return self._shared_base

    def refresh(self, *, writer: bool = False, pull: bool = True) -> None:
        """Take in what other processes committed or checkpointed since we last looked.

        ``writer`` (writer lock held): cut off a torn record at the journal's
        end. ``pull=False`` skips a shared store's pull (the caller just pulled).
        """
        with self._mutex:
            self.check_open()
            if self.mirror is not None and pull:
                with self._copying():
                    self.mirror.pull()
            if self.tail.unchanged():
                # No commit we have not seen, so no chunk on disk holds one: a checkpoint
                # another process may have written since changes nothing we rely on.
                return
            self._reload_if_checkpointed()
            if self.tail.catch_up(writer=writer):
                self._snapshot = None
            if self.mirror is not None and self.tail.rows >= self.checkpoint_rows:
                self._checkpoint_mirror()

    def _checkpoint_mirror(self) -> None:
        """Fold a long tail into a mirror's chunk files (a reader's too: nobody else will)."""
        assert self._lock is not None
        if self._mirror_checkpointing:
            return
        try:
            self._lock.acquire(timeout=0)  # a commit of ours holds it: it checkpoints itself
        except LockTimeout:
            return
        self._mirror_checkpointing = True
        try:
            self.checkpoint()
        finally:
            self._mirror_checkpointing = False
            self._lock.release()

    # -- snapshots -------------------------------------------------------------

    def _snapshot_of(
        self,
        overlay: Overlay,
        merged: Runs | None = None,
        labels: dict[int, np.ndarray] | None = None,
        carried: dict[int, tuple[IndexArray, np.ndarray]] | None = None,
    ) -> Snapshot:
        meta = self.meta
        return Snapshot(
            self.read_chunk,
            self.events_after,
            self.checkpoints.marks,
            overlay,
            n_items=meta.n_items,
            chunk_rows=meta.chunk_rows,
            label_dtype=meta.label_dtype,
            label_shape=meta.label_shape,
            merged=merged,
            labels=labels,
            carried=carried,
            arena=self._arena,
            ranks=self._ranks,
        )

    def latest_taken_in(self) -> Snapshot:
        """The newest snapshot this engine holds, without looking for newer commits.

        What a commit builds on before it takes the lock: the commits it has
        not taken in are checked under the lock (:meth:`events_since`).
        """
        with self._mutex:
            if self._snapshot is not None:
                return self._snapshot
        return self.current()

    def current(self, *, pull: bool = True) -> Snapshot:
        """The snapshot of the newest committed version (``pull``: see :meth:`refresh`)."""
        with self._mutex:
            self.refresh(pull=pull)
            if self._snapshot is None:
                self._snapshot = self._snapshot_of(self.tail.overlay, *self._inherited())
                self._previous = self._snapshot
            return self._snapshot

    def _inherited(
        self,
    ) -> tuple[
        Runs | None,
        dict[int, np.ndarray] | None,
        dict[int, tuple[IndexArray, np.ndarray]] | None,
    ]:
        """The previous current snapshot's merged runs and labels that are still right now.

        Runs and labels of chunks the newer events touch are dropped (merged or
        read again when next asked for); the others are handed on as they are,
        nothing copied. The dropped labels are handed on as *carried*, with
        the runs they went with: the new labels of such a chunk follow from
        them and the overlay, without its chunk file (:func:`~alma_store.core.carried_labels`).
        """
        prev = self._previous
        newer = None if prev is None else self.tail.held_after(prev.version)
        if prev is None or newer is None:
            return None, None, None
        if not newer:
            return prev.merged, dict(prev.labels), dict(prev.carried)
        dirty = distinct(np.concatenate([e.dataset_indices for e in newer]) // self.chunk_rows)
        gone = set(dirty.tolist())
        carried = dict(prev.carried)
        had = np.array(sorted(gone.intersection(prev.labels)), np.int64)
        if len(had):
            runs = prev.runs(had)  # merged already: the labels were read with them
            for i, j in enumerate(had.tolist()):
                carried[j] = (runs.run(i), prev.labels[j])
        kept = prev.merged.without(dirty)
        if self._arena.used > 2 * int(kept.lengths.sum()) + (1 << 20):  # mostly stale: start anew
            self._arena = Arena()
            kept = Runs.empty().union(kept, self._arena)
        return kept, {j: v for j, v in prev.labels.items() if j not in gone}, carried

    def snapshot_at(self, version: int) -> Snapshot:
        """A snapshot at any committed version (the current one is cached)."""
        with self._mutex:
            current = self.current()
            if version == current.version:
                return current
            if not 0 <= version < current.version:
                raise InvalidInputError(
                    f"version must lie in [0, {current.version}] (the store's versions), "
                    f"got {version}"
                )
            base = self.checkpoints.checkpoint
            if version >= base.version:
                overlay = self.tail.overlay_at(version)
            else:  # older than the checkpoint: take the events (version, c0] back out
                overlay = Overlay.empty(
                    base.version, base.counts, self.meta.label_dtype, self.meta.label_shape
                )
                older = list(self.iter_events(first=version + 1, last=base.version))
                overlay = Overlay.rewind(overlay, older, self.chunk_rows)
            return self._snapshot_of(overlay)

    # -- reading the journal and the chunk files -------------------------------

    def iter_events(self, *, first: int = 1, last: int | None = None) -> Iterator[LabelEvent]:
        """Committed events ``first .. last`` (default: up to now), oldest first, streaming.

        Memory stays bounded by one read block of the journal, whatever its length.
        """
        stop = self.current().version if last is None else last
        yield from self.tail.iter_events(first, stop)

    def events_after(self, version: int) -> list[LabelEvent]:
        """Every committed event newer than ``version``, up to now (what snapshots undo)."""
        with self._mutex:
            self.refresh()
            return self.tail.after(version)

    def read_chunk(self, kind: str, j: int) -> np.ndarray:
        """Chunk ``j`` of the ``"mask"`` or ``"labels"`` array as on disk now, checked."""
        codec = self.arrays.codecs[kind]
        rows = self.arrays.rows(j)
        with self._mutex:
            self.check_open()
            while True:
                raw = codec.read_raw(j)
                if self.checkpoints.recorded(kind, j, raw):
                    return codec.decode(raw, j, rows)
                if not self._reload_if_checkpointed():
                    what = "missing" if raw is None else "damaged or swapped"
                    raise CorruptStoreError(
                        f"chunk file {codec.path(j)} is {what}: it does not match the "
                        f"checksum that marks index {self.checkpoints.marks.path} records for it"
                    )

    # -- writing (the commit protocol is alma_store.engine._commit) ---------------

    def events_since(self, version: int) -> list[LabelEvent] | None:
        """Committed events after ``version``, to the end of the journal (writer lock held).

        Records not taken in yet are decoded but not applied: this is the cheap
        check a commit built outside the lock makes. None when ``version`` is
        older than the tail this engine holds.
        """
        with self._mutex:
            return self.tail.since(version)

    def append(self, event: LabelEvent) -> int:
        """Append one event (writer lock held); returns the offset to sync.

        ``event.version`` must follow the journal's last record. The event is
        committed but not durable yet: call :meth:`sync` with the returned
        offset once the writer lock is released (group commit). The engine
        takes it in with its next refresh, like another writer's. On a shared
        store the append publishes the commit object first, and raises
        :class:`~alma_store.storage.LostRace` if another writer took the version.
        """
        record = event.encode(self.meta.label_dtype)
        with self._mutex:  # a mirror's publish and pulls are one at a time
            with self._copying():
                end = self.journal.write(record)
            self.tail.appended(event, end, len(record))
        return end

    def append_group(self, events: list[LabelEvent]) -> int:
        """Append consecutive events as one commit object of a shared store (format 9).

        As :meth:`append`, which it is for one event: all of them are committed,
        or (:class:`~alma_store.storage.LostRace`) none.
        """
        if len(events) == 1 or self.mirror is None:
            assert len(events) == 1, "a group commit is for shared stores"
            return self.append(events[0])
        records = [event.encode(self.meta.label_dtype) for event in events]
        with self._mutex:
            with self._copying():
                ends = self.mirror.write_group(records)
            for event, end, record in zip(events, ends, records, strict=True):
                self.tail.appended(event, end, len(record))
        return ends[-1]

    @property
    def groups(self) -> bool:
        """Whether commits may carry other writers' batches (a shared store of format 9)."""
        return self.mirror is not None and self.mirror.log.groups

    @property
    def offers(self) -> bool:
        """Whether this store's writers offer their batches to each other when they meet
        (format 9)."""
        return self.groups

    @property
    def offers_wait(self) -> bool:
        """Whether a writer whose batch another writer is due to carry waits for that
        commit (a directory: a listing and a read cost far less than the create they
        save), or races on, carrying every batch it listed (object storage: every
        request is a round trip, and an offer travels in its name)."""
        return self.files.cheap_requests

    def sync(self, end: int) -> None:
        """Return once the journal is durable up to ``end`` (no lock needed)."""
        self.journal.sync(end)

    # -- checkpoints ---------------------------------------------------------------

    @property
    def needs_upgrade(self) -> bool:
        """Whether the store is of an older format version (its next write upgrades it).

        A shared store's mirror is private: it is never upgraded (nor is the shared store).
        """
        return not self.shared and self.meta.format_version < FORMAT_VERSION

    def checkpoint_if_old_format(self) -> None:
        """Upgrade a store of an older format version (writer lock held), before a write."""
        if self.needs_upgrade:
            self.checkpoint()

    def save_tail_if_due(self) -> None:
        """Write a tail file once :data:`TAIL_FILE_RECORDS` commits came since the newest.

        A tail file is a cache of the journal (see :mod:`alma_store.storage._tailfile`):
        it is written without the writer lock, atomically, by whoever finds it due. The
        newest is looked for first: of several writers of one store, the first to find
        one due writes it, and the others count from it (not one copy per writer).
        """
        with self._mutex:
            tail = self.tail
            if not self._tail_files or tail.version - tail.saved < TAIL_FILE_RECORDS:
                return
            newest = newest_tail_version(self.root)
            if newest is not None and newest > tail.saved:  # another writer saved one since
                tail.saved = newest  # (perhaps of versions this one has not taken in yet)
                if tail.version - newest < TAIL_FILE_RECORDS:
                    return
            saved = TailFile(self.meta.uuid, tail.base_version, tail.end, tail.overlay)
            write_tail_file(self.root, saved)
            remove_tail_files(self.root, below=tail.version)
            tail.saved = tail.version

    def checkpoint_if_free(self) -> None:
        """Checkpoint unless another writer holds the lock (it will checkpoint itself)."""
        try:
            with self.write_lock(timeout=0.1):
                self.refresh(writer=True)
                self.checkpoint()
        except LockTimeoutError:
            pass  # another writer is busy and will checkpoint; the journal has it all

    def checkpoint(self) -> None:
        """Fold the journal tail into the chunk files (writer lock held, tail refreshed)."""
        with self._mutex:
            if self.tail.version > self.tail.base_version or self.needs_upgrade:
                self._write_checkpoint()

    def _write_checkpoint(self) -> None:
        # Chunk files must never get ahead of the durable journal they are a view of.
        self.journal.sync(self.tail.end)
        snap = self.current()
        fold_tail(
            self.root,
            self.arrays,
            self.checkpoints.marks,
            snap,
            self.tail.overlay,
            lambda j: self.read_chunk("labels", j),
            self.tail.end,
        )
        remove_tail_files(self.root)  # of the checkpoint before: stale now
        if self.needs_upgrade:  # last: the upgrade is done
            self.meta = dataclasses.replace(self.meta, format_version=FORMAT_VERSION)
            write_meta(self.root, self.meta)
            self._tail_files = True
        self._load_checkpoint()
