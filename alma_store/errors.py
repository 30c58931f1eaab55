"""The alma_store exception tree.

Every error the library raises on purpose derives from :class:`AlmaError`. Where a
builtin exception describes the same situation it is a second parent, so
``except IndexError`` or ``except FileNotFoundError`` keeps working::

    AlmaError
    ├── StoreNotFoundError        (FileNotFoundError)  no store at the path
    ├── StoreExistsError          (FileExistsError)    create() over an existing store
    ├── ReadOnlyError                                  writing through mode="r"
    ├── StoreClosedError                               using a store after close()
    ├── InvalidInputError         (ValueError)         bad shape, dtype, length, value
    │   └── SourceChangedError                         feature source differs from the record
    ├── SourceMissingError        (FileNotFoundError)  feature source is gone
    ├── InvalidIndexError         (IndexError)         negative, out of range, duplicate
    │   ├── AlreadyLabeledError                        dataset index labeled already
    │   ├── NotLabeledError                            correcting an unlabeled item
    │   └── ClaimedError                               items under another live claim
    ├── StaleIndexError                                the store moved past expected_version
    ├── LockTimeoutError          (TimeoutError)       the writer lock was not obtained
    ├── StorageFullError          (OSError)            the disk is full; nothing half-written
    ├── LocalCopyError            (OSError)            a shared store's commit is in, this
    │                                                  process's copy of the log failed
    ├── UnsupportedStorageError                        storage lacks what a shared store needs,
    │                                                  or a forked process cannot reach it
    ├── UnsupportedPlatformError                       the system lacks what a local store needs
    ├── MissingExtraError         (ImportError)        an optional dependency is not installed
    ├── StorageUnavailableError   (ConnectionError)    object storage unreachable or failing
    ├── ToolServerError           (ConnectionError)    an annotation tool's server refused a
    │                                                  request or could not be reached
    └── CorruptStoreError                              a damaged, truncated, missing or
                                                       swapped file (named in the message)

Errors carry the offending values as attributes and pickle, so they cross
process boundaries (multiprocessing, Dask) intact.

Examples
--------
>>> err = InvalidIndexError("positions", [7], upper=5)
>>> isinstance(err, IndexError), err.positions
(True, [7])
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlmaError",
    "AlreadyLabeledError",
    "ClaimedError",
    "CorruptStoreError",
    "InvalidIndexError",
    "InvalidInputError",
    "LocalCopyError",
    "LockTimeoutError",
    "MissingExtraError",
    "NotLabeledError",
    "ReadOnlyError",
    "SourceChangedError",
    "SourceMissingError",
    "StaleIndexError",
    "StorageFullError",
    "StorageUnavailableError",
    "StoreClosedError",
    "StoreExistsError",
    "StoreNotFoundError",
    "ToolServerError",
    "UnsupportedPlatformError",
    "UnsupportedStorageError",
]


class AlmaError(Exception):
    """Base class of every error raised by alma_store."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[AlmaError], args: tuple[Any, ...], state: dict[str, Any]) -> AlmaError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class StoreNotFoundError(AlmaError, FileNotFoundError):
    """No alma_store exists at the given path."""


class StoreExistsError(AlmaError, FileExistsError):
    """A store already exists where ``create`` was asked to make one."""


class ReadOnlyError(AlmaError):
    """A write was attempted through a store opened with ``mode="r"``."""


class StoreClosedError(AlmaError):
    """The store (or a view of it) was used after :meth:`Store.close`; reopen it."""


class StorageFullError(AlmaError, OSError):
    """The disk ran out of space. Nothing was half-written; free space and retry."""


class LocalCopyError(AlmaError, OSError):
    """A shared store's commit is durable in the shared storage, but this process's private
    copy of the log (its mirror, in the temp directory) could not take it or a later one
    (a full or failing local disk).

    ``version`` is the version this handle committed, or None when it failed
    taking in other writers' commits. The store itself is whole: every reader
    sees the commit. This handle is closed; reopen the store (its copy is
    rebuilt from the storage) once the local disk has room.
    """

    def __init__(self, version: int | None, where: str, reason: str) -> None:
        done = f"version {version} was committed to the shared store, but " if version else ""
        super().__init__(
            f"{done}this process's copy of the log in {where} could not take it ({reason}); "
            "this handle is closed: reopen the store once the local disk has room"
        )
        self.version = version
        self.where = where
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.version, self.where, self.reason))


class InvalidInputError(AlmaError, ValueError):
    """An argument has the wrong type, shape, dtype, length or value."""


class SourceChangedError(InvalidInputError):
    """The feature source no longer matches the fingerprint recorded at create."""


class SourceMissingError(AlmaError, FileNotFoundError):
    """The feature source recorded at create cannot be found."""


