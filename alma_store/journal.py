"""The append-only label journal: the store's source of truth.

Every commit is one record appended to ``journal.bin``. The Zarr mask and label
arrays are a checkpointed *view* of the journal, rebuilt from it after a crash.

File format
-----------
The file opens with a 32-byte header: ``b"ALMAJNL1"``, the store's 16-byte
UUID, a CRC-32 of those 24 bytes and 4 zero bytes. A journal whose UUID is not
the store's is refused. Records follow back to back::

    b"REC1" | payload_len u32 | crc32(payload) u32 | crc32(first 12 bytes) u32 | payload

All integers are little-endian. The payload is ``json_len u32 | json | indices
| values | previous``: the JSON object holds ``version``, ``kind``, ``n``,
``time`` (Unix seconds), ``annotator``, ``round`` and, for string labels, the
values themselves; ``indices`` are ``n`` int64 dataset indices; ``values`` (and
``previous`` for corrections) are the raw little-endian bytes of the label
dtype, shape ``(n, *label_shape)``.

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
import fcntl
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._fs import crash_point, fsync_path, storage_errors, write_fd
from ._types import IndexArray
from .errors import CorruptStoreError, InvalidInputError

__all__ = ["AnnotationRows", "Journal", "LabelEvent", "split_records"]

FILE_MAGIC = b"ALMAJNL1"
FILE_HEADER_SIZE = 32
REC_MAGIC = b"REC1"
REC_HEADER = struct.Struct("<4sIII")
KINDS: dict[str, tuple[bool, bool]] = {
    "add": (False, True),
    "relabel": (True, True),
    "remove": (True, False),
}
"""Event kinds, each with whether its items are labeled before and after it.

