"""Durable file operations, the one place that fsyncs, and crash points for tests.

Every file alma_store replaces goes through :func:`atomic_write` (temp file in
the same directory, ``fsync``, ``rename``, ``fsync`` of the directory), so a
reader or a crash sees the old file or the new one, never a mix. A full disk
(``ENOSPC``, ``EDQUOT``) raises :class:`~alma_store.errors.StorageFullError`,
after the temp file was removed: nothing is half-written.

Crash points
------------
Crash tests kill a process at a deterministic instant, never after a sleep.
Set ``ALMA_STORE_CRASH="name:n[,name:n...]"`` in a child's environment and the
``n``-th time it reaches the point ``name`` it kills itself with ``SIGKILL``.
Points: ``fsync`` (every fsync, data or directory), ``append-torn`` (half a
journal record written), ``append-done`` (a record durable, not yet
acknowledged), ``checkpoint-chunks`` (half of a checkpoint's chunk files
written), ``checkpoint-file`` (chunks and marks written, checkpoint file not),
``commit-unsynced`` (a commit appended, the writer lock released, not yet
synced or acknowledged), ``score-step`` (a step of scores durable),
``campaign-torn`` (half a campaign-log record written), ``commit-object`` (an
exclusive create, e.g. a shared store's commit object, written and synced but
not yet in place), ``compact-segment`` (a
shared store's segment written, no commit object deleted yet). Without the
variable a point costs one dictionary lookup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..errors import AlmaError, ReadOnlyError, StorageFullError
from ._platform import advise_will_need, sync_dir, sync_file

__all__ = [
    "atomic_write",
    "crash_point",
    "durable",
    "forget_volatile",
    "fsync_fd",
    "fsync_path",
    "storage_errors",
    "volatile",
    "will_need",
    "write_fd",
]

_FULL = {errno.ENOSPC, errno.EDQUOT}


def _parse_crash_spec(text: str) -> dict[str, int]:
    spec: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, count = part.partition(":")
        spec[name] = int(count or 1)
    return spec


_CRASH_AT = _parse_crash_spec(os.environ.get("ALMA_STORE_CRASH", ""))
_HITS: dict[str, int] = {}


def crash_point(name: str, before: Callable[[], object] | None = None) -> None:
    """Kill this process with SIGKILL if ``ALMA_STORE_CRASH`` says so (tests only)."""
    if name not in _CRASH_AT:
        return
    _HITS[name] = _HITS.get(name, 0) + 1
    if _HITS[name] == _CRASH_AT[name]:
        if before is not None:
            before()
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def storage_errors(what: object) -> Iterator[None]:
    """Turn a full disk into :class:`StorageFullError` naming ``what``."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _FULL and not isinstance(exc, StorageFullError):
            raise StorageFullError(
                exc.errno, f"no space left to write {what}: {exc.strerror}"
            ) from exc
        raise


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the system says it
    (``/proc/self/status``), else set and restored at once under a lock."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def shared_mode(*, directory: bool) -> int:
    """The mode a new file (``0o666``) or directory (``0o777``) gets under the umask, as
    ``open`` and ``mkdir`` give it: what the temp-file and temp-directory helpers (always
    ``0o600`` and ``0o700``) must be set to before they are renamed into a store."""
    return (0o777 if directory else 0o666) & ~current_umask()


_REFUSED = {errno.EROFS, errno.EACCES, errno.EPERM}


@contextlib.contextmanager
def writes_refused(where: object) -> Iterator[None]:
    """Turn a filesystem that refuses writes (read-only, or not ours) into :class:`ReadOnlyError`.

    What a writer meets on a read-only mount, or on a store another Unix user
    owns: the message names the file and says how to read the store instead.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno in _REFUSED and not isinstance(exc, AlmaError):
            raise ReadOnlyError(
                f"{where}: the filesystem refuses writes ({exc.strerror}: {exc.filename}); "
                "open the store with mode='r' to read it, or write where you may"
            ) from exc
        raise


_VOLATILE: tuple[str, ...] = ()


def volatile(root: Path) -> None:
    """Never sync files under ``root`` (a shared store's private mirror: the log is the truth)."""
    global _VOLATILE
    _VOLATILE = (*_VOLATILE, f"{root}{os.sep}")


def forget_volatile(root: Path) -> None:
    """``root`` is gone: stop treating paths under it as volatile."""
    global _VOLATILE
    _VOLATILE = tuple(v for v in _VOLATILE if v != f"{root}{os.sep}")


def durable(path: Path) -> bool:
    """Whether writes to ``path`` must be synced (all but those under a :func:`volatile` root)."""
    return not _VOLATILE or not f"{path}".startswith(_VOLATILE)


def fsync_fd(fd: int, path: Path) -> None:
    """``fsync`` the open file ``fd`` of ``path``, unless it is volatile."""
    if durable(path):
        crash_point("fsync")
        sync_file(fd)


def fsync_path(path: Path) -> None:
    """Make a directory's entries (creates, renames, unlinks) durable."""
    if not durable(path / "x"):  # a volatile directory, or a file in one
        return
    crash_point("fsync")
    sync_dir(path)


def will_need(path: Path, length: int = 0) -> None:
    """Start reading the first ``length`` bytes of ``path`` (0: all of it) into the page cache.

    Asynchronous: files about to be read one after the other are fetched at once.
    A missing file is ignored (the read that follows reports it).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        advise_will_need(fd, length)
    finally:
        os.close(fd)


def write_fd(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _temp_file(path: Path) -> tuple[int, str]:
    """A new hidden file beside ``path``, open for writing, with the mode ``open`` gives
    (``0o666`` under the umask, applied by the kernel: the store's other users can read it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # a name drawn twice: draw again
            continue


def atomic_write(
    path: Path,
    data: bytes | memoryview | Sequence[bytes | memoryview],
    *,
    sync_dir: bool = True,
    exclusive: bool = False,
    durable: bool = True,
) -> bool:
    """Replace ``path`` with ``data`` durably: temp file, fsync, rename, fsync of the dir.

    ``data`` may be a sequence of buffers, written one after the other (no
    joined copy). ``sync_dir=False`` leaves the directory fsync to the caller,
    who batches it over many files of one directory. ``exclusive=True``
    creates ``path`` only if no file has its name: the temp file is
    ``link``-ed instead of renamed (``link`` fails if the name exists,
    atomically, also over NFS). Returns whether ``path`` now holds ``data``
    (False only when ``exclusive`` found the name taken). ``durable=False``
    makes no ``fsync`` at all: the replace is atomic for readers, but a crash of
    the host may leave the name empty or gone (what nothing depends on).
    """
    parts = [data] if isinstance(data, bytes | memoryview) else data
    with storage_errors(path):
        fd, tmp = _temp_file(path)
        try:
            try:
                for part in parts:
                    write_fd(fd, part)
                if durable:
                    fsync_fd(fd, path)
            finally:
                os.close(fd)
            if exclusive:
                crash_point("commit-object")  # written and synced, not linked: never visible
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return False
                finally:
                    Path(tmp).unlink(missing_ok=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if sync_dir and durable:
            fsync_path(path.parent)
    return True
