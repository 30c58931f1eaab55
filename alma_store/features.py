"""Read-only feature sources: a memory-mapped ``.npy``, a Zarr array, an HDF5 dataset.

A source is never loaded whole and never copied: rows are read on demand,
either a contiguous range (:meth:`FeatureSource.read_range`) or a sorted set of
dataset indices (:meth:`FeatureSource.read_rows`). At create the store records
:meth:`FeatureSource.describe` — where the source is and its fingerprint
(shape, dtype, size in bytes) — and :func:`open_source` refuses to reopen a
source that is missing or no longer matches it.

``h5py`` is imported only when an HDF5 source is used.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from ._copy import take_rows
from ._fs import is_url, local_path
from ._source import FeatureSource, check_rows, damaged_source, sample_hash
from ._types import IndexArray, PathLike
from ._zarrchunks import chunk_rows_for
from .errors import (
    AlmaError,
    CorruptStoreError,
    InvalidInputError,
    SourceChangedError,
    SourceMissingError,
)

if TYPE_CHECKING:
    import h5py

__all__ = [
    "FeatureSource",
    "HDF5Source",
    "IndexOnlySource",
    "NpySource",
    "ZarrSource",
    "check_same_features",
    "open_source",
    "sample_hash",
    "source_from",
]


class IndexOnlySource(FeatureSource):
    """The "features" of an index-only store: ``N`` items, no rows to read.

    The store keeps labels, views, the offset map, history and scoring by
    dataset index; reading rows raises :class:`InvalidInputError` saying how
    to reach the items instead.
    """

    kind = "none"
    has_rows = False

    def __init__(self, n_items: int) -> None:
        self.shape = (n_items,)
        self.dtype = np.dtype(np.int64)
        self.path = Path("(index-only)")

    def _no_rows(self) -> InvalidInputError:
        return InvalidInputError(
            "this store is index-only (created with n_items=, no features): it has no rows "
            "to read. Take the view's dataset indices (view.to_dataset_index(positions) or "
            "view.iter_dataset_indices()) and read your items by index; for PyTorch, "
            "alma_store.torch.ViewDataset(view, dataset=your_dataset) returns dataset[i]"
        )

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        # docstring inherited
        raise self._no_rows()

    def read_rows(self, dataset_indices: IndexArray) -> np.ndarray:
        # docstring inherited
        raise self._no_rows()

    def read_sorted(self, dataset_indices: IndexArray, out: np.ndarray | None = None) -> np.ndarray:
        # docstring inherited
        raise self._no_rows()

    @property
    def array(self) -> None:
        # docstring inherited
        return None

    def describe(self) -> dict[str, Any]:
        # docstring inherited
        return {"kind": self.kind, "shape": [self.shape[0]]}


class NpySource(FeatureSource):
    """A ``.npy`` file, memory-mapped read-only.

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(path, np.arange(6.0).reshape(3, 2))
    >>> NpySource(path).read_rows(np.array([0, 2]))
    array([[0., 1.],
           [4., 5.]])
    """

    kind = "npy"

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path).resolve()
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise SourceMissingError(f"feature file {self.path} does not exist") from None
        try:
            self._mm, self._offset, self._map = _map_npy(self._fd, self.path)
        except BaseException:
            os.close(self._fd)
            raise
        check_rows(self._mm.shape, self.path)
        self.shape = tuple(self._mm.shape)
        self.dtype = self._mm.dtype

    @property
    def array(self) -> np.memmap[Any, np.dtype[Any]]:
        # docstring inherited
        # A mapping of its own: reads go through the source's mapping, which it advises.
        mm: np.memmap[Any, np.dtype[Any]] = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return mm

    @contextlib.contextmanager
    def sequential(self) -> Iterator[None]:
        # docstring inherited
        # The kernel reads ahead much further on faults in a mapping advised sequential.
        if self._map is not None:
            self._map.madvise(mmap.MADV_SEQUENTIAL)
        try:
            yield
        finally:
            if self._map is not None and not self._map.closed:
                self._map.madvise(mmap.MADV_NORMAL)

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        # docstring inherited
        return np.array(self._mm[lo:hi])

    def view_range(self, lo: int, hi: int) -> np.ndarray:
        # docstring inherited
        return np.asarray(self._mm[lo:hi])  # the mapping itself (read-only)

    def will_read(self, ranges: list[tuple[int, int]]) -> None:
        # docstring inherited
        # Asynchronous readahead of every range at once: a cold open waits for one
        # round trip to the disk, not one per sampled block.
        row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))
        for lo, hi in ranges:
            start = self._offset + lo * row_bytes
            os.posix_fadvise(self._fd, start, (hi - lo) * row_bytes, os.POSIX_FADV_WILLNEED)

    def read_rows(self, dataset_indices: IndexArray) -> np.ndarray:
        # docstring inherited
        return np.asarray(self._mm[dataset_indices])

    def read_sorted(self, dataset_indices: IndexArray, out: np.ndarray | None = None) -> np.ndarray:
        # docstring inherited
        n = len(dataset_indices)
        if out is None:
            out = self.buffer(n)
        part = out[:n]
        if n == 0:
            return part
        lo, hi = int(dataset_indices[0]), int(dataset_indices[-1]) + 1
        if hi - lo == n:
            np.copyto(part, self._mm[lo:hi])
        else:  # straight from the mapping into the batch, each row copied once
            take_rows(np.asarray(self._mm), dataset_indices, part)
        return part

    def describe(self) -> dict[str, Any]:
        # docstring inherited
        return {
            "kind": self.kind,
            "path": str(self.path),
            **self.fingerprint(),
            "file_size": os.stat(self.path).st_size,
        }

    def close(self) -> None:
        # docstring inherited
        # The mapping is released when the last array using it goes; closing it
        # by hand would leave such arrays pointing at unmapped memory.
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class ZarrSource(FeatureSource):
    """A Zarr v3 (or v2) array, given as a path or an open ``zarr.Array``."""

    kind = "zarr"

    def __init__(self, source: PathLike | zarr.Array[Any]) -> None:
        if isinstance(source, zarr.Array):
            self._arr = source
            self.path = _zarr_local_path(source)
        else:
            self.path = Path(source).resolve()
            if not self.path.exists():
                raise SourceMissingError(f"feature array {self.path} does not exist")
            try:
                self._arr = zarr.open_array(self.path, mode="r")
            except (FileNotFoundError, ValueError, TypeError) as exc:
                raise InvalidInputError(
                    f"features {self.path} is not a Zarr array: {exc}"
                ) from None
        check_rows(self._arr.shape, self.path)
        self.shape = tuple(self._arr.shape)
        self.dtype = np.dtype(self._arr.dtype)
        self._fast = (
            chunk_rows_for(self.path, self.shape, tuple(self._arr.chunks), self.dtype)
            if self._arr.metadata.zarr_format == 3 and self._arr.shards is None
            else None
        )

    @property
    def array(self) -> zarr.Array[Any]:
        # docstring inherited
        return self._arr

    @property
    def fast_path(self) -> bool:
        """Whether rows are read straight from the chunk files (see :mod:`alma_store._zarrchunks`)."""
        return self._fast is not None

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        # docstring inherited
        with self._unreadable():
            if self._fast is not None and hi > lo:
                out = self.buffer(hi - lo)
                self._fast.read_range(lo, hi, out)
                return out
            return np.asarray(self._arr[lo:hi])

    def read_rows(self, dataset_indices: IndexArray) -> np.ndarray:
        # docstring inherited
        with self._unreadable():
            return np.asarray(self._arr.oindex[dataset_indices])

    def read_sorted(self, dataset_indices: IndexArray, out: np.ndarray | None = None) -> np.ndarray:
        # docstring inherited
        if self._fast is None:
            return super().read_sorted(dataset_indices, out)
        part = (self.buffer(len(dataset_indices)) if out is None else out)[: len(dataset_indices)]
        if len(dataset_indices):
            with self._unreadable():
                self._fast.gather(dataset_indices, part)
        return part

    def will_read(self, ranges: list[tuple[int, int]]) -> None:
        # docstring inherited
        if self._fast is not None:  # the chunks are decoded in parallel, ahead of the reads
            rows = self._fast.chunk_rows
            self._fast.prefetch(
                sorted({j for lo, hi in ranges for j in range(lo // rows, (hi - 1) // rows + 1)})
            )

    def close(self) -> None:
        # docstring inherited
        if self._fast is not None:
            self._fast.close()

    def describe(self) -> dict[str, Any]:
        # docstring inherited
        return {"kind": self.kind, "path": str(self.path), **self.fingerprint()}


class HDF5Source(FeatureSource):
    """An HDF5 dataset: ``"file.h5:/name"`` or an ``h5py.Dataset``, opened read-only."""

    kind = "hdf5"

    def __init__(self, source: str | h5py.Dataset, dataset: str | None = None) -> None:
        import h5py

        if isinstance(source, h5py.Dataset):
            self.path = Path(source.file.filename).resolve()
            self.dataset = source.name
        else:
            if dataset is None:
                file_part, sep, dataset = str(source).rpartition(":")
                if not sep or not file_part:
                    raise InvalidInputError(
                        f"an HDF5 source must be 'file.h5:/dataset', got {source!r}"
                    )
                source = file_part
            self.path = Path(source).resolve()
            self.dataset = dataset
        if not self.path.exists():
            raise SourceMissingError(f"HDF5 file {self.path} does not exist")
        self._file = h5py.File(self.path, "r")
        try:
            ds = self._file[self.dataset]
        except KeyError:
            self._file.close()
            raise SourceMissingError(
                f"HDF5 file {self.path} has no dataset {self.dataset!r}"
            ) from None
        if not isinstance(ds, h5py.Dataset):
            self._file.close()
            raise InvalidInputError(f"{self.path}:{self.dataset} is a group, not a dataset")
        self._ds = ds
        self._scratch: np.ndarray | None = None
        self._scratch_lock = threading.Lock()
        check_rows(ds.shape, self.path)
        self.shape = tuple(ds.shape)
        self.dtype = np.dtype(ds.dtype)

    @property
    def array(self) -> h5py.Dataset:
        # docstring inherited
        return self._ds

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        # docstring inherited
        with self._unreadable():
            return np.asarray(self._ds[lo:hi])

    def read_rows(self, dataset_indices: IndexArray) -> np.ndarray:
        # docstring inherited
        if len(dataset_indices) == 0:
            return np.empty((0, *self.shape[1:]), self.dtype)
        with self._unreadable():
            return np.asarray(self._ds[dataset_indices])

    def read_sorted(self, dataset_indices: IndexArray, out: np.ndarray | None = None) -> np.ndarray:
        # docstring inherited
        # ``read_direct`` decodes into our buffer: no array allocated per read. A set
        # with gaps is read as its covering range into a reused scratch buffer and
        # gathered from there, far cheaper than HDF5's point selection.
        n = len(dataset_indices)
        part = (self.buffer(n) if out is None else out)[:n]
        if n == 0:
            return part
        lo, hi = int(dataset_indices[0]), int(dataset_indices[-1]) + 1
        if hi - lo > 4 * n or not part.flags.c_contiguous:
            part[...] = self.read_rows(dataset_indices)
            return part
        with self._unreadable():
            if hi - lo == n:
                self._ds.read_direct(part, np.s_[lo:hi])
                return part
            with self._scratch_lock:  # one scratch buffer per source, threads take turns
                if self._scratch is None or len(self._scratch) < hi - lo:
                    self._scratch = self.buffer(hi - lo)
                scratch = self._scratch[: hi - lo]
                self._ds.read_direct(scratch, np.s_[lo:hi])
                take_rows(scratch, dataset_indices - lo, part)
        return part

    def describe(self) -> dict[str, Any]:
        # docstring inherited
        return {
            "kind": self.kind,
            "path": str(self.path),
            "dataset": self.dataset,
            **self.fingerprint(),
        }

    def close(self) -> None:
        # docstring inherited
        if self._file.id.valid:
            self._file.close()


def check_same_features(source: FeatureSource, features: Any) -> None:
    """Raise :class:`SourceChangedError` unless ``features`` has ``source``'s shape,
    dtype and sampled content (what reopening a store checks of its source)."""
    shape, dtype = tuple(np.shape(features)), np.dtype(getattr(features, "dtype", None))
    if shape != source.shape or dtype != source.dtype:
        raise SourceChangedError(
            f"the features given have shape {shape} and dtype {dtype}, but the store's "
            f"features have shape {source.shape} and dtype {source.dtype}"
        )
    given = sample_hash(shape[0], lambda ranges: [np.asarray(features[a:b]) for a, b in ranges])
    if given != source.sample_hash():
        raise SourceChangedError(
            "the features given differ in content from the store's features "
            "(their sampled rows do not match)"
        )


def _map_npy(fd: int, path: Path) -> tuple[np.ndarray, int, mmap.mmap | None]:
    """``(read-only array over the mapped file, offset of its data, the mapping)``."""
    with open(fd, "rb", closefd=False) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        except ValueError as exc:
            raise InvalidInputError(f"features {path} is not a readable .npy file: {exc}") from None
        offset = f.tell()
    if dtype.hasobject:
        raise InvalidInputError(f"features {path} hold Python objects, not numbers")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if os.fstat(fd).st_size < offset + nbytes:
        raise InvalidInputError(f"features {path} is not a readable .npy file: it is truncated")
    if nbytes == 0:
        return np.empty(shape, dtype), offset, None
    mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    arr = np.ndarray(shape, dtype, buffer=mapped, offset=offset, order="F" if fortran else "C")
    return arr, offset, mapped


class RemoteZarrSource(ZarrSource):
    """A Zarr array in object storage (``s3://``, ``gs://``, ``az://``, ``https://``).

    Opened through zarr's own fsspec store with ``storage_options`` in fsspec's
    form (``endpoint_url``, ``key``, ``secret``, ...), which the store never
    writes anywhere: pass them again to :func:`alma_store.open`. zarr-python
    fetches the chunks a read needs concurrently; the fingerprint's sampled
    blocks go out as one read. A read that fails (the connection dropped, the
    credentials expired) raises :class:`SourceMissingError` and changes nothing.
    """

    def __init__(
        self, source: str | zarr.Array[Any], storage_options: dict[str, Any] | None = None
    ) -> None:
        self.storage_options = storage_options
        if isinstance(source, zarr.Array):
            self._arr, self.url = source, _zarr_url(source)
        else:
            self.url = source
            try:
                self._arr = zarr.open_array(source, mode="r", storage_options=storage_options)
            except (FileNotFoundError, KeyError) as exc:
                raise SourceMissingError(
                    f"no Zarr array at {source} (a missing bucket or key?): {exc!r}"
                ) from None
            except PermissionError as exc:
                raise InvalidInputError(
                    f"access to {source} was refused: check storage_options (key, secret, "
                    f"token): {exc}"
                ) from None
            except Exception as exc:  # noqa: BLE001 - fsspec, aiohttp, botocore raise their own
                raise SourceMissingError(
                    f"the Zarr array at {source} cannot be opened: {exc!r}; check the URL "
                    "and storage_options (endpoint_url, key, secret, ...)"
                ) from None
        self.path = Path(self.url.replace("://", "/", 1))  # for messages and records only
        check_rows(self._arr.shape, self.url)
        self.shape = tuple(self._arr.shape)
        self.dtype = np.dtype(self._arr.dtype)
        self._fast = None
        shards = self._arr.shards
        self._rows_per = int((shards or self._arr.chunks)[0])  # what one request fetches
        self._held: dict[int, np.ndarray] = {}  # chunks of the last read, and those ahead
        self._ahead: tuple[int, int, Future[list[np.ndarray]]] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _fetch(self, first: int, last: int) -> list[np.ndarray]:
        """Chunks ``first .. last`` in one zarr read (zarr requests them concurrently)."""
        lo, hi = first * self._rows_per, min((last + 1) * self._rows_per, self.shape[0])
        rows = np.asarray(self._arr[lo:hi])
        return [rows[a : a + self._rows_per] for a in range(0, hi - lo, self._rows_per)]

    def _chunks(self, first: int, last: int) -> dict[int, np.ndarray]:
        """Chunks ``first .. last``: kept from earlier reads, fetched ahead, or fetched now.

        A read that continues where the last one ended has the next span fetched in the
        background while it is used, so a stream waits for at most one fetch at a time.
        Chunks before ``first`` are dropped: memory stays at about two spans.
        """
        with self._lock:
            ahead, self._ahead = self._ahead, None
            held = {j: c for j, c in self._held.items() if j >= first}
        if ahead is not None:
            a, b, future = ahead
            held.update(zip(range(a, b + 1), future.result(), strict=True))  # its error is ours
        missing = [j for j in range(first, last + 1) if j not in held]
        if missing:
            span = range(missing[0], missing[-1] + 1)
            held.update(zip(span, self._fetch(missing[0], missing[-1]), strict=True))
        n_chunks = -(-self.shape[0] // self._rows_per)
        nxt = max(held) + 1
        end = min(nxt + (last - first), n_chunks - 1)
        with self._lock:
            self._held = held
            if nxt < n_chunks:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="alma-remote")
                self._ahead = (nxt, end, self._pool.submit(self._fetch, nxt, end))
        return held

    def read_sorted(self, dataset_indices: IndexArray, out: np.ndarray | None = None) -> np.ndarray:
        # docstring inherited
        n = len(dataset_indices)
        lo, hi = (int(dataset_indices[0]), int(dataset_indices[-1]) + 1) if n else (0, 0)
        if n == 0 or hi - lo > 4 * n:  # sparse: zarr's point selection fetches only those
            return super().read_sorted(dataset_indices, out)
        part = (self.buffer(n) if out is None else out)[:n]
        first, last = lo // self._rows_per, (hi - 1) // self._rows_per
        with self._unreadable():
            held = self._chunks(first, last)
        cuts = [
            0,
            *np.searchsorted(
                dataset_indices, [j * self._rows_per for j in range(first + 1, last + 1)]
            ),
            n,
        ]
        for j, a, b in zip(range(first, last + 1), cuts[:-1], cuts[1:], strict=True):
            if b > a:
                take_rows(held[j], dataset_indices[a:b] - j * self._rows_per, part[a:b])
        return part

    def close(self) -> None:
        # docstring inherited
        with self._lock:
            pool, self._pool, self._ahead, self._held = self._pool, None, None, {}
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    @contextlib.contextmanager
    def _unreadable(self) -> Iterator[None]:
        try:
            yield
        except AlmaError:
            raise
        except Exception as exc:  # noqa: BLE001 - fsspec, aiohttp and botocore raise their own
            raise SourceMissingError(
                f"feature rows could not be read from {self.url}: {exc!r}; check the connection "
                "and storage_options"
            ) from None

    def read_blocks(self, ranges: list[tuple[int, int]]) -> list[np.ndarray]:
        # docstring inherited
        rows = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
        with self._unreadable():
            got = np.asarray(self._arr.oindex[rows])  # one read: the chunks go out at once
        ends = np.cumsum([hi - lo for lo, hi in ranges])
        return np.split(got, ends[:-1])

    def describe(self) -> dict[str, Any]:
        # docstring inherited
        return {"kind": self.kind, "url": self.url, **self.fingerprint()}


def _zarr_url(arr: zarr.Array[Any]) -> str:
    """The URL of an array in an fsspec store (refused for other remote stores)."""
    fs = getattr(arr.store, "fs", None)
    base = getattr(arr.store, "path", None)
    if fs is None or base is None:
        raise InvalidInputError(
            "a zarr.Array given as features must live in a local directory or an fsspec "
            f"store (s3://, gs://, ...); got a {type(arr.store).__name__}"
        )
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    return f"{protocol}://{'/'.join(p for p in (base.strip('/'), arr.path) if p)}"


def _zarr_local_path(arr: zarr.Array[Any]) -> Path:
    return (Path(arr.store.root) / arr.path).resolve()  # type: ignore[attr-defined]


ARROW_SUFFIXES = {".arrow", ".feather", ".ipc"}


def source_from(
    features: object,
    column: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> FeatureSource:
    """Open the source a user handed to ``create``.

    Accepts a ``.npy`` path, a Zarr array path or ``zarr.Array``, an
    ``"file.h5:/name"`` string or ``h5py.Dataset``, and with ``column`` an
    Arrow IPC file path or a ``datasets.Dataset`` saved on disk. (In-memory
    numpy arrays, tables and datasets are copied by the store itself, see
    :func:`alma_store.create`.)
    """
    if column is not None:
        return _arrow_source(features, column)
    if isinstance(features, zarr.Array):
        local = getattr(features.store, "root", None) is not None
        return ZarrSource(features) if local else RemoteZarrSource(features)
    if isinstance(features, str) and is_url(features) and not features.startswith("file://"):
        file_part = features.rpartition(":")[0] if features.count(":") > 1 else features
        if Path(file_part).suffix in {".npy", ".h5", ".hdf5", ".hdf", ".he5", *ARROW_SUFFIXES}:
            raise InvalidInputError(
                f"features {features!r}: from object storage alma_store reads Zarr arrays "
                "(s3://bucket/x.zarr); copy .npy, HDF5 or Arrow files to a local disk, or "
                "convert them to Zarr"
            )
        return RemoteZarrSource(features, storage_options)
    if type(features).__module__.startswith("h5py") and type(features).__name__ == "Dataset":
        return HDF5Source(features)
    if isinstance(features, str | os.PathLike):
        path = local_path(features, "features path")
        text = str(path)
        if path.suffix == ".npy":
            return NpySource(path)
        if path.suffix in ARROW_SUFFIXES:
            raise InvalidInputError(
                f"features {text!r} is an Arrow file: name the column, column='embedding'"
            )
        if path.is_dir():
            return ZarrSource(path)
        file_part, sep, _ = text.rpartition(":")
        if sep and Path(file_part).suffix in {".h5", ".hdf5", ".hdf", ".he5"}:
            return HDF5Source(text)
        if not path.exists():
            raise SourceMissingError(f"features path {text!r} does not exist")
        raise InvalidInputError(
            f"features path {text!r} is not a .npy file, a Zarr array directory, "
            "'file.h5:/dataset', or an Arrow file (with column=)"
        )
    raise InvalidInputError(
        "features must be a numpy array, a .npy path, a Zarr array (path or zarr.Array), "
        "an HDF5 dataset ('file.h5:/name' or h5py.Dataset), or with column= an Arrow file, "
        f"a pyarrow.Table or a datasets.Dataset; got {type(features).__name__}"
    )


def is_hf_dataset(obj: object) -> bool:
    """Whether ``obj`` is a Hugging Face ``datasets.Dataset`` (without importing datasets)."""
    return type(obj).__module__.startswith("datasets") and type(obj).__name__ == "Dataset"


def _arrow_source(features: object, column: str) -> FeatureSource:
    from ._arrow import ArrowSource, hf_dataset_files  # pyarrow: the arrow or hf extra

    if is_hf_dataset(features):
        files = hf_dataset_files(features)
        if files is None:
            raise InvalidInputError("an in-memory datasets.Dataset is copied into the store")
        return ArrowSource(files, column)
    if isinstance(features, str | os.PathLike):
        return ArrowSource([local_path(features, "features path")], column)
    raise InvalidInputError(
        f"with column=, features must be an Arrow file path, a pyarrow.Table or a "
        f"datasets.Dataset; got {type(features).__name__}"
    )


def open_source(
    record: dict[str, Any],
    store_root: Path,
    n_items: int,
    storage_options: dict[str, Any] | None = None,
) -> FeatureSource:
    """Reopen a recorded source and check its fingerprint.

    Raises
    ------
    SourceMissingError
        The file or dataset is gone.
    SourceChangedError
        Its shape, dtype, size or sampled content differs from the record.
    CorruptStoreError
        The record is damaged, or its rows are not the store's ``n_items``.
    """
    try:
        if "url" in record:
            return _checked(
                RemoteZarrSource(record["url"], storage_options), record, n_items, store_root
            )
        return _open_recorded(record, store_root, n_items)
    except (KeyError, TypeError) as exc:
        raise CorruptStoreError(
            f"{store_root / 'meta.json'}: the feature source record is damaged: {exc!r}"
        ) from None


def _open_recorded(record: dict[str, Any], store_root: Path, n_items: int) -> FeatureSource:
    if record["kind"] == IndexOnlySource.kind:
        if record["shape"] != [n_items]:
            raise CorruptStoreError(
                f"{store_root / 'meta.json'} is damaged: it says the store has {n_items} items, "
                f"but its features record has {record['shape']}"
            )
        return IndexOnlySource(n_items)
    path = Path(record["path"])
    owned = not path.is_absolute()  # a copy made at create, inside the store
    if owned:
        path = store_root / path
    try:
        src = _open_checked(record, path, store_root, n_items, owned)
    except (InvalidInputError, SourceMissingError) as exc:
        if not owned:
            raise
        raise damaged_source(path, store_root, exc) from None
    return src


def _open_checked(
    record: dict[str, Any], path: Path, store_root: Path, n_items: int, owned: bool
) -> FeatureSource:
    kind = record["kind"]
    if kind == "npy":
        src: FeatureSource = NpySource(path)
    elif kind == "zarr":
        src = ZarrSource(path)
        src.owned_by = store_root if owned else None
    elif kind == "hdf5":
        src = HDF5Source(str(path), record["dataset"])
    elif kind == "arrow":
        from ._arrow import ArrowSource

        src = ArrowSource([Path(p) for p in record["paths"]], record["column"])
    else:
        raise InvalidInputError(f"unknown feature source kind {kind!r} in the store metadata")
    return _checked(src, record, n_items, store_root)


def _checked(
    src: FeatureSource, record: dict[str, Any], n_items: int, store_root: Path
) -> FeatureSource:
    """``src`` if it still matches ``record``; else closed, and the error says what changed."""
    if record["shape"][0] != n_items:
        src.close()
        raise CorruptStoreError(
            f"{store_root / 'meta.json'} is damaged: it says the store has {n_items} items, "
            f"but its features record has {record['shape'][0]} rows"
        )
    now = src.describe()
    for key in ("shape", "dtype", "nbytes", "file_size", "sample"):
        if key in record and now.get(key) != record[key]:
            src.close()
            raise SourceChangedError(
                f"feature source {record.get('url', src.path)} has changed since the store was "
                f"created: {key} was {record[key]!r}, now {now.get(key)!r}"
            )
    return src
