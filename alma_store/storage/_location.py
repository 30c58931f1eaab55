"""Where a store is: a local directory, or a URL in object storage, with its options.

A location is parsed once, where the user hands it over (:func:`alma_store.open`,
:func:`alma_store.create`, :func:`alma_store.copy`, the ``alma`` command), into a
:class:`Location`, and every layer below is given that value: nothing below the
facade looks at a string to decide whether it names a URL. ``file://`` URLs name
local paths. Storage options (credentials, endpoints) travel with the location in
memory, to workers too, and are never written anywhere.

Examples
--------
>>> Location.parse("s3://bucket/pets/").url
's3://bucket/pets'
>>> Location.parse("file:///tmp/s").path
PosixPath('/tmp/s')
>>> str(Location.parse("campaign.alma"))
'campaign.alma'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError

__all__ = ["Location", "is_url", "local_path", "parse_storage_options"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL (``scheme://...``), not a file name."""
    return bool(_URL.match(text))


def local_path(path: object, what: str) -> Path:
    """``path`` as a local path; a URL (``s3://...``) is refused, never taken for a file name.

    ``file://`` URLs name local paths and are accepted.
    """
    text = os.fspath(path) if isinstance(path, str | os.PathLike) else None
    if not isinstance(text, str):
        raise InvalidInputError(f"{what} must be a path, got {type(path).__name__}")
    if is_url(text):
        if text.startswith("file://"):
            return Path(text[len("file://") :])
        raise InvalidInputError(
            f"{what} {text!r} is a URL: {what}s must be local paths (a local disk, or a "
            "network filesystem mounted as a directory); only stores themselves and Zarr "
            "features may live in object storage (s3://, gs://, az://)"
        )
    return Path(text)


def parse_storage_options(options: object) -> dict[str, Any] | None:
    """``options`` if they are storage options (a dict with str keys) or None."""
    if options is not None and (
        not isinstance(options, dict) or not all(isinstance(k, str) for k in options)
    ):
        raise InvalidInputError(
            f"storage_options must be a dict of fsspec options, got {type(options).__name__}"
        )
    return options


@dataclass(frozen=True, slots=True)
class Location:
    """A store's place: a local directory (``path``) or a URL (``url``), never both.

    Attributes
    ----------
    path
        The directory, as given (``file://`` URLs become paths); None for a URL.
    url
        The URL of a store in object storage, without a trailing slash; None
        for a directory.
    storage_options
        Options for object storage, in fsspec's form (``endpoint_url``, ``key``,
        ``secret``, ...), for the store itself or for its features. In memory
        only; they do not take part in comparisons.
    """

    path: Path | None
    url: str | None
    storage_options: dict[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, value: object, storage_options: object = None) -> Location:
        """The location a user names: a path, a ``file://`` URL or an object-storage URL.

        Raises
        ------
        InvalidInputError
            ``value`` is not a path or a string, or ``storage_options`` is not a
            dict with str keys.
        """
        options = parse_storage_options(storage_options)
        if isinstance(value, Location):
            return value if options is None else cls(value.path, value.url, options)
        if isinstance(value, str) and is_url(value) and not value.startswith("file://"):
            return cls(None, value.rstrip("/"), options)
        return cls(local_path(value, "store path"), None, options)

    @property
    def remote(self) -> bool:
        """Whether the store is in object storage (a URL)."""
        return self.url is not None

    def absolute(self) -> Location:
        """The same location with a directory made absolute (for processes elsewhere)."""
        if self.path is None:
            return self
        return Location(self.path.resolve(), None, self.storage_options)

    def with_options(self, storage_options: dict[str, Any] | None) -> Location:
        """The same place with other storage options."""
        return Location(self.path, self.url, storage_options)

    def __str__(self) -> str:
        return self.url if self.url is not None else str(self.path)
