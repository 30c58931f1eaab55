"""The store's ``meta.json``: geometry, label dtype, feature source, with a checksum.

Format version 2 adds ``"checksum": "crc32:<8 hex digits>"``, the CRC-32 of
the canonical JSON (sorted keys, no spaces) of every other field, so a damaged
``meta.json`` (a flipped digit of ``n_items`` included) is refused at open.
Version 1 files have no checksum; they are read as they are and rewritten as
version 2 when the store is upgraded. Version 4 adds ``annotations_per_item``
(1 when absent). Version 6 (a local store) may keep tail files.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core import (
    LabelSchema,
    dtype_to_meta,
    parse_classes,
    parse_label_dtype,
    parse_label_shape,
)
from ..errors import CorruptStoreError, InvalidInputError, StoreNotFoundError
from ._fs import atomic_write

__all__ = [
    "ENVELOPES_FORMAT",
    "FORMAT_VERSION",
    "GROUPS_FORMAT",
    "READABLE_VERSIONS",
    "SHARED_CHECKPOINTS_FORMAT",
    "SHARED_FORMATS",
    "SHARED_FORMAT_VERSION",
    "TAIL_FILES_FORMAT",
    "StoreMeta",
    "meta_bytes",
    "parse_meta",
    "read_meta",
    "write_meta",
]

FORMAT_VERSION = 6
"""The format of a store in a directory of its own (journal, lock, chunk files)."""
TAIL_FILES_FORMAT = 6
"""The first format whose stores keep tail files (:mod:`alma_store.storage._tailfile`)."""
SHARED_FORMAT_VERSION = 9
"""The format of a shared store: commit objects, no lock (:mod:`alma_store.storage._shared`),
shared checkpoints (:mod:`alma_store.storage._sharedckpt`), objects in envelopes
(:mod:`alma_store.storage._envelope`), group commits."""
SHARED_CHECKPOINTS_FORMAT = 7
"""The first shared format with shared checkpoints."""
ENVELOPES_FORMAT = 8
"""The first shared format whose objects carry the store's id and their chain."""
GROUPS_FORMAT = 9
"""The first shared format whose commit objects may hold several writers' batches."""
SHARED_FORMATS = (5, 7, 8, 9)
"""The formats of shared stores (5: without shared checkpoints; 7: without envelopes;
8: without group commits)."""
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6, 7, 8, 9)


@dataclass(frozen=True, slots=True)
class StoreMeta:
    """What ``meta.json`` records; validated on construction."""

    format_version: int
    uuid: str
    n_items: int
    chunk_rows: int
    label_dtype: np.dtype[Any]
    label_shape: tuple[int, ...]
    classes: tuple[str, ...] | None
    features: dict[str, Any]
    created: float
    annotations_per_item: int = 1

    def __post_init__(self) -> None:
        if self.format_version not in READABLE_VERSIONS:
            raise InvalidInputError(
                f"format version {self.format_version} is not one this alma_store reads "
                f"({READABLE_VERSIONS}); upgrade alma_store"
            )
        if len(self.uuid) != 32 or any(c not in "0123456789abcdef" for c in self.uuid):
            raise InvalidInputError(f"uuid must be 32 lowercase hex digits, got {self.uuid!r}")
        for name in ("n_items", "chunk_rows"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (name != "n_items"):
                raise InvalidInputError(f"{name} must be a non-negative int, got {value!r}")
        k = self.annotations_per_item
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"annotations_per_item must be a positive int, got {k!r}")
        if not isinstance(self.features, dict) or "kind" not in self.features:
            raise InvalidInputError(f"features must be a source record, got {self.features!r}")

    @property
    def schema(self) -> LabelSchema:
        """The label dtype, shape and class names."""
        return LabelSchema(self.label_dtype, self.label_shape, self.classes)

    def to_json(self) -> dict[str, Any]:
        """The fields as written to ``meta.json`` (without the checksum)."""
        return {
            "format": "alma_store",
            "format_version": self.format_version,
            "uuid": self.uuid,
            "n_items": self.n_items,
            "chunk_rows": self.chunk_rows,
            "label_dtype": dtype_to_meta(self.label_dtype),
            "label_shape": list(self.label_shape),
            "classes": None if self.classes is None else list(self.classes),
            "features": self.features,
            "created": self.created,
            **(
                {"annotations_per_item": self.annotations_per_item}
                if self.format_version >= 4
                else {}
            ),
        }


def _checksum(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return f"crc32:{zlib.crc32(canonical):08x}"


def meta_bytes(meta: StoreMeta) -> bytes:
    """The content of ``meta.json`` for ``meta``, with its checksum."""
    fields = meta.to_json()
    fields["checksum"] = _checksum(fields)
    return json.dumps(fields, indent=1).encode()


def write_meta(root: Path, meta: StoreMeta) -> None:
    """Replace ``root/meta.json`` atomically, with its checksum."""
    atomic_write(root / "meta.json", meta_bytes(meta))


def read_meta(root: Path) -> StoreMeta:
    """Read and check ``root/meta.json``.

    Raises
    ------
    StoreNotFoundError
        ``root`` is not a directory or holds no ``meta.json``.
    CorruptStoreError
        The file is damaged: not JSON, a bad checksum, a missing or bad field.
    """
    path = root / "meta.json"
    if not root.is_dir():
        raise StoreNotFoundError(f"no alma_store at {root}: the directory does not exist")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if (root / "journal.bin").exists():  # the rest of a store is there: damage
            raise CorruptStoreError(f"{path} is missing") from None
        raise StoreNotFoundError(f"no alma_store at {root}: meta.json is missing") from None
    return parse_meta(raw, path)


def parse_meta(raw: bytes, path: object) -> StoreMeta:
    """Check and parse the bytes of a ``meta.json`` (``path`` names it in errors)."""
    try:
        fields = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        raise CorruptStoreError(f"{path} is damaged (not JSON): {exc}") from None
    if not isinstance(fields, dict) or fields.get("format") != "alma_store":
        raise CorruptStoreError(f"{path} does not describe an alma_store")
    version = fields.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CorruptStoreError(
            f"{path} has format version {version!r}; this alma_store reads versions "
            f"{READABLE_VERSIONS} (a newer alma_store wrote it, or the file is damaged)"
        )
    if version >= 2:
        stored = fields.pop("checksum", None)
        if stored != _checksum(fields):
            raise CorruptStoreError(f"{path} is damaged: its checksum does not match its content")
    try:
        return StoreMeta(
            format_version=version,
            uuid=fields["uuid"],
            n_items=fields["n_items"],
            chunk_rows=fields["chunk_rows"],
            label_dtype=parse_label_dtype(fields["label_dtype"]),
            label_shape=parse_label_shape(fields["label_shape"]),
            classes=parse_classes(fields.get("classes")),
            features=fields["features"],
            created=float(fields["created"]),
            annotations_per_item=fields.get("annotations_per_item", 1),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptStoreError(f"{path} is damaged: bad or missing field {exc}") from None
