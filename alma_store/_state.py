"""The on-disk state: Zarr mask and label arrays, checkpoint file, marks index.

Layout inside a store directory::

    state/              Zarr v3 group
      mask              bool (N,), chunks (chunk_rows,), blosc-lz4
      labels            label dtype (N, *label_shape), same row chunking, zstd
    checkpoint.bin      version c0, journal offset, per-chunk labeled counts
    marks-<c0>.bin      every chunk's sorted labeled offsets at c0, and the
                        checksum of every mask and label chunk file

This module is the only writer of chunk files. It encodes and decodes them
itself, with the codecs the arrays' ``zarr.json`` names (``bytes`` or
``vlen-utf8``, then ``blosc`` or ``zstd``), so the files stay ordinary Zarr
that zarr-python reads, while the store knows every file's bytes (and their
CRC-32) before it writes them, and reads a chunk without zarr's per-call cost.

Every read is checked: a chunk file's CRC-32 must be the one a marks index
records for it (see :class:`MarksIndex`), the checkpoint and the marks index
carry their own checksums, and ``zarr.json`` must describe the geometry and
codecs the store expects. Any mismatch raises :class:`CorruptStoreError`
naming the file.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from numcodecs import Blosc, VLenUTF8, Zstd
from zarr.codecs import BloscCodec

from ._fs import atomic_write, crash_point, fsync_path, storage_errors
from ._labels import STR_DTYPE
from ._types import IndexArray
from .errors import CorruptStoreError
from .index import Runs

CKPT_MAGIC = b"ALMACKP1"
MARKS_MAGIC = {1: b"ALMAMRK1", 2: b"ALMAMRK2"}
MARKS_HEADER = 32
NO_FILE = 0
"""The checksum entry of a chunk that has no file (never written: all fill value)."""
ENTRY = np.dtype([("mask", "<u8"), ("labels", "<u8"), ("count", "<u4"), ("crc", "<u4")])
"""Per-chunk record of a version-2 marks index: both chunk files' checksum entries, the
run's length, and a CRC-32 of the record's first 20 bytes and the run."""
RECORD_HEAD = 20
KINDS = ("mask", "labels")
WRITE_THREADS = 8
"""Threads that write a checkpoint's chunk files (their fsyncs overlap)."""


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


# -- chunk files -------------------------------------------------------------


