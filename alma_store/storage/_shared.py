"""The commit protocol of a shared store: one create-if-absent object per version.

A *shared* store (format version 5) lives in a directory on any filesystem
(a local disk, NFS, Lustre, GPFS) or under a prefix in object storage (S3,
GCS, Azure). Its writers share no kernel, no lock and no append: only the
five operations of :class:`~alma_store._objects.Objects`. Layout::

    meta.json                       the store's metadata, created once (create-if-absent)
    log/<version>                   one commit: one journal record, created if absent
    segments/<last>-<first>         records first..last back to back (compaction)
    lease/compact                   who compacts now (fairness only, never correctness)

Versions are written with 20 digits, so names sort as numbers.

Commit
------
A writer knows the newest version ``v`` (it read ``log/v`` or a segment
ending at ``v``, and ``log/v+1`` was missing with no segment covering it).
It builds its record for ``v + 1`` and *creates* ``log/<v+1>``. Exactly one
writer creates a name; a loser reads the records it lost to, checks its batch
against them and tries the next version. Versions are gapless because nobody
tries ``v + 2`` before it read ``v + 1``. The record is durable once the
create returns (the put returned, or the ``link`` and the directory's
``fsync`` did), and it is all or nothing (an object appears whole or not at all).

Compaction
----------
A compactor folds the log objects after the newest segment into one new
segment, created if absent, and later deletes log objects that a segment has
covered for longer than ``grace`` seconds, both times read from the storage's
own clock (the ``modified`` time of the lease it just wrote and of the
segment). Readers take each version once, from wherever they find it first,
so a segment that overlaps another (two compactors at once) or a compactor
killed between its segment and its deletes leaves nothing lost or doubled.
A deleted name could be created again by a writer that saw it free before
the segment existed; writers therefore give up an attempt that took longer
than ``grace / 2`` (their own monotonic clock) and look again. The lease only
keeps compactors from doing the same work twice.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..core import split_records
from ..errors import (
    CorruptStoreError,
    StoreExistsError,
    StoreNotFoundError,
    UnsupportedStorageError,
)
from ._fs import crash_point
from ._meta import StoreMeta, meta_bytes, parse_meta
from ._objects import Listed, Objects

__all__ = [
    "DEFAULT_GRACE",
    "LostRace",
    "SharedLog",
    "check_conditional_create",
    "create_shared",
    "is_shared",
    "log_name",
    "occupied",
    "read_shared_meta",
    "segment_name",
]

WIDTH = 20
META = "meta.json"
LEASE = "lease/compact"
FETCH_AHEAD = 32
"""Log objects a reader fetches at once (concurrent GETs) while catching up."""
DEFAULT_GRACE = 600.0
"""Seconds a log object stays after a segment covers it (and a writer's attempt's limit x 2)."""
LEASE_SECONDS = 120.0


class LostRace(Exception):
    """Another writer created the object of this version first (internal)."""


def log_name(version: int) -> str:
    """The object of commit ``version``."""
    return f"log/{version:0{WIDTH}d}"


def segment_name(first: int, last: int) -> str:
    """The object of the segment holding versions ``first .. last``."""
    return f"segments/{last:0{WIDTH}d}-{first:0{WIDTH}d}"


@dataclass(frozen=True, slots=True)
class Segment:
    """A listed segment: versions ``first .. last``, written at ``modified`` (storage clock)."""

    first: int
    last: int
    name: str
    modified: float

    @classmethod
    def parse(cls, item: Listed, where: str) -> Segment:
        """The segment a listing names; a malformed name is damage."""
        try:
            last, first = (int(x) for x in item.name.rsplit("/", 1)[1].split("-"))
        except ValueError:
            raise CorruptStoreError(f"{where}/{item.name} is not a segment name") from None
        return cls(first, last, item.name, item.modified)


def is_shared(objects: Objects) -> bool:
    """Whether a shared store's ``meta.json`` is there (cheap: one request)."""
    return objects.get(META) is not None


def read_shared_meta(objects: Objects) -> StoreMeta:
    """The checked metadata of the shared store at ``objects``."""
    raw = objects.get(META)
    if raw is None:
        raise StoreNotFoundError(f"no alma_store at {objects.location}: meta.json is missing")
    return parse_meta(raw, f"{objects.location}/{META}")


def occupied(objects: Objects) -> bool:
    """Whether anything of a store is at ``objects``: its ``meta.json``, commits or segments."""
    return is_shared(objects) or bool(objects.list("log/")) or bool(objects.list("segments/"))


def check_conditional_create(objects: Objects) -> None:
    """Refuse storage whose creates are not exclusive, before anything of the store is written.

    Creates one probe object twice: the second create must be refused. A
    bucket without conditional writes accepts it (and the probe is removed);
    credentials that may not write fail on the first create with
    :class:`~alma_store.errors.ReadOnlyError`, having written nothing.
    """
    probe = f"probe-{uuid.uuid4().hex}"
    if not objects.create(probe, b"probe"):
        raise UnsupportedStorageError(f"{objects.location}: a fresh probe object already existed")
    try:
        if objects.create(probe, b"probe again"):
            raise UnsupportedStorageError(
                f"{objects.location} does not support conditional writes (a create-if-absent "
                "put replaced an existing object), so concurrent commits could overwrite one "
                "another; use a bucket or server with conditional writes (If-None-Match)"
            )
    finally:
        objects.delete(probe)


