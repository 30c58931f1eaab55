"""Group commit on shared stores (format 9): one commit object carries several writers' batches.

The rules (``alma_store.storage._shared``, "Group commit") are checked three ways:
``group_after`` against a plain model over random offers; stores in a directory,
on a moto S3 server and on Azurite, with offers that must land and offers that
must not; and writers SIGKILLed at the protocol's points (after offering a
batch; after creating a commit that carries others' batches, before removing
their offers), after which every batch is in the log exactly once or not at all.
"""

from __future__ import annotations

import json
import time
import types
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alma_store
from alma_store.core import LabelEvent, Provenance
from alma_store.engine import _commit as commit_module
from alma_store.engine._group import group_after, touches
from alma_store.errors import CorruptStoreError, StorageUnavailableError
from alma_store.storage import (
    GROUP_MAX,
    GROUP_WINDOW,
    SHARED_FORMAT_VERSION,
    DirObjects,
    Pending,
    SharedLog,
)
from alma_store.storage._envelope import seal

from .conftest import Counted, Where, labeled_of, run_crashing

# -- the rules, against a model --------------------------------------------------


def _event(version: int, items: list[int], batch: str | None = None) -> LabelEvent:
    return LabelEvent(
        version,
        "add",
        np.array(items, np.int64),
        np.ones(len(items), np.int64),
        annotator="m",
        batch=batch,
    )


offers_st = st.lists(
    st.tuples(
        st.integers(0, 90),  # base
        st.lists(st.integers(0, 40), min_size=1, max_size=4, unique=True),  # items
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    committed=st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=3), max_size=100),
    own=st.lists(st.integers(0, 40), min_size=1, max_size=3, unique=True),
    offers=offers_st,
    n_items=st.sampled_from([30, 41]),
)
def test_group_after_takes_exactly_the_batches_the_rules_allow(
    committed: list[list[int]], own: list[int], offers: list[tuple[int, list[int]]], n_items: int
) -> None:
    latest = len(committed)
    log = [_event(v + 1, items) for v, items in enumerate(committed)]
    offers = sorted((b, items) for b, items in offers if b <= latest)
    offered = []
    for base, items in offers:
        batch = uuid.uuid4().hex
        offered.append((Pending.named(base, batch), _event(base + 1, items, batch)))
    got = group_after(_event(latest + 1, own), offered, lambda base: log[base:], n_items)

    # The model: walk the offers in order, take each the rules allow at its turn.
    want, items_in_group = [own], set(own)
    for pending, event in offered:
        if len(want) == GROUP_MAX:
            break
        at = latest + len(want) + 1
        since = {i for e in log[pending.base :] for i in e.dataset_indices.tolist()}
        mine = set(event.dataset_indices.tolist())
        if at - pending.base > GROUP_WINDOW or max(mine) >= n_items:
            continue
        if mine & (since | items_in_group):
            continue
        want.append(sorted(mine))
        items_in_group |= mine
    assert [sorted(e.dataset_indices.tolist()) for e in got] == [sorted(w) for w in want]
    assert [e.version for e in got] == list(range(latest + 1, latest + 1 + len(got)))
    assert got[0].batch is None and all(e.batch for e in got[1:])
    for k, event in enumerate(got):
        assert not touches(got[:k], event)  # no item twice in one object


def test_an_offer_that_landed_is_never_taken_again() -> None:
    pending = Pending.named(3, "b" * 32)
    offer = _event(4, [7, 8], pending.batch)
    landed = offer.renumbered(5)
    log = [_event(v, [100 + v]) for v in range(1, 5)] + [landed]
    group = group_after(_event(6, [1]), [(pending, offer)], lambda base: log[base:], 200)
    assert len(group) == 1


def test_a_malformed_offer_never_lands() -> None:
    base = 2
    log = [_event(1, [50]), _event(2, [51])]
    bad = [
        (Pending.named(base, "a" * 32), _event(base + 2, [1], "a" * 32)),  # wrong version
        (Pending.named(base, "b" * 32), _event(base + 1, [2], "c" * 32)),  # another batch id
        (Pending.named(base, "d" * 32), _event(base + 1, [-1], "d" * 32)),  # out of range
    ]
    group = group_after(_event(3, [9]), bad, lambda b: log[b:], 100)
    assert len(group) == 1


# -- stores --------------------------------------------------------------------------


