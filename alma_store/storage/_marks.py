"""The checkpoint and the marks index: which rows each chunk file holds labeled.

Layout inside a store directory::

    checkpoint.bin      version c0, journal offset, per-chunk labeled counts
    marks-<c0>.bin      every chunk's sorted labeled offsets at c0, and the
                        checksum of every mask and label chunk file

The checkpoint and the marks index carry their own checksums; a marks index
records the CRC-32 of every chunk file (see :class:`MarksIndex`), so a damaged,
missing or swapped chunk file is caught on read. Any mismatch raises
:class:`~alma_store.errors.CorruptStoreError` naming the file.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core import IndexArray, Runs
from ..errors import CorruptStoreError
from ._fs import atomic_write

__all__ = [
    "ENTRY",
    "NO_FILE",
    "Checkpoint",
    "MarksIndex",
    "file_checksum",
    "marks_path",
    "marks_versions",
    "open_marks",
    "parse_checkpoint",
    "read_checkpoint",
    "remove_marks_except",
    "write_checkpoint",
    "write_marks",
]

CKPT_MAGIC = b"ALMACKP1"
MARKS_MAGIC = {1: b"ALMAMRK1", 2: b"ALMAMRK2"}
MARKS_HEADER = 32
NO_FILE = 0
"""The checksum entry of a chunk that has no file (never written: all fill value)."""
ENTRY = np.dtype([("mask", "<u8"), ("labels", "<u8"), ("count", "<u4"), ("crc", "<u4")])
"""Per-chunk record of a version-2 marks index: both chunk files' checksum entries, the
run's length, and a CRC-32 of the record's first 20 bytes and the run."""
RECORD_HEAD = 20


def file_checksum(raw: bytes | None) -> int:
    """The checksum entry of a chunk file's bytes (``NO_FILE`` when there is none)."""
    return NO_FILE if raw is None else (1 << 32) | zlib.crc32(raw)


