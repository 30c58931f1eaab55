"""The state engine: journal tail, checkpoints, marks index, snapshots, checkpointing.

One :class:`Engine` per open store owns every piece of mutable state:

- the journal (:mod:`alma_store.journal`) and the tail of events after the
  last checkpoint, with its :class:`~alma_store._overlay.Overlay`;
- the checkpoint and its memory-mapped marks index (:mod:`alma_store._state`);
- the snapshot of the current version, cached until the next commit;
- checkpointing: folding the tail into the chunk files.

It hands out immutable :class:`~alma_store._snapshot.Snapshot` objects and
serves their chunk reads (:class:`~alma_store._snapshot.ChunkSource`), checking
each chunk file against the checksum a marks index records for it. The
commit protocol itself (lock, validate, append) is the facade's
(:mod:`alma_store.store`); the engine offers the pieces: :meth:`write_lock`,
:meth:`refresh`, :meth:`current`, :meth:`append`, :meth:`checkpoint`.

Checkpoint protocol, each step durable before the next:

1. encode the new mask and label chunk files in memory, with their CRC-32s;
2. write ``marks-<c1>.bin``: the new runs and every chunk file's checksum;
3. replace the touched chunk files (each atomically);
4. replace ``checkpoint.bin`` (now naming ``c1``), then delete older marks files.

A reader whose chunk file does not match its checkpoint's checksum accepts it
if a newer marks file (a checkpoint in progress, or finished since) records
it, and reports :class:`CorruptStoreError` otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import _state
from ._create import build_mirror
from ._fs import crash_point, is_url, local_path, will_need
from ._lock import LockTimeout, WriterLock
from ._meta import FORMAT_VERSION, SHARED_FORMAT_VERSION, StoreMeta, read_meta, write_meta
from ._mirror import MirrorJournal
from ._objects import DirObjects, Objects, open_objects
from ._overlay import NO_UNDO, Overlay, chunk_labels, chunk_mask, undo_in_range
from ._records import RecordLog, SharedRecordLog
from ._shared import SharedLog, read_shared_meta
from ._snapshot import Snapshot
from ._state import Checkpoint, MarksIndex
from .errors import (
    AlmaError,
    CorruptStoreError,
    InvalidInputError,
    LockTimeoutError,
    ReadOnlyError,
    StoreClosedError,
)
from .features import FeatureSource, open_source
from .index import Arena, Runs, n_chunks
from .journal import FILE_HEADER_SIZE, Journal, LabelEvent

__all__ = ["DEFAULT_CHECKPOINT_ROWS", "Engine", "open_engine", "open_reader"]

OPEN_READ_BYTES = 1 << 18
"""Bytes of each store file an open fetches ahead (all of the small ones)."""
DEFAULT_CHECKPOINT_ROWS = 65536
"""Journal entries after which a writer folds the tail into the chunk files."""
COMPACT_EVERY = 256
"""A shared store's log is folded into a segment by the writer of every so many versions."""