def _contended(store: alma_store.Store) -> alma_store.Store:
    """Make ``store``'s writer group its next commits, as after meeting other writers
    (on S3 and Azure too, where writers race by default: the protocol is the same)."""
    store._writer.offers = True
    store._writer._contended = commit_module.CONTENDED_COMMITS
    return store


def _offer(
    store: alma_store.Store,
    items: list[int],
    values: list[int],
    who: str,
    base: int | None = None,
) -> Pending:
    """Offer a batch from ``store`` as a writer that lost a race does (checked against
    ``base``: the newest version by default)."""
    if base is None:
        base = store._engine.current().version
    event = LabelEvent.following(
        base,
        "add",
        np.array(items, np.int64),
        np.array(values, np.int64),
        Provenance(annotator=who),
    ).renumbered(base + 1, batch=uuid.uuid4().hex)
    return store._writer._offer(event)


def _records_per_object(where: Where) -> list[int]:
    firsts = [int(name.rsplit("/", 1)[1]) for name in where.names("log/")]
    with where.open(mode="r") as store:
        last = store.version
    return [b - a for a, b in zip(firsts, [*firsts[1:], last + 1], strict=True)]


def test_a_commit_carries_another_writers_offered_batch(where: Where) -> None:
    with where.create(100) as a, where.open() as b:
        assert a.meta["format_version"] == SHARED_FORMAT_VERSION
        a.add_labels([1], [1], relative_to="dataset", annotator="a")
        pending = _offer(b, [5, 6], [2, 2], "b")
        assert where.names("pending/") == [pending.name]
        _contended(a).add_labels([7], [3], relative_to="dataset", annotator="a")
        assert a.version == 3
        assert labeled_of(a) == {1: 1, 5: 2, 6: 2, 7: 3}
        history = list(a.history())
        assert [(e.version, e.annotator, sorted(e.dataset_indices)) for e in history] == [
            (1, "a", [1]),
            (2, "a", [7]),
            (3, "b", [5, 6]),
        ]
        assert not where.names("pending/")  # the carrier removed the offer
        # b finds its batch in the log, by its id: durable, nothing to commit again.
        b._engine.pull()
        landed = b._writer._landed(pending)
        assert landed is not None and landed.version == 3
        assert labeled_of(b) == labeled_of(a)
        assert a.verify()["records"] == 3
    assert _records_per_object(where) == [1, 2]  # versions 2 and 3 in one object
    # A fresh reader of a range that starts inside the group object.
    log = where.log()
    assert [v for v, _ in log.records(3, 3)] == [3]
    assert [v for v, _ in log.records(2, 3)] == [2, 3]


def test_offers_that_must_not_land_do_not(where: Where) -> None:
    with where.create(100) as a, where.open() as b:
        a.add_labels([1], [1], relative_to="dataset")
        touched = _offer(b, [20, 21], [2, 2], "b")  # checked at version 1 ...
        a.add_labels([20], [9], relative_to="dataset")  # ... and 20 labeled since
        same = _offer(b, [30], [2], "b")  # a's own next commit labels 30 too
        objects = where.log().objects
        objects.put(Pending.named(a.version, "d" * 32).name, b"damaged")
        body = _event(a.version + 1, [40], "e" * 32).encode(np.dtype(np.int64))
        other = seal(uuid.uuid4().bytes, a.version + 1, 1, 0, body)  # another store's
        objects.put(Pending.named(a.version, "e" * 32).name, other)
        _contended(a).add_labels([30], [3], relative_to="dataset", annotator="a")
        assert labeled_of(a) == {1: 1, 20: 9, 30: 3}
        assert a.version == 3
        assert (touched.base, same.base) == (1, 2)
        assert a.verify()["records"] == 3


def test_an_offer_past_its_window_never_lands_and_is_pruned(where: Where) -> None:
    with where.create(200) as a, where.open() as b:
        for c in range(GROUP_WINDOW):
            a.add_labels([c], [c % 3], relative_to="dataset")
        old = _offer(b, [150], [1], "b", base=0)  # checked against version 0, offered late
        _contended(a).add_labels([199], [1], relative_to="dataset")
        _contended(a).add_labels([198], [1], relative_to="dataset")
        assert 150 not in labeled_of(a)
        assert where.names("pending/") == [old.name]
        a._engine.compact_log(min_records=1)
        assert not where.names("pending/")