# -- checkpoint --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """``checkpoint.bin``: the journal up to ``journal_offset`` (version ``version``)
    is folded into the arrays, and chunk ``j`` holds ``counts[j]`` labeled rows."""

    version: int
    journal_offset: int
    counts: IndexArray


def write_checkpoint(root: Path, ckpt: Checkpoint) -> None:
    """Atomically replace the checkpoint file."""
    head = json.dumps(
        {
            "version": ckpt.version,
            "journal_offset": ckpt.journal_offset,
            "n_chunks": len(ckpt.counts),
        }
    ).encode()
    body = CKPT_MAGIC + struct.pack("<I", len(head)) + head + ckpt.counts.astype("<i8").tobytes()
    atomic_write(root / "checkpoint.bin", body + struct.pack("<I", zlib.crc32(body)))


def read_checkpoint(root: Path, chunks: int) -> Checkpoint:
    """Read ``checkpoint.bin``; raise :class:`CorruptStoreError` on any damage."""
    path = root / "checkpoint.bin"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorruptStoreError(f"checkpoint file {path} is missing") from None
    return parse_checkpoint(data, path, chunks)


def parse_checkpoint(data: bytes, path: object, chunks: int) -> Checkpoint:
    """Check and parse the bytes of a ``checkpoint.bin`` (``path`` names it in errors)."""
    body, tail = data[:-4], data[-4:]
    if (
        len(data) < 16
        or not data.startswith(CKPT_MAGIC)
        or struct.unpack("<I", tail)[0] != zlib.crc32(body)
    ):
        raise CorruptStoreError(f"checkpoint file {path} is damaged (bad magic or checksum)")
    (hlen,) = struct.unpack_from("<I", body, 8)
    try:
        head = json.loads(body[12 : 12 + hlen])
        version, offset = int(head["version"]), int(head["journal_offset"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptStoreError(f"checkpoint file {path} is damaged: {exc}") from None
    counts = np.frombuffer(body, dtype="<i8", offset=12 + hlen).astype(np.int64)
    if head.get("n_chunks") != chunks or len(counts) != chunks:
        raise CorruptStoreError(
            f"checkpoint file {path} has {len(counts)} chunk counts, the store has {chunks} chunks"
        )
    return Checkpoint(version, offset, counts)


# -- marks index -------------------------------------------------------------


def marks_path(root: Path, version: int) -> Path:
    """The marks index of checkpoint ``version``."""
    return root / f"marks-{version}.bin"


def marks_versions(root: Path) -> list[int]:
    """Versions of every marks index present, oldest first."""
    found = []
    for name in os.listdir(root):
        if name.startswith("marks-") and name.endswith(".bin") and name[6:-4].isdigit():
            found.append(int(name[6:-4]))
    return sorted(found)


def remove_marks_except(root: Path, version: int) -> None:
    """Delete the marks indexes of other checkpoints (readers keep theirs mapped)."""
    for v in marks_versions(root):
        if v != version:
            marks_path(root, v).unlink(missing_ok=True)


class MarksIndex:
    """Every chunk's sorted labeled offsets at checkpoint ``version`` (memory-mapped).

    A version-2 index also holds the checksum of every mask and label chunk
    file as of that checkpoint. Each chunk's record (its run of offsets and
    both file checksums) is checked against its CRC-32 the first time it is
    used, so opening costs ``O(1)`` and a damaged record is never trusted.
    """

    def __init__(
        self,
        path: Path | None,
        version: int,
        counts: IndexArray,
        flat: np.ndarray,
        table: np.ndarray | None,
        crcs: np.ndarray | None,
    ) -> None:
        self.path = path
        self.version = version
        self.counts = counts
        self.starts = np.cumsum(counts) - counts
        self.flat = flat
        self.table = table  # ENTRY records (version 2), or None
        self._crcs = crcs  # per-chunk CRC-32 of the record, or None when built in memory
        self._checked = np.zeros(len(counts), bool) if crcs is not None else None

    @classmethod
    def from_runs(cls, version: int, runs: list[IndexArray]) -> MarksIndex:
        """An index held in memory (for a version-1 store that has no index file)."""
        counts = np.array([len(r) for r in runs], dtype=np.int64)
        flat = np.concatenate(runs).astype(np.int32) if runs else np.empty(0, np.int32)
        return cls(None, version, counts, flat, None, None)

    def check(self, chunks: IndexArray) -> None:
        """Raise :class:`CorruptStoreError` unless the records of ``chunks`` are intact."""
        if self._checked is None or self._crcs is None:
            return
        for j in chunks[~self._checked[chunks]].tolist():
            a, b = int(self.starts[j]), int(self.starts[j] + self.counts[j])
            run = self.flat[a:b]
            head = b"" if self.table is None else self.table[j : j + 1].tobytes()[:RECORD_HEAD]
            if (
                zlib.crc32(head + run.tobytes()) != int(self._crcs[j])
                or (self.table is not None and int(self.table["count"][j]) != b - a)
                or (b > a and (run[0] < 0 or np.any(np.diff(run) <= 0)))
            ):
                raise CorruptStoreError(f"marks index {self.path} is damaged at chunk {j}")
            self._checked[j] = True

    def runs(self, chunks: IndexArray) -> Runs:
        """The checked runs of ``chunks`` (sorted, unique)."""
        self.check(chunks)
        return Runs(chunks, self.flat, self.starts[chunks], self.counts[chunks])

    def file_entry(self, kind: str, j: int) -> int | None:
        """The recorded checksum entry of chunk file ``kind``/``j``; None without a table."""
        if self.table is None:
            return None
        self.check(np.array([j]))
        return int(self.table[kind][j])


def write_marks(root: Path, version: int, runs: list[IndexArray], files: np.ndarray | None) -> None:
    """Write the marks index of checkpoint ``version`` durably (before its checkpoint file).

    ``files`` holds the ``mask`` and ``labels`` checksum entries of every chunk
    (an ``ENTRY`` array whose ``crc`` field is filled in here).
    """
    count = len(runs)
    table = np.zeros(count, ENTRY) if files is None else files.copy()
    raws = [np.ascontiguousarray(r, dtype="<i4").tobytes() for r in runs]
    for j, raw in enumerate(raws):
        table["count"][j] = len(runs[j])
        table["crc"][j] = zlib.crc32(table[j : j + 1].tobytes()[:RECORD_HEAD] + raw)
    total = sum(len(r) for r in runs)
    head = MARKS_MAGIC[2] + struct.pack("<QQI", version, total, count)
    data = b"".join([head, struct.pack("<I", zlib.crc32(head)), table.tobytes(), *raws])
    atomic_write(marks_path(root, version), data)


def open_marks(
    root: Path, version: int, counts: IndexArray | None, chunks: int
) -> MarksIndex | None:
    """Map the marks index of checkpoint ``version``; None if there is no such file.

    ``counts`` are the checkpoint's; None opens the index of a checkpoint still
    being written (version 2 only: its records carry the counts).
    """
    path = marks_path(root, version)
    try:
        f = path.open("rb")  # one open file: a checkpoint may unlink the path meanwhile
    except FileNotFoundError:
        return None
    with f:
        head = f.read(MARKS_HEADER)
        size = os.fstat(f.fileno()).st_size
        layout = next((v for v, magic in MARKS_MAGIC.items() if head.startswith(magic)), None)
        if counts is not None:
            total = int(counts.sum())
        else:
            total = struct.unpack_from("<Q", head, 16)[0] if len(head) >= 24 else -1
        tag = MARKS_MAGIC[layout] if layout else b""
        want = tag + struct.pack("<QQI", version, max(total, 0), chunks)
        if (
            layout is None
            or head[:28] != want
            or head[28:32] != struct.pack("<I", zlib.crc32(want))
        ):
            raise CorruptStoreError(f"{path} is damaged or does not match the checkpoint")
        if counts is None and layout == 1:
            return None
        record = ENTRY.itemsize if layout == 2 else 4
        if size != MARKS_HEADER + record * chunks + 4 * total:
            raise CorruptStoreError(
                f"{path} has the wrong size for {chunks} chunks, {total} offsets"
            )
        mapped = np.memmap(f, dtype=np.uint8, mode="r").view(np.ndarray)
    body = mapped[MARKS_HEADER : MARKS_HEADER + record * chunks]
    flat = mapped[MARKS_HEADER + record * chunks :].view("<i4")
    if layout == 2:
        table = body.view(ENTRY)
        if counts is None:
            counts = table["count"].astype(np.int64)
            if int(counts.sum()) != total:
                raise CorruptStoreError(f"{path} is damaged: its counts do not add up")
        return MarksIndex(path, version, counts, flat, table, table["crc"])
    assert counts is not None
    return MarksIndex(path, version, counts, flat, None, body.view("<u4"))
