"""The commit protocol of a shared store: one create-if-absent object per version.

A *shared* store (format version 5) lives in a directory on any filesystem
(a local disk, NFS, Lustre, GPFS) or under a prefix in object storage (S3,
GCS, Azure). Its writers share no kernel, no lock and no append: only the
five operations of :class:`~alma_store._objects.Objects`. Layout::

    meta.json                       the store's metadata, created once (create-if-absent)
    log/<version>                   one commit: its records from <version> on, created if absent
    segments/<last>-<first>         records first..last back to back (compaction)
    pending/<base>-<batch>          a batch offered to the other writers (format 9)
    pending/<base>-<batch>.<bytes>  ... in object storage, its bytes in its name (base64url)
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

Group commit (format 9)
-----------------------
A commit object may hold several consecutive records, one per batch: the
next object is named after its last record's version plus one (its
envelope counts them). A writer that meets others (it lost a version, or
another writer's batch waits) *offers* its batch, checked against version
``base``: it puts ``pending/<base>-<batch>``
(no ``fsync``: losing it only delays its owner, who commits it itself
otherwise). In object storage an offer whose key fits in 1,024 bytes carries
its bytes in its name, and its object is empty: the listing that finds it
reads it too (:attr:`Pending.sealed`). Whoever creates the next commit object
puts into it the pending batches it listed that may still land there:

* the version it lands at is at most ``base +`` :data:`GROUP_WINDOW`, and
* no record after ``base`` (committed, or before it in the same object)
  touches one of its items: then the checks its writer made at ``base``
  still hold, and a batch that landed once can never land again (its own
  record touches all its items).

Each batch keeps its writer's record, renumbered, with its ``batch`` id; its
writer finds the id in the log and is done (its batch is durable: the object
holding it was created). Whatever happens to its writer, a batch lands at
most once and by version ``base + GROUP_WINDOW`` or never. A pending object
is removed by the writer that carried it (in object storage in the
background), by its own writer once it cannot land any more, and by the
compactor once its window has passed. When a writer offers, and who carries,
is the writers' choice (:mod:`alma_store.engine._commit`); every reader reads
group commits.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ..core import split_records
from ..errors import (
    CorruptStoreError,
    StorageUnavailableError,
    StoreExistsError,
    StoreNotFoundError,
    UnsupportedStorageError,
)
from ._clock import boottime, storage_now
from ._envelope import chain_crc, open_envelope, seal
from ._fs import crash_point
from ._meta import ENVELOPES_FORMAT, GROUPS_FORMAT, StoreMeta, meta_bytes, parse_meta
from ._objects import Listed, Objects
from ._threads import Threads

__all__ = [
    "DEFAULT_GRACE",
    "GROUP_MAX",
    "GROUP_WINDOW",
    "LostRace",
    "Pending",
    "SharedLog",
    "check_conditional_create",
    "create_shared",
    "is_shared",
    "log_name",
    "occupied",
    "read_shared_meta",
    "segment_name",
    "shared_log",
]

WIDTH = 20
META = "meta.json"
LEASE = "lease/compact"
FETCH_AHEAD = 32
"""Log objects a reader fetches at once (concurrent GETs) while catching up."""
DEFAULT_GRACE = 600.0
"""Seconds a log object stays after a segment covers it (and a writer's attempt's limit x 2)."""
LEASE_SECONDS = 120.0
PENDING = "pending/"
GROUP_WINDOW = 64
"""A pending batch checked against version ``base`` lands by version ``base + GROUP_WINDOW``
or never."""
GROUP_MAX = 64
"""At most this many records in one commit object."""


class LostRace(Exception):
    """Another writer created the object of this version first (internal)."""


def log_name(version: int) -> str:
    """The object of commit ``version``."""
    return f"log/{version:0{WIDTH}d}"


def log_version(name: str) -> int:
    """The version a commit object's name (:func:`log_name`) gives; ValueError for
    another name."""
    return int(name.rsplit("/", 1)[1])


def segment_name(first: int, last: int) -> str:
    """The object of the segment holding versions ``first .. last``."""
    return f"segments/{last:0{WIDTH}d}-{first:0{WIDTH}d}"


@dataclass(frozen=True, slots=True)
class Pending:
    """A batch offered to the other writers: checked against ``base``, named ``batch``.

    In object storage a small batch travels in its name (``sealed``: its object's
    bytes, base64url after a ``.``): the listing that finds it reads it too.
    """

    name: str
    base: int
    batch: str
    sealed: bytes | None = None
    """The pending object's bytes as its name carries them (None: read the object;
    ``b""``: a name that does not decode, a batch that never lands)."""

    @classmethod
    def named(cls, base: int, batch: str, sealed: bytes | None = None) -> Pending:
        """The pending object of ``batch``, checked against version ``base`` (its
        bytes in the name if ``sealed``)."""
        name = f"{PENDING}{base:0{WIDTH}d}-{batch}"
        if sealed is not None:
            name += "." + base64.urlsafe_b64encode(sealed).decode("ascii")
        return cls(name, base, batch, sealed)

    @classmethod
    def parse(cls, name: str) -> Pending | None:
        """The pending batch a listed name names; None for a name that is not one."""
        stem = name[len(PENDING) :]
        base, _, rest = stem.partition("-")
        batch, dot, carried = rest.partition(".")
        if len(base) != WIDTH or not base.isdigit() or not batch:
            return None
        sealed = None
        if dot:
            try:
                sealed = base64.urlsafe_b64decode(carried.encode("ascii"))
            except (ValueError, UnicodeEncodeError):
                sealed = b""  # damaged: never lands
        return cls(name, int(base), batch, sealed)


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


def shared_log(objects: Objects, meta: StoreMeta, **options: Any) -> SharedLog:
    """The commit log of the shared store ``meta`` at ``objects`` (envelopes from format 8 on).

    ``options`` go to :class:`SharedLog` (``grace``, clocks: tests inject them).
    """
    uuid_ = bytes.fromhex(meta.uuid) if meta.format_version >= ENVELOPES_FORMAT else None
    return SharedLog(objects, uuid=uuid_, groups=meta.format_version >= GROUPS_FORMAT, **options)


@dataclass(frozen=True, slots=True)
class _Listing:
    """The log objects after the segments, listed by a first read in object storage.

    ``at`` is the storage clock read before the segments were listed; ``last`` the
    newest version listed (the version listed after, when none was); ``whole``
    says the listing was not cut at :data:`FETCH_AHEAD` names.
    """

    at: float
    last: int
    whole: bool

    @classmethod
    def of(cls, log: SharedLog, version: int, at: float) -> _Listing | None:
        """The listing after ``version``; ``None`` where a name listed is not a commit
        object's (the fetch then finds what is there)."""
        listed = log.objects.list("log/", after=log_name(version), limit=FETCH_AHEAD)
        try:
            last = log_version(listed[-1].name) if listed else version
        except ValueError:
            return None
        return cls(at, last, len(listed) < FETCH_AHEAD)

    def ahead(self, version: int) -> int:
        """How many names after ``version`` to fetch: up to the last listed, and one more."""
        return max(1, min(self.last - version + 1, 2 * FETCH_AHEAD))

    def ends_before(self, missing: int, now: float, grace: float) -> bool:
        """Whether a missing ``missing`` is the end of the log: it is after every name
        listed, the listing was whole, and the segments were listed less than
        ``grace / 2`` ago (see :meth:`SharedLog.read_after`)."""
        return self.whole and missing > self.last and now - self.at < grace / 2