def create_shared(objects: Objects, meta: StoreMeta, *, history: bool = False) -> None:
    """Create the shared store ``meta`` at ``objects``: probe, then ``meta.json``.

    ``history=True``: its history (segments) is in place already, and the
    storage was probed before it was written (a copy, :mod:`alma_store._migrate`).
    """
    if not history:
        if occupied(objects):
            raise StoreExistsError(f"cannot create a store at {objects.location}: a store is there")
        check_conditional_create(objects)
    if not objects.create(META, meta_bytes(meta)):
        raise StoreExistsError(f"cannot create a store at {objects.location}: a store is there")


class SharedLog:
    """The commit log of one shared store: read, publish, compact.

    Parameters
    ----------
    objects
        Where the store lives.
    grace
        Seconds a log object stays after a segment covers it; a commit attempt
        that takes longer than half of it is retried.
    clock
        Monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        objects: Objects,
        *,
        grace: float = DEFAULT_GRACE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.objects = objects
        self.grace = grace
        self.clock = clock
        self.seen_at = -float("inf")
        """When :meth:`read_after` last listed the segments and found the end of the log."""

    @property
    def location(self) -> str:
        """The store's directory or URL."""
        return self.objects.location

    def _fetch(self, versions: range) -> list[bytes | None]:
        return self.objects.get_many([log_name(v) for v in versions])

    def segments_after(self, version: int) -> list[Segment]:
        """Segments holding a version after ``version``, by their last version."""
        after = segment_name(10**WIDTH - 1, version)  # the greatest name whose last is version
        items = self.objects.list("segments/", after=after)
        return [Segment.parse(item, self.location) for item in items]

    def _segment_records(
        self, segments: list[Segment], version: int, *, gaps: bool
    ) -> Iterator[tuple[int, bytes]]:
        """The records after ``version`` that ``segments`` hold, contiguous from ``version + 1``.

        The segments are fetched up to ``FETCH_AHEAD`` at a time. A segment that
        starts after the next version needed is a hole when ``gaps`` is false
        (:class:`CorruptStoreError`); with ``gaps``, the records stop there
        (log objects may hold the versions before it).
        """
        wanted = [seg for seg in segments if seg.last > version]
        for seg, data in zip(
            wanted, self.objects.get_many([seg.name for seg in wanted]), strict=True
        ):
            if seg.last <= version:  # covered by an overlapping segment read before
                continue
            if seg.first > version + 1:
                if gaps:
                    return
                raise CorruptStoreError(
                    f"{self.location}: version {version + 1} is in no log object and no "
                    f"segment (the next segment, {seg.name}, starts at {seg.first})"
                )
            if data is None:
                raise CorruptStoreError(f"{self.location}/{seg.name} vanished while read")
            for v, record in split_records(data, seg.first, f"{self.location}/{seg.name}"):
                if v > version:
                    yield v, record
                    version = v

    def read_after(self, version: int) -> Iterator[tuple[int, bytes]]:
        """Every committed record after ``version``, oldest first, each checked.

        A process's first read (far behind, with no end of the log seen yet)
        lists the segments and reads them first (few, large objects, fetched
        at once), then the log objects after them. Log objects are fetched up
        to ``FETCH_AHEAD`` at a time. Where one is missing, it was either not
        created yet or folded into a segment and deleted: the segments after
        the version reached are listed, and read, and log objects after them
        fetched again. The listing is skipped within ``grace / 2`` of the last
        one that found the end of the log (at :attr:`seen_at`): every version
        after that end was created after it, so none of them can have been
        deleted yet.
        """
        far_behind = self.seen_at == -float("inf")
        if far_behind:  # catching up from far behind: segments first
            for v, record in self._segment_records(
                self.segments_after(version), version, gaps=True
            ):
                yield v, record
                version = v
        # After the segments, the few log objects writers have not folded yet: at once.
        ahead, got = (FETCH_AHEAD if far_behind else 1), 0
        while True:
            started = self.clock()
            wanted = range(version + 1, version + 1 + ahead)
            found = self._fetch(wanted)
            for v, data in zip(wanted, found, strict=True):
                if data is None:
                    break
                ((_, record),) = split_records(data, v, f"{self.location}/{log_name(v)}")
                yield v, record
                version, got = v, got + 1
            else:
                # Catching up (two or more new in a row): fetch more at once.
                ahead = min(ahead * 2, FETCH_AHEAD) if got >= 2 else 1
                continue
            if started - self.seen_at < self.grace / 2:
                return
            segments = self.segments_after(version)
            if not segments:
                self.seen_at = started  # the end, as of before the fetch that found it
                return
            for v, record in self._segment_records(segments, version, gaps=False):
                yield v, record
                version = v
            ahead = 1

    def records(self, first: int, last: int) -> Iterator[tuple[int, bytes]]:
        """The records of versions ``first .. last`` (committed), oldest first, each checked.

        What segments hold is read from them; the versions between segments
        from their log objects. A version in neither is a
        :class:`CorruptStoreError`.
        """
        version = first - 1
        segments = self.segments_after(version)
        while version < last:
            for v, record in self._segment_records(segments, version, gaps=True):
                if v > last:
                    return
                yield v, record
                version = v
            if version >= last:
                return
            nxt = next((seg.first for seg in segments if seg.first > version), last + 1)
            stop = min(nxt - 1, last)  # log objects up to the next segment
            for lo in range(version + 1, stop + 1, FETCH_AHEAD):
                span = range(lo, min(lo + FETCH_AHEAD, stop + 1))
                for v, data in zip(span, self._fetch(span), strict=True):
                    if data is None:
                        raise CorruptStoreError(
                            f"{self.location}: version {v} is in no log object and no segment"
                        )
                    ((_, record),) = split_records(data, v, f"{self.location}/{log_name(v)}")
                    yield v, record
                    version = v

    def publish(self, version: int, record: bytes) -> bytes | None:
        """Create commit ``version`` with ``record``; None if it is ours now, else the winner's.

        The caller must have read the log to ``version - 1`` (:meth:`read_after`).
        Returns the record another writer committed as ``version`` (checked),
        or ``b""`` when this attempt took longer than ``grace / 2`` (the name
        may have been freed by compaction since: read the log again).
        """
        if self.clock() - self.seen_at > self.grace / 2:
            return b""
        name = log_name(version)
        if self.objects.create(name, record):
            return None
        data = self.objects.get(name)
        if data == record:  # a retried create whose first try was applied, its reply lost
            return None
        if data is None:
            return b""  # folded and deleted meanwhile: read the log again
        ((_, theirs),) = split_records(data, version, f"{self.location}/{name}")
        return theirs

    # -- compaction ------------------------------------------------------------

    def _take_lease(self, now: float) -> bytes | None:
        """The lease's body if this process holds it now, else None."""
        body = json.dumps({"holder": uuid.uuid4().hex, "expires": now + LEASE_SECONDS}).encode()
        if self.objects.create(LEASE, body):
            return body
        raw = self.objects.get(LEASE)
        try:
            expires = float(json.loads(raw or b"{}")["expires"])
        except (ValueError, KeyError, TypeError):
            expires = 0.0  # damaged or vanished: take it over
        if expires > now:
            return None
        self.objects.delete(LEASE)
        return body if self.objects.create(LEASE, body) else None

    def compact(
        self,
        records: Callable[[int, int], list[bytes]],
        newest: int,
        *,
        now: float | None = None,
        min_records: int = 1,
    ) -> tuple[int, int]:
        """Fold log objects into a segment, then delete those covered for ``grace`` seconds.

        Parameters
        ----------
        records
            ``records(first, last)``: the record bytes of versions ``first .. last``
            (the caller's copy of the log, which it read and checked).
        newest
            The newest version the caller has read.
        now
            Wall-clock seconds for the lease's expiry (injected by tests).
        min_records
            Fold only if at least this many versions are not in a segment yet.

        Returns
        -------
        (folded, deleted)
            Versions put in a new segment, log objects deleted. ``(0, 0)``
            when another compactor holds the lease.
        """
        now = time.time() if now is None else now
        lease = self._take_lease(now)
        if lease is None:
            return 0, 0
        try:
            # Every version before the first log object left is in a segment (a log
            # object is deleted only once a segment covers it), so only segments
            # after it matter: the listing follows the log objects left, not history.
            logs = self.objects.list("log/")
            first = int(logs[0].name.rsplit("/", 1)[1]) if logs else newest + 1
            segments = self.segments_after(first - 1)
            done = max((s.last for s in segments), default=first - 1)
            folded = 0
            if newest - done >= min_records:
                data = b"".join(records(done + 1, newest))
                split_records(data, done + 1, "the segment being written")  # whole and in order
                self.objects.create(segment_name(done + 1, newest), data)
                crash_point("compact-segment")  # segment written, log objects all still there
                folded = newest - done
                segments = self.segments_after(first - 1)
            self.objects.put(LEASE, lease)  # the storage's "now": after every segment listed
            storage_now = self.objects.modified(LEASE)
            deleted = 0
            if storage_now is not None:
                ripe = max(
                    (s.last for s in segments if storage_now - s.modified >= self.grace), default=0
                )
                for item in logs:
                    if int(item.name.rsplit("/", 1)[1]) > ripe:
                        break
                    self.objects.delete(item.name)
                    deleted += 1
            return folded, deleted
        finally:
            self.objects.delete(LEASE)

    def close(self) -> None:
        """Release the storage's connections and threads."""
        self.objects.close()
