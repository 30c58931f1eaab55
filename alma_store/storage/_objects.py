"""Named objects in a directory or in object storage: the I/O of a shared store.

A shared store (:mod:`alma_store._shared`) needs five operations of the place
it lives in, and nothing else: no lock, no append, no rename.

- :meth:`Objects.create`: create an object only if its name is free, durably,
  and say whether this call created it. In a directory (a local disk, NFS,
  Lustre, GPFS): write a temp file, ``fsync`` it, ``link`` it to its name
  (``link`` fails if the name exists, atomically, also over NFS), ``fsync``
  the directory. In object storage: a conditional put (``If-None-Match: *``),
  through obstore's ``put(mode="create")``.
- :meth:`Objects.put`: replace an object (temp file and ``rename``; a plain put).
- :meth:`Objects.get`, :meth:`Objects.list` (names after a given one, sorted,
  with their storage timestamps) and :meth:`Objects.delete`.

Object storage is reached through obstore (the ``s3``, ``gcs`` or ``azure``
extra). ``storage_options`` come in fsspec's form, as for features, and are
translated to obstore's configuration per scheme (:mod:`._options`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..errors import (
    AlmaError,
    InvalidInputError,
    MissingExtraError,
    ReadOnlyError,
    StorageUnavailableError,
    StoreNotFoundError,
    UnsupportedStorageError,
)
from ._fs import atomic_write, crash_point
from ._location import Location
from ._options import obstore_config
from ._threads import Threads

__all__ = ["DirObjects", "Listed", "Objects", "RemoteObjects", "open_objects"]


KEY_MAX = 1024
"""The longest key (bytes) S3, GCS and Azure Blob Storage take."""
GETS_IN_FLIGHT = 32
"""Concurrent GETs of :meth:`RemoteObjects.get_many`."""

Buffers = bytes | Sequence[bytes | memoryview]
"""An object's content: bytes, or buffers written one after the other."""


def joined(data: Buffers) -> bytes:
    """``data`` as one ``bytes``."""
    return data if isinstance(data, bytes) else b"".join(data)


@dataclass(frozen=True, slots=True)
class Listed:
    """One listed object: its name and when the storage last wrote it (seconds)."""

    name: str
    modified: float


Listing = list[Listed]
"""What a listing gives (a name for it where :meth:`Objects.list` hides the builtin)."""


class Objects(Protocol):
    """Named immutable-or-replaced objects under one location."""

    location: str
    """Where the objects live, for messages (a directory or a URL)."""
    cheap_requests: bool
    """Whether a get, list or put costs far less than a create (a directory: a create
    ``fsync``-s a file and the directory; on a server every request costs alike)."""
    name_room: int
    """How long a name may be (characters; 0: names carry no data)."""

    def create(self, name: str, data: Buffers) -> bool:
        """Create ``name`` with ``data`` unless it exists, durably; whether this call did."""
        ...

    def put(self, name: str, data: Buffers, *, durable: bool = True) -> None:
        """Create or replace ``name`` with ``data``, durably.

        ``durable=False``: readers still see the old or the new object whole,
        but a crash may lose it (a directory skips its ``fsync``-s; an object
        store's put is durable anyway).
        """
        ...

    def get(self, name: str) -> bytes | None:
        """The bytes of ``name``, or None if it does not exist."""
        ...

    def get_many(self, names: Sequence[str]) -> list[bytes | None]:
        """:meth:`get` of each of ``names``, in order (concurrently where that is faster)."""
        ...

    def list(self, prefix: str, after: str = "", limit: int | None = None) -> list[Listed]:
        """Objects whose name starts with ``prefix`` and sorts after ``after``, sorted.

        ``limit``: at most the first so many (the rest is not fetched). The
        store lists folders that hold objects only (``"log/"``,
        ``"segments/"``), never nested ones: a directory lists one level.
        """
        ...

    def list_soon(self, prefix: str) -> Future[Listing]:
        """:meth:`list` of ``prefix``, sent now and read later: in object storage on a
        thread, so that the caller's next request goes out beside it (one round trip
        for both); in a directory at once."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name`` (no error if it is gone)."""
        ...

    def delete_many(self, names: Sequence[str]) -> None:
        """Remove each of ``names`` (no error for one gone; in bulk requests where the
        storage has them)."""
        ...

    def modified(self, name: str) -> float | None:
        """When the storage last wrote ``name`` (its clock), or None if it does not exist."""
        ...

    def close(self) -> None:
        """Release threads held for :meth:`get_many` (the objects stay usable)."""
        ...


