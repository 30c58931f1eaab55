"""The commit protocol: how a batch becomes the next version, durably, local or shared.

Every write is one call of :meth:`Writer.commit` with a *build* function: given
the snapshot of the newest version, it checks the batch against it (raising if
the batch is wrong there) and returns the event, the journal record, that makes
the next version. The label writes of the store are built here
(:meth:`Writer.add`, :meth:`Writer.relabel`, :meth:`Writer.remove`); the
campaign builds its annotations and resolves and commits them the same way.

A commit, top to bottom:

1. **Upgrade first.** A store of an older format version is upgraded under
   the writer lock before its first write.
2. **Build outside the lock.** The event is built and checked against the
   newest snapshot this process holds, before the lock is taken: every check
   runs there, and a bad batch fails before it waits for anyone. (Positions are
   meaningful at the newest version only, and an annotation's checks read
   every earlier annotation: those are built under the lock instead.)
3. **Take the turn.** The writer lock: ``flock`` on the store's ``lock`` file
   between processes; for a shared store, a mutex between this process's
   threads (writers of a shared store share no lock at all).
4. **Pull** (shared store): the commits other writers made since, into the
   mirror. Skipped when the mirror ends with this writer's own last commit
   and the event was built (no error to judge, no ``expected_version``): then
   the create of step 6 is the check, and a writer alone spends one request
   per commit. Whether a name
   may be created does not rest on this read but on the listing that last
   found the end of the log (see :mod:`alma_store.storage._shared`).
5. **Recheck.** The records committed since the event was built are only
   decoded: if none touches its items, the event stays right and is renumbered
   as the next version; otherwise it is built again on the newest snapshot.
   ``expected_version`` is checked against the newest version.
6. **Append.** Local: the record is written to the journal (not yet durable).
   Shared: the commit object ``log/<v>`` is *created* (durable once it exists),
   then the record is appended to the mirror. A writer that loses the version
   to another (:class:`~alma_store.storage.LostRace`) takes the winner's record
   in, backs off a random while (0.5 ms x 2^losses, at most 50 ms) and goes
   back to 4, where its event is rechecked against the winner's record (built
   again only if that touches its items, or if it names view positions).
   :class:`LostRace` never leaves this module.

   **Group commit** (a shared store of format 9): a writer that met others within its
   last :data:`CONTENDED_COMMITS` commits may offer its batch
   (:meth:`~alma_store.storage.SharedLog.offer`), and a commit object carries every
   offered batch that may still land (:func:`~alma_store.engine._group.group_after`);
   the offerer finds its batch in the log by its id. Batches by position, under
   ``expected_version``, or of annotations are never offered. Who carries depends on
   what a request costs (:attr:`Engine.offers_wait`):

   * *in a directory* it offers its batch and lists the offers. The writer of the
     oldest offer carries them all; the others poll for that commit up to
     :data:`FOLLOW_MAX` instead of racing (a create lost costs an ``fsync``).
   * *in object storage* the writer of the newest commit object carries: it lists the
     offers before each create. Another writer offers at once, without reading the log
     first, then looks for its batch one round of gets at a time, while the log grows
     and for at most :meth:`Writer._patience` without a new object; then it carries
     itself. A writer that met nobody lately lists the offers in the background with
     every :data:`PROBE_EVERY`-th create, to learn that others wait.
7. **Release, then sync.** ``fdatasync`` of the journal runs after the lock is
   released and covers every writer waiting for one (group commit, see
   :mod:`alma_store.storage._journal`). When :meth:`Writer.commit` returns,
   the batch is durable.
8. **Housekeeping.** Take the piled-up commits in, fold a long tail into the
   chunk files (:mod:`alma_store.engine._checkpoint`), and on a shared store
   compact its log every :data:`COMPACT_EVERY` versions. None of it can
   undo the commit: a failed compaction is a warning.

A crash at any point loses nothing acknowledged, and the next reader sees every
acknowledged batch whole and no unacknowledged one.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from ..core import IndexArray, LabelEvent, Provenance
from ..errors import AlmaError, AlreadyLabeledError, NotLabeledError, StaleIndexError
from ..storage import (
    GROUP_WINDOW,
    SHARED_CHECKPOINTS_FORMAT,
    LostRace,
    Pending,
    StoreMeta,
    crash_point,
)
from ._engine import Engine
from ._group import group_after, touches
from ._snapshot import Snapshot

__all__ = ["COMPACT_EVERY", "Build", "Writer"]

Build = Callable[[Snapshot], LabelEvent]
"""Checks a batch against a snapshot and returns the event of the next version."""

LOST_BACKOFF = 0.5e-3
"""A shared-store commit that lost its version waits up to this x 2^(losses) before retrying ..."""
LOST_BACKOFF_MAX = 0.05
"""... and never more than this (seconds)."""
FOLLOW_POLL = 0.5e-3
"""A writer whose batch another writer is due to carry looks for it this often (seconds) ..."""
FOLLOW_MAX = 0.05
"""... and commits itself (carrying the others) once it waited this long."""
CONTENDED_COMMITS = 8
"""A writer that met others (lost a version, saw their commits) groups this many commits."""
PROBE_EVERY = 4
"""In object storage, a writer that met nobody lately lists the offered batches with every
so many of its creates (in the background: no round trip added)."""
REFRESH_AFTER_EVENTS = 64
"""A writer takes in others' commits (and its own) once this many have piled up ...

