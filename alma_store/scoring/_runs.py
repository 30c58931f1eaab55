"""The files of one scoring run: ``scores/<name>/``.

Layouts 2 and 3 (format version 3)::

    scores/<name>/meta.json        layout, dtype, chunk_rows, the store version it started at
                                   (layout 3: and ``columns``, the values per row)
    scores/<name>/steps/<id>.bin   one durable progress step: the scores of whole chunks

A step file holds the complete scores of one or more chunks and is created
atomically (temp file, fsync, rename, fsync of the directory), so a chunk is
done exactly when a step file holds it: there is nothing else to trust or to
keep consistent. A shared store (format 5) keeps the same files as objects under
``scores/<name>/`` of its directory or URL: a step is created if absent
(:mod:`alma_store.storage._objects`), so it is whole or absent there too. A step's bytes are::

    b"ALSS" | u32 format (1) | u32 count | u32 chunk ids[count] | the chunks' scores | u32 CRC-32

each chunk's scores are its rows' values (NaN where it had no unlabeled row),
little-endian, in the order of the ids, and the CRC-32 covers every byte
before it. Layout 3 is layout 2 with ``columns`` values per row (class
probabilities, an embedding): a chunk's scores are its ``rows x columns``
values in row-major order. A run whose ``meta.json`` says ``"rows": "all"`` (either
layout) holds the values of the rows that were labeled too (embeddings, whose labeled
rows are the centers of a diversity selection). A run of one value per row stays layout 2, which
every reader of format version 3 knows; a reader that predates layout 3
refuses such a run (and only it) as not describing a scoring of the store. Two step files may hold the same chunk (two processes that scored it
at once): either is a complete scoring of it, and readers take the first by
file name.

Layout 1 (format versions 1 and 2) kept a Zarr array ``values`` chunked like
the mask and one empty marker ``done/<j>`` per chunk, at four fsyncs per
chunk. It is still read; the first :func:`create_run` of it
rewrites it as layout 2.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import shutil
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core import chunk_sizes
from ..errors import CorruptStoreError, InvalidInputError
from ..storage import (
    ChunkCodec,
    DirObjects,
    Objects,
    atomic_write,
    crash_point,
    crc_body,
    storage_errors,
    with_crc,
)

__all__ = ["ScoreRun", "check_name", "create_run", "read_run"]

LAYOUT = 2
"""Layout of a run of one score per row."""
COLUMNS_LAYOUT = 3
"""Layout of a run of ``columns`` values per row."""
_MAGIC = b"ALSS"
_HEAD = struct.Struct("<4sII")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def check_name(name: object) -> None:
    """Refuse a scores name that is not 1-100 letters, digits, '_', '-' or '.'."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"a scores name must be 1-100 letters, digits, '_', '-' or '.', got {name!r}"
        )


def encode_step(
    chunks: list[int], values: list[np.ndarray], dtype: np.dtype
) -> list[bytes | memoryview]:
    """The buffers of a step file holding ``values[i]``, the scores of chunk ``chunks[i]``.

    >>> raw = b"".join(encode_step([3], [np.array([1.0, np.nan])], np.dtype("float32")))
    >>> ids, scores = decode_step(raw, "x", np.dtype("float32"))
    >>> ids.tolist(), scores.tolist()[0]
    ([3], 1.0)
    """
    little = dtype.newbyteorder("<")
    parts = [
        memoryview(_HEAD.pack(_MAGIC, 1, len(chunks))),
        memoryview(np.asarray(chunks, "<u4")).cast("B"),
        *(memoryview(np.ascontiguousarray(v, dtype=little)).cast("B") for v in values),
    ]
    return with_crc(parts)


