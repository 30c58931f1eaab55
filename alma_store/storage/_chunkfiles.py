"""The mask and label chunk files: ordinary Zarr v3 arrays the store encodes itself.

Layout inside a store directory::

    state/              Zarr v3 group
      mask              bool (N,), chunks (chunk_rows,), blosc-lz4
      labels            label dtype (N, *label_shape), same row chunking, zstd

This module is the only writer of chunk files. It encodes and decodes them
itself, with the codecs the arrays' ``zarr.json`` names (``bytes`` or
``vlen-utf8``, then ``blosc`` or ``zstd``), so the files stay ordinary Zarr
that zarr-python reads, while the store knows every file's bytes (and their
CRC-32, see :mod:`alma_store.storage._marks`) before it writes them, and reads
a chunk without zarr's per-call cost. ``zarr.json`` must describe the geometry
and codecs the store expects, or :class:`CorruptStoreError` names it.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..core import STR_DTYPE
from ..errors import CorruptStoreError
from ._fs import atomic_write, crash_point, fsync_path, storage_errors

__all__ = ["ChunkCodec", "StateArrays", "create_arrays"]

WRITE_THREADS = 8
"""Threads that write a checkpoint's chunk files (their fsyncs overlap)."""


def _vlen_utf8() -> Any:
    """numcodecs' codec of variable-length strings (imported when a str store needs it)."""
    from numcodecs import VLenUTF8

    return VLenUTF8()


class ChunkCodec:
    """Encode and decode one array's chunk files with the codecs its ``zarr.json`` names."""

    def __init__(
        self,
        folder: Path,
        shape: tuple[int, ...],
        chunks: tuple[int, ...],
        dtype: Any,
        fetch: Callable[[int], bytes | None] | None = None,
    ):
        from numcodecs import Blosc, Zstd  # loaded by the first open, not by import alma_store

        meta_path = folder / "zarr.json"
        self.folder = folder
        self._fetch = fetch  # chunk files not here: fetched from elsewhere (a shared checkpoint)
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
        """The bytes of chunk file ``j``, or None when it does not exist.

        With ``fetch``, a file that is not here is fetched (and kept here).
        """
        try:
            with open(self.path(j), "rb") as f:
                return f.read()
        except FileNotFoundError:
            data = None if self._fetch is None else self._fetch(j)
            if data is not None:
                self.path(j).parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.path(j), data)
            return data

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
                out = np.asarray(_vlen_utf8().decode(data)).astype(STR_DTYPE)
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
            encoded = _vlen_utf8().encode(full.astype(object).reshape(-1))
        else:
            encoded = np.ascontiguousarray(full, dtype=self.dtype.newbyteorder("<")).tobytes()
        for codec in self._compressors:
            encoded = codec.encode(encoded)
        return bytes(encoded)


def create_arrays(
    root: Path, n_items: int, chunk_rows: int, label_dtype: Any, label_shape: tuple[int, ...]
) -> None:
    """Create the empty mask and label arrays (no chunk file: all fill value)."""
    import zarr  # only to create arrays: an import of alma_store does not load it
    from zarr.codecs import BloscCodec, ZstdCodec

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
        # Named, not zarr's default: every host decodes a shared checkpoint's chunks alike.
        compressors=ZstdCodec(level=0, checksum=False),
    )


TEMPLATE_VERSION = 1
"""Changes whenever :func:`create_arrays` writes other metadata (templates are per version)."""
STATE_FILES = ("zarr.json", "mask/zarr.json", "labels/zarr.json")
"""The metadata files of a store's ``state/`` group: all an empty state is."""


def create_arrays_cached(
    root: Path, n_items: int, chunk_rows: int, label_dtype: Any, label_shape: tuple[int, ...]
) -> None:
    """:func:`create_arrays`, copied from this host's and user's template of the geometry.

    For private mirrors, made by every open of a shared store: zarr's array creation
    costs about 10 ms, a copy of its three small metadata files far less. The template
    (``alma-state-<user>-<key>`` in the temporary directory, ``key`` naming the geometry
    and :data:`TEMPLATE_VERSION`) is written by the first mirror of that geometry and
    used only while it is this user's and writable by nobody else.
    """
    template = _state_template(n_items, chunk_rows, label_dtype, label_shape)
    shapes = {"mask/zarr.json": [n_items], "labels/zarr.json": [n_items, *label_shape]}
    ours = False
    try:
        info = template.stat()
        ours = not hasattr(os, "getuid") or info.st_uid == os.getuid()
        if not ours or info.st_mode & 0o022:
            raise PermissionError(f"{template} is not this user's own")
        files = [(template / "state" / name).read_bytes() for name in STATE_FILES]
        for name, data in zip(STATE_FILES, files, strict=True):
            if json.loads(data).get("shape", shapes.get(name)) != shapes.get(name):
                raise ValueError(f"{template}/state/{name} is of another geometry")
    except (OSError, ValueError, AttributeError):  # none yet, or not to be used
        create_arrays(root, n_items, chunk_rows, label_dtype, label_shape)
        with contextlib.suppress(OSError):
            if ours:  # damaged: made again
                shutil.rmtree(template)
            _publish_template(root / "state", template)
        return
    for name, data in zip(STATE_FILES, files, strict=True):
        path = root / "state" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _state_template(
    n_items: int, chunk_rows: int, label_dtype: Any, label_shape: tuple[int, ...]
) -> Path:
    """Where the template of a geometry's empty state lives on this host, for this user."""
    user = os.getuid() if hasattr(os, "getuid") else getpass.getuser()
    geometry = (n_items, chunk_rows, repr(np.dtype(label_dtype)), tuple(label_shape))
    key = repr((geometry, TEMPLATE_VERSION))
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"alma-state-{user}-{digest}"


def _publish_template(state: Path, template: Path) -> None:
    """Copy the metadata of ``state`` to ``template`` (renamed into place whole)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{template.name}-", dir=template.parent))
    try:
        for name in STATE_FILES:
            (tmp / "state" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "state" / name).write_bytes((state / name).read_bytes())
        os.replace(tmp, template)  # an existing template (another process's) stays
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class StateArrays:
    """The mask and label chunk files of one store."""

    def __init__(
        self,
        root: Path,
        n_items: int,
        chunk_rows: int,
        label_dtype: Any,
        label_shape: tuple[int, ...],
        fetch: Callable[[str, int], bytes | None] | None = None,
    ) -> None:
        self.n_items = n_items
        self.chunk_rows = chunk_rows

        def fetch_of(kind: str) -> Callable[[int], bytes | None] | None:
            return None if fetch is None else lambda j: fetch(kind, j)

        self.codecs = {
            "mask": ChunkCodec(
                root / "state" / "mask", (n_items,), (chunk_rows,), bool, fetch_of("mask")
            ),
            "labels": ChunkCodec(
                root / "state" / "labels",
                (n_items, *label_shape),
                (chunk_rows, *label_shape),
                label_dtype,
                fetch_of("labels"),
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
