"""A CRC-32 trailer: how a store's small binary files and objects are sealed.

Score step files, tail files, shared checkpoint manifests and a selection's
picks all end with a little-endian u32 CRC-32 of every byte before it; a reader
checks it before it parses anything.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

__all__ = ["crc_body", "with_crc"]


def with_crc(parts: Sequence[bytes | memoryview]) -> list[bytes | memoryview]:
    """``parts`` followed by the CRC-32 of all of them (the buffers of one write).

    >>> b"".join(with_crc([b"ab", b"c"])) == b"abc" + zlib.crc32(b"abc").to_bytes(4, "little")
    True
    """
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return [*parts, struct.pack("<I", crc)]


def crc_body[B: (bytes, memoryview)](data: B) -> B | None:
    """``data`` without its CRC-32 trailer, or ``None`` if it is shorter or does not match.

    >>> crc_body(b"".join(with_crc([b"abc"])))
    b'abc'
    >>> crc_body(b"abc\\0\\0\\0\\0") is None
    True
    """
    if len(data) < 4:
        return None
    body = data[:-4]
    (crc,) = struct.unpack("<I", data[-4:])
    return body if zlib.crc32(body) == crc else None
