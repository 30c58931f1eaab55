"""Zarr features: a local array (with the chunk-file fast path) or one in object storage."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core import IndexArray, PathLike, block_spans
from ..errors import AlmaError, InvalidInputError, SourceMissingError
from ._base import DENSE_SPAN, FeatureSource, check_rows
from ._rows import take_rows
from ._zarrchunks import chunk_rows_for

if TYPE_CHECKING:
    import zarr

__all__ = [
    "SAFE_CODECS",
    "RemoteZarrSource",
    "ZarrSource",
    "array_storage_options",
    "check_safe",
    "with_recorded_endpoint",
]

SAFE_CODECS = frozenset(
    {
        "bytes", "blosc", "zstd", "gzip", "zlib", "lz4", "bz2", "lzma", "crc32c", "crc32",
        "adler32", "transpose", "sharding_indexed", "shuffle", "delta", "bitround",
        "fixedscaleoffset", "quantize", "packbits", "astype",
    }
)  # fmt: skip
"""The codecs a feature array may use: compression, checksums and layout, all of which
decode bytes into bytes. Anything else (``pickle``, ``json2``, ``msgpack2``, a codec a plugin
brings) could run code or build objects while it decodes, and is refused before any read."""


def _codec_ids(node: object) -> Iterator[str]:
    """The codec names (v3 ``name``, v2 ``id``) anywhere in an array's metadata."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("codecs", "index_codecs", "filters") and isinstance(value, list | tuple):
                for codec in value:
                    if isinstance(codec, dict):
                        yield str(codec.get("name", codec.get("id")))
                        yield from _codec_ids(codec.get("configuration", {}))
            elif key == "compressor" and isinstance(value, dict):
                yield str(value.get("id"))
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _codec_ids(item)


def check_safe(arr: zarr.Array[Any], where: object) -> None:
    """Refuse a feature array whose chunks would be decoded by anything but a byte codec,
    or that holds Python objects: nothing is read from it yet."""
    meta = arr.metadata.to_dict()
    if np.dtype(arr.dtype).hasobject:
        raise InvalidInputError(f"features {where} hold Python objects (dtype object): refused")
    unsafe = sorted(set(_codec_ids(meta)) - SAFE_CODECS)
    if unsafe:
        raise InvalidInputError(
            f"features {where} use the codec(s) {unsafe}, which alma_store does not decode "
            f"(only byte codecs: {sorted(SAFE_CODECS)}): refused, nothing was read"
        )


class ZarrSource(FeatureSource):
    """A Zarr v3 (or v2) array, given as a path or an open ``zarr.Array``."""

    kind = "zarr"

    def __init__(self, source: PathLike | zarr.Array[Any]) -> None:
        import zarr  # loaded when a Zarr source is opened, not when alma_store is imported

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
        check_safe(self._arr, self.path)
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
        import zarr  # loaded when a Zarr source is opened, not when alma_store is imported

        if isinstance(source, zarr.Array):  # used through its own store, options and all
            self._arr, self.url = source, _zarr_url(source)
            self.storage_options = storage_options or array_storage_options(source)
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
        check_safe(self._arr, self.url)
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
        if n == 0 or hi - lo > DENSE_SPAN * n:  # sparse: zarr's point selection fetches only those
            return super().read_sorted(dataset_indices, out)
        part = (self.buffer(n) if out is None else out)[:n]
        first, last = lo // self._rows_per, (hi - 1) // self._rows_per
        with self._unreadable():
            held = self._chunks(first, last)
        for k, a, b in block_spans(dataset_indices, np.arange(first, last + 1) * self._rows_per):
            j = first + k
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
        out = {"kind": self.kind, "url": self.url, **self.fingerprint()}
        endpoint = (self.storage_options or {}).get("endpoint_url")
        if endpoint:  # not a secret, and never to be replaced by a public default
            out["endpoint_url"] = str(endpoint)
        return out


def array_storage_options(arr: Any) -> dict[str, Any] | None:
    """The fsspec storage options a ``zarr.Array`` in object storage was opened with
    (None for a local one): what reopening it in this process needs."""
    fs = getattr(getattr(arr, "store", None), "fs", None)
    options = getattr(fs, "storage_options", None)
    return dict(options) if options else None


def with_recorded_endpoint(
    record: dict[str, Any], storage_options: dict[str, Any] | None
) -> dict[str, Any] | None:
    """``storage_options`` with the endpoint the store recorded at create, unless they name
    one: a store made over a private server never falls back to a public endpoint."""
    endpoint = record.get("endpoint_url")
    if not endpoint or (storage_options or {}).get("endpoint_url"):
        return storage_options
    return {**(storage_options or {}), "endpoint_url": endpoint}


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
