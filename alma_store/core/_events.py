"""Journal records: what one commit is, and its bytes (pure, no I/O).

Every commit is one :class:`LabelEvent`, stored as one framed record: in a
local store's ``journal.bin`` (:mod:`alma_store.storage`), in a shared store's
commit object or segment. Records are framed::

    b"REC1" | payload_len u32 | crc32(payload) u32 | crc32(first 12 bytes) u32 | payload

All integers are little-endian. The payload is ``json_len u32 | json | indices
| values | previous``: the JSON object holds ``version``, ``kind``, ``n``,
``time`` (Unix seconds), ``annotator``, ``round`` and, for string labels, the
values themselves; ``indices`` are ``n`` int64 dataset indices; ``values`` (and
``previous`` for corrections) are the raw little-endian bytes of the label
dtype, shape ``(n, *label_shape)``.

Later formats add event kinds to :data:`KINDS`; a reader meeting a kind it does
not know refuses the record (:class:`UnknownKindError`) instead of guessing.
"""

from __future__ import annotations

import json
import math
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CorruptStoreError, InvalidInputError
from ._labels import Provenance
from ._types import IndexArray

__all__ = [
    "KINDS",
    "REC_HEADER",
    "REC_MAGIC",
    "AnnotationRows",
    "LabelEvent",
    "UnknownKindError",
    "record_version",
    "split_records",
]

REC_MAGIC = b"REC1"
REC_HEADER = struct.Struct("<4sIII")
KINDS: dict[str, tuple[bool, bool]] = {
    "add": (False, True),
    "relabel": (True, True),
    "remove": (True, False),
}
"""Event kinds, each with whether its items are labeled before and after it.

Later formats add kinds here; a reader meeting a kind it does not know refuses
the record with :class:`CorruptStoreError` (written by a newer alma_store)
instead of guessing what it meant.
"""