class DirObjects:
    """Objects as files under a directory: ``create`` is temp file, ``fsync``, ``link``
    (:func:`~alma_store._fs.atomic_write` with ``exclusive=True``)."""

    cheap_requests = True
    name_room = 0
    """A file's name holds 255 bytes: too few to carry data (and reads are cheap here)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def _path(self, name: str) -> str:
        return os.path.join(self.location, name)  # a str: the hot paths skip pathlib

    def create(self, name: str, data: Buffers) -> bool:
        path = self._path(name)
        if os.path.exists(path):  # taken: spare the temp file's fsync (``link`` decides races)
            return False
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return atomic_write(Path(path), data, exclusive=True)

    def put(self, name: str, data: Buffers, *, durable: bool = True) -> None:
        path = self._path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(Path(path), data, durable=durable)

    def get(self, name: str) -> bytes | None:
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def get_many(self, names: Sequence[str]) -> list[bytes | None]:
        return [self.get(name) for name in names]  # threads only slow local reads down

    def list(self, prefix: str, after: str = "", limit: int | None = None) -> list[Listed]:
        # A folder may hold every commit object of the last ``grace`` (hundreds of
        # thousands): its names are compared as they come from ``listdir``, and only
        # those returned are ``stat``-ed.
        folder, _, stem = prefix.rpartition("/")
        base = self._path(folder) if folder else self.location
        lead = f"{folder}/" if folder else ""
        try:
            names = os.listdir(base)
        except FileNotFoundError:
            return []
        # Every name listed starts with ``lead``: one after ``after`` is one whose rest is
        # after ``after``'s rest, or any, or none, where ``after`` is not within ``lead``.
        if after.startswith(lead):
            rest = after[len(lead) :]
        elif after < lead:
            rest = ""
        else:
            return []
        chosen = sorted(n for n in names if n > rest and n.startswith(stem) and n[:1] != ".")
        out: list[Listed] = []
        for name in chosen:
            if limit is not None and len(out) >= limit:
                break
            with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                out.append(Listed(lead + name, os.stat(os.path.join(base, name)).st_mtime))
        return out

    def list_soon(self, prefix: str) -> Future[Listing]:
        done: Future[Listing] = Future()
        try:
            done.set_result(self.list(prefix))
        except (AlmaError, OSError) as exc:  # raised where it is read, as from a thread
            done.set_exception(exc)
        return done

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(name))

    def delete_many(self, names: Sequence[str]) -> None:
        for name in names:
            self.delete(name)

    def modified(self, name: str) -> float | None:
        try:
            return os.stat(self._path(name)).st_mtime
        except FileNotFoundError:
            return None

    def close(self) -> None:
        pass


# -- object storage (obstore) -------------------------------------------------


_requests_from: int | None = None
"""The process that sent this interpreter's first object-storage request (obstore's
runtime runs threads from then on)."""


def _check_not_forked(location: str) -> None:
    """Refuse a request from a process forked after its parent's first one.

    obstore's runtime is threads started with the first request; a child made by
    ``fork`` has none of them, and every request it sends (through a new client too)
    waits forever.

    Raises
    ------
    UnsupportedStorageError
        In such a child: the message names the start methods that work.
    """
    global _requests_from
    if _requests_from is None:
        _requests_from = os.getpid()
    elif _requests_from != os.getpid():
        raise UnsupportedStorageError(
            f"{location}: object storage cannot be reached from a process forked from one "
            "that reached it already (the client's threads are not in the child, and its "
            "requests would wait forever); start worker processes with 'forkserver' or "
            "'spawn' instead: multiprocessing.get_context('forkserver'), or "
            "DataLoader(..., multiprocessing_context='forkserver') for torch"
        )


def _is_denied(exc: BaseException) -> bool:
    from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

    return isinstance(exc, PermissionDeniedError | UnauthenticatedError)


class RemoteObjects:
    """Objects in object storage through obstore; ``create`` is a conditional put."""

    cheap_requests = False

    def __init__(self, url: str, options: dict[str, Any] | None) -> None:
        from obstore.exceptions import UnknownConfigurationKeyError
        from obstore.store import from_url

        self.location = url.rstrip("/")
        kwargs = obstore_config(url, options)
        try:
            self.store = from_url(
                self.location,
                **kwargs,
                retry_config={
                    "max_retries": 3,
                    "retry_timeout": timedelta(seconds=20),
                    "backoff": {
                        "init_backoff": timedelta(milliseconds=20),
                        "max_backoff": timedelta(seconds=2),
                        "base": 2,
                    },
                },
            )
        except UnknownConfigurationKeyError as exc:
            raise InvalidInputError(f"storage_options for {url}: {exc}") from None
        self._threads = Threads(GETS_IN_FLIGHT)
        prefix = urlsplit(self.location).path.strip("/")
        self.name_room = KEY_MAX - len(prefix.encode()) - 1
        """S3, GCS and Azure take keys of up to 1,024 bytes, the prefix and ``/`` included."""

    @contextlib.contextmanager
    def _errors(self, name: str, writing: bool) -> Iterator[None]:
        from obstore.exceptions import BaseError, NotSupportedError

        _check_not_forked(self.location)
        try:
            yield
        except NotSupportedError as exc:
            raise UnsupportedStorageError(
                f"{self.location} does not support what the store needs for {name}: {exc}"
            ) from None
        except Exception as exc:
            if _is_denied(exc):
                if writing:
                    raise ReadOnlyError(
                        f"the credentials given for {self.location} may not write {name} "
                        f"(the storage refused it: {type(exc).__name__}); open the store "
                        "with mode='r', or pass credentials that may write"
                    ) from None
                raise StoreNotFoundError(
                    f"the credentials given for {self.location} may not read {name}"
                ) from None
            if isinstance(exc, BaseError | OSError) and not isinstance(exc, FileNotFoundError):
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise StorageUnavailableError(
                    f"{self.location}: {'writing' if writing else 'reading'} {name} failed: {first}"
                ) from exc
            raise

    def create(self, name: str, data: Buffers) -> bool:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        with self._errors(name, writing=True):
            try:
                crash_point("commit-object")
                obstore.put(self.store, name, joined(data), mode="create")
            except (AlreadyExistsError, PreconditionError):
                return False
        return True

    def put(self, name: str, data: Buffers, *, durable: bool = True) -> None:
        import obstore

        with self._errors(name, writing=True):
            obstore.put(self.store, name, joined(data))

    def get(self, name: str) -> bytes | None:
        import obstore

        with self._errors(name, writing=False):
            try:
                return bytes(obstore.get(self.store, name).bytes())
            except FileNotFoundError:
                return None

    def get_many(self, names: Sequence[str]) -> list[bytes | None]:
        if len(names) <= 1:
            return [self.get(name) for name in names]
        return list(self._threads.pool().map(self.get, names))

    def list(self, prefix: str, after: str = "", limit: int | None = None) -> list[Listed]:
        import obstore

        out: list[Listed] = []
        with self._errors(prefix, writing=False):
            for batch in obstore.list(self.store, prefix, offset=after or None):
                out += [
                    Listed(m["path"], m["last_modified"].timestamp())
                    for m in batch
                    if m["path"] > after
                ]
                if limit is not None and len(out) >= limit:
                    break  # listings come in name order: the first ``limit`` are here
        return sorted(out, key=lambda item: item.name)[:limit]

    def list_soon(self, prefix: str) -> Future[Listing]:
        return self._threads.pool().submit(self.list, prefix)

    def delete(self, name: str) -> None:
        import obstore

        with self._errors(name, writing=True), contextlib.suppress(FileNotFoundError):
            obstore.delete(self.store, name)

    def delete_many(self, names: Sequence[str]) -> None:
        import obstore

        if len(names) <= 1:
            for name in names:
                self.delete(name)
            return
        try:
            with self._errors(names[0], writing=True):
                obstore.delete(self.store, list(names))  # S3 DeleteObjects, Azure Blob Batch
        except (FileNotFoundError, StorageUnavailableError):  # one was gone, or no bulk here
            for name in names:
                self.delete(name)

    def modified(self, name: str) -> float | None:
        import obstore

        with self._errors(name, writing=False):
            try:
                return float(obstore.head(self.store, name)["last_modified"].timestamp())
            except FileNotFoundError:
                return None

    def close(self) -> None:
        self._threads.shutdown(wait=False)


def open_objects(location: Location) -> Objects:
    """The objects at ``location``: in object storage (a URL) or in a directory."""
    if location.url is not None:
        try:
            return RemoteObjects(location.url, location.storage_options)
        except ImportError:
            extra = {"gs": "gcs", "az": "azure", "abfs": "azure"}.get(
                location.url.split("://", 1)[0], "s3"
            )
            raise MissingExtraError(extra, f"a store at {location.url} (obstore)") from None
    assert location.path is not None
    return DirObjects(location.path)
