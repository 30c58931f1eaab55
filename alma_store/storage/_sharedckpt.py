"""Checkpoints of a shared store (format 7): the chunk state at a version, in the storage.

A process opening a shared store used to rebuild its private mirror from the
whole commit log. A *shared checkpoint* holds what that rebuild yields at a
version ``c``: the mirror's ``checkpoint.bin`` and ``marks-<c>.bin`` (every
chunk's labeled offsets, every chunk file's CRC-32) in one object, and the
chunk files themselves as objects of their own, so that an open is: meta, the
newest checkpoint, the log after ``c``; and a chunk file is fetched when a read
first needs it. Layout::

    checkpoints/<c>                    the manifest of checkpoint c (20 digits)
    chunks/<kind>/<j>/<w>-<crc>        chunk file j of "mask" or "labels", as written at
                                       version w (10 and 20 digits), CRC-32 in 8 hex digits

A manifest is ``b"ALMASCK1" | json_len u32 | {"uuid", "version", "n_chunks",
"checkpoint_len", "marks_len"} | checkpoint.bin | marks-<c>.bin | written
i8[2, n_chunks] | crc32`` of every byte before it, where ``written[k, j]`` is
the version at which chunk file ``j`` of kind ``k`` (mask, labels) was uploaded,
or -1 for "no file". A chunk file's object name is thus a function of the
manifest alone; unchanged chunks keep the object an earlier checkpoint
uploaded.

Publishing (:func:`publish_checkpoint`) creates the chunk objects first, each
created if absent (immutable, and named by its content's CRC-32, so two
publishers of one version never disagree on a name's content), and the
manifest last: a publisher killed at any point leaves no manifest naming a
chunk object that is not there. Manifests older than the two newest are
deleted; chunk objects are never deleted (a reader opened from any manifest
fetches its chunks for as long as it runs).
"""

from __future__ import annotations

import contextlib
import json
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import CorruptStoreError
from ._crc import crc_body, with_crc
from ._fs import crash_point
from ._marks import ENTRY, MARKS_HEADER, NO_FILE
from ._objects import Listed, Objects

__all__ = [
    "CHUNK_KINDS",
    "SharedCheckpoint",
    "checkpoints_listed",
    "chunk_object",
    "latest_checkpoint",
    "publish_checkpoint",
]

MAGIC = b"ALMASCK1"
PREFIX = "checkpoints/"
WIDTH = 20
CHUNK_KINDS = ("mask", "labels")
UPLOADS = 16
"""Chunk objects a publisher uploads at once."""
KEEP = 2
"""Manifests kept (the newest); older ones are deleted by the publisher."""


def manifest_name(version: int) -> str:
    """The object of the checkpoint of ``version``."""
    return f"{PREFIX}{version:0{WIDTH}d}"


def chunk_object(kind: str, j: int, written: int, entry: int) -> str:
    """The object of chunk file ``j`` of ``kind``, uploaded at version ``written``."""
    return f"chunks/{kind}/{j:010d}/{written:0{WIDTH}d}-{entry & 0xFFFFFFFF:08x}"


@dataclass(frozen=True)
class SharedCheckpoint:
    """One shared checkpoint: the mirror's files at ``version`` and where its chunk files are."""

    version: int
    checkpoint: bytes
    """The content of the mirror's ``checkpoint.bin`` (its journal offset is the mirror's own)."""
    marks: bytes | memoryview
    """The content of ``marks-<version>.bin``."""
    written: np.ndarray
    """``written[k, j]``: the version chunk file ``j`` of ``CHUNK_KINDS[k]`` was uploaded at."""

    @property
    def entries(self) -> np.ndarray:
        """The chunk records of the marks index (``ENTRY``: the files' checksum entries)."""
        n = self.written.shape[1]
        return np.frombuffer(self.marks, ENTRY, n, MARKS_HEADER)

    def object_of(self, kind: str, j: int) -> str | None:
        """The object holding chunk file ``j`` of ``kind``; None if it has no file."""
        written = int(self.written[CHUNK_KINDS.index(kind), j])
        entry = int(self.entries[kind][j])
        return None if written < 0 or entry == NO_FILE else chunk_object(kind, j, written, entry)

    def encode(self, uuid: str) -> bytes:
        """The manifest's bytes."""
        head = json.dumps(
            {
                "uuid": uuid,
                "version": self.version,
                "n_chunks": self.written.shape[1],
                "checkpoint_len": len(self.checkpoint),
                "marks_len": len(self.marks),
            },
            separators=(",", ":"),
        ).encode()
        body = b"".join(
            [
                MAGIC,
                struct.pack("<I", len(head)),
                head,
                self.checkpoint,
                self.marks,
                np.ascontiguousarray(self.written, "<i8").tobytes(),
            ]
        )
        return b"".join(with_crc([body]))

    @classmethod
    def decode(cls, data: bytes, where: str, uuid: str, n_chunks: int) -> SharedCheckpoint:
        """Check and parse a manifest (``where`` names it in errors)."""

        def damaged(why: str) -> CorruptStoreError:
            return CorruptStoreError(f"shared checkpoint {where} is damaged ({why})")

        if len(data) < 16 or not data.startswith(MAGIC):
            raise damaged("bad magic")
        body = crc_body(memoryview(data))  # the marks index is most of it: never copied
        if body is None:
            raise damaged("checksum mismatch")
        (hlen,) = struct.unpack_from("<I", body, len(MAGIC))
        pos = len(MAGIC) + 4
        try:
            head = json.loads(bytes(body[pos : pos + hlen]))
            version, ck_len, mk_len = (
                int(head["version"]),
                int(head["checkpoint_len"]),
                int(head["marks_len"]),
            )
            if head["uuid"] != uuid:
                raise CorruptStoreError(f"shared checkpoint {where} belongs to another store")
            if int(head["n_chunks"]) != n_chunks:
                raise ValueError("its chunk count is not the store's")
        except (ValueError, KeyError, TypeError) as exc:
            raise damaged(str(exc)) from None
        pos += hlen
        if len(body) != pos + ck_len + mk_len + 16 * n_chunks or mk_len < MARKS_HEADER:
            raise damaged("wrong length")
        checkpoint = bytes(body[pos : pos + ck_len])
        marks = body[pos + ck_len : pos + ck_len + mk_len]
        written = np.frombuffer(body, "<i8", 2 * n_chunks, pos + ck_len + mk_len)
        return cls(version, checkpoint, marks, written.reshape(2, n_chunks).astype(np.int64))