class SharedLog:
    """The commit log of one shared store: read, publish, compact.

    Parameters
    ----------
    objects
        Where the store lives.
    uuid
        The store's id (format 8): objects are read and written in envelopes
        (:mod:`alma_store.storage._envelope`) that carry it. None for formats 5 and 7.
    groups
        Format 9: a commit object may hold several records (group commit); needs ``uuid``.
    grace
        Seconds a log object stays after a segment covers it; a commit attempt
        that takes longer than half of it is retried.
    clock
        Seconds of a clock that counts time suspended too (``CLOCK_BOOTTIME``;
        injected by tests): a host that slept must not believe its last look
        at the log is recent.
    storage_clock
        The storage's time now (default: :func:`~alma_store.storage._clock.storage_now`);
        leases lapse by it.
    lease_seconds
        How long a compactor's lease holds, by the storage's clock.
    """

    def __init__(
        self,
        objects: Objects,
        *,
        uuid: bytes | None = None,
        groups: bool = False,
        grace: float = DEFAULT_GRACE,
        clock: Callable[[], float] = boottime,
        storage_clock: Callable[[], float] | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.objects = objects
        self.storage_clock = storage_clock or (lambda: storage_now(objects))
        """The storage's time now (a scratch object's stamp; injected by tests)."""
        self.lease_seconds = lease_seconds
        self.uuid = uuid
        """Format 8: the store's id, which every object's envelope carries (None: 5 and 7)."""
        self.groups = groups and uuid is not None
        """Format 9: commit objects may hold several records."""
        self.grace = grace
        self.clock = clock
        self.seen_at = -float("inf")
        """When :meth:`read_after` last listed the segments and found the end of the log."""
        self._last: tuple[int, int] | None = None
        """``(version, chain CRC)`` of the newest record read or written (format 8)."""
        self._background = Threads(2)
        """For requests sent while this writer does something else."""
        self._names_carry = True
        """Whether offers go in their names where they fit (until the storage refuses one)."""
        self._deleted_through: int | None = None
        """Every log object up to this version is deleted (by this compactor or another);
        None until this compactor has listed the log once."""
        self._segments: list[Segment] = []
        """The segments after :attr:`_deleted_through` this compactor listed, by last version."""

    @property
    def location(self) -> str:
        """The store's directory or URL."""
        return self.objects.location

    def _parse(
        self, data: bytes, first: int, where: str, *, last: int | None = None
    ) -> list[tuple[int, bytes]]:
        """The records of one object holding versions from ``first`` on, every check made.

        ``last``: a segment's last version (its name's), which its records must
        reach exactly. Format 8: the envelope's store id, first version and
        record count, and its chain to the record read before it.
        """
        prev = None
        if self.uuid is None:
            records = split_records(data, first, where)
        else:
            count, prev, body = open_envelope(data, self.uuid, first, where)
            records = split_records(body, first, where)
            if len(records) != count:
                raise CorruptStoreError(
                    f"{where} is damaged: {len(records)} records where its header says {count}"
                )
        if not records:
            raise CorruptStoreError(f"{where} is damaged: it holds no record")
        if last is not None and records[-1][0] != last:
            raise CorruptStoreError(
                f"{where} is damaged: its records end at version {records[-1][0]}, "
                f"its name says {last}"
            )
        known = self._last
        if prev is not None and known is not None and known[0] == first - 1 and known[1] != prev:
            raise CorruptStoreError(
                f"{where} does not follow the record of version {first - 1} read before it: "
                f"version {first - 1} was written twice (a hole in the log, filled by a writer "
                "that did not see the versions after it)"
            )
        return records

    def _read(self, v: int, record: bytes) -> tuple[int, bytes]:
        """Note record ``v`` as the newest read (the chain of the next object)."""
        if self.uuid is not None:
            self._last = (v, chain_crc(record))
        return v, record

    def _prev(self, first: int) -> int:
        """The chain CRC of the record before ``first`` (0 before the first)."""
        if first == 1:
            return 0
        if self._last is not None and self._last[0] == first - 1:
            return self._last[1]
        ((_, record),) = self.records(first - 1, first - 1)
        return chain_crc(record)

    def _sealed(self, first: int, body: bytes, count: int, prev: int | None = None) -> bytes:
        """``body`` as an object's bytes: in its envelope (format 8), or as it is."""
        if self.uuid is None:
            return body
        return seal(self.uuid, first, count, self._prev(first) if prev is None else prev, body)

    def add_segment(self, first: int, last: int, data: bytes, prev: int) -> None:
        """Create the segment of records ``first .. last`` (``prev``: the chain CRC before it).

        For a copy of a store's history; the records are checked first.
        """
        split_records(data, first, "the segment being written")
        self.objects.create(
            segment_name(first, last), self._sealed(first, data, last - first + 1, prev)
        )

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
            where = f"{self.location}/{seg.name}"
            for v, record in self._parse(data, seg.first, where, last=seg.last):
                if v > version:
                    yield self._read(v, record)
                    version = v

    def read_after(self, version: int, *, chase: bool = True) -> Iterator[tuple[int, bytes]]:
        """Every committed record after ``version``, oldest first, each checked.

        ``chase=False``: stop after a round of fetches that found every name it
        asked for (writers may be adding more), not at the end of the log. A
        writer waiting for its offered batch looks again soon anyway.

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

        In object storage, that first read then lists the log objects after the
        segments and fetches the names listed and one more (:class:`_Listing`),
        not :data:`FETCH_AHEAD` names, most of them not created yet. A version
        after the last name listed did not exist at that listing, or had been
        deleted: then a segment held it for ``grace`` before, so before the
        segments were listed (less than ``grace / 2`` earlier), and the reader,
        having read them all, holds it. So if it is missing, it is the end of
        the log as of the segments' listing, with no listing after the fetch.
        """
        far_behind = self.seen_at == -float("inf")
        listing = None
        if far_behind:  # catching up from far behind: segments first
            at = self.clock()
            segments = self.segments_after(version)
            for v, record in self._segment_records(segments, version, gaps=True):
                yield v, record
                version = v
            read_all = all(seg.last <= version for seg in segments)  # none past a gap
            if read_all and not self.objects.cheap_requests:  # a directory: fetching is cheap
                listing = _Listing.of(self, version, at)
        # After the segments, the few log objects writers have not folded yet: at once.
        ahead = 1 if not far_behind else FETCH_AHEAD if listing is None else listing.ahead(version)
        got = 0
        while True:
            started = self.clock()
            wanted = range(version + 1, version + 1 + ahead)
            found = self._fetch(wanted)
            for v, data in zip(wanted, found, strict=True):
                if v <= version:
                    continue  # held by a group commit read just before
                if data is None:
                    break
                for rv, record in self._commit(data, v):
                    yield self._read(rv, record)
                    version, got = rv, got + 1
            else:
                if not chase:
                    return
                # Catching up (two or more new in a row): fetch more at once.
                ahead = min(ahead * 2, FETCH_AHEAD) if got >= 2 else 1
                continue
            if listing is not None and listing.ends_before(version + 1, started, self.grace):
                self.seen_at = listing.at  # the end, as of before the segments were listed
                return
            listing = None
            if started - self.seen_at < self.grace / 2:
                return
            segments = self.segments_after(version)
            if not segments:
                if self._appeared(version):
                    ahead = 1
                    continue
                self.seen_at = started  # the end, as of before the fetch that found it
                return
            for v, record in self._segment_records(segments, version, gaps=False):
                yield v, record
                version = v
            ahead = 1

    def _commit(self, data: bytes, v: int) -> list[tuple[int, bytes]]:
        """The records of commit object ``v`` (one, or from format 9 a group)."""
        where = f"{self.location}/{log_name(v)}"
        records = self._parse(data, v, where)
        if len(records) != 1 and not self.groups:
            raise CorruptStoreError(f"{where} is damaged: {len(records)} records, not one")
        return records

    def _holding(self, v: int) -> list[tuple[int, bytes]]:
        """The records of the group commit that holds version ``v`` inside it (format 9).

        Its object is named after a version at most :data:`GROUP_MAX` before ``v``.
        """
        if self.groups:
            below = range(max(1, v - GROUP_MAX + 1), v)
            for u, data in reversed(list(zip(below, self._fetch(below), strict=True))):
                if data is not None:
                    records = self._commit(data, u)
                    if records[-1][0] >= v:
                        return [(rv, r) for rv, r in records if rv >= v]
                    break
        raise CorruptStoreError(f"{self.location}: version {v} is in no log object and no segment")

    def _appeared(self, version: int) -> bool:
        """After ``version + 1`` was found in neither a log object nor a segment: whether
        it exists now (a writer created it meanwhile: read on), or is the end.

        A commit object after it with ``version + 1`` still missing is a hole in the
        log (deleted by something other than this store, or never copied): a
        :class:`CorruptStoreError` naming it, never the end of the log.
        """
        later = self.objects.list("log/", after=log_name(version), limit=1)
        if not later:
            return False
        if self.objects.get(log_name(version + 1)) is not None:
            return True
        if self.segments_after(version):
            return True  # folded meanwhile: read on from the segment
        raise CorruptStoreError(
            f"{self.location}: version {version + 1} of the log is missing (no commit object "
            f"and no segment holds it) while {later[0].name} exists: a hole in the log, made "
            "by something other than this store (a lifecycle rule, a partial copy); restore "
            "the object from a backup"
        )

    def records(self, first: int, last: int) -> Iterator[tuple[int, bytes]]:
        """The records of versions ``first .. last`` (committed), oldest first, each checked.

        What segments hold is read from them; the versions between segments
        from their log objects. A version in neither is a
        :class:`CorruptStoreError`.
        """
        known = self._last  # a read of older versions leaves the chain of the newest alone
        try:
            yield from self._records(first, last)
        finally:
            self._last = known

    def _records(self, first: int, last: int) -> Iterator[tuple[int, bytes]]:
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
                    if v <= version:
                        continue  # held by a group commit read just before
                    held = self._holding(v) if data is None else self._commit(data, v)
                    for rv, record in held:
                        if rv > last:
                            return
                        yield rv, record
                        version = rv

    def publish(self, version: int, records: list[bytes]) -> list[bytes] | None:
        """Create commit ``version`` with ``records``; None if it is ours now, else the winner's.

        ``records``: one, or (format 9) up to :data:`GROUP_MAX` of consecutive
        versions from ``version`` on. The caller must have read the log to
        ``version - 1`` (:meth:`read_after`). Returns the records another
        writer committed from ``version`` on (checked), or ``[]`` when this
        attempt took longer than ``grace / 2`` (the name may have been freed by
        compaction since: read the log again).
        """
        if len(records) != 1 and not (self.groups and 1 <= len(records) <= GROUP_MAX):
            raise ValueError(f"a commit object of this store holds one record, not {len(records)}")
        if self.clock() - self.seen_at > self.grace / 2:
            return []
        name = log_name(version)
        ours = self._sealed(version, b"".join(records), len(records))
        created = self.objects.create(name, ours)
        data = None if created else self.objects.get(name)
        if created or data == ours:  # (equal: a retried create applied, its reply lost)
            self._read(version + len(records) - 1, records[-1])
            return None
        if data is None:
            return []  # folded and deleted meanwhile: read the log again
        return [self._read(*one)[1] for one in self._commit(data, version)]

    # -- group commit (format 9) -------------------------------------------------

    def offer(self, base: int, batch: str, record: bytes) -> Pending:
        """Offer ``record`` (checked against version ``base``) to the writers' next commits.

        Not durable: losing it only leaves the batch to its writer. In object
        storage, a batch whose object fits in its name (:attr:`Objects.name_room`)
        travels there, and the object is empty: whoever lists it has it. A storage
        that refuses such a name (one with a shorter limit, as a path segment of 255
        bytes on some S3-compatible servers) gets the offer in its object, and so
        do the later ones of this log.
        """
        sealed = self._sealed(base + 1, record, 1, 0)
        pending = Pending.named(base, batch, sealed)
        if self._names_carry and len(pending.name) <= self.objects.name_room:
            try:
                self.objects.put(pending.name, b"", durable=False)
                return pending
            except StorageUnavailableError:
                self._names_carry = False
        pending = Pending.named(base, batch)
        self.objects.put(pending.name, sealed, durable=False)
        return pending

    def offered(self, newest: int) -> list[Pending]:
        """The pending batches that may still land after version ``newest``, oldest first."""
        oldest = newest + 1 - GROUP_WINDOW
        after = f"{PENDING}{oldest - 1:0{WIDTH}d}-~" if oldest > 0 else ""
        named = (Pending.parse(item.name) for item in self.objects.list(PENDING, after=after))
        return [p for p in named if p is not None and p.base >= oldest]

    def offered_meanwhile(self, newest: int) -> Future[list[Pending]]:
        """:meth:`offered`, listed in the background (object storage: while this
        writer creates its commit object, one round trip for both)."""
        return self._background.pool().submit(self.offered, newest)

    def pending_records(self, offered: list[Pending]) -> list[bytes | None]:
        """The record of each pending batch; None for one gone or damaged (never lands).

        Those whose names carry their bytes are not fetched."""
        fetch = [p.name for p in offered if p.sealed is None]
        fetched = dict(zip(fetch, self.objects.get_many(fetch), strict=True))
        out: list[bytes | None] = []
        for p in offered:
            data = fetched.get(p.name) if p.sealed is None else p.sealed
            try:
                if not data or self.uuid is None:
                    raise CorruptStoreError("gone")
                count, _, body = open_envelope(data, self.uuid, p.base + 1, p.name)
                records = split_records(body, p.base + 1, p.name)
                if count != 1 or len(records) != 1:
                    raise CorruptStoreError("not one record")
                out.append(records[0][1])
            except CorruptStoreError:
                out.append(None)
        return out

    def withdraw(self, pendings: list[Pending], *, wait: bool = True) -> None:
        """Remove pending objects (their batches landed, or never can), in bulk where the
        storage can.

        ``wait=False``: in the background (a batch that landed is never carried
        again, pending object or not; one left behind goes with compaction).
        """
        names = [p.name for p in pendings]
        if not names:
            return
        if wait:
            self.objects.delete_many(names)
        else:  # a failure stays in the future, unread: the compactor removes them later
            self._background.pool().submit(self.objects.delete_many, names)

    # -- compaction ------------------------------------------------------------

    def _take_lease(self) -> bytes | None:
        """The lease's body if this process holds it now, else None.

        A lease lapses :data:`LEASE_SECONDS` after the storage stamped it, by the
        storage's clock (:attr:`storage_clock`): a holder killed on a host whose
        clock is a day ahead blocks nobody for longer than that.
        """
        body = json.dumps({"holder": uuid.uuid4().hex}).encode()
        if self.objects.create(LEASE, body):
            return body
        stamped = self.objects.modified(LEASE)
        if stamped is not None and self.storage_clock() - stamped < self.lease_seconds:
            return None
        self.objects.delete(LEASE)  # lapsed (or just gone): take it over
        return body if self.objects.create(LEASE, body) else None

    def compact(
        self,
        records: Callable[[int, int], list[bytes]],
        newest: int,
        *,
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
        min_records
            Fold only if at least this many versions are not in a segment yet.

        Returns
        -------
        (folded, deleted)
            Versions put in a new segment, versions whose log objects were
            deleted. ``(0, 0)`` when another compactor holds the lease.
        """
        lease = self._take_lease()
        if lease is None:
            return 0, 0
        try:
            # Every version before the first log object left is in a segment (a log
            # object is deleted only once a segment covers it), so only segments
            # after it matter. A compactor looks that object up once (a listing of
            # one name), then deletes by name from where the last compaction stopped.
            # A busy store holds every log object of the last ``grace`` seconds (100K
            # and more): listing them all made a compaction's cost follow them
            # instead of the versions it folds.
            gone = self._deleted_through
            if gone is None:
                logs = self.objects.list("log/", limit=1)
                gone = log_version(logs[0].name) - 1 if logs else newest
            segments = self._segments_after(gone)
            done = max((s.last for s in segments), default=gone)
            folded = 0
            if newest - done >= min_records:
                data = b"".join(records(done + 1, newest))
                split_records(data, done + 1, "the segment being written")  # whole and in order
                prev = chain_crc(b"".join(records(done, done))) if self.uuid and done else 0
                sealed = self._sealed(done + 1, data, newest - done, prev)
                self.objects.create(segment_name(done + 1, newest), sealed)
                crash_point("compact-segment")  # segment written, log objects all still there
                folded = newest - done
                segments = self._segments_after(gone)
            self.objects.put(LEASE, lease)  # the storage's "now": after every segment listed
            storage_now = self.objects.modified(LEASE)
            deleted = 0
            if storage_now is not None:
                ripe = max(
                    (s.last for s in segments if storage_now - s.modified >= self.grace),
                    default=gone,
                )
                # A group commit ends before the next name: covered too. Each is covered
                # by a segment for grace already, so the order of the deletes is free:
                # in bulk requests where the storage has them. By name, every version's
                # (the name of a version inside a group object is no object: a no-op).
                self.objects.delete_many([log_name(v) for v in range(gone + 1, ripe + 1)])
                deleted = ripe - gone  # every segment listed ends after ``gone``
                self._deleted_through = ripe
            if self.groups:  # batches whose window has passed (their writers were killed)
                named = (Pending.parse(item.name) for item in self.objects.list(PENDING))
                self.withdraw([p for p in named if p and p.base + GROUP_WINDOW < newest])
            return folded, deleted
        finally:
            self.objects.delete(LEASE)

    def _segments_after(self, version: int) -> list[Segment]:
        """:meth:`segments_after` for a compactor: a segment is immutable, so those it
        listed before are kept, and only the segments after the newest of them are listed
        (in a directory, only those are ``stat``-ed; in object storage, only those sent)."""
        known = [seg for seg in self._segments if seg.last > version]
        known += self.segments_after(known[-1].last if known else version)
        self._segments = known
        return known

    def close(self) -> None:
        """Release the storage's connections and threads (after the background requests)."""
        self._background.shutdown(wait=True)
        self.objects.close()