@dataclass(frozen=True, slots=True)
class AnnotationRows:
    """The annotations a commit to a store with several annotations per item records.

    Row ``r`` says annotator ``annotators[r]`` gave item ``dataset_indices[r]``
    the label ``values[r]`` at Unix time ``times[r]``.
    """

    dataset_indices: IndexArray
    values: np.ndarray
    annotators: tuple[str, ...]
    times: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        """The rows as the JSON object a journal record holds."""
        return {
            "indices": self.dataset_indices.tolist(),
            "values": self.values.tolist(),
            "annotators": list(self.annotators),
            "times": list(self.times),
        }

    @classmethod
    def from_json(
        cls, obj: dict[str, list[Any]], label_dtype: np.dtype, label_shape: tuple[int, ...]
    ) -> AnnotationRows:
        """Rows from the JSON object :meth:`to_json` wrote."""
        n = len(obj["indices"])
        return cls(
            np.asarray(obj["indices"], dtype=np.int64).reshape(n),
            np.array(obj["values"], dtype=label_dtype).reshape((n, *label_shape)),
            tuple(str(a) for a in obj["annotators"]),
            tuple(float(t) for t in obj["times"]),
        )


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """One commit: a journal record.

    Parameters
    ----------
    version
        The store version this commit created (1 for the first commit).
    kind
        ``"add"`` labels unlabeled items with ``values``; ``"relabel"`` changes
        the labels of labeled items from ``previous`` to ``values``;
        ``"remove"`` returns labeled items to the Unlabeled part, ``values``
        being the labels they had.
    dataset_indices
        The dataset indices the commit touched, int64, in the order given.
    values
        Labels, shape ``(n, *label_shape)`` (see ``kind``).
    previous
        For ``"relabel"``, the labels before the commit; ``None`` otherwise.
    time
        Unix time of the commit, in seconds.
    annotator, round
        Provenance given with the commit.
    row_annotators, row_times
        Per-item provenance (format 4), when the items came from an annotation
        tool's export: who labeled each item and when.
    annotations
        Format 4, stores with several annotations per item: every annotation
        the commit recorded. Its ``"add"`` items are those whose annotations
        reached a majority with it.
    resolved
        Format 4: the ``"add"`` is a reviewer's verdict on disputed items.
    batch
        Shared format 9: the id of a batch its writer also offered to the other
        writers as a pending batch (:mod:`alma_store.storage._shared`, "Group
        commit"), by which it finds its batch in a commit another writer made.
    """

    version: int
    kind: str
    dataset_indices: IndexArray
    values: np.ndarray
    time: float = field(default_factory=time.time)
    annotator: str | None = None
    round: int | None = None
    previous: np.ndarray | None = None
    row_annotators: tuple[str | None, ...] | None = None
    row_times: tuple[float, ...] | None = None
    annotations: AnnotationRows | None = None
    resolved: bool = False
    batch: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInputError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        if self.version < 1:
            raise InvalidInputError(f"version must be >= 1, got {self.version}")
        if len(self.values) != len(self.dataset_indices):
            raise InvalidInputError(
                f"values has length {len(self.values)} but dataset_indices has length "
                f"{len(self.dataset_indices)}"
            )
        if (self.kind == "relabel") != (self.previous is not None):
            raise InvalidInputError("previous is given for, and only for, a 'relabel' event")
        for name in ("row_annotators", "row_times"):
            rows = getattr(self, name)
            if rows is not None and len(rows) != len(self.dataset_indices):
                raise InvalidInputError(f"{name} must have one entry per item")
        if self.previous is not None and self.previous.shape != self.values.shape:
            raise InvalidInputError(
                f"previous has shape {self.previous.shape} but values has shape {self.values.shape}"
            )

    @classmethod
    def following(
        cls,
        version: int,
        kind: str,
        dataset_indices: IndexArray,
        values: np.ndarray,
        provenance: Provenance,
        **fields: Any,
    ) -> LabelEvent:
        """The event of the commit after ``version``, made with ``provenance``'s annotator
        and round (``fields``: the other fields, e.g. ``previous``)."""
        return cls(
            version + 1,
            kind,
            dataset_indices,
            values,
            annotator=provenance.annotator,
            round=provenance.round,
            **fields,
        )

    def renumbered(self, version: int, **fields: Any) -> LabelEvent:
        """The same event as the commit of ``version`` (its other writes landed first).

        ``fields``: fields set as well (``batch``).
        """
        event = object.__new__(LabelEvent)  # the fields are checked already: copied as they are
        for name in self.__slots__:
            object.__setattr__(event, name, getattr(self, name))
        object.__setattr__(event, "version", version)
        for name, value in fields.items():
            object.__setattr__(event, name, value)
        return event

    @property
    def labeled_after(self) -> bool:
        """Whether the touched items are labeled after this event."""
        return KINDS[self.kind][1]

    @property
    def labeled_before(self) -> bool:
        """Whether the touched items were labeled before this event."""
        return KINDS[self.kind][0]

    @property
    def values_before(self) -> np.ndarray:
        """The touched items' labels before this event (meaningless for ``"add"``)."""
        return self.previous if self.previous is not None else self.values

    def encode(self, label_dtype: np.dtype) -> bytes:
        """Serialise to one journal record, header included."""
        n = len(self.dataset_indices)
        head: dict[str, object] = {
            "version": self.version,
            "kind": self.kind,
            "n": n,
            "time": self.time,
            "annotator": self.annotator,
            "round": self.round,
        }
        if self.row_annotators is not None:
            head["row_annotators"] = list(self.row_annotators)
        if self.row_times is not None:
            head["row_times"] = list(self.row_times)
        if self.annotations is not None:
            head["annotations"] = self.annotations.to_json()
        if self.resolved:
            head["resolved"] = True
        if self.batch is not None:
            head["batch"] = self.batch
        parts = [np.ascontiguousarray(self.dataset_indices, dtype="<i8").tobytes()]
        arrays = {"values": self.values}
        if self.previous is not None:
            arrays["previous"] = self.previous
        for name, arr in arrays.items():
            if label_dtype.kind == "T":
                head[name] = [str(v) for v in arr.reshape(-1)]
            else:
                parts.append(
                    np.ascontiguousarray(arr, dtype=label_dtype.newbyteorder("<")).tobytes()
                )
        js = json.dumps(head, separators=(",", ":")).encode()
        payload = b"".join([struct.pack("<I", len(js)), js, *parts])
        first = struct.pack("<4sII", REC_MAGIC, len(payload), zlib.crc32(payload))
        return first + struct.pack("<I", zlib.crc32(first)) + payload

    @classmethod
    def from_record(
        cls, record: bytes, label_dtype: np.dtype, label_shape: tuple[int, ...], where: str
    ) -> LabelEvent:
        """The event of a whole record whose framing was checked (:func:`split_records`).

        Raises
        ------
        CorruptStoreError
            The payload does not decode, or its kind is unknown (``where`` names it).
        """
        try:
            return cls.decode(record[REC_HEADER.size :], label_dtype, label_shape)
        except UnknownKindError as exc:
            raise CorruptStoreError(
                f"{where}: event kind {str(exc)!r} is unknown to this alma_store (a newer one "
                "wrote it): upgrade alma_store to read this store"
            ) from None
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            raise CorruptStoreError(f"{where}: undecodable record: {exc}") from None

    @classmethod
    def decode(
        cls, payload: bytes, label_dtype: np.dtype, label_shape: tuple[int, ...]
    ) -> LabelEvent:
        """Parse a record payload (the bytes after the 16-byte record header)."""
        (jlen,) = struct.unpack_from("<I", payload, 0)
        head = json.loads(payload[4 : 4 + jlen])
        if head["kind"] not in KINDS:
            raise UnknownKindError(head["kind"])
        n = int(head["n"])
        pos = 4 + jlen
        idx = np.frombuffer(payload, dtype="<i8", count=n, offset=pos).astype(np.int64)
        pos += 8 * n
        count = n * math.prod(label_shape)
        arrays: dict[str, np.ndarray] = {}
        for name in ("values", "previous") if head["kind"] == "relabel" else ("values",):
            if label_dtype.kind == "T":
                arr = np.array(head[name], dtype=label_dtype)
            else:
                arr = np.frombuffer(
                    payload, dtype=label_dtype.newbyteorder("<"), count=count, offset=pos
                ).astype(label_dtype)
                pos += count * label_dtype.itemsize
            arrays[name] = arr.reshape((n, *label_shape))
        return cls(
            version=int(head["version"]),
            kind=head["kind"],
            dataset_indices=idx,
            values=arrays["values"],
            time=float(head["time"]),
            annotator=head["annotator"],
            round=head["round"],
            previous=arrays.get("previous"),
            row_annotators=_tuple_or_none(head.get("row_annotators")),
            row_times=_tuple_or_none(head.get("row_times")),
            annotations=None
            if "annotations" not in head
            else AnnotationRows.from_json(head["annotations"], label_dtype, label_shape),
            resolved=bool(head.get("resolved", False)),
            batch=head.get("batch"),
        )