class ChunkCodec:
    """Encode and decode one array's chunk files with the codecs its ``zarr.json`` names."""

    def __init__(self, folder: Path, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any):
        meta_path = folder / "zarr.json"
        self.folder = folder
        self.chunk_shape = chunks
        self.dtype = np.dtype(dtype)
        try:
            meta = json.loads(meta_path.read_bytes().decode("utf-8"))
            grid = meta["chunk_grid"]["configuration"]["chunk_shape"]
            names = [c["name"] for c in meta["codecs"]]
            configs = [c.get("configuration", {}) for c in meta["codecs"]]
            separator = meta["chunk_key_encoding"].get("configuration", {}).get("separator", "/")
            fill = meta["fill_value"]
            ok = (
                meta["shape"] == list(shape)
                and grid == list(chunks)
                and meta["chunk_key_encoding"]["name"] == "default"
                and separator == "/"
                and len(names) >= 1
                and names[0] in ("bytes", "vlen-utf8")
                and (names[0] == "vlen-utf8") == (self.dtype.kind == "T")
                and configs[0].get("endian", "little") == "little"
                and all(n in ("blosc", "zstd") for n in names[1:])
            )
            self._compressors = [
                Blosc(
                    cname=c["cname"],
                    clevel=c["clevel"],
                    shuffle={"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[c["shuffle"]],
                    blocksize=c.get("blocksize", 0),
                )
                if n == "blosc"
                else Zstd(level=c.get("level", 0), checksum=c.get("checksum", False))
                for n, c in zip(names[1:], configs[1:], strict=True)
            ]
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise CorruptStoreError(f"{meta_path} is missing or damaged: {exc}") from None
        if not ok:
            raise CorruptStoreError(
                f"{meta_path} does not describe the array this store expects "
                f"(shape {list(shape)}, chunks {list(chunks)}, dtype {self.dtype})"
            )
        self._key_tail = "/0" * (len(chunks) - 1)
        # zarr v3 writes non-finite float fill values as strings ("NaN", "Infinity", ...).
        self._fill = float(fill) if isinstance(fill, str) and self.dtype.kind == "f" else fill

    @property
    def compressors(self) -> list[Any]:
        """The bytes-to-bytes codecs after ``bytes`` (none: chunk files are raw)."""
        return list(self._compressors)

    def path(self, j: int) -> Path:
        """The chunk file of row chunk ``j``."""
        return self.folder / "c" / f"{j}{self._key_tail}"

    def read_raw(self, j: int) -> bytes | None:
        """The bytes of chunk file ``j``, or None when it does not exist."""
        try:
            with open(self.path(j), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def decode(self, raw: bytes | None, j: int, rows: int, *, writable: bool = True) -> np.ndarray:
        """The first ``rows`` rows of chunk ``j`` from its bytes (None: the fill value).

        ``writable=False`` may return a read-only view of the decoded bytes
        instead of a copy.
        """
        if raw is None:
            dtype = STR_DTYPE if self.dtype.kind == "T" else self.dtype
            fill = "" if self.dtype.kind == "T" or self._fill is None else self._fill
            return np.full((rows, *self.chunk_shape[1:]), fill, dtype=dtype)
        try:
            data: Any = raw
            for codec in reversed(self._compressors):
                data = codec.decode(data)
            if self.dtype.kind == "T":
                out = np.asarray(VLenUTF8().decode(data)).astype(STR_DTYPE)
            else:
                out = np.frombuffer(data, dtype=self.dtype.newbyteorder("<"))
                out = out.astype(self.dtype, copy=writable or out.dtype != self.dtype)
            return out.reshape(self.chunk_shape)[:rows]
        except Exception as exc:  # noqa: BLE001 - numcodecs raises bare RuntimeErrors
            raise CorruptStoreError(f"chunk file {self.path(j)} is damaged: {exc}") from None

    def encode(self, data: np.ndarray) -> bytes:
        """The bytes of a chunk file holding ``data`` (padded to the chunk shape)."""
        full = self.decode(None, -1, self.chunk_shape[0])
        full[: len(data)] = data
        encoded: Any
        if self.dtype.kind == "T":
            encoded = VLenUTF8().encode(full.astype(object).reshape(-1))
        else:
            encoded = np.ascontiguousarray(full, dtype=self.dtype.newbyteorder("<")).tobytes()
        for codec in self._compressors:
            encoded = codec.encode(encoded)
        return bytes(encoded)


def create_arrays(
    root: Path, n_items: int, chunk_rows: int, label_dtype: Any, label_shape: tuple[int, ...]
) -> None:
    """Create the empty mask and label arrays (no chunk file: all fill value)."""
    group = zarr.open_group(root / "state", mode="w-")
    group.create_array(
        "mask",
        shape=(n_items,),
        chunks=(chunk_rows,),
        dtype=bool,
        fill_value=False,
        # LZ4 without shuffling decodes a chunk about twice as fast as zstd.
        compressors=BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle"),
    )
    group.create_array(
        "labels",
        shape=(n_items, *label_shape),
        chunks=(chunk_rows, *label_shape),
        dtype=label_dtype,
        fill_value="" if np.dtype(label_dtype).kind == "T" else 0,
    )


class StateArrays:
    """The mask and label chunk files of one store."""

    def __init__(
        self,
        root: Path,
        n_items: int,
        chunk_rows: int,
        label_dtype: Any,
        label_shape: tuple[int, ...],
    ) -> None:
        self.n_items = n_items
        self.chunk_rows = chunk_rows
        self.codecs = {
            "mask": ChunkCodec(root / "state" / "mask", (n_items,), (chunk_rows,), bool),
            "labels": ChunkCodec(
                root / "state" / "labels",
                (n_items, *label_shape),
                (chunk_rows, *label_shape),
                label_dtype,
            ),
        }

    def rows(self, j: int) -> int:
        """Rows in chunk ``j``."""
        return min(self.chunk_rows, self.n_items - j * self.chunk_rows)

    def write(self, files: dict[tuple[str, int], bytes]) -> None:
        """Replace chunk files atomically and durably (a crash point halfway, for tests).

        The files are written by a few threads, so that their fsyncs overlap: the
        filesystem commits concurrent fsyncs together, where one after another
        each would wait for its own.
        """
        items = sorted(files.items())
        paths = {key: self.codecs[key[0]].path(key[1]) for key, _ in items}
        folders = set()
        for (kind, _), path in paths.items():
            folder = path.parent
            while folder != self.codecs[kind].folder.parent:  # new sub-folders are entries too
                folders.add(folder)
                folder = folder.parent
        with storage_errors(self.codecs["labels"].folder):
            for folder in sorted(folders):
                folder.mkdir(parents=True, exist_ok=True)

        def put(item: tuple[tuple[str, int], bytes]) -> None:
            atomic_write(paths[item[0]], item[1], sync_dir=False)

        half = len(items) // 2
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            list(pool.map(put, items[:half]))
            crash_point("checkpoint-chunks")
            list(pool.map(put, items[half:]))
        for folder in sorted(folders):
            fsync_path(folder)
