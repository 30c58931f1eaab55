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

from ._fs import atomic_write, crash_point, storage_errors, write_fd
from .errors import CorruptStoreError

__all__ = ["METRIC_FIELDS", "RecordLog", "encode_record"]

METRIC_FIELDS = ("round", "version", "num_labeled", "time")
"""Fields every metrics record has besides its metrics; no metric may take one of these names."""

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
            magic, length, crc, head_crc = _REC.unpack_from(raw, pos)
            if magic != REC_MAGIC or head_crc != zlib.crc32(raw[pos : pos + 12]):
                raise CorruptStoreError(f"{self.path} is damaged at byte {at}: bad record header")
            if len(raw) - pos - _REC.size < length:
                self._torn = True
                break
            payload = raw[pos + _REC.size : pos + _REC.size + length]
            if zlib.crc32(payload) != crc:
                raise CorruptStoreError(f"{self.path} is damaged at byte {at}: checksum mismatch")
            try:
                out.append(json.loads(payload))
            except ValueError:
                raise CorruptStoreError(f"{self.path} is damaged at byte {at}: not JSON") from None
            pos += _REC.size + length
        self.offset = base + pos
        return out

    def append(self, objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append ``objs`` durably, in one write (writer lock held); returns the records read before.

        Records other processes appended since the last :meth:`read_new` are
        read first and returned, so the caller can take them in; a torn tail
        left by a killed writer is cut off.
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
                os.fdatasync(fd)
            finally:
                os.close(fd)
        self.offset += len(record)
        return newer