def test_a_compactor_lists_the_log_once_then_deletes_by_name(where: Where) -> None:
    """A compactor lists ``log/`` at its first compaction only, for its first object (a busy
    store holds every log object of the last ``grace`` seconds); every compaction deletes
    from where the last one stopped, by name (a version inside a group object names no
    object), and folds and deletes exactly what a listing would have found."""
    with where.create(100) as a, where.open() as b:
        for item in range(4):
            a.add_labels([item], [1], relative_to="dataset")  # versions 1-4, an object each
        compactor = where.log(grace=0.0)  # every object a segment covers may go
        counted = Counted(compactor.objects)
        compactor.objects = counted
        records = a._engine.mirror.raw  # type: ignore[union-attr]
        assert compactor.compact(lambda lo, hi: [records(lo, hi)], 4) == (4, 4)
        assert "log/" in counted.listed and where.names("log/") == []
        _offer(b, [50], [5], "b")
        _contended(a).add_labels([60], [6], relative_to="dataset")  # versions 5-6: one object
        a.add_labels([70], [7], relative_to="dataset")
        assert where.names("log/") == [f"log/{5:020d}", f"log/{7:020d}"]
        segments_listed = len(where.names("segments/"))
        counted.listed.clear()
        assert compactor.compact(lambda lo, hi: [records(lo, hi)], 7) == (3, 3)
        assert "log/" not in counted.listed  # by name: log/5, log/6 (none), log/7
        assert where.names("log/") == []
        assert len(where.names("segments/")) == segments_listed + 1
        assert compactor.compact(lambda lo, hi: [records(lo, hi)], 7) == (0, 0)
    with where.open(mode="r") as fresh:  # from the segments alone
        assert fresh.version == 7
        assert labeled_of(fresh) == {0: 1, 1: 1, 2: 1, 3: 1, 50: 5, 60: 6, 70: 7}
        assert [len(e.dataset_indices) for e in fresh.history()] == [1] * 7


@settings(max_examples=200, deadline=None)
@given(
    base=st.integers(0, 10**19),
    batch=st.text("0123456789abcdef", min_size=1, max_size=32),
    sealed=st.none() | st.binary(max_size=300),
)
def test_a_pending_name_gives_back_what_it_carries(
    base: int, batch: str, sealed: bytes | None
) -> None:
    pending = Pending.named(base, batch, sealed)
    assert Pending.parse(pending.name) == pending
    assert Pending.parse(pending.name.replace("-", "~", 1)) is None


def test_a_small_offer_travels_in_its_name(where: Where) -> None:
    """In object storage a batch whose object fits in its name is listed with it: the
    carrier fetches no pending object but those too long for a name."""
    remote = where.options is not None
    with where.create(200) as a, where.open() as b:
        a.add_labels([1], [1], relative_to="dataset")
        small = _offer(b, [5, 6], [2, 2], "b")
        big = _offer(b, list(range(100, 190)), [3] * 90, "b")  # a record of ~1.6 KB
        assert (small.sealed is not None) == remote and big.sealed is None
        assert len(small.name) < 1024 - len(where.location)
        objects = where.log().objects
        assert sorted(where.names("pending/")) == sorted([small.name, big.name])
        assert (objects.get(small.name) == b"") == remote  # the name holds it all
        log = a._engine.mirror.log
        real = log.objects
        log.objects = counted = Counted(real)
        try:
            _contended(a).add_labels([7], [3], relative_to="dataset", annotator="a")
        finally:
            log.objects = real
        fetched = [name for name in counted.got if name.startswith("pending/")]
        assert fetched == ([big.name] if remote else sorted([small.name, big.name]))
        assert labeled_of(a) == {1: 1, 5: 2, 6: 2, 7: 3, **dict.fromkeys(range(100, 190), 3)}
        assert a.version == 4 and a.verify()["records"] == 4
    assert _records_per_object(where) == [1, 3]
    assert not where.names("pending/")


def test_a_storage_that_refuses_long_names_gets_offers_in_objects(where: Where) -> None:
    """Some S3-compatible servers take path segments of 255 bytes only: the first offer
    refused there goes in its object, and so do the later ones (a wrapper refuses here;
    the storage behind it is real)."""
    with where.create(100) as a, where.open() as b:
        a.add_labels([1], [1], relative_to="dataset")
        log = b._engine.mirror.log
        real, refused = log.objects, []

        class Refusing:
            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

            def put(self, name: str, data: bytes, *, durable: bool = True) -> None:
                if len(name.rsplit("/", 1)[1]) > 255:
                    refused.append(name)
                    raise StorageUnavailableError(f"{name}: KeyTooLongError")
                real.put(name, data, durable=durable)

        log.objects = Refusing()
        try:
            first = _offer(b, [5], [2], "b")
            second = _offer(b, [6], [2], "b")
        finally:
            log.objects = real
        assert len(refused) == (0 if where.options is None else 1)  # then no more tries
        assert first.sealed is None and second.sealed is None
        assert sorted(where.names("pending/")) == sorted([first.name, second.name])
        _contended(a).add_labels([7], [3], relative_to="dataset")
        assert labeled_of(a) == {1: 1, 5: 2, 6: 2, 7: 3}