Later formats add kinds here; a reader meeting a kind it does not know refuses
the record with :class:`CorruptStoreError` (written by a newer alma_store)
instead of guessing what it meant.
"""


@dataclass(frozen=True, slots=True)
class AnnotationRows:
    """The annotations a commit to a store with several annotations per item records.

    Row ``r`` says annotator ``annotators[r]`` gave item ``dataset_indices[r]``
    the label ``values[r]`` at Unix time ``times[r]``.
    """

    dataset_indices: IndexArray
    values: np.ndarray
    annotators: tuple[str, ...]
    times: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        """The rows as the JSON object a journal record holds."""
        return {
            "indices": self.dataset_indices.tolist(),
            "values": self.values.tolist(),
            "annotators": list(self.annotators),
            "times": list(self.times),
        }

    @classmethod
    def from_json(
        cls, obj: dict[str, list[Any]], label_dtype: np.dtype, label_shape: tuple[int, ...]
    ) -> AnnotationRows:
        """Rows from the JSON object :meth:`to_json` wrote."""
        n = len(obj["indices"])
        return cls(
            np.asarray(obj["indices"], dtype=np.int64).reshape(n),
            np.array(obj["values"], dtype=label_dtype).reshape((n, *label_shape)),
            tuple(str(a) for a in obj["annotators"]),
            tuple(float(t) for t in obj["times"]),
        )


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """One commit: a journal record.

    Parameters
    ----------
    version
        The store version this commit created (1 for the first commit).
    kind
        ``"add"`` labels unlabeled items with ``values``; ``"relabel"`` changes
        the labels of labeled items from ``previous`` to ``values``;
        ``"remove"`` returns labeled items to the Unlabeled part, ``values``
        being the labels they had.
    dataset_indices
        The dataset indices the commit touched, int64, in the order given.
    values
        Labels, shape ``(n, *label_shape)`` (see ``kind``).
    previous
        For ``"relabel"``, the labels before the commit; ``None`` otherwise.
    time
        Unix time of the commit, in seconds.
    annotator, round
        Provenance given with the commit.
    row_annotators, row_times
        Per-item provenance (format 4), when the items came from an annotation
        tool's export: who labeled each item and when.
    annotations
        Format 4, stores with several annotations per item: every annotation
        the commit recorded. Its ``"add"`` items are those whose annotations
        reached a majority with it.
    resolved
        Format 4: the ``"add"`` is a reviewer's verdict on disputed items.
    """

    version: int
    kind: str
    dataset_indices: IndexArray
    values: np.ndarray
    time: float = field(default_factory=time.time)
    annotator: str | None = None
    round: int | None = None
    previous: np.ndarray | None = None
    row_annotators: tuple[str | None, ...] | None = None
    row_times: tuple[float, ...] | None = None
    annotations: AnnotationRows | None = None
    resolved: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInputError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        if self.version < 1:
            raise InvalidInputError(f"version must be >= 1, got {self.version}")
        if len(self.values) != len(self.dataset_indices):
            raise InvalidInputError(
                f"values has length {len(self.values)} but dataset_indices has length "
                f"{len(self.dataset_indices)}"
            )
        if (self.kind == "relabel") != (self.previous is not None):
            raise InvalidInputError("previous is given for, and only for, a 'relabel' event")
        for name in ("row_annotators", "row_times"):
            rows = getattr(self, name)
            if rows is not None and len(rows) != len(self.dataset_indices):
                raise InvalidInputError(f"{name} must have one entry per item")
        if self.previous is not None and self.previous.shape != self.values.shape:
            raise InvalidInputError(
                f"previous has shape {self.previous.shape} but values has shape {self.values.shape}"
            )

    @property
    def labeled_after(self) -> bool:
        """Whether the touched items are labeled after this event."""
        return KINDS[self.kind][1]

    @property
    def labeled_before(self) -> bool:
        """Whether the touched items were labeled before this event."""
        return KINDS[self.kind][0]

    @property
    def values_before(self) -> np.ndarray:
        """The touched items' labels before this event (meaningless for ``"add"``)."""
        return self.previous if self.previous is not None else self.values

    def encode(self, label_dtype: np.dtype) -> bytes:
        """Serialise to one journal record, header included."""
        n = len(self.dataset_indices)
        head: dict[str, object] = {
            "version": self.version,
            "kind": self.kind,
            "n": n,
            "time": self.time,
            "annotator": self.annotator,
            "round": self.round,
        }
        if self.row_annotators is not None:
            head["row_annotators"] = list(self.row_annotators)
        if self.row_times is not None:
            head["row_times"] = list(self.row_times)
        if self.annotations is not None:
            head["annotations"] = self.annotations.to_json()
        if self.resolved:
            head["resolved"] = True
        parts = [np.ascontiguousarray(self.dataset_indices, dtype="<i8").tobytes()]
        arrays = {"values": self.values}
        if self.previous is not None:
            arrays["previous"] = self.previous
        for name, arr in arrays.items():
            if label_dtype.kind == "T":
                head[name] = [str(v) for v in arr.reshape(-1)]
            else:
                parts.append(
                    np.ascontiguousarray(arr, dtype=label_dtype.newbyteorder("<")).tobytes()
                )
        js = json.dumps(head, separators=(",", ":")).encode()
        payload = b"".join([struct.pack("<I", len(js)), js, *parts])
        first = struct.pack("<4sII", REC_MAGIC, len(payload), zlib.crc32(payload))
        return first + struct.pack("<I", zlib.crc32(first)) + payload

    @classmethod
    def decode(
        cls, payload: bytes, label_dtype: np.dtype, label_shape: tuple[int, ...]
    ) -> LabelEvent:
        """Parse a record payload (the bytes after the 16-byte record header)."""
        (jlen,) = struct.unpack_from("<I", payload, 0)
        head = json.loads(payload[4 : 4 + jlen])
        if head["kind"] not in KINDS:
            raise UnknownKindError(head["kind"])
        n = int(head["n"])
        pos = 4 + jlen
        idx = np.frombuffer(payload, dtype="<i8", count=n, offset=pos).astype(np.int64)
        pos += 8 * n
        count = n * int(np.prod(label_shape, dtype=np.int64))
        arrays: dict[str, np.ndarray] = {}
        for name in ("values", "previous") if head["kind"] == "relabel" else ("values",):
            if label_dtype.kind == "T":
                arr = np.array(head[name], dtype=label_dtype)
            else:
                arr = np.frombuffer(
                    payload, dtype=label_dtype.newbyteorder("<"), count=count, offset=pos
                ).astype(label_dtype)
                pos += count * label_dtype.itemsize
            arrays[name] = arr.reshape((n, *label_shape))
        return cls(
            version=int(head["version"]),
            kind=head["kind"],
            dataset_indices=idx,
            values=arrays["values"],
            time=float(head["time"]),
            annotator=head["annotator"],
            round=head["round"],
            previous=arrays.get("previous"),
            row_annotators=_tuple_or_none(head.get("row_annotators")),
            row_times=_tuple_or_none(head.get("row_times")),
            annotations=None
            if "annotations" not in head
            else AnnotationRows.from_json(head["annotations"], label_dtype, label_shape),
            resolved=bool(head.get("resolved", False)),
        )