class InvalidIndexError(AlmaError, IndexError):
    """Indices are negative, out of range, not integers, or repeated in one batch.

    Parameters
    ----------
    name
        The argument the indices came from (``"positions"``, ``"dataset_indices"``).
    positions
        The offending values.
    upper
        The exclusive upper bound that applied, when one did.
    reason
        What is wrong with them; a default message is built from the other fields.
    """

    def __init__(
        self,
        name: str,
        positions: list[Any],
        *,
        upper: int | None = None,
        reason: str | None = None,
    ) -> None:
        self.name = name
        self.positions = list(positions)
        self.upper = upper
        if reason is None:
            shown = _show(self.positions)
            bound = f"[0, {upper})" if upper is not None else "[0, 2**63) (int64 indices)"
            reason = f"{name} must lie in {bound}, got {shown}"
        super().__init__(reason)


class AlreadyLabeledError(InvalidIndexError):
    """A dataset index in the batch is labeled already (corrections are explicit)."""

    def __init__(self, dataset_indices: list[int], *, reason: str | None = None) -> None:
        shown = _show(dataset_indices)
        super().__init__(
            "dataset_indices",
            dataset_indices,
            reason=reason or f"dataset indices {shown} are labeled already; nothing was written",
        )


class NotLabeledError(InvalidIndexError):
    """A dataset index to relabel or unlabel is not labeled."""

    def __init__(self, dataset_indices: list[int]) -> None:
        shown = _show(dataset_indices)
        super().__init__(
            "dataset_indices",
            dataset_indices,
            reason=f"dataset indices {shown} are not labeled; nothing was written",
        )


class ClaimedError(InvalidIndexError):
    """Items asked for in a claim are held by another annotator's live claim.

    ``holders`` maps each such dataset index to the annotator holding it.
    """

    def __init__(self, holders: dict[int, str]) -> None:
        self.holders = holders
        shown = _show([f"{i} ({who})" for i, who in holders.items()])
        super().__init__(
            "dataset_indices",
            list(holders),
            reason=f"dataset indices {shown} are claimed by another annotator; nothing was written",
        )


class StaleIndexError(AlmaError):
    """The store's version moved past the ``expected_version`` a caller's indices refer to."""

    def __init__(
        self, expected_version: int, actual_version: int, *, by_position: bool = True
    ) -> None:
        self.expected_version = expected_version
        self.actual_version = actual_version
        self.by_position = by_position
        advice = (
            "positions taken from an older view are stale, take a new view"
            if by_position
            else "other commits landed since; check the items are still wanted and retry "
            "with the new version"
        )
        super().__init__(
            f"expected_version is {expected_version} but the store is at version "
            f"{actual_version}; nothing was written: {advice}"
        )


class LockTimeoutError(AlmaError, TimeoutError):
    """The store's writer lock could not be obtained in time."""


class UnsupportedStorageError(AlmaError):
    """The storage lacks what a shared store needs (exclusive creates), the store lacks a
    feature on shared storage, or this process cannot reach object storage (it was forked
    from one that had: start it with ``forkserver`` or ``spawn``). Nothing was written; the
    message says what is missing."""


class MissingExtraError(AlmaError, ImportError):
    """An optional dependency the call needs is not installed: the message names the extra
    of alma_store that brings it (``extra`` attribute)."""

    def __init__(self, extra: str, what: str) -> None:
        super().__init__(
            f"{what} needs the '{extra}' extra of alma_store: pip install -e '.[{extra}]' in a "
            f"checkout of alma_store (or add {extra!r} to the extras you install it with)"
        )
        self.extra = extra
        self.what = what

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.extra, self.what))


class UnsupportedPlatformError(AlmaError):
    """The operating system lacks what a store in a directory of its own needs (a file
    lock). Nothing was written; a shared store (``shared=True``) needs no lock."""


class StorageUnavailableError(AlmaError, ConnectionError):
    """Object storage could not be reached, or failed a request after its retries.

    A commit that raised this was not acknowledged, but may have been applied
    (the reply was lost): look at ``store.version`` and the history before
    committing it again.
    """


class ToolServerError(AlmaError, ConnectionError):
    """An annotation tool's server (Label Studio) refused a request or could not be
    reached after its retries. ``status`` is the HTTP status (``None``: no reply).

    A sync keeps its progress in the store and its state: run it again once the
    server answers (a 401 or 403 wants another token, a 404 another project).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.status))


class CorruptStoreError(AlmaError):
    """A store file is damaged, truncated, missing, swapped, or belongs to another store.

    The message names the file. Nothing read from a damaged file is ever returned.
    """


def _show(values: list[Any], limit: int = 8) -> str:
    head = ", ".join(repr(v) for v in values[:limit])
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return f"[{head}{more}]"
