"""Rows of a local Zarr v3 array, read straight from its chunk files.

zarr-python reads a chunk through an asynchronous store and codec pipeline,
whose overhead per call dominates when rows are streamed or gathered batch by
batch. For the common layout of a feature matrix (a local directory, chunks
that hold whole rows, the ``bytes`` codec optionally followed by ``zstd`` or
``blosc``), :class:`ChunkRows` reads the chunk files itself and decodes them
with the array's own codecs (numcodecs, which releases the GIL) in a thread
pool: every chunk a batch needs is decoded once, in parallel, and while a
sequential stream is consumed the next chunks are decoded ahead. Uncompressed
chunks are memory-mapped, so their rows are copied once, like a ``.npy``.
Anything else goes through zarr-python (see :class:`alma_store._zarr.ZarrSource`).
"""

from __future__ import annotations

import mmap
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..core import IndexArray, block_spans
from ..errors import CorruptStoreError
from ..storage import ChunkCodec
from ._rows import take_rows

__all__ = ["ChunkRows", "chunk_rows_for"]

CACHE_BYTES = 32 << 20
"""Decoded chunks kept (and decoded ahead) at most, whatever the array's size."""
MAPPED_CHUNKS = 1024
"""Memory maps of uncompressed chunks kept (page cache, not this process's memory)."""


def chunk_rows_for(
    folder: Path, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: np.dtype
) -> ChunkRows | None:
    """The fast path for the array in ``folder``, or None where it does not apply."""
    if tuple(chunks[1:]) != tuple(shape[1:]) or not shape[0]:
        return None  # chunks split rows: zarr-python assembles them
    try:
        codec = ChunkCodec(folder, shape, chunks, dtype)
    except CorruptStoreError:  # codecs, endianness or key encoding it does not handle
        return None
    if dtype.kind not in "biufc":
        return None
    return ChunkRows(codec, shape, chunks[0])


