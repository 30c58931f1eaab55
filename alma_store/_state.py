"""The on-disk state: Zarr mask and label arrays, and the checkpoint file.

This module is the only writer of Zarr data. Layout inside a store directory::

    state/              Zarr v3 group
      mask              bool (N,), chunks (chunk_rows,), blosc-lz4
      labels            label dtype (N, *label_shape), same row chunking
    checkpoint.bin      version c0, journal offset, per-chunk labeled counts
    marks-<c0>.bin      every chunk's sorted labeled offsets at c0, crc32 per chunk

The checkpoint file says: "the journal up to byte ``journal_offset`` (version
``c0``) is folded into the Zarr arrays, and chunk ``j`` holds ``counts[j]``
labeled rows at ``c0``". It is replaced atomically (temp file, fsync, rename,
fsync of the directory) and only after every chunk it covers was written and
fsynced, so a crash at any instant leaves a checkpoint that is true.

Mask chunks are read straight from their chunk files with the array's own
codec (blosc-lz4) instead of through ``zarr.Array.__getitem__``: the offset map
reads one chunk per position it maps, and zarr-python's fixed cost per call
(about 0.7 ms) would dominate. The layout is checked against the array's
``zarr.json`` at open; any other layout falls back to the zarr API.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Blosc, Zstd
from zarr.codecs import BloscCodec

from ._types import BoolArray, IndexArray
from .errors import CorruptStoreError
from .journal import fsync_dir

CKPT_MAGIC = b"ALMACKP1"
MARKS_MAGIC = b"ALMAMRK1"
MARKS_HEADER = 32


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` durably: temp file, fsync, rename, fsync dir."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def create_arrays(
    root: Path, n_items: int, chunk_rows: int, label_dtype: np.dtype, label_shape: tuple[int, ...]
) -> None:
    """Create the empty mask and label arrays and the version-0 checkpoint."""
    group = zarr.open_group(root / "state", mode="w-")
    group.create_array(
        "mask",
        shape=(n_items,),
        chunks=(chunk_rows,),
        dtype=bool,
        fill_value=False,
        # LZ4 without shuffling decodes a 64 Ki-row chunk about twice as fast as zstd,
        # and the offset map decodes one chunk per position it maps.
        compressors=BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle"),
    )
    group.create_array(
        "labels",
        shape=(n_items, *label_shape),
        chunks=(chunk_rows, *label_shape),
        dtype=label_dtype,
        fill_value=None,
    )
    n_chunks = -(-n_items // chunk_rows)
    write_marks(root, 0, [np.empty(0, np.int64)] * n_chunks, n_chunks)
    write_checkpoint(root, version=0, journal_offset=-1, counts=np.zeros(n_chunks, np.int64))


def write_checkpoint(root: Path, *, version: int, journal_offset: int, counts: IndexArray) -> None:
    """Atomically replace the checkpoint file."""
    head = json.dumps(
        {"version": version, "journal_offset": journal_offset, "n_chunks": len(counts)}
    ).encode()
    body = CKPT_MAGIC + struct.pack("<I", len(head)) + head + counts.astype("<i8").tobytes()
    atomic_write(root / "checkpoint.bin", body + struct.pack("<I", zlib.crc32(body)))


def marks_path(root: Path, version: int) -> Path:
    """The marks index of checkpoint ``version``."""
    return root / f"marks-{version}.bin"


def write_marks(root: Path, version: int, parts: Iterable[IndexArray], n_chunks: int) -> None:
    """Write the marks index of checkpoint ``version`` durably (before its checkpoint file).

    Layout: a 32-byte header (magic, version u64, total u64, n_chunks u32,
    crc32 of the 28 bytes before it), a crc32 per chunk (u32) of that chunk's
    offsets, then chunk after chunk the sorted offsets of its labeled rows
    (int32); the checkpoint's counts say where each chunk's run starts.
    """
    path = marks_path(root, version)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"\0" * (MARKS_HEADER + 4 * n_chunks))
            total = 0
            crcs = np.zeros(n_chunks, "<u4")
            for j, part in enumerate(parts):
                raw = np.ascontiguousarray(part, dtype="<i4").tobytes()
                crcs[j] = zlib.crc32(raw)
                f.write(raw)
                total += len(part)
            head = MARKS_MAGIC + struct.pack("<QQI", version, total, n_chunks)
            f.seek(0)
            f.write(head + struct.pack("<I", zlib.crc32(head)) + crcs.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(root)


def open_marks(
    root: Path, version: int, total: int, n_chunks: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Map the marks index of checkpoint ``version``: (per-chunk crc32s, offsets), or None."""
    path = marks_path(root, version)
    try:
        with path.open("rb") as f:
            head = f.read(MARKS_HEADER)
    except FileNotFoundError:
        return None
    want = MARKS_MAGIC + struct.pack("<QQI", version, total, n_chunks)
    if head[:28] != want or head[28:32] != struct.pack("<I", zlib.crc32(want)):
        raise CorruptStoreError(f"{path} is damaged or does not match the checkpoint")
    if path.stat().st_size != MARKS_HEADER + 4 * (n_chunks + total):
        raise CorruptStoreError(f"{path} has the wrong size for {total} offsets")
    mapped = np.memmap(path, dtype="<u4", mode="r", offset=0).view(np.ndarray)
    crcs = mapped[MARKS_HEADER // 4 : MARKS_HEADER // 4 + n_chunks]
    marks = mapped[MARKS_HEADER // 4 + n_chunks :].view("<i4")
    return crcs, marks


def remove_marks_except(root: Path, version: int) -> None:
    """Delete the marks indexes of older checkpoints (readers keep theirs mapped)."""
    for path in root.glob("marks-*.bin"):
        if path.name != marks_path(root, version).name:
            path.unlink(missing_ok=True)


def read_checkpoint(root: Path, n_chunks: int) -> tuple[int, int, IndexArray]:
    """Read ``(version, journal_offset, counts)``; raise on any damage."""
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
    head = json.loads(body[12 : 12 + hlen])
    counts = np.frombuffer(body, dtype="<i8", offset=12 + hlen).astype(np.int64)
    if head["n_chunks"] != n_chunks or len(counts) != n_chunks:
        raise CorruptStoreError(
            f"checkpoint file {path} has {len(counts)} chunk counts, the store has {n_chunks} chunks"
        )
    return int(head["version"]), int(head["journal_offset"]), counts


class StateArrays:
    """Chunk-level access to the mask and label arrays.

    Parameters
    ----------
    root
        The store directory.
    n_items, chunk_rows
        The store's geometry.
    cache_bytes
        Upper bound on the memory of cached chunk offsets (LRU).
    """

    def __init__(
        self, root: Path, n_items: int, chunk_rows: int, *, cache_bytes: int = 64 << 20
    ) -> None:
        self.root = root
        self.n_items = n_items
        self.chunk_rows = chunk_rows
        self._mask_dir = root / "state" / "mask" / "c"
        self._labels_dir = root / "state" / "labels" / "c"
        self._mask_prefix = f"{self._mask_dir}{os.sep}"
        self._decoder = self._fast_decoder()
        self._scratch = np.empty(chunk_rows, dtype=bool)  # decode target, reused
        self._cache: OrderedDict[int, IndexArray] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._cache_used = 0
        self._mask_arr: zarr.Array | None = None
        self._labels_arr: zarr.Array | None = None

    def _fast_decoder(self) -> Blosc | Zstd | None:
        """The numcodecs decoder of the mask's chunk files, or None to go through zarr."""
        try:
            meta = json.loads((self.root / "state" / "mask" / "zarr.json").read_text())
        except (OSError, ValueError) as exc:
            raise CorruptStoreError(f"cannot read the mask array metadata: {exc}") from None
        codecs = [c.get("name") for c in meta.get("codecs", [])]
        enc = meta.get("chunk_key_encoding", {})
        plain = (
            enc.get("name") == "default"
            and enc.get("configuration", {}).get("separator", "/") == "/"
            and meta.get("shape") == [self.n_items]
        )
        if plain and codecs == ["bytes", "blosc"]:
            return Blosc()
        if plain and codecs == ["bytes", "zstd"]:
            return Zstd()
        return None

    @property
    def mask_array(self) -> zarr.Array:
        """The Zarr mask array (opened on first use)."""
        if self._mask_arr is None:
            self._mask_arr = zarr.open_array(self.root / "state" / "mask", mode="r+")
        return self._mask_arr

    @property
    def labels_array(self) -> zarr.Array:
        """The Zarr label array (opened on first use)."""
        if self._labels_arr is None:
            self._labels_arr = zarr.open_array(self.root / "state" / "labels", mode="r+")
        return self._labels_arr

    def chunk_bounds(self, j: int) -> tuple[int, int]:
        """Dataset index range ``[lo, hi)`` of chunk ``j``."""
        lo = j * self.chunk_rows
        return lo, min(lo + self.chunk_rows, self.n_items)

    def read_marks(self, j: int) -> IndexArray:
        """Sorted offsets of the True rows of mask chunk ``j`` as on disk now (cached).

        Only the offsets are kept, so the cache costs memory in proportion to
        the labeled rows it covers, not to the chunk size.
        """
        hit = self._cache.get(j)
        if hit is not None:
            self._cache.move_to_end(j)
            return hit
        lo, hi = self.chunk_bounds(j)
        if self._decoder is not None:
            try:
                fd = os.open(f"{self._mask_prefix}{j}", os.O_RDONLY)
            except FileNotFoundError:
                marks = np.empty(0, np.int64)
            else:
                try:
                    raw = os.read(fd, os.fstat(fd).st_size)
                finally:
                    os.close(fd)
                try:
                    self._decoder.decode(raw, out=self._scratch)
                except Exception as exc:  # noqa: BLE001 - numcodecs raises bare RuntimeErrors
                    raise CorruptStoreError(f"mask chunk {j} is damaged: {exc}") from None
                marks = np.flatnonzero(self._scratch[: hi - lo])
        else:
            marks = np.flatnonzero(np.asarray(self.mask_array[lo:hi]))
        marks.flags.writeable = False
        self._cache[j] = marks
        self._cache_used += marks.nbytes + 100
        while self._cache_used > self._cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_used -= old.nbytes + 100
        return marks

    def read_labels(self, lo: int, hi: int) -> np.ndarray:
        """Label rows ``[lo, hi)`` as on disk now."""
        return np.asarray(self.labels_array[lo:hi])

    def clear_cache(self) -> None:
        """Forget every cached mask chunk."""
        self._cache.clear()
        self._cache_used = 0

    def write_chunks(self, chunks: dict[int, tuple[BoolArray, np.ndarray]]) -> None:
        """Write whole mask and label chunks, then fsync every file written."""
        mask_arr, labels_arr = self.mask_array, self.labels_array
        for j, (mask, labels) in sorted(chunks.items()):
            lo, hi = self.chunk_bounds(j)
            mask_arr[lo:hi] = mask
            labels_arr[lo:hi] = labels
            old = self._cache.pop(j, None)
            if old is not None:
                self._cache_used -= old.nbytes + 100
        label_key = "/0" * (labels_arr.ndim - 1)
        paths = [self._mask_dir / str(j) for j in chunks]
        paths += [self._labels_dir / f"{j}{label_key}" for j in chunks]
        for path in paths:
            if path.exists():  # a chunk equal to the fill value is not stored
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        for folder in {path.parent for path in paths}:
            if folder.exists():
                fsync_dir(folder)