class Engine:
    """The mutable state of one open store. See the module docstring.

    Parameters
    ----------
    root
        The store directory.
    meta
        Its checked ``meta.json``.
    writable
        Open for writing (takes the writer lock to commit).
    checkpoint_rows
        Journal entries after which a commit folds the tail into the chunk files.
    lock_timeout
        Seconds to wait for the writer lock before :class:`LockTimeoutError`.
    shared
        For a shared store: its commit log. ``root`` is then this process's
        private mirror directory (see :mod:`alma_store._mirror`).
    location
        The store's directory or URL, as the user gave it (default: ``root``).
    storage_options
        The storage options it was opened with (kept in memory, for workers).
    """

    def __init__(
        self,
        root: Path,
        meta: StoreMeta,
        *,
        writable: bool,
        checkpoint_rows: int,
        lock_timeout: float,
        shared: SharedLog | None = None,
        location: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.root = root
        self.location = str(root) if location is None else location
        """The store's directory or URL (workers reopen it by this)."""
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
        self.journal: Journal
        self.mirror: MirrorJournal | None = None
        if shared is not None:
            self.journal = self.mirror = MirrorJournal(
                root / "journal.bin",
                bytes.fromhex(meta.uuid),
                meta.label_dtype,
                meta.label_shape,
                shared,
            )
        else:
            self.journal = Journal(
                root / "journal.bin",
                bytes.fromhex(meta.uuid),
                meta.label_dtype,
                meta.label_shape,
                writable=writable,
            )
        self.storage_options = storage_options
        """The storage options the store was opened with (kept in memory, for workers)."""
        self.files: Objects = shared.objects if shared is not None else DirObjects(root)
        """Where the store's other files live (scoring runs): its directory or URL."""
        self._closed = False
        self._mirror_checkpointing = False
        try:
            self.arrays = _state.StateArrays(
                root, meta.n_items, meta.chunk_rows, meta.label_dtype, meta.label_shape
            )
            self._events: list[LabelEvent] = []
            self._ends: list[int] = []
            # Records beyond _read_offset decoded (by events_since) but not taken in yet.
            self._unread: list[tuple[LabelEvent, int]] = []
            self._pending: dict[int, MarksIndex | None] = {}
            self._past: tuple[int, list[LabelEvent], int, int] | None = None
            self._snapshot: Snapshot | None = None
            self._previous: Snapshot | None = None
            self._marks: MarksIndex
            self._load_checkpoint()
            self.refresh()
        except BaseException:
            self.journal.close()
            raise

    # -- lifecycle -----------------------------------------------------------

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
        return len(self._overlay.indices)

    def close(self) -> None:
        """Release the journal, the marks index and the cached snapshot."""
        with self._mutex:
            self._closed = True
            self.journal.close()
            if self._lock is not None:
                self._lock.close()
            self._snapshot = self._previous = None
            self._pending.clear()
            self._past = None
            # Unmapped once no snapshot of ours is left (views of a closed store refuse reads).
            self._marks = MarksIndex.from_runs(self._marks.version, [])
            if self.mirror is not None:  # the private mirror: the shared log keeps it all
                shutil.rmtree(self.root, ignore_errors=True)

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

    # -- checkpoint and tail ---------------------------------------------------

    def _load_checkpoint(self) -> None:
        """(Re)base the in-memory tail on the checkpoint file."""
        path = self.root / "checkpoint.bin"
        while True:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise CorruptStoreError(f"checkpoint file {path} is missing") from None
            ckpt = _state.read_checkpoint(self.root, self.n_chunks)
            marks = _state.open_marks(self.root, ckpt.version, ckpt.counts, self.n_chunks)
            if marks is not None or self.meta.format_version < 2:
                break
            # A checkpoint may have replaced the file and its marks index since we read it.
            now = os.stat(path)
            if (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns):
                raise CorruptStoreError(
                    f"marks index {_state.marks_path(self.root, ckpt.version)} is missing"
                )
        self._ckpt_stat = (st.st_ino, st.st_mtime_ns)
        self._ckpt = ckpt
        self._pending.clear()
        self._arena = Arena()  # merged runs build on this checkpoint's marks index ...
        self._previous = None  # ... and none from before it is handed on
        overlay = Overlay.empty(
            ckpt.version, ckpt.counts, self.meta.label_dtype, self.meta.label_shape
        )
        events, ends, read_offset = [], [], ckpt.journal_offset
        for event, end in zip(self._events, self._ends, strict=True):
            if event.version > ckpt.version:
                events.append(event)
                ends.append(end)
                read_offset = end
        self._events, self._ends = events, ends
        self._overlay = overlay.apply_all(events, self.chunk_rows)
        self._read_offset = read_offset
        self._unread = []
        self._snapshot = None
        if marks is None:  # a version-1 store without a marks index: built from mask chunks
            self._marks = MarksIndex.from_runs(ckpt.version, [])
            self._catch_up()
            marks = self._marks_from_mask_chunks()
        self._marks = marks

    def _marks_from_mask_chunks(self) -> MarksIndex:
        """Every chunk's labeled offsets at the checkpoint, decoded from its mask file."""
        base = self._ckpt
        codec = self.arrays.codecs["mask"]
        runs = []
        for j in range(self.n_chunks):
            lo = j * self.chunk_rows
            rows = self.arrays.rows(j)
            if not base.counts[j]:  # no labels at the checkpoint, whatever the file holds now
                runs.append(np.empty(0, np.int64))
                continue
            disk = codec.decode(codec.read_raw(j), j, rows)
            self._catch_up()  # after the read: every event the chunk may reflect is known
            undo = undo_in_range(self._events, lo, lo + rows)
            empty = Overlay.empty(base.version, base.counts, np.dtype(bool), ())
            run = np.flatnonzero(chunk_mask(disk, lo, empty, undo))
            if len(run) != base.counts[j]:
                raise CorruptStoreError(
                    f"mask chunk file {codec.path(j)} holds {len(run)} labels where the "
                    f"checkpoint counts {int(base.counts[j])}"
                )
            runs.append(run)
        return MarksIndex.from_runs(base.version, runs)

    def _catch_up(self, *, writer: bool = False) -> bool:
        """Read the journal records appended since we last looked; True if there were any."""
        records, end, torn = self._read_unread()
        self._unread = []
        self._overlay = self._overlay.apply_all([event for event, _ in records], self.chunk_rows)
        for event, rec_end in records:
            self._events.append(event)
            self._ends.append(rec_end)
        self._read_offset = end
        if torn and writer:
            self.journal.truncate(end)  # never acknowledged: its writer died mid-append
        return bool(records)

    def pull(self) -> None:
        """Copy what other writers committed to a shared store into the mirror (else nothing).

        Every other method reads the mirror; :meth:`refresh` pulls first.
        """
        if self.mirror is not None:
            with self._mutex:
                self.check_open()
                self.mirror.pull()

    def campaign_log(self) -> RecordLog | SharedRecordLog:
        """A reader and appender of the store's campaign log (claims, metrics)."""
        if self.mirror is not None:
            return SharedRecordLog(self.mirror.log.objects)
        return RecordLog(self.root / "campaign.bin", bytes.fromhex(self.meta.uuid))

    def compact_if_due(self, version: int) -> None:
        """After the commit of ``version``: fold a shared store's log every ``COMPACT_EVERY``.

        Housekeeping after a durable commit: if the storage fails it, a warning
        says so, and the next due version tries again (nothing is lost meanwhile,
        the log only stays longer).
        """
        if self.mirror is None or version % COMPACT_EVERY:
            return
        try:
            with self._mutex:
                self.mirror.compact(min_records=COMPACT_EVERY // 2)
        except (AlmaError, OSError) as exc:
            warnings.warn(
                f"{self.location}: compacting the commit log failed ({exc}); the commit was "
                "not affected, and a later commit compacts",
                RuntimeWarning,
                stacklevel=3,
            )

    def refresh(self, *, writer: bool = False, pull: bool = True) -> None:
        """Take in what other processes committed or checkpointed since we last looked.

        ``pull=False`` skips a shared store's pull (the caller just pulled).
        """
        with self._mutex:
            self.check_open()
            if self.mirror is not None and pull:
                self.mirror.pull()
            if self.journal.size() == self._read_offset:
                # No commit we have not seen, so no chunk on disk holds one: a checkpoint
                # another process may have written since changes nothing we rely on.
                return
            self._reload_if_checkpointed()
            if self._catch_up(writer=writer):
                self._snapshot = None
            if self.mirror is not None and self.tail_rows >= self.checkpoint_rows:
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

    def _reload_if_checkpointed(self) -> bool:
        try:
            st = os.stat(self.root / "checkpoint.bin")
        except FileNotFoundError:
            raise CorruptStoreError(
                f"checkpoint file {self.root / 'checkpoint.bin'} is missing"
            ) from None
        if (st.st_ino, st.st_mtime_ns) == self._ckpt_stat:
            return False
        self._load_checkpoint()
        return True

    def _snapshot_of(
        self,
        overlay: Overlay,
        merged: Runs | None = None,
        labels: dict[int, np.ndarray] | None = None,
    ) -> Snapshot:
        meta = self.meta
        return Snapshot(
            self,
            self._marks,
            overlay,
            n_items=meta.n_items,
            chunk_rows=meta.chunk_rows,
            label_dtype=meta.label_dtype,
            label_shape=meta.label_shape,
            merged=merged,
            labels=labels,
            arena=self._arena,
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
                self._snapshot = self._snapshot_of(self._overlay, *self._inherited())
                self._previous = self._snapshot
            return self._snapshot

    def _inherited(self) -> tuple[Runs | None, dict[int, np.ndarray] | None]:
        """The previous current snapshot's merged runs and labels that are still right now.

        Runs and labels of chunks the newer events touch are dropped (merged or
        read again when next asked for); the others are handed on as they are,
        nothing copied.
        """
        prev = self._previous
        tail_base = self._overlay.version - len(self._events)
        if prev is None or prev.version < tail_base:
            return None, None
        newer = self._events[prev.version - tail_base :]
        if not newer:
            return prev.merged, dict(prev.labels)
        dirty = np.unique(np.concatenate([e.dataset_indices for e in newer]) // self.chunk_rows)
        kept = prev.merged.without(dirty)
        if self._arena.used > 2 * int(kept.lengths.sum()) + (1 << 20):  # mostly stale: start anew
            self._arena = Arena()
            kept = Runs.empty().union(kept, self._arena)
        gone = set(dirty.tolist())
        return kept, {j: v for j, v in prev.labels.items() if j not in gone}

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
            base = self._ckpt
            overlay = Overlay.empty(
                base.version, base.counts, self.meta.label_dtype, self.meta.label_shape
            )
            if version >= base.version:
                overlay = overlay.apply_all(self._events[: version - base.version], self.chunk_rows)
            else:  # older than the checkpoint: take the events (version, c0] back out
                older = list(self.iter_events(first=version + 1, last=base.version))
                overlay = Overlay.rewind(overlay, older, self.chunk_rows)
            return self._snapshot_of(overlay)

    # -- the one journal reader ---------------------------------------------

    def iter_events(self, *, first: int = 1, last: int | None = None) -> Iterator[LabelEvent]:
        """Committed events ``first .. last`` (default: up to now), oldest first, streaming.

        Memory stays bounded by one read block of the journal, whatever its length.
        """
        stop = self.current().version if last is None else last
        if first > stop:
            return
        offset, version = FILE_HEADER_SIZE, 1
        tail_base = self._overlay.version - len(self._events)
        if first > tail_base and self._ends:  # start inside the in-memory tail
            k = first - tail_base - 1
            offset = self._ends[k - 1] if k else self._ckpt.journal_offset
            version = first
        for event, _ in self.journal.iter_records(offset, version):
            if event.version > stop:
                return
            if event.version >= first:
                yield event

    def events_after(self, version: int) -> list[LabelEvent]:
        """Every committed event newer than ``version``, up to now (see :class:`ChunkSource`)."""
        with self._mutex:
            self.refresh()
            base = self._overlay.version - len(self._events)
            if version >= base:
                return self._events[version - base :]
            # Older than the tail held: read those events once, then extend as the journal grows.
            if self._past is None or self._past[0] != version:
                self._past = (version, [], FILE_HEADER_SIZE, 1)
            _, events, offset, next_version = self._past
            for event, end in self.journal.iter_records(offset, next_version):
                if event.version > version:
                    events.append(event)
                offset, next_version = end, event.version + 1
            self._past = (version, events, offset, next_version)
            return events

    # -- chunk reads (ChunkSource) -----------------------------------------------

    def _recorded(self, kind: str, j: int, entry: int) -> bool:
        """Whether a marks index at or after ours records ``entry`` for chunk file ``kind``/``j``."""
        if self._marks.file_entry(kind, j) == entry:
            return True
        for v in _state.marks_versions(self.root):
            if v <= self._marks.version:
                continue
            if v not in self._pending:
                self._pending[v] = _state.open_marks(self.root, v, None, self.n_chunks)
            pending = self._pending[v]
            if pending is not None and pending.file_entry(kind, j) == entry:
                return True
        return False

    def read_chunk(self, kind: str, j: int) -> np.ndarray:
        """Chunk ``j`` of the ``"mask"`` or ``"labels"`` array as on disk now, checked."""
        codec = self.arrays.codecs[kind]
        rows = self.arrays.rows(j)
        with self._mutex:
            self.check_open()
            if self._marks.table is None:  # format version 1 records no chunk checksums
                return codec.decode(codec.read_raw(j), j, rows)
            while True:
                raw = codec.read_raw(j)
                if self._recorded(kind, j, _state.file_checksum(raw)):
                    return codec.decode(raw, j, rows)
                if not self._reload_if_checkpointed():
                    what = "missing" if raw is None else "damaged or swapped"
                    raise CorruptStoreError(
                        f"chunk file {codec.path(j)} is {what}: it does not match the "
                        f"checksum that marks index {self._marks.path} records for it"
                    )

    # -- writing ---------------------------------------------------------------

    def events_since(self, version: int) -> list[LabelEvent] | None:
        """Committed events after ``version``, to the end of the journal (writer lock held).

        Records not taken in yet are decoded but not applied: this is the cheap
        check a commit built outside the lock makes. None when ``version`` is
        older than the tail this engine holds.
        """
        with self._mutex:
            base = self._overlay.version - len(self._events)
            if version < base:
                return None
            held = self._events[version - base :]
            records, end, torn = self._read_unread()
            if torn:
                self.journal.truncate(end)  # never acknowledged: its writer died mid-append
            self._unread = records
            return held + [event for event, _ in records]

    def _read_unread(self) -> tuple[list[tuple[LabelEvent, int]], int, bool]:
        """Records beyond ``_read_offset``: those decoded already, then the file's rest."""
        have = self._unread
        offset = have[-1][1] if have else self._read_offset
        version = have[-1][0].version if have else self._overlay.version
        records, end, torn = self.journal.read(offset, version + 1)
        return have + records, end, torn

    def append(self, event: LabelEvent) -> int:
        """Append one event (writer lock held); returns the offset to sync.

        ``event.version`` must follow the journal's last record. The event is
        committed but not durable yet: call :meth:`sync` with the returned
        offset once the writer lock is released (group commit). The engine
        takes it in with its next refresh, like another writer's.
        """
        record = event.encode(self.meta.label_dtype)
        with self._mutex:  # a mirror's publish and pulls are one at a time
            end = self.journal.write(record)
            # Known without reading it back, if it follows what we know.
            known = self._unread[-1][1] if self._unread else self._read_offset
            if known == end - len(record):
                self._unread.append((event, end))
        return end

    def sync(self, end: int) -> None:
        """Return once the journal is durable up to ``end`` (no lock needed)."""
        self.journal.sync(end)

    @property
    def needs_upgrade(self) -> bool:
        """Whether the store is of an older format version (its next write upgrades it)."""
        return self.meta.format_version < FORMAT_VERSION

    def checkpoint_if_old_format(self) -> None:
        """Upgrade a store of an older format version (writer lock held), before a write."""
        if self.meta.format_version < FORMAT_VERSION:
            self.checkpoint()

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
            if self._events or self.meta.format_version < FORMAT_VERSION:
                self._write_checkpoint()

    def _write_checkpoint(self) -> None:
        # Chunk files must never get ahead of the durable journal they are a view of.
        self.journal.sync(self._ends[-1] if self._ends else self._ckpt.journal_offset)
        snap = self.current()
        overlay = self._overlay
        upgrade = self._marks.table is None
        if upgrade:  # a version-1 store: every chunk file gets written and checksummed
            codecs = self.arrays.codecs
            touched = np.array(
                [
                    j
                    for j in range(self.n_chunks)
                    if snap.labeled_counts[j]
                    or self._marks.counts[j]
                    or codecs["mask"].path(j).exists()
                    or codecs["labels"].path(j).exists()
                ],
                dtype=np.int64,
            )
            table = np.zeros(self.n_chunks, _state.ENTRY)
        else:
            touched = np.unique(overlay.indices // self.chunk_rows)
            assert self._marks.table is not None
            self._marks.check(np.arange(self.n_chunks))
            table = self._marks.table.copy()
        everything = snap.runs(np.arange(self.n_chunks))
        runs = [everything.run(j) for j in range(self.n_chunks)]
        files: dict[tuple[str, int], bytes] = {}
        for j in touched.tolist():
            lo = j * self.chunk_rows
            mask = np.zeros(self.arrays.rows(j), bool)
            mask[runs[j]] = True
            labels = chunk_labels(self.read_chunk("labels", j), lo, overlay, NO_UNDO)
            for kind, data in (("mask", mask), ("labels", labels)):
                raw = self.arrays.codecs[kind].encode(data)
                files[kind, j] = raw
                table[kind][j] = _state.file_checksum(raw)
        _state.write_marks(self.root, overlay.version, runs, table)
        self.arrays.write(files)
        crash_point("checkpoint-file")
        offset = self._ends[-1] if self._ends else self._ckpt.journal_offset
        _state.write_checkpoint(self.root, Checkpoint(overlay.version, offset, overlay.counts))
        _state.remove_marks_except(self.root, overlay.version)
        if self.meta.format_version < FORMAT_VERSION:  # last: the upgrade is done
            self.meta = dataclasses.replace(self.meta, format_version=FORMAT_VERSION)
            write_meta(self.root, self.meta)
        self._load_checkpoint()


def open_engine(
    location: str | os.PathLike[str],
    *,
    writable: bool,
    checkpoint_rows: int,
    lock_timeout: float,
    storage_options: dict[str, Any] | None = None,
) -> tuple[Engine, FeatureSource]:
    """Open the store at ``location``: its checked metadata, feature source and engine.

    ``location`` is a directory or, for a shared store, a URL. ``storage_options``
    reach features and shared stores in object storage (never written anywhere).
    """
    text = os.fspath(location)
    if is_url(text) and not text.startswith("file://"):
        objects = open_objects(text, storage_options)
        return _open_shared(
            objects, text, writable, checkpoint_rows, lock_timeout, options=storage_options
        )
    root = local_path(text, "store path")
    meta = read_meta(root)
    if meta.format_version == SHARED_FORMAT_VERSION:
        return _open_shared(
            DirObjects(root),
            text,
            writable,
            checkpoint_rows,
            lock_timeout,
            root=root,
            options=storage_options,
        )
    # What the open reads next, fetched at once rather than one cold read after another.
    for name in ("checkpoint.bin", "journal.bin", "state/mask/zarr.json", "state/labels/zarr.json"):
        will_need(root / name, OPEN_READ_BYTES)
    with contextlib.suppress(OSError):
        for version in _state.marks_versions(root)[-1:]:
            will_need(_state.marks_path(root, version), OPEN_READ_BYTES)
    source = open_source(meta.features, root, meta.n_items, storage_options)
    try:
        engine = Engine(
            root,
            meta,
            writable=writable,
            checkpoint_rows=checkpoint_rows,
            lock_timeout=lock_timeout,
            storage_options=storage_options,
        )
    except BaseException:
        source.close()
        raise
    return engine, source


def _open_shared(
    objects: Objects,
    location: str,
    writable: bool,
    checkpoint_rows: int,
    lock_timeout: float,
    *,
    root: Path | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[Engine, FeatureSource]:
    """Open a shared store: a private mirror directory, filled from its commit log."""
    meta = read_shared_meta(objects)
    mirror = build_mirror(meta)
    try:
        # Relative feature paths (an in-memory array copied at create) are the store directory's.
        source = open_source(meta.features, root or mirror, meta.n_items, options)
        try:
            engine = Engine(
                mirror,
                meta,  # format 5: the mirror is an implementation detail
                writable=writable,
                checkpoint_rows=checkpoint_rows,
                lock_timeout=lock_timeout,
                shared=SharedLog(objects),
                location=location,
                storage_options=options,
            )
        except BaseException:
            source.close()
            raise
    except BaseException:
        shutil.rmtree(mirror, ignore_errors=True)
        raise
    return engine, source


@contextlib.contextmanager
def open_reader(
    root: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> Iterator[tuple[Engine, FeatureSource]]:
    """Open the store at ``root`` (a directory or URL) read-only for one task (a worker)."""
    engine, source = open_engine(
        root,
        writable=False,
        checkpoint_rows=DEFAULT_CHECKPOINT_ROWS,
        lock_timeout=0.0,
        storage_options=storage_options,
    )
    try:
        yield engine, source
    finally:
        engine.close()
        source.close()