def checkpoints_listed(objects: Objects) -> Future[list[Listed]]:
    """The listing of the shared checkpoints, sent now: an open sends it beside the get
    of ``meta.json`` (in object storage one round trip for both), before it knows the
    store's format or id."""
    return objects.list_soon(PREFIX)


def latest_checkpoint(
    objects: Objects, uuid: str, n_chunks: int, listed: Future[list[Listed]] | None = None
) -> SharedCheckpoint | None:
    """The newest shared checkpoint (one listing, one read), checked; None if there is none.

    ``listed``: the listing sent already (:func:`checkpoints_listed`). A listing a
    little older is as good: a checkpoint published since it is not needed (the
    commits after the one found are read from the log), and one deleted since is
    listed again, as below.
    """
    for attempt in range(3):  # a listed manifest may be deleted by a newer publisher: list again
        items = listed.result() if listed is not None and attempt == 0 else objects.list(PREFIX)
        names = [item.name for item in items]
        if not names:
            return None
        data = objects.get(names[-1])
        if data is None:
            continue
        where = f"{objects.location}/{names[-1]}"
        found = SharedCheckpoint.decode(data, where, uuid, n_chunks)
        if manifest_name(found.version) != names[-1]:
            raise CorruptStoreError(f"shared checkpoint {where} names version {found.version}")
        return found
    return None


def publish_checkpoint(
    objects: Objects,
    uuid: str,
    version: int,
    checkpoint: bytes,
    marks: bytes,
    previous: SharedCheckpoint | None,
    read_chunk: Callable[[str, int], bytes | None],
) -> SharedCheckpoint:
    """Upload the chunk files that changed since ``previous``, then the manifest of ``version``.

    ``checkpoint`` and ``marks`` are the mirror's files of its checkpoint at
    ``version``; ``read_chunk(kind, j)`` the bytes of one of its chunk files.
    Returns the new checkpoint (or the one already there at ``version``).
    """
    n = _chunk_count(marks)
    entries = np.frombuffer(marks, ENTRY, n, MARKS_HEADER)
    written = np.full((2, n), -1, np.int64)
    uploads: list[tuple[str, int, int]] = []
    for k, kind in enumerate(CHUNK_KINDS):
        mine = entries[kind].astype(np.int64)
        if previous is not None:
            same = previous.entries[kind].astype(np.int64) == mine
            written[k][same] = previous.written[k][same]
        else:
            same = np.zeros(n, bool)
        for j in np.flatnonzero(~same & (mine != NO_FILE)).tolist():
            written[k, j] = version
            uploads.append((kind, j, int(mine[j])))

    def upload(item: tuple[str, int, int]) -> None:
        kind, j, entry = item
        data = read_chunk(kind, j)
        if data is None or ((1 << 32) | zlib.crc32(data)) != entry:
            raise CorruptStoreError(f"the mirror's chunk file {kind}/{j} changed while uploaded")
        objects.create(chunk_object(kind, j, version, entry), data)

    with ThreadPoolExecutor(UPLOADS) as pool:
        half = len(uploads) // 2
        list(pool.map(upload, uploads[:half]))
        crash_point("shared-checkpoint-chunks")  # some chunk objects up, no manifest
        list(pool.map(upload, uploads[half:]))
    found = SharedCheckpoint(version, checkpoint, marks, written)
    crash_point("shared-checkpoint-manifest")  # every chunk object up, no manifest yet
    objects.create(manifest_name(version), found.encode(uuid))
    names = [item.name for item in objects.list(PREFIX)]
    for name in names[:-KEEP]:  # older manifests: their readers installed them already
        with contextlib.suppress(Exception):
            objects.delete(name)
    return found


def _chunk_count(marks: bytes) -> int:
    """The chunk count a marks index's header records."""
    return int(struct.unpack_from("<I", marks, 24)[0])
