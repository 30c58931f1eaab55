"""The envelope of a shared store's objects (format 8): whose they are, where they go.

Every commit object, segment and campaign object of a format-8 shared store
opens with 44 bytes::

    b"ALMAOBJ8" | store uuid (16 bytes) | first u64 | count u32 | prev u32 | crc32 u32

``first`` is the first version (or campaign append) the object holds and
``count`` how many records follow; ``prev`` is the CRC-32 of the record (or
campaign object body) just before ``first``, 0 before the first; the last
field is the CRC-32 of the 40 bytes before it. The records follow, framed as
everywhere else.

What it buys, each checked on every read:

* an object copied in from another store (another ``uuid``) is refused;
* an object under the wrong name (``first`` is not its name's) is refused;
* an object with a record short or over (``count``) is refused: a truncated
  segment can no longer look like the end of the log;
* a version created twice (a hole in the log, filled by a writer that did
  not see the versions after it) breaks the chain: the object after it names
  another predecessor (``prev``), and the reader that crosses it stops with
  an error naming both, instead of reading two histories as one.
"""

from __future__ import annotations

import struct
import zlib

from ..errors import CorruptStoreError

__all__ = ["ENVELOPE_SIZE", "chain_crc", "open_envelope", "seal"]

MAGIC = b"ALMAOBJ8"
_HEAD = struct.Struct("<8s16sQII")
ENVELOPE_SIZE = _HEAD.size + 4


def chain_crc(record: bytes | memoryview) -> int:
    """What the next object's ``prev`` holds for ``record``: its CRC-32."""
    return zlib.crc32(record)


def seal(uuid: bytes, first: int, count: int, prev: int, body: bytes) -> bytes:
    """``body`` (``count`` records from ``first`` on) in its envelope."""
    head = _HEAD.pack(MAGIC, uuid, first, count, prev)
    return head + struct.pack("<I", zlib.crc32(head)) + body


def open_envelope(data: bytes, uuid: bytes, first: int, where: str) -> tuple[int, int, bytes]:
    """``(count, prev, body)`` of an object that should hold records from ``first`` on.

    Raises
    ------
    CorruptStoreError
        Empty, short, damaged, another store's, or not the object of ``first``
        (``where`` names it).
    """
    if len(data) < ENVELOPE_SIZE:
        what = "empty" if not data else f"{len(data)} bytes, shorter than its header"
        raise CorruptStoreError(f"{where} is damaged: {what}")
    magic, owner, start, count, prev = _HEAD.unpack_from(data)
    (crc,) = struct.unpack_from("<I", data, _HEAD.size)
    if magic != MAGIC or crc != zlib.crc32(data[: _HEAD.size]):
        raise CorruptStoreError(f"{where} is damaged: bad object header")
    if owner != uuid:
        raise CorruptStoreError(
            f"{where} belongs to another store (uuid {owner.hex()}, this one is {uuid.hex()}): "
            "copied in from elsewhere"
        )
    if start != first:
        raise CorruptStoreError(f"{where} holds records from {start} on, its name says {first}")
    if count < 1:
        raise CorruptStoreError(f"{where} is damaged: it holds no record")
    return count, prev, data[ENVELOPE_SIZE:]
