"""The append-only label journal: the store's source of truth.

Every commit is one record appended to ``journal.bin``. The Zarr mask and label
arrays are a checkpointed *view* of the journal, rebuilt from it after a crash.

File format
-----------
The file opens with a 32-byte header: ``b"ALMAJNL1"``, the store's 16-byte
UUID, a CRC-32 of those 24 bytes and 4 zero bytes. A journal whose UUID is not
the store's is refused. Records (:mod:`alma_store.core`: framed
:class:`~alma_store.core.LabelEvent` records) follow back to back.

Durability and group commit
---------------------------
A writer appends its record with ``write`` (:meth:`Journal.write`, writer lock
held), releases the lock, and only then makes it durable
(:meth:`Journal.sync`): ``add_labels`` returns after an ``fdatasync`` of the
file that began after the record was written, so an acknowledged record
survives ``kill -9`` and power loss. The writer lock is never held across an
``fdatasync``. A syncing writer reads the file's size, calls ``fdatasync`` and
records that size in ``journal.sync``; a writer whose record ends within a
recorded size is covered by that ``fdatasync`` and returns without one of its
own. Writers that do sync at the same time are merged into one journal commit
by the filesystem.

``journal.sync`` holds ``boot id (16 bytes) | journal inode u64 | size u64 |
generation u64``, read and written under its own ``flock`` (held for that read
or write only). It is a hint for the running system only: a writer trusts it
only with the same boot id and inode. Within one boot the journal only grows,
except where a writer cuts off a torn tail (a record whose writer died
mid-``write``, never acknowledged): it lowers the recorded size to the cut and
bumps the generation first, and a syncing writer records its size only if the
generation is still the one it saw before it read the size, so no record
written after a cut is ever taken for a synced one. A process killed *during*
an append leaves at most a short record at the end of the file.

Replay rules
------------
Records carry consecutive versions starting at 1. Reading stops quietly at a
short record at the very end: it was never acknowledged, and a writer
holding the lock truncates it before appending. Anything else — a bad magic,
a CRC mismatch on a complete record, a version gap, a header for another store
— raises :class:`~alma_store.errors.CorruptStoreError` naming the file and
byte offset. Nothing is ever silently skipped.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core import KINDS, REC_HEADER, REC_MAGIC, LabelEvent, UnknownKindError
from ..errors import CorruptStoreError
from ._fs import crash_point, fsync_fd, fsync_path, storage_errors, write_fd
from ._platform import lock_file, sync_data, unlock_file

__all__ = ["FILE_HEADER_SIZE", "Journal"]

FILE_MAGIC = b"ALMAJNL1"
FILE_HEADER_SIZE = 32

_HINT = struct.Struct("<16sQQQ")


def _boot_id() -> bytes:
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            return f.read().strip()[:16].ljust(16, b"-")
    except OSError:
        return b""  # no boot id: the hint is never trusted


_BOOT_ID = _boot_id()


@dataclass
class _SyncHint:
    """``journal.sync`` (its lock held): the journal size known durable, and the cut count."""

    fd: int
    inode: int

    def read(self) -> tuple[int, int]:
        """``(size known durable, generation)``; ``(0, 0)`` unless this boot and journal wrote it."""
        raw = os.pread(self.fd, _HINT.size, 0)
        if len(raw) != _HINT.size or not _BOOT_ID:
            return 0, 0
        boot, inode, size, generation = _HINT.unpack(raw)
        if boot != _BOOT_ID or inode != self.inode:
            return 0, 0
        return int(size), int(generation)

    def write(self, size: int, generation: int) -> None:
        """Record ``size`` and ``generation``."""
        if _BOOT_ID:
            os.pwrite(self.fd, _HINT.pack(_BOOT_ID, self.inode, size, generation), 0)


def _file_header(uuid: bytes) -> bytes:
    body = FILE_MAGIC + uuid
    return body + struct.pack("<I", zlib.crc32(body)) + b"\0\0\0\0"


class Journal:
    """Reader and appender of one store's journal file.

    Appending is only safe while holding the store's writer lock; reading is
    always safe, concurrently with a writer.
    """

    def __init__(
        self,
        path: Path,
        uuid: bytes,
        label_dtype: np.dtype,
        label_shape: tuple[int, ...],
        *,
        writable: bool,
    ) -> None:
        self.path = path
        self.label_dtype = label_dtype
        self.label_shape = label_shape
        self._sync_fd, self._sync_pid = -1, os.getpid()
        self._sync_mutex = threading.Lock()
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND if writable else os.O_RDONLY)
        except FileNotFoundError:
            raise CorruptStoreError(f"journal file {path} is missing") from None
        self._inode = os.fstat(self._fd).st_ino  # the hint names the journal it is about
        head = os.pread(self._fd, FILE_HEADER_SIZE, 0)
        if len(head) < FILE_HEADER_SIZE or head != _file_header(uuid):
            os.close(self._fd)
            raise CorruptStoreError(
                f"{path} does not start with this store's journal header "
                "(truncated, damaged, or copied from another store)"
            )

    @staticmethod
    def create(path: Path, uuid: bytes) -> None:
        """Write an empty journal (header only) durably."""
        with storage_errors(path), open(path, "xb") as f:
            f.write(_file_header(uuid))
            f.flush()
            fsync_fd(f.fileno(), path)
        fsync_path(path.parent)

    def size(self) -> int:
        """Current file size in bytes."""
        return os.fstat(self._fd).st_size

    def read(
        self, offset: int, first_version: int, *, max_bytes: int | None = None
    ) -> tuple[list[tuple[LabelEvent, int]], int, bool]:
        """Decode records from ``offset`` towards the end of the file.

        Parameters
        ----------
        offset
            Byte offset of the first record to read (a record boundary).
        first_version
            The version the first record there must carry.
        max_bytes
            Read about this many bytes at most (always at least one whole
            record); ``None`` reads to the end.

        Returns
        -------
        records
            ``(event, end_offset)`` pairs in file order.
        end
            Offset just past the last complete record returned.
        torn
            True when a short record ends the file after ``end`` (an
            unacknowledged append in progress or cut off by a crash).

        Raises
        ------
        CorruptStoreError
            A damaged record, a version gap, or a file shorter than ``offset``.
        """
        size = self.size()
        if size < offset:
            raise CorruptStoreError(
                f"{self.path} is {size} bytes but the checkpoint refers to offset {offset}: "
                "the journal was truncated"
            )
        want = size - offset if max_bytes is None else min(size - offset, max_bytes)
        data = os.pread(self._fd, want, offset)
        out: list[tuple[LabelEvent, int]] = []
        pos = 0
        expect = first_version
        while pos < len(data):
            need = REC_HEADER.size
            if len(data) - pos >= REC_HEADER.size:
                magic, plen, pcrc, hcrc = REC_HEADER.unpack_from(data, pos)
                if magic != REC_MAGIC or zlib.crc32(data[pos : pos + 12]) != hcrc:
                    raise CorruptStoreError(
                        f"{self.path}: damaged record header at byte {offset + pos}"
                    )
                need += plen
            if len(data) - pos < need:
                if offset + pos + need <= size and not out:
                    data = os.pread(self._fd, need, offset + pos)  # one record beyond max_bytes
                    offset, pos = offset + pos, 0
                    continue
                return out, offset + pos, offset + pos + need > size
            payload = data[pos + REC_HEADER.size : pos + need]
            if zlib.crc32(payload) != pcrc:
                raise CorruptStoreError(
                    f"{self.path}: checksum mismatch in the record at byte {offset + pos}"
                )
            try:
                event = LabelEvent.decode(payload, self.label_dtype, self.label_shape)
            except UnknownKindError as exc:
                raise CorruptStoreError(
                    f"{self.path}: the record at byte {offset + pos} has event kind {str(exc)!r}, "
                    f"which this alma_store does not know (known: {list(KINDS)}); "
                    "a newer alma_store wrote it: upgrade alma_store to read this store"
                ) from None
            except (ValueError, KeyError, TypeError, struct.error) as exc:
                raise CorruptStoreError(
                    f"{self.path}: undecodable record at byte {offset + pos}: {exc}"
                ) from None
            if event.version != expect:
                raise CorruptStoreError(
                    f"{self.path}: record at byte {offset + pos} has version {event.version}, "
                    f"expected {expect}"
                )
            expect += 1
            pos += need
            out.append((event, offset + pos))
        return out, offset + pos, False

    def raw_records(self, last: int) -> Iterator[tuple[int, bytes]]:
        """``(version, record bytes)`` of versions ``1 .. last``, oldest first (to copy them)."""
        start = FILE_HEADER_SIZE
        for event, end in self.iter_records():
            if event.version > last:
                return
            yield event.version, self.read_bytes(start, end)
            start = end

    def read_bytes(self, start: int, end: int) -> bytes:
        """The file's bytes ``start .. end`` (whole records, to copy them elsewhere)."""
        return os.pread(self._fd, end - start, start)

    def iter_records(
        self, offset: int = FILE_HEADER_SIZE, first_version: int = 1, *, block: int = 1 << 20
    ) -> Iterator[tuple[LabelEvent, int]]:
        """Stream ``(event, end_offset)`` from ``offset`` to the last complete record.

        Reads ``block`` bytes at a time, so memory stays bounded by one block
        (or one record) whatever the journal's length.
        """
        while True:
            records, end, torn = self.read(offset, first_version, max_bytes=block)
            yield from records
            if not records or torn:
                return
            offset, first_version = end, first_version + len(records)

    def write(self, record: bytes) -> int:
        """Append one encoded record (writer lock held); returns where it ends.

        The record is not durable yet: :meth:`sync` it once the lock is released.
        """
        crash_point("append-torn", lambda: write_fd(self._fd, record[: len(record) // 2]))
        before = self.size()
        try:
            with storage_errors(self.path):
                write_fd(self._fd, record)
        except OSError:
            # Whatever part of the record reached the file was never acknowledged:
            # cut it off now, so the journal ends on a whole record.
            with contextlib.suppress(OSError):
                self.truncate(before)
            raise
        return before + len(record)

    def sync(self, end: int) -> None:
        """Return once the file is durable up to ``end``: group commit, see the module doc."""
        with self._sync_lock() as hint:
            durable, generation = hint.read()
        if durable >= end:
            return  # a sync that began after our record was written covered it
        size = self.size()
        with storage_errors(self.path):
            crash_point("fsync")
            sync_data(self._fd)  # concurrent ones are merged by the filesystem's journal
        with self._sync_lock() as hint:
            now, now_generation = hint.read()
            if now_generation == generation and size > now:  # no tail was cut meanwhile
                hint.write(size, generation)
        crash_point("append-done")

    def append(self, record: bytes) -> None:
        """Append one encoded record and make it durable before returning."""
        self.sync(self.write(record))

    def truncate(self, offset: int) -> None:
        """Cut an unacknowledged torn tail off (writer lock held)."""
        with self._sync_lock() as hint:
            durable, generation = hint.read()
            hint.write(min(durable, offset), generation + 1)
            os.ftruncate(self._fd, offset)
            fsync_fd(self._fd, self.path)

    @contextlib.contextmanager
    def _sync_lock(self) -> Iterator[_SyncHint]:
        """Hold ``journal.sync``'s lock (blocking: it is held for a read or a write of it)."""
        with self._sync_mutex:  # threads of this process share the descriptor
            if self._sync_fd < 0 or self._sync_pid != os.getpid():
                self._sync_fd = os.open(
                    self.path.with_suffix(".sync"), os.O_RDWR | os.O_CREAT, 0o666
                )
                self._sync_pid = os.getpid()
            lock_file(self._sync_fd, blocking=True)
            try:
                yield _SyncHint(self._sync_fd, self._inode)
            finally:
                unlock_file(self._sync_fd)

    def close(self) -> None:
        """Close the file descriptors."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._sync_fd >= 0 and self._sync_pid == os.getpid():
            os.close(self._sync_fd)
        self._sync_fd = -1