Until then each commit only checks its batch against them (step 5); taking them in
copies the tail's overlay whether they are 1 or 64 (see the benchmarks, "Taking
commits in")."""
REFRESH_AFTER_ROWS = 4096
"""... or once they name this many rows (each commit's check reads them all)."""
COMPACT_EVERY = 32
"""A shared store's log is folded into a segment by the writer of every so many versions,
so that a reader finds at most about this many commit objects after the newest segment
(each one a request), whatever the history."""
SHARED_CHECKPOINT_EVERY = 256
"""... which also publishes a shared checkpoint when the newest it knows is this many older."""


class Writer:
    """The writes of one open store, each one commit. See the module docstring."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._wrote_end = -1
        """A shared store's version this writer created last (its mirror's end, if still so)."""
        self.offers = engine.offers
        """Whether this writer offers its batches to, and carries those of, other writers."""
        self._contended = 0
        """Commits this writer still groups (format 9) since it last met other writers."""
        self._offers_read: dict[str, LabelEvent | None] = {}
        """Other writers' pending batches read already, by name (None: damaged)."""
        self._listed: list[Pending] = []
        """The pending batches listed last."""
        self._follows = engine.offers_wait
        """Whether a batch offered waits for the writer of an older offer (a directory)."""
        self._probe_in = 0
        """Uncontended commits until the next background listing of offers (object storage)."""
        self._looked_at: int | None = None
        """The newest version this writer knew when its last commit returned."""
        self._met_lately = False
        """Whether its last commit met other writers (lost, pulled theirs, or was carried)."""
        self._create_seconds = 0.0
        """How long this writer's creates of a commit object take (a running mean)."""

    def close(self, *, checkpoint: bool = True) -> None:
        """Fold our tail into the chunk files unless another writer is busy, then close.

        A shared store's mirror goes with the process: nothing to fold for later.
        """
        engine = self.engine
        try:
            if checkpoint and engine.writable and not engine.shared:
                engine.refresh()  # our own last commits are taken in lazily
                if engine.tail_rows:
                    engine.checkpoint_if_free()
        finally:
            engine.close()

    # -- the label writes --------------------------------------------------------

    def add(
        self,
        idx: IndexArray,
        values: np.ndarray,
        provenance: Provenance,
        relative_to: str,
        *,
        row_annotators: tuple[str, ...] | None = None,
        row_times: tuple[float, ...] | None = None,
    ) -> IndexArray:
        """Label unlabeled items, by view position or dataset index, in one commit.

        ``idx`` and ``values`` are parsed already (types, signs, repeats,
        label dtype); ranges and labeled-ness are checked here, against the
        version the commit lands on.
        """

        def build(snap: Snapshot) -> LabelEvent:
            dataset_idx = snap.dataset_indices_of(idx, relative_to)
            if relative_to != "unlabeled":
                is_labeled = snap.is_labeled(dataset_idx)
                if is_labeled.any():
                    raise AlreadyLabeledError([int(v) for v in dataset_idx[is_labeled]])
            return LabelEvent.following(
                snap.version,
                "add",
                dataset_idx,
                values,
                provenance,
                row_annotators=row_annotators,
                row_times=row_times,
            )

        return self.commit(build, len(idx), provenance, by_position=relative_to == "unlabeled")

    def relabel(
        self,
        idx: IndexArray,
        values: np.ndarray,
        provenance: Provenance,
        *,
        row_annotators: tuple[str, ...] | None = None,
        row_times: tuple[float, ...] | None = None,
    ) -> IndexArray:
        """Change the labels of labeled items; the previous ones go into the record.

        ``row_annotators`` and ``row_times`` name who set each new label and when
        (an annotation tool's edited answer).
        """

        def build(snap: Snapshot) -> LabelEvent:
            previous = _labeled_values(snap, idx)
            return LabelEvent.following(
                snap.version,
                "relabel",
                idx,
                values,
                provenance,
                previous=previous,
                row_annotators=row_annotators,
                row_times=row_times,
            )

        return self.commit(build, len(idx), provenance)

    def remove(self, idx: IndexArray, provenance: Provenance) -> IndexArray:
        """Return labeled items to the Unlabeled part; their labels go into the record."""

        def build(snap: Snapshot) -> LabelEvent:
            removed = _labeled_values(snap, idx)
            return LabelEvent.following(snap.version, "remove", idx, removed, provenance)

        return self.commit(build, len(idx), provenance)

    # -- the protocol --------------------------------------------------------------

    def commit(
        self,
        build: Build,
        n: int,
        provenance: Provenance,
        *,
        by_position: bool = False,
        locked: bool = False,
    ) -> IndexArray:
        """Build, check, append and sync one event; returns the dataset indices it wrote.

        ``n`` is the batch's size (nothing is committed for 0).
        ``by_position``: the batch names view positions, which any commit
        shifts (built under the lock only). ``locked``: build under the lock
        only (annotations: their checks read every earlier annotation).

        Raises
        ------
        StaleIndexError
            ``provenance.expected_version`` is not the newest version.
        AlmaError
            Whatever ``build`` raises for a bad batch; nothing is written.
        """
        engine = self.engine
        expected = provenance.expected_version
        if n == 0:
            return np.empty(0, np.int64)
        if engine.needs_upgrade:  # 1
            with engine.write_lock():
                engine.refresh(writer=True)
                engine.checkpoint_if_old_format()
        snap = engine.latest_taken_in()  # what came since is checked under the lock
        event: LabelEvent | None = None
        if not (by_position or locked):  # 2
            with contextlib.suppress(AlmaError):  # the verdict is given under the lock
                event = build(snap)  # every check runs here, before anything is written
        groupable = self.offers and not (by_position or locked) and expected is None
        offered: Pending | None = None  # our batch, offered to the other writers (6)
        landed: LabelEvent | None = None
        wrote: list[LabelEvent] = []
        carried: list[Pending] = []
        lost, met, follow_until, following, seen, idle = 0, 0, 0.0, False, -1, 0
        progress = False
        while True:
            if following:  # the writer of an older offered batch is due to carry ours too
                poll = max(FOLLOW_POLL, self._create_seconds / 2)
                if self._follows:  # a directory: back off while nothing comes (in object
                    poll *= 2 ** min(idle, 2)  # storage a look is a round trip already)
                time.sleep(min(poll, max(FOLLOW_POLL, follow_until - time.monotonic())))
            elif lost:  # back off a random while, so that racing writers spread out
                time.sleep(random.uniform(0, min(LOST_BACKOFF_MAX, LOST_BACKOFF * 2**lost)))
            with engine.write_lock():  # 3
                mirror = engine.mirror
                fresh = mirror is not None and mirror.version == self._wrote_end
                contended = groupable and self._contended > 0
                waits = contended and self._follows  # a directory: offers wait on commits
                # Object storage: a writer that others write past offers its batch first
                # (checked against what it holds), and looks at their commits after.
                offers_first = (
                    contended
                    and self._met_lately
                    and event is not None
                    and not (self._follows or fresh or lost or offered)
                )
                pulls = lost or event is None or expected is not None or not fresh or waits
                if pulls and not offers_first:
                    met += engine.pull(chase=self._follows or not following)  # 4
                if offered is not None and (landed := self._landed(offered)) is not None:
                    break  # another writer's commit carries our batch: durable
                now = mirror.version if mirror is not None else 0
                if following and now == seen and time.monotonic() < follow_until:
                    idle += 1
                    continue  # nothing committed since we looked: wait on
                progress, seen, idle = now != seen, now, 0
                newer = engine.events_since(snap.version) if event is not None else None  # 5
                if event is None or newer is None or (newer and touches(newer, event)):
                    engine.refresh(writer=True, pull=False)
                    snap, newer, event = engine.current(pull=False), [], None
                    if offered is not None:  # touched since: it can never land
                        self._withdraw([offered])
                        offered = None
                latest = snap.version + len(newer)
                if expected is not None and expected != latest:
                    raise StaleIndexError(expected, latest, by_position=by_position)
                if event is None:
                    event = build(snap)
                elif newer:
                    event = event.renumbered(latest + 1)
                group, carried = [event], []
                if contended and self._follows:  # the writer of the oldest offer carries all
                    waiting = self._older_offer(offered, latest)
                    if offered is None:  # ours is offered: one carrier, no creates lost
                        event = event.renumbered(event.version, batch=uuid.uuid4().hex)
                        offered = self._offer(event)
                        follow_until = time.monotonic() + FOLLOW_MAX
                    following = waiting and time.monotonic() < follow_until
                    if following:
                        continue
                    group, carried = self._group(event, latest)
                elif contended:  # object storage: the writer of the newest commit carries all
                    # The carrier: the writer of the newest commit, or one that met nobody
                    # in its last commit and finds nothing newer since.
                    met_now = self._met_lately or lost or met or offered is not None
                    quiet = not met_now and self._looked_at in (None, now)
                    carrier = now == self._wrote_end or quiet
                    if offered is None and not carrier:  # ours joins the carrier's next
                        event = event.renumbered(event.version, batch=uuid.uuid4().hex)
                        offered = self._offer(event)
                        progress = True
                    if progress:  # the carrier goes on: wait on
                        follow_until = time.monotonic() + self._patience()
                    following = (
                        offered is not None
                        and not carrier
                        and latest - offered.base < GROUP_WINDOW // 2  # else it may not land
                        and time.monotonic() < follow_until
                    )
                    if following:
                        continue
                    assert mirror is not None  # we carry: the offers waiting now, with ours
                    self._listed = mirror.log.offered(latest)
                    group, carried = self._group(event, latest)
                probe = self._probe(latest) if groupable and not contended else None
                started = time.perf_counter()
                try:
                    end = engine.append_group(group)  # 6
                except LostRace:  # a shared store: another writer took this version first
                    if by_position or locked:  # else rechecked against the winner's (5)
                        event = None  # built again on the newest version, under the lock
                    lost += 1
                    self._contended = CONTENDED_COMMITS  # others write (offers only if groupable)
                    continue
                finally:
                    others = probe is not None and self._probed(probe, event)
                took = time.perf_counter() - started
                self._create_seconds += (took - self._create_seconds) / 8
                wrote, self._wrote_end = group, group[-1].version
                alone = not (lost or met or others or len(group) > 1)
                self._contended = max(0, self._contended - 1) if alone else CONTENDED_COMMITS
            break
        self._looked_at = engine.mirror.version if engine.mirror is not None else None
        self._met_lately = bool(lost or met or landed is not None or len(wrote) > 1)
        if landed is not None:  # its committer withdrew it and did the housekeeping
            return landed.dataset_indices
        if carried:
            crash_point("group-carried")  # others' batches landed, their offers not removed
        self._withdraw(carried + ([offered] if offered is not None else []))
        assert event is not None
        assert newer is not None
        crash_point("commit-unsynced")  # appended, lock released, not acknowledged yet
        engine.sync(end)  # 7: outside the lock, one fdatasync covers every waiting writer
        self._housekeeping(event, n, newer, wrote)  # 8
        if event.annotations is not None:
            return event.annotations.dataset_indices
        return event.dataset_indices

    # -- group commit (a shared store of format 9) -----------------------------------

    def _offer(self, event: LabelEvent) -> Pending:
        """Offer ``event`` (checked against the version before it) to the other writers."""
        engine = self.engine
        assert engine.mirror is not None
        record = event.encode(engine.meta.label_dtype)
        pending = engine.mirror.log.offer(event.version - 1, str(event.batch), record)
        crash_point("group-offered")  # offered, not landed: it lands in a commit, or never
        return pending

    def _withdraw(self, pendings: list[Pending]) -> None:
        """Remove pending objects (landed, or never can): a failure leaves them to compaction.

        In object storage this writer does not wait for it.
        """
        if pendings and self.engine.mirror is not None:
            with contextlib.suppress(AlmaError, OSError):
                self.engine.mirror.log.withdraw(pendings, wait=self._follows)

    def _probe(self, latest: int) -> Future[list[Pending]] | None:
        """In object storage, a writer that met nobody lately lists the offered batches
        while it creates every :data:`PROBE_EVERY`-th commit object: how it learns that
        others wait for it to carry them."""
        if self._follows:
            return None
        self._probe_in = (self._probe_in or PROBE_EVERY) - 1
        if self._probe_in != PROBE_EVERY - 1:
            return None
        assert self.engine.mirror is not None
        return self.engine.mirror.log.offered_meanwhile(latest)

    def _probed(self, probe: Future[list[Pending]], event: LabelEvent | None) -> bool:
        """Whether ``probe`` found another writer's batch that may still land."""
        try:
            listed = probe.result()
        except (AlmaError, OSError):
            return False
        mine = event.batch if event is not None else None
        return any(p.batch != mine and self._live(p) for p in listed)

    def _patience(self) -> float:
        """How long a writer whose batch is offered waits for the next commit (object
        storage): a few of this writer's own creates, at least :data:`FOLLOW_MAX`."""
        return max(FOLLOW_MAX, 4 * self._create_seconds)

    def _landed(self, offered: Pending) -> LabelEvent | None:
        """Our offered batch as a commit made it (writer lock held, just pulled), or None."""
        engine = self.engine
        assert engine.mirror is not None
        newer = engine.events_since(offered.base)
        if newer is None:  # older than the events held: read from the mirror
            newer = list(engine.iter_events(first=offered.base + 1, last=engine.mirror.version))
        return next((e for e in newer if e.batch == offered.batch), None)

    def _older_offer(self, offered: Pending | None, latest: int) -> bool:
        """Whether another writer offered a batch before ours (any, if we offered none)
        that may still land: its writer is due to carry ours too."""
        assert self.engine.mirror is not None
        self._listed = self.engine.mirror.log.offered(latest)
        ours = (offered.base, offered.batch) if offered is not None else (latest + 1, "")
        return any((p.base, p.batch) < ours and self._live(p) for p in self._listed)

    def _live(self, pending: Pending) -> bool:
        """Whether an offered batch may still land: not landed (the log's batch ids say),
        and, if read already, whole and untouched since its base."""
        newer = self.engine.events_since(pending.base)
        if newer is None or any(e.batch == pending.batch for e in newer):
            return False
        if pending.name not in self._offers_read:
            return True  # not read: its writer may commit it
        event = self._offers_read[pending.name]
        return event is not None and not touches(newer, event)

    def _group(self, event: LabelEvent, latest: int) -> tuple[list[LabelEvent], list[Pending]]:
        """``event`` and the other writers' offered batches (listed by :meth:`_older_offer`)
        that may land after it, and the pending objects of those."""
        engine = self.engine
        assert engine.mirror is not None
        log, meta = engine.mirror.log, engine.meta
        listed = [p for p in self._listed if p.batch != event.batch]
        read = self._offers_read
        unknown = [p for p in listed if p.name not in read]
        for p, record in zip(unknown, log.pending_records(unknown), strict=True):
            read[p.name] = None if record is None else _decoded(record, meta, p.name)
        self._offers_read = {p.name: read[p.name] for p in listed}  # forget the withdrawn
        decoded = [(p, e) for p in listed if (e := read[p.name]) is not None]
        group = group_after(event, decoded, engine.events_since, meta.n_items)
        batches = {e.batch for e in group[1:]}
        return group, [p for p, e in decoded if e.batch in batches]

    def _housekeeping(
        self, event: LabelEvent, n: int, piled_up: list[LabelEvent], wrote: list[LabelEvent]
    ) -> None:
        """After a durable commit: take commits in, checkpoint a long tail, compact the log.

        ``piled_up``: the commits before ``event`` not taken in yet. ``wrote``: the
        events of the commit object this writer created (none when another writer's
        commit carried its batch).
        """
        engine = self.engine
        if len(piled_up) >= REFRESH_AFTER_EVENTS or (
            sum(len(e.dataset_indices) for e in piled_up) >= REFRESH_AFTER_ROWS
        ):
            engine.refresh()  # take the newer commits in, in one go
        if engine.tail_rows + n >= engine.checkpoint_rows:
            engine.refresh()
            if engine.tail_rows >= engine.checkpoint_rows:
                engine.checkpoint_if_free()
        engine.save_tail_if_due()
        first, last = (wrote[0].version, wrote[-1].version) if wrote else (1, 0)
        if engine.shared and last // COMPACT_EVERY > (first - 1) // COMPACT_EVERY:
            try:
                engine.compact_log(min_records=COMPACT_EVERY // 2)
                base = engine.shared_base
                due = base is None or event.version - base.version >= SHARED_CHECKPOINT_EVERY
                if due and engine.meta.format_version >= SHARED_CHECKPOINTS_FORMAT:
                    engine.publish_checkpoint()
            except (AlmaError, OSError) as exc:
                warnings.warn(
                    f"{engine.location}: compacting the commit log or publishing a checkpoint "
                    f"failed ({exc}); the commit "
                    "was not affected, and a later commit compacts",
                    RuntimeWarning,
                    stacklevel=4,
                )


def _labeled_values(snap: Snapshot, dataset_indices: IndexArray) -> np.ndarray:
    """Current labels of ``dataset_indices``, which must all be labeled."""
    is_labeled = snap.is_labeled(dataset_indices)
    if not is_labeled.all():
        raise NotLabeledError([int(v) for v in dataset_indices[~is_labeled]])
    return snap.labels_at(dataset_indices)


def _decoded(record: bytes, meta: StoreMeta, where: str) -> LabelEvent | None:
    """An offered batch's event; None for one that does not decode (it never lands)."""
    try:
        return LabelEvent.from_record(record, meta.label_dtype, meta.label_shape, where)
    except AlmaError:
        return None