class ChunkRows:
    """Rows of an array whose chunks each hold ``chunk_rows`` whole rows."""

    def __init__(self, codec: ChunkCodec, shape: tuple[int, ...], chunk_rows: int) -> None:
        self.codec = codec
        self.shape = shape
        self.chunk_rows = chunk_rows
        self.n_chunks = -(-shape[0] // chunk_rows)
        self._raw = not codec.compressors
        itemsize = codec.dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
        chunk_bytes = max(1, chunk_rows * itemsize)
        self._threads = max(1, os.cpu_count() or 1)
        self._keep = max(2, CACHE_BYTES // chunk_bytes)
        self._ahead = min(self._keep - 1, 2 * self._threads)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._done: OrderedDict[int, np.ndarray] = OrderedDict()
        self._maps: OrderedDict[int, np.ndarray] = OrderedDict()
        self._pending: dict[int, Future[np.ndarray]] = {}
        self._last = -1

    def _rows(self, j: int) -> int:
        return min(self.chunk_rows, self.shape[0] - j * self.chunk_rows)

    def _load(self, j: int) -> np.ndarray:
        """Chunk ``j``'s rows: a read-only memory map (uncompressed) or decoded."""
        path = self.codec.path(j)
        rows = self._rows(j)
        if not self._raw:
            return self.codec.decode(self.codec.read_raw(j), j, rows, writable=False)
        try:
            with open(path, "rb") as f:
                mapped: mmap.mmap | bytes = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            return self.codec.decode(None, j, rows)
        except ValueError:  # an empty file
            mapped = b""
        full = np.frombuffer(mapped, self.codec.dtype.newbyteorder("<"))
        if len(full) != int(np.prod(self.codec.chunk_shape)):
            raise CorruptStoreError(f"chunk file {path} is damaged: it is not one chunk long")
        return full.reshape(self.codec.chunk_shape)[:rows]

    def _submit(self, chunks: list[int]) -> None:
        """Start loading ``chunks`` in the pool (lock held)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="alma-zarr")
        for j in chunks:
            if j not in self._done and j not in self._pending and 0 <= j < self.n_chunks:
                self._pending[j] = self._pool.submit(self._load, j)

    def _mapped(self, j: int) -> np.ndarray:
        """Uncompressed chunk ``j``, its mapping kept (page tables and all) for the next pass."""
        with self._lock:
            got = self._maps.get(j)
            if got is not None:
                self._maps.move_to_end(j)
                return got
        got = self._load(j)
        with self._lock:
            self._maps[j] = got
            while len(self._maps) > MAPPED_CHUNKS:
                self._maps.popitem(last=False)
        return got

    def prefetch(self, wanted: list[int]) -> None:
        """Start loading ``wanted`` chunks in the background (compressed chunks only)."""
        if not self._raw:
            with self._lock:
                self._submit(wanted[: self._keep])

    def chunks(self, wanted: list[int]) -> list[np.ndarray]:
        """The rows of each chunk in ``wanted`` (sorted, unique), each loaded once, in parallel.

        A stream that asks for the chunks after the last ones it asked for gets
        the next chunks loaded ahead while it works on these.
        """
        if self._raw:  # mapping a file costs less than handing it to a thread
            return [self._mapped(j) for j in wanted]
        with self._lock:
            self._submit([j for j in wanted if j not in self._done])
            if wanted and wanted[0] in (self._last, self._last + 1):
                self._submit(list(range(wanted[-1] + 1, wanted[-1] + 1 + self._ahead)))
            self._last = wanted[-1] if wanted else self._last
            have: list[np.ndarray | Future[np.ndarray]] = []
            for j in wanted:
                if j in self._done:
                    self._done.move_to_end(j)
                    have.append(self._done[j])
                else:
                    have.append(self._pending[j])
        out = []
        for j, got in zip(wanted, have, strict=True):
            if isinstance(got, Future):
                try:
                    arr = got.result()
                finally:
                    with self._lock:
                        if self._pending.get(j) is got:
                            del self._pending[j]
                            if got.done() and got.exception() is None:
                                self._done[j] = got.result()
                got = arr
            out.append(got)
        with self._lock:
            while len(self._done) > max(self._keep, len(wanted)):
                self._done.popitem(last=False)
        return out

    def gather(self, dataset_indices: IndexArray, out: np.ndarray) -> None:
        """Rows at sorted, unique ``dataset_indices`` into ``out`` (as many rows)."""
        first = int(dataset_indices[0]) // self.chunk_rows
        last = int(dataset_indices[-1]) // self.chunk_rows
        spans = [
            (first + k, a, b)
            for k, a, b in block_spans(
                dataset_indices, np.arange(first, last + 1) * self.chunk_rows
            )
        ]
        group = max(1, self._keep // 2)  # decoded chunks held at once stay bounded
        for g in range(0, len(spans), group):
            part = spans[g : g + group]
            for (j, a, b), rows in zip(part, self.chunks([j for j, _, _ in part]), strict=True):
                if b - a == len(rows):
                    out[a:b] = rows
                else:
                    take_rows(rows, dataset_indices[a:b] - j * self.chunk_rows, out[a:b])

    def read_range(self, lo: int, hi: int, out: np.ndarray) -> None:
        """Rows ``[lo, hi)`` into ``out``."""
        first, last = lo // self.chunk_rows, (hi - 1) // self.chunk_rows
        wanted = list(range(first, last + 1))
        for j, rows in zip(wanted, self.chunks(wanted), strict=True):
            a = max(lo, j * self.chunk_rows)
            b = min(hi, j * self.chunk_rows + len(rows))
            out[a - lo : b - lo] = rows[a - j * self.chunk_rows : b - j * self.chunk_rows]

    def close(self) -> None:
        """Stop the pool and drop the chunks kept."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._done.clear()
            self._maps.clear()
            self._pending.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
