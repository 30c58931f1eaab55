"""``tail-<v>.bin``: the journal tail after a checkpoint, folded into one file (format 6).

The chunk files hold the store at checkpoint ``c0``; the commits after it are
journal records, which an open replays one by one. A store committed to in
many small batches (an annotator labeling item by item) keeps a tail of many
records between checkpoints, and every open paid for each. A tail file holds
what that replay yields at version ``v``: the state, at ``v``, of every dataset
index the commits ``(c0, v]`` touched (and its state at ``c0``), their labels
and the per-chunk labeled counts. An open loads the newest tail file of its
checkpoint and replays only the records after ``v``. Writing one costs a
write of the tail's entries, never of a chunk file.

Layout::

    b"ALMATAL1" | json_len u32 | json | indices i8[n] | labeled u1[n] | base u1[n]
                | counts i8[n_chunks] | values | crc32 u32

The JSON object holds the store's ``uuid``, ``checkpoint`` (``c0``), ``version`` (``v``),
``journal_offset`` (where the record of ``v + 1`` begins), ``n``,
``n_chunks`` and, for string labels, the values themselves; ``values`` are
otherwise the raw little-endian bytes of the label dtype, ``(n, *label_shape)``.
The CRC-32 covers every byte before it.

A tail file is a cache of the journal, written atomically: one that does not
check is a :class:`~alma_store.errors.CorruptStoreError` naming it (it can be
deleted: the journal has everything). One of another checkpoint is stale and
ignored; a checkpoint removes them all.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core import Overlay
from ..errors import CorruptStoreError
from ._crc import crc_body, with_crc
from ._fs import atomic_write

__all__ = [
    "TailFile",
    "newest_tail_version",
    "read_tail_file",
    "remove_tail_files",
    "write_tail_file",
]

MAGIC = b"ALMATAL1"


@dataclass(frozen=True, slots=True)
class TailFile:
    """The replayed tail: ``overlay`` (at ``overlay.version``) relative to ``checkpoint``."""

    uuid: str
    checkpoint: int
    journal_offset: int
    overlay: Overlay


def tail_path(root: Path, version: int) -> Path:
    """The tail file of version ``version``."""
    return root / f"tail-{version}.bin"


def _versions(root: Path) -> list[int]:
    return sorted(
        int(name[5:-4])
        for name in os.listdir(root)
        if name.startswith("tail-") and name.endswith(".bin") and name[5:-4].isdigit()
    )


def newest_tail_version(root: Path) -> int | None:
    """The version of the newest tail file in ``root`` (of any checkpoint); None if none."""
    versions = _versions(root)
    return versions[-1] if versions else None


def write_tail_file(root: Path, tail: TailFile) -> None:
    """Write ``tail`` atomically as ``tail-<version>.bin``."""
    ov = tail.overlay
    head: dict[str, object] = {
        "uuid": tail.uuid,
        "checkpoint": tail.checkpoint,
        "version": ov.version,
        "journal_offset": tail.journal_offset,
        "n": len(ov.indices),
        "n_chunks": len(ov.counts),
    }
    parts = [
        np.ascontiguousarray(ov.indices, "<i8").tobytes(),
        np.ascontiguousarray(ov.labeled, np.uint8).tobytes(),
        np.ascontiguousarray(ov.base, np.uint8).tobytes(),
        np.ascontiguousarray(ov.counts, "<i8").tobytes(),
    ]
    if ov.values.dtype.kind == "T":
        head["values"] = [str(v) for v in ov.values.reshape(-1)]
    else:
        parts.append(np.ascontiguousarray(ov.values, ov.values.dtype.newbyteorder("<")).tobytes())
    js = json.dumps(head, separators=(",", ":")).encode()
    body = b"".join([MAGIC, struct.pack("<I", len(js)), js, *parts])
    atomic_write(tail_path(root, ov.version), with_crc([body]))


def read_tail_file(
    root: Path,
    uuid: str,
    checkpoint: int,
    n_chunks: int,
    label_dtype: np.dtype,
    label_shape: tuple[int, ...],
) -> TailFile | None:
    """The newest tail file of checkpoint ``checkpoint``, checked; None if there is none.

    Raises
    ------
    CorruptStoreError
        The newest tail file of the checkpoint is damaged (the message names it).
    """
    for version in reversed(_versions(root)):
        path = tail_path(root, version)
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # removed by a checkpoint meanwhile
            continue
        tail = _parse(data, path, version, n_chunks, label_dtype, label_shape)
        if tail.uuid != uuid:
            raise CorruptStoreError(f"tail file {path} belongs to another store (its uuid)")
        if tail.checkpoint == checkpoint:
            return tail
    return None


def _parse(
    data: bytes,
    path: Path,
    version: int,
    n_chunks: int,
    label_dtype: np.dtype,
    label_shape: tuple[int, ...],
) -> TailFile:
    def damaged(why: str) -> CorruptStoreError:
        return CorruptStoreError(
            f"tail file {path} is damaged ({why}); it is a cache of the journal: delete it "
            "and open the store again"
        )

    if len(data) < 16 or not data.startswith(MAGIC):
        raise damaged("bad magic")
    body = crc_body(data)
    if body is None:
        raise damaged("checksum mismatch")
    (jlen,) = struct.unpack_from("<I", body, len(MAGIC))
    pos = len(MAGIC) + 4 + jlen
    try:
        head = json.loads(body[len(MAGIC) + 4 : pos])
        n, checkpoint, uuid = int(head["n"]), int(head["checkpoint"]), str(head["uuid"])
        offset = int(head["journal_offset"])
        if int(head["version"]) != version or int(head["n_chunks"]) != n_chunks:
            raise ValueError("it does not match its name or the store's chunks")
    except (ValueError, KeyError, TypeError) as exc:
        raise damaged(str(exc)) from None
    per = int(np.prod(label_shape, dtype=np.int64))

    def take(dtype: str | np.dtype, count: int) -> np.ndarray:
        nonlocal pos
        arr = np.frombuffer(body, dtype, count, pos)
        pos += arr.nbytes
        return arr

    with contextlib.suppress(ValueError):  # too short: reported below
        indices = take("<i8", n).astype(np.int64)
        labeled = take("u1", n).astype(bool)
        base = take("u1", n).astype(bool)
        counts = take("<i8", n_chunks).astype(np.int64)
        if label_dtype.kind == "T":
            values = np.array(head.get("values", []), dtype=label_dtype)
        else:
            values = take(label_dtype.newbyteorder("<"), n * per).astype(label_dtype)
        if pos == len(body) and len(values) == n * per:
            overlay = Overlay(
                version,
                indices,
                labeled,
                base,
                values.reshape((n, *label_shape)),
                counts,
            )
            if n and (indices[0] < 0 or np.any(np.diff(indices) <= 0)):
                raise damaged("its indices are not sorted")
            return TailFile(uuid, checkpoint, offset, overlay)
    raise damaged("wrong length")


def remove_tail_files(root: Path, *, below: int | None = None) -> None:
    """Delete the tail files (every one, or those of versions below ``below``)."""
    for version in _versions(root):
        if below is None or version < below:
            tail_path(root, version).unlink(missing_ok=True)