def _tuple_or_none(values: list[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


def split_records(data: bytes, first_version: int, where: str) -> list[tuple[int, bytes]]:
    """Cut whole records out of ``data``: ``(version, record bytes)`` pairs, checked.

    ``data`` holds records back to back (a shared store's commit object or
    segment), the first of version ``first_version`` and the others
    consecutive. Each record's framing and CRC-32s are checked and its
    version read from its JSON head; the payload is not decoded further.

    Raises
    ------
    CorruptStoreError
        A bad magic or checksum, a short record, a version out of sequence
        (``where`` names the object).
    """
    out: list[tuple[int, bytes]] = []
    pos, expect = 0, first_version
    while pos < len(data):
        if len(data) - pos < REC_HEADER.size:
            raise CorruptStoreError(f"{where}: a short record at byte {pos}")
        magic, plen, pcrc, hcrc = REC_HEADER.unpack_from(data, pos)
        if magic != REC_MAGIC or zlib.crc32(data[pos : pos + 12]) != hcrc:
            raise CorruptStoreError(f"{where}: damaged record header at byte {pos}")
        end = pos + REC_HEADER.size + plen
        payload = data[pos + REC_HEADER.size : end]
        if len(payload) < plen or zlib.crc32(payload) != pcrc:
            raise CorruptStoreError(f"{where}: checksum mismatch in the record at byte {pos}")
        try:
            version = record_version(data[pos:end])
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            raise CorruptStoreError(f"{where}: undecodable record at byte {pos}: {exc}") from None
        if version != expect:
            raise CorruptStoreError(
                f"{where}: the record at byte {pos} has version {version}, expected {expect}"
            )
        out.append((version, data[pos:end]))
        pos, expect = end, expect + 1
    return out


class UnknownKindError(ValueError):
    """A record of a kind this version does not know (turned into CorruptStoreError)."""


def record_version(record: bytes) -> int:
    """The version an encoded record (header included) carries, read from its JSON head."""
    (jlen,) = struct.unpack_from("<I", record, REC_HEADER.size)
    start = REC_HEADER.size + 4
    return int(json.loads(record[start : start + jlen])["version"])