def decode_step(
    raw: bytes | mmap.mmap, where: object, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """``(chunk ids, all their scores concatenated)`` of a step file, checked."""
    body = crc_body(memoryview(raw))
    count = 0
    ok = body is not None and len(body) >= _HEAD.size
    if ok:
        assert body is not None
        magic, fmt, count = _HEAD.unpack_from(body)
        ok = magic == _MAGIC and fmt == 1
    if not ok or body is None:
        raise CorruptStoreError(
            f"score step file {where} is damaged (its checksum does not match); delete it "
            "and score again under the same name: only its chunks are redone"
        )
    ids = np.frombuffer(body, "<u4", count, _HEAD.size).astype(np.int64)
    values = np.frombuffer(body, dtype.newbyteorder("<"), offset=_HEAD.size + 4 * count)
    return ids, values


@dataclass
class ScoreRun:
    """One scoring run's files, and which chunks are done.

    ``objects`` holds them under ``scores/<name>/``: a local store's directory,
    or a shared store's directory or object storage. ``columns`` is ``None``
    for one score per row, else the number of values per row (layout 3).
    """

    objects: Objects
    name: str
    dtype: np.dtype
    chunk_rows: int
    n_items: int
    layout: int
    columns: int | None = None
    all_rows: bool = False
    """Whether the labeled rows were scored too (``meta.json``'s ``"rows": "all"``)."""

    @property
    def row_shape(self) -> tuple[int, ...]:
        """The shape of one row's scores: ``()`` or ``(columns,)``."""
        return () if self.columns is None else (self.columns,)

    @property
    def prefix(self) -> str:
        """The run's object names start with this."""
        return f"scores/{self.name}/"

    @property
    def folder(self) -> Path:
        """The run's folder (a store in a directory)."""
        assert isinstance(self.objects, DirObjects)
        return self.objects.root / "scores" / self.name

    @property
    def sizes(self) -> np.ndarray:
        """Rows of every chunk."""
        return chunk_sizes(self.n_items, self.chunk_rows)

    def done(self) -> dict[int, str]:
        """Chunks that are complete, and the step (its object name) holding each."""
        if self.layout == 1:
            folder = self.folder / "done"
            names = os.listdir(folder) if folder.exists() else []
            return {int(p): str(folder / p) for p in names if p.isdigit()}
        out: dict[int, str] = {}
        steps = [m.name for m in self.objects.list(self.prefix + "steps/")]
        for name in (n for n in steps if n.endswith(".bin")):
            for j in self._step_ids(name):
                out.setdefault(j, name)
        return out

    def _where(self, name: str) -> str:
        return f"{self.objects.location}/{name}"

    def _read(self, name: str) -> bytes | mmap.mmap:
        """A step's bytes: a local file memory-mapped (the page cache, not our memory)."""
        if isinstance(self.objects, DirObjects):
            with open(self.objects.root / name, "rb") as f:
                try:
                    return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                except ValueError:  # an empty file
                    return b""
        raw = self.objects.get(name)
        if raw is None:
            raise CorruptStoreError(f"score step {self._where(name)} vanished")
        return raw

    def _step_ids(self, name: str) -> list[int]:
        raw = self._read(name)
        head = raw[: _HEAD.size]
        if len(head) < _HEAD.size or head[:4] != _MAGIC:
            raise CorruptStoreError(f"score step file {self._where(name)} is damaged (bad header)")
        _, _, count = _HEAD.unpack(head)
        ids = np.frombuffer(raw[_HEAD.size : _HEAD.size + 4 * count], "<u4")
        if len(ids) != count or (len(ids) and ids.max() >= len(self.sizes)):
            raise CorruptStoreError(
                f"score step file {self._where(name)} is damaged (bad chunk ids)"
            )
        return ids.astype(np.int64).tolist()

    def _pieces(self, ids: np.ndarray, values: np.ndarray) -> list[np.ndarray]:
        """The scores of each chunk in ``ids``, cut out of their back-to-back ``values``."""
        ends = np.cumsum(self.sizes[ids]).tolist()
        return np.split(values, ends[:-1]) if ends else []

    def read(self, done: dict[int, str], chunks: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """``(j, scores of chunk j)`` for ``chunks`` of ``done``, each file read once."""
        for ids, values in self.read_blocks(done, chunks):
            yield from zip(ids.tolist(), self._pieces(ids, values), strict=True)

    def read_blocks(
        self, done: dict[int, str], chunks: list[int]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(chunk ids, their scores back to back)`` for ``chunks`` of ``done`` (what
        :meth:`done` returned), one block per step file read.

        The scores of a step file are its memory map itself wherever the block
        is all of the file (read-only; the page cache, not this process's memory).
        """
        sizes = self.sizes
        if self.layout == 1:
            codec = self._legacy_codec()
            for a in range(0, len(chunks), 8):
                ids = np.array(chunks[a : a + 8], np.int64)
                parts = [codec.decode(codec.read_raw(j), j, int(sizes[j])) for j in ids.tolist()]
                yield ids, np.concatenate(parts) if parts else np.empty(0, self.dtype)
            return
        by_file: dict[str, set[int]] = {}
        for j in chunks:
            by_file.setdefault(done[j], set()).add(j)
        for name, wanted in by_file.items():
            ids, values = decode_step(self._read(name), self._where(name), self.dtype)
            width = self.columns or 1
            if ids.size and len(values) != int(sizes[ids].sum()) * width:
                raise CorruptStoreError(
                    f"score step file {self._where(name)} is damaged (wrong length)"
                )
            values = values.reshape((-1, *self.row_shape))
            keep = np.isin(ids, np.fromiter(wanted, np.int64, len(wanted)))
            if not keep.all():
                pieces = self._pieces(ids, values)
                values = np.concatenate([p for p, k in zip(pieces, keep, strict=True) if k])
                ids = ids[keep]
            yield ids, values

    def write_step(self, chunks: list[int], values: list[np.ndarray]) -> str:
        """Make the scores of ``chunks`` durable in one new step; its object name."""
        name = f"{self.prefix}steps/{uuid.uuid4().hex}.bin"
        self.objects.create(name, encode_step(chunks, values, self.dtype))  # a fresh name
        crash_point("score-step")
        return name

    def _legacy_codec(self) -> ChunkCodec:
        return ChunkCodec(self.folder / "values", (self.n_items,), (self.chunk_rows,), self.dtype)


def _read_meta(objects: Objects, name: str) -> dict[str, object]:
    where = f"{objects.location}/scores/{name}/meta.json"
    raw = objects.get(f"scores/{name}/meta.json")
    if raw is None:
        raise InvalidInputError(f"no scores named {name!r} in {objects.location}")
    try:
        meta = json.loads(raw)
        if not isinstance(meta, dict):
            raise TypeError("not an object")
        return meta
    except (ValueError, TypeError) as exc:
        raise CorruptStoreError(f"{where} is damaged: {exc}") from None


def read_run(objects: Objects, name: str, *, chunk_rows: int, n_items: int) -> ScoreRun:
    """The scoring run ``name`` of the store whose files are ``objects``.

    Raises
    ------
    InvalidInputError
        No such run.
    CorruptStoreError
        Its ``meta.json`` is damaged or describes another store's geometry.
    """
    check_name(name)
    meta = _read_meta(objects, name)
    where = f"{objects.location}/scores/{name}/meta.json"
    try:
        dtype = np.dtype(str(meta["dtype"]))
        layout = int(meta.get("layout", 1))  # type: ignore[call-overload]
        run_rows = meta["chunk_rows"]
        columns: object = meta["columns"] if layout == COLUMNS_LAYOUT else None
        rows = meta.get("rows", "unlabeled")
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptStoreError(f"{where} is damaged: {exc!r}") from None
    if columns is not None and not (
        isinstance(columns, int) and not isinstance(columns, bool) and columns >= 1
    ):
        raise CorruptStoreError(f"{where} is damaged: columns {columns!r}")
    if rows not in ("all", "unlabeled"):
        raise CorruptStoreError(f"{where} is damaged: rows {rows!r}")
    if run_rows != chunk_rows or layout not in (1, LAYOUT, COLUMNS_LAYOUT):
        raise CorruptStoreError(
            f"{where} does not describe a scoring of this store "
            f"(chunk_rows {run_rows!r}, layout {layout!r})"
        )
    return ScoreRun(objects, name, dtype, chunk_rows, n_items, layout, columns, rows == "all")


def create_run(
    objects: Objects,
    name: str,
    *,
    chunk_rows: int,
    n_items: int,
    store_version: int,
    dtype: str = "float32",
    columns: int | None = None,
    all_rows: bool = False,
) -> ScoreRun:
    """The scoring run ``name``, created unless it exists (a layout-1 run moves to layout 2).

    A new run has ``columns`` values per row (layout 3), or one (``None``, layout 2), and
    with ``all_rows`` says ``"rows": "all"``: its labeled rows are scored too.
    The caller holds the store's writer lock (a layout-1 run is rewritten).
    """
    check_name(name)
    meta: dict[str, object] = {
        "layout": LAYOUT if columns is None else COLUMNS_LAYOUT,
        "dtype": np.dtype(dtype).str,
        "chunk_rows": chunk_rows,
        "store_version": store_version,
        "created": time.time(),
    }
    if columns is not None:
        meta["columns"] = columns
    if all_rows:
        meta["rows"] = "all"
    # Created once: every process and host that joins the run reads the first one's.
    objects.create(f"scores/{name}/meta.json", json.dumps(meta).encode())
    run = read_run(objects, name, chunk_rows=chunk_rows, n_items=n_items)
    return _upgrade(run) if run.layout == 1 else run


def _upgrade(old: ScoreRun) -> ScoreRun:
    """Rewrite a layout-1 run as step files, then switch its meta.json (writer lock held).

    A crash before the switch leaves layout 1 in force (the steps are redone); after
    it, only the old files are left to delete.
    """
    new = ScoreRun(old.objects, old.name, old.dtype, old.chunk_rows, old.n_items, LAYOUT)
    steps = old.folder / "steps"
    shutil.rmtree(steps, ignore_errors=True)  # from an upgrade that did not finish
    with storage_errors(steps):
        steps.mkdir()
    done = old.done()
    chunks = sorted(done)
    per_step = max(1, (64 << 20) // max(1, old.chunk_rows * old.dtype.itemsize))
    for a in range(0, len(chunks), per_step):
        part = dict(old.read(done, chunks[a : a + per_step]))
        new.write_step(list(part), list(part.values()))
    meta = _read_meta(old.objects, old.name)
    meta["layout"] = LAYOUT
    atomic_write(old.folder / "meta.json", json.dumps(meta).encode())
    shutil.rmtree(old.folder / "values", ignore_errors=True)
    shutil.rmtree(old.folder / "done", ignore_errors=True)
    return new