def _tuple_or_none(values: list[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


def split_records(data: bytes, first_version: int, where: str) -> list[tuple[int, bytes]]:
    """Cut whole records out of ``data``: ``(version, record bytes)`` pairs, checked.

    ``data`` holds records back to back (a shared store's commit object or
    segment), the first of version ``first_version`` and the others
    consecutive. Each record's framing and CRC-32s are checked and its
    version read from its JSON head; the payload is not decoded further.

    Raises
    ------
    CorruptStoreError
        A bad magic or checksum, a short record, a version out of sequence
        (``where`` names the object).
    """
    out: list[tuple[int, bytes]] = []
    pos, expect = 0, first_version
    while pos < len(data):
        if len(data) - pos < REC_HEADER.size:
            raise CorruptStoreError(f"{where}: a short record at byte {pos}")
        magic, plen, pcrc, hcrc = REC_HEADER.unpack_from(data, pos)
        if magic != REC_MAGIC or zlib.crc32(data[pos : pos + 12]) != hcrc:
            raise CorruptStoreError(f"{where}: damaged record header at byte {pos}")
        end = pos + REC_HEADER.size + plen
        payload = data[pos + REC_HEADER.size : end]
        if len(payload) < plen or zlib.crc32(payload) != pcrc:
            raise CorruptStoreError(f"{where}: checksum mismatch in the record at byte {pos}")
        try:
            (jlen,) = struct.unpack_from("<I", payload, 0)
            version = int(json.loads(payload[4 : 4 + jlen])["version"])
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            raise CorruptStoreError(f"{where}: undecodable record at byte {pos}: {exc}") from None
        if version != expect:
            raise CorruptStoreError(
                f"{where}: the record at byte {pos} has version {version}, expected {expect}"
            )
        out.append((version, data[pos:end]))
        pos, expect = end, expect + 1
    return out


class UnknownKindError(ValueError):
    """A record of a kind this version does not know (turned into CorruptStoreError)."""


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
            os.fsync(f.fileno())
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
            os.fdatasync(self._fd)  # concurrent ones are merged by the filesystem's journal
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
            crash_point("fsync")
            os.fsync(self._fd)

    @contextlib.contextmanager
    def _sync_lock(self) -> Iterator[_SyncHint]:
        """Hold ``journal.sync``'s lock (blocking: it is held for a read or a write of it)."""
        with self._sync_mutex:  # threads of this process share the descriptor
            if self._sync_fd < 0 or self._sync_pid != os.getpid():
                self._sync_fd = os.open(
                    self.path.with_suffix(".sync"), os.O_RDWR | os.O_CREAT, 0o644
                )
                self._sync_pid = os.getpid()
            fcntl.flock(self._sync_fd, fcntl.LOCK_EX)
            try:
                yield _SyncHint(self._sync_fd, os.fstat(self._fd).st_ino)
            finally:
                fcntl.flock(self._sync_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the file descriptors."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._sync_fd >= 0 and self._sync_pid == os.getpid():
            os.close(self._sync_fd)
        self._sync_fd = -1
