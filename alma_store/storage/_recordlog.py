"""``campaign.bin``: an append-only, fsynced log of JSON records beside the journal.

Claims, their releases and per-round metrics are campaign records: they are
durable and shared by every process, but they do not change the labels, so
they do not take a store version. They live in their own log instead of the
label journal.

File format
-----------
The file opens with a 32-byte header, ``b"ALMALOG1"``, the store's 16-byte
UUID, a CRC-32 of those 24 bytes and 4 zero bytes. Records follow back to
back::

    b"LOG1" | payload_len u32 | crc32(payload) u32 | crc32(first 12 bytes) u32 | payload

with a UTF-8 JSON object as the payload. The file is created by the first
record's writer (atomically, header only). Records are appended under the
store's writer lock and ``fdatasync``-ed before the call that wrote them
returns; the same replay rules as the journal's hold: a short record at the
very end was never acknowledged and is ignored (and cut off by the next
writer), anything else that does not check is a
:class:`~alma_store.errors.CorruptStoreError` naming the byte offset.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

from ..errors import CorruptStoreError
from ._envelope import chain_crc, open_envelope, seal
from ._fs import atomic_write, crash_point, storage_errors, write_fd
from ._meta import ENVELOPES_FORMAT, StoreMeta
from ._objects import DirObjects, Objects
from ._platform import sync_data

__all__ = ["RecordLog", "SharedRecordLog", "encode_record", "open_campaign_log"]

FILE_MAGIC = b"ALMALOG1"
HEADER_SIZE = 32
REC_MAGIC = b"LOG1"
_REC = struct.Struct("<4sIII")


def _file_header(uuid: bytes) -> bytes:
    body = FILE_MAGIC + uuid
    return body + struct.pack("<I", zlib.crc32(body)) + b"\0\0\0\0"


def encode_record(obj: dict[str, Any]) -> bytes:
    """One framed record holding ``obj`` as JSON."""
    payload = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    first = struct.pack("<4sII", REC_MAGIC, len(payload), zlib.crc32(payload))
    return first + struct.pack("<I", zlib.crc32(first)) + payload


def decode_record(raw: bytes, pos: int, where: str) -> dict[str, Any]:
    """The JSON object of the whole record at ``pos`` in ``raw``, checked."""
    magic, length, crc, head_crc = _REC.unpack_from(raw, pos)
    if magic != REC_MAGIC or head_crc != zlib.crc32(raw[pos : pos + 12]):
        raise CorruptStoreError(f"{where}: bad record header")
    payload = raw[pos + _REC.size : pos + _REC.size + length]
    if len(payload) != length or zlib.crc32(payload) != crc:
        raise CorruptStoreError(f"{where}: checksum mismatch")
    try:
        obj = json.loads(payload)
    except ValueError:
        raise CorruptStoreError(f"{where}: not JSON") from None
    if not isinstance(obj, dict):
        raise CorruptStoreError(f"{where}: not a JSON object")
    return obj


class RecordLog:
    """Reader and appender of one store's ``campaign.bin``.

    Reading is incremental: :meth:`read_new` returns the records appended
    since the previous call. Appending is safe only under the store's writer
    lock.
    """

    def __init__(self, path: Path, uuid: bytes) -> None:
        self.path = path
        self.uuid = uuid
        self.offset = 0  # records before this were returned by read_new
        self._torn = False  # a short record follows offset

    def read_new(self) -> list[dict[str, Any]]:
        """The records appended since the last call, oldest first."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                raw = f.read()
        except FileNotFoundError:
            return []
        base, pos = self.offset, 0
        if base == 0:
            header = _file_header(self.uuid)
            if raw[:HEADER_SIZE] != header:
                if len(raw) < HEADER_SIZE and header.startswith(raw):
                    return []  # being created
                raise CorruptStoreError(
                    f"{self.path} does not start with this store's campaign-log header "
                    "(damaged, or copied from another store)"
                )
            pos = HEADER_SIZE
        out: list[dict[str, Any]] = []
        self._torn = False
        while pos < len(raw):
            at = base + pos
            if len(raw) - pos < _REC.size:
                self._torn = True
                break
            magic, length, _, head_crc = _REC.unpack_from(raw, pos)
            if magic != REC_MAGIC or head_crc != zlib.crc32(raw[pos : pos + 12]):
                raise CorruptStoreError(f"{self.path} is damaged at byte {at}: bad record header")
            if len(raw) - pos - _REC.size < length:
                self._torn = True
                break
            out.append(decode_record(raw, pos, f"{self.path} is damaged at byte {at}"))
            pos += _REC.size + length
        self.offset = base + pos
        return out

    def append(self, objs: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Append ``objs`` durably, in one write (writer lock held); returns the records read before.

        Records other processes appended since the last :meth:`read_new` are
        read first and returned, so the caller can take them in; a torn tail
        left by a killed writer is cut off. (Never None: the writer lock
        orders the appends of a local store.)
        """
        newer = self.read_new()
        record = b"".join(encode_record(obj) for obj in objs)
        with storage_errors(self.path):
            if not self.path.exists():
                atomic_write(self.path, _file_header(self.uuid))
                self.offset = HEADER_SIZE
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
            try:
                if self._torn:
                    os.ftruncate(fd, self.offset)
                    self._torn = False
                crash_point("campaign-torn", lambda: write_fd(fd, record[: len(record) // 2]))
                write_fd(fd, record)
                crash_point("fsync")
                sync_data(fd)
            finally:
                os.close(fd)
        self.offset += len(record)
        return newer


class SharedRecordLog:
    """The campaign log of a shared store: one create-if-absent object per append.

    ``campaign/<n>`` (20 digits) holds the records of the ``n``-th append,
    framed as in ``campaign.bin``; an append creates the next free ``n``, so
    the appends are totally ordered without a lock. A writer that loses the
    name is told so (:meth:`append` returns None), takes the winner's records
    in (its next :meth:`read_new`) and checks its own again.

    From format 8 on, each object is in an envelope
    (:mod:`alma_store.storage._envelope`) carrying the store's id, its ``n``,
    its record count and the CRC-32 of the append before it. A process's
    first read lists ``campaign/`` and fetches every append at once: a
    missing ``n`` below the newest listed is a hole, a
    :class:`~alma_store.errors.CorruptStoreError` naming it, never the end.
    """

    def __init__(self, objects: Objects, uuid: bytes | None = None) -> None:
        self.objects = objects
        self.uuid = uuid
        self.count = 0  # appends read so far
        self.path = f"{objects.location}/campaign/"
        self._listed = False
        self._prev = 0  # chain CRC of the newest append read (format 8)

    def _name(self, n: int) -> str:
        return f"campaign/{n:020d}"

    def _parse(self, raw: bytes, n: int) -> list[dict[str, Any]]:
        """The records of append ``n``, every check made."""
        where = f"{self.path}{n:020d}"
        body, count = raw, None
        if self.uuid is not None:
            count, prev, body = open_envelope(raw, self.uuid, n, where)
            if n > 1 and prev != self._prev:
                raise CorruptStoreError(
                    f"{where} does not follow append {n - 1} as read: append {n - 1} was "
                    "written twice (a hole in the campaign log, filled)"
                )
        elif not raw:
            raise CorruptStoreError(f"{where} is damaged: empty")
        out: list[dict[str, Any]] = []
        pos = 0
        while pos < len(body):
            if len(body) - pos < _REC.size:
                raise CorruptStoreError(f"{where} is damaged at byte {pos}: a short record")
            out.append(decode_record(body, pos, f"{where} is damaged at byte {pos}"))
            pos += _REC.size + _REC.unpack_from(body, pos)[1]
        if count is not None and len(out) != count:
            raise CorruptStoreError(
                f"{where} is damaged: {len(out)} records where its header says {count}"
            )
        if self.uuid is not None:
            self._prev = chain_crc(body)
        return out

    def _first_read(self) -> list[dict[str, Any]]:
        """Every append there is, listed and fetched at once; a missing one is a hole."""
        self._listed = True
        names = [item.name for item in self.objects.list("campaign/")]
        out: list[dict[str, Any]] = []
        for n, (name, raw) in enumerate(
            zip(names, self.objects.get_many(names), strict=True), start=1
        ):
            if name != self._name(n) or raw is None:
                raise CorruptStoreError(
                    f"{self.path}{n:020d} is missing while {names[-1]} exists: a hole in "
                    "the campaign log (deleted by something other than this store); restore "
                    "it from a backup"
                )
            out += self._parse(raw, n)
            self.count = n
        return out

    def read_new(self) -> list[dict[str, Any]]:
        """The records appended since the last call, oldest first."""
        out = [] if self._listed else self._first_read()
        while (raw := self.objects.get(self._name(self.count + 1))) is not None:
            out += self._parse(raw, self.count + 1)
            self.count += 1
        return out

    def append(self, objs: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Create the next append's object; ``[]`` once it is created, None if it was taken.

        None: another process appended first and nothing was written. Its
        records are read by the next :meth:`read_new`; check again and retry.
        """
        # The caller read every append before deciding: if there is a newer one, the
        # create fails, and the caller takes it in and decides again.
        body = b"".join(encode_record(obj) for obj in objs)
        n = self.count + 1
        data = body if self.uuid is None else seal(self.uuid, n, len(objs), self._prev, body)
        # Not created but holding our bytes: a retried create whose first try was applied,
        # its reply lost. Ours (records carry unique ids: no other append has these bytes).
        if not self.objects.create(self._name(n), data) and self.objects.get(self._name(n)) != data:
            return None
        self.count = n
        if self.uuid is not None:
            self._prev = chain_crc(body)
        return []


def open_campaign_log(
    objects: Objects, meta: StoreMeta, *, shared: bool
) -> RecordLog | SharedRecordLog:
    """The campaign log of the store ``meta`` whose files are ``objects``.

    A store in a directory of its own keeps it in ``campaign.bin``; a shared
    store as ``campaign/<n>`` objects (in envelopes from format 8 on).
    """
    uuid = bytes.fromhex(meta.uuid)
    if shared:
        return SharedRecordLog(objects, uuid if meta.format_version >= ENVELOPES_FORMAT else None)
    assert isinstance(objects, DirObjects)
    return RecordLog(objects.root / "campaign.bin", uuid)