def test_a_damaged_name_never_lands(where: Where) -> None:
    """A name that does not decode, or carries what is not this store's offer: never lands."""
    with where.create(100) as a, where.open() as b:
        a.add_labels([1], [1], relative_to="dataset")
        objects = where.log().objects
        objects.put(f"pending/{1:020d}-{'a' * 32}.not*base64", b"")
        objects.put(Pending.named(1, "b" * 32, b"not an object").name, b"")
        if where.options is not None:  # another store's offer (too long for a file's name)
            body = _event(2, [40], "c" * 32).encode(np.dtype(np.int64))
            sealed = seal(uuid.uuid4().bytes, 2, 1, 0, body)
            objects.put(Pending.named(1, "c" * 32, sealed).name, b"")
        good = _offer(b, [50], [5], "b")
        _contended(a).add_labels([7], [3], relative_to="dataset")
        assert labeled_of(a) == {1: 1, 7: 3, 50: 5}
        assert [e.batch for e in a.history()][-1] == good.batch
        assert a.verify()["records"] == 3


def test_a_writer_that_met_others_waits_for_a_carrier_at_most_a_while(
    where: Where, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer whose last commits met others offers its batch and waits for the writer
    of the newest commit to carry it (object storage), on an injected clock: alone, it
    waits its patience once, then carries itself, and waits no more."""
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    clock = types.SimpleNamespace(
        monotonic=lambda: now[0], perf_counter=time.perf_counter, sleep=sleep
    )
    monkeypatch.setattr(commit_module, "time", clock)
    with where.create(100) as a, where.open() as b:
        a.add_labels([1], [1], relative_to="dataset")
        b._engine.pull()
        writer = _contended(b)._writer
        writer._met_lately = True  # as after commits another writer carried
        b.add_labels([2], [2], relative_to="dataset")
        first, slept[:] = sum(slept), []
        b.add_labels([3], [3], relative_to="dataset")
        assert sum(slept) == 0  # now it wrote the newest commit: it carries
        if where.options is None:
            assert first == 0  # in a directory it waits for an older offer only
        else:
            assert commit_module.FOLLOW_MAX <= first <= writer._patience() + 0.01
        assert labeled_of(b) == {1: 1, 2: 2, 3: 3}
        assert b.version == 3
    assert not where.names("pending/")


def test_a_writer_in_a_directory_that_met_others_offers_before_it_creates(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a directory a writer that met others offers its batch even when no other offer
    waits: a writer of the same moment then waits for it instead of racing it for the
    version (a create lost costs an ``fsync``). Alone, it carries its own offer at once."""
    with alma_store.create(tmp_path / "s", n_items=100, shared=True) as a:
        a.add_labels([1], [1], relative_to="dataset")
        offered: list[int] = []
        real_offer = a._writer._offer

        def offer(event: LabelEvent) -> Pending:
            offered.append(event.version)
            return real_offer(event)

        monkeypatch.setattr(a._writer, "_offer", offer)
        _contended(a).add_labels([2], [2], relative_to="dataset")
        assert offered == [2]
        assert [e.batch is not None for e in a.history()] == [False, True]
        assert a.version == 2 and labeled_of(a) == {1: 1, 2: 2}
        assert not DirObjects(tmp_path / "s").list("pending/")  # withdrawn once it landed


def test_format_8_commit_objects_hold_one_record(tmp_path) -> None:
    objects = DirObjects(tmp_path)
    store_id = b"u" * 16
    log = SharedLog(objects, uuid=store_id, groups=False)
    records = [_event(v, [v]).encode(np.dtype(np.int64)) for v in (1, 2)]
    with pytest.raises(ValueError, match="holds one record"):
        log.publish(1, records)
    objects.create("log/00000000000000000001", seal(store_id, 1, 2, 0, b"".join(records)))
    reader = SharedLog(objects, uuid=store_id, groups=False)
    with pytest.raises(CorruptStoreError, match="2 records, not one"):
        list(reader.read_after(0))
    grouped = SharedLog(objects, uuid=store_id, groups=True)
    assert [v for v, _ in grouped.read_after(0)] == [1, 2]


# -- kills -----------------------------------------------------------------------------

OFFER_AND_DIE = r"""
import json, sys
import alma_store
from alma_store.engine import _commit
location, options = sys.argv[1], json.loads(sys.argv[2]) or None
store = alma_store.open(location, storage_options=options)
store._writer.offers = True
store._writer._contended = _commit.CONTENDED_COMMITS
store._writer._met_lately = True  # as after commits another writer carried
_commit.FOLLOW_MAX = 0.0
store.add_labels([42, 43], [4, 4], relative_to="dataset", annotator="killed")
"""


def test_a_writer_killed_after_offering_its_batch(where: Where) -> None:
    """Killed at ``group-offered`` (it offered its batch, as writers do while another
    writer's batch waits): its batch lands once in a later commit, or never."""
    with where.create(100) as a, where.open() as b:
        a.add_labels([1], [1], relative_to="dataset")
        waiting = _offer(b, [60], [6], "b")
        proc = run_crashing(
            OFFER_AND_DIE, where.location, json.dumps(where.options), crash="group-offered:1"
        )
        assert proc.returncode == -9, proc.stderr
        assert len(where.names("pending/")) == 2 and waiting.name in where.names("pending/")
        _contended(a).add_labels([7], [3], relative_to="dataset", annotator="a")
        labels = labeled_of(a)
        assert labels == {1: 1, 7: 3, 42: 4, 43: 4, 60: 6}  # the killed writer's: not lost
        history = list(a.history())
        assert [e.annotator for e in history[:2]] == [None, "a"]
        assert sorted(e.annotator for e in history[2:]) == ["b", "killed"]
        _contended(a).add_labels([8], [3], relative_to="dataset")
        assert labeled_of(a) == {**labels, 8: 3}  # and never again
        assert not where.names("pending/")
        assert a.verify()["records"] == 5
    assert _records_per_object(where)[:2] == [1, 3]


CARRY_AND_DIE = r"""
import json, sys
import alma_store
from alma_store.engine import _commit
location, options = sys.argv[1], json.loads(sys.argv[2]) or None
store = alma_store.open(location, storage_options=options)
store._writer.offers = True
store._writer._contended = _commit.CONTENDED_COMMITS
store.add_labels([9], [5], relative_to="dataset", annotator="carrier")
"""


def test_a_writer_killed_after_carrying_others_batches(
    where: Where, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed at ``group-carried``: the carried batches are in; their stale offers are
    recognised as landed (nobody waits on them) and removed once their window passed."""
    with where.create(200) as b:
        b.add_labels([1], [1], relative_to="dataset")
        pending = _offer(b, [5], [2], "b")
        proc = run_crashing(
            CARRY_AND_DIE, where.location, json.dumps(where.options), crash="group-carried:1"
        )
        assert proc.returncode == -9, proc.stderr
        names = where.names("pending/")
        assert pending.name in names  # not removed: their carrier died
        # In a directory the carrier offered its own batch too (another one waited); in
        # object storage a carrier offers none.
        assert len(names) == (2 if where.options is None else 1)
        b._engine.pull()
        landed = b._writer._landed(pending)
        assert landed is not None and landed.annotator == "b"

    def never(seconds: float) -> None:
        raise AssertionError(f"a lone writer waited {seconds} s (it followed a landed offer)")

    clock = types.SimpleNamespace(monotonic=time.monotonic, perf_counter=time.perf_counter)
    monkeypatch.setattr(commit_module, "FOLLOW_MAX", 1e9)
    monkeypatch.setattr(commit_module, "time", types.SimpleNamespace(**vars(clock), sleep=never))
    with where.open() as c:
        for k in range(3):
            _contended(c).add_labels([100 + k], [1], relative_to="dataset")
        assert labeled_of(c) == {1: 1, 9: 5, 5: 2, 100: 1, 101: 1, 102: 1}
        assert [e.annotator for e in c.history()][:3] == [None, "carrier", "b"]


def test_offered_batches_wait_where_requests_are_cheap(where: Where) -> None:
    """Writers offer everywhere. In a directory a writer whose batch is offered waits for
    the writer of the oldest offer; in object storage, for the writer of the newest commit."""
    with where.create(10) as store:
        assert store._engine.groups and store._engine.offers
        assert store._engine.offers_wait == (where.options is None)
