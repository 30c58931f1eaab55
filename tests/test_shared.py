"""Shared stores (format 5): commit objects, no lock, on a directory and on a local S3 server.

The S3 server is moto on 127.0.0.1 and a free port, in its own process
(``tools/s3_server.py``). Every test that takes ``where`` runs twice: on a
directory and on S3. Writer processes on a directory run with ``flock``
removed, as on a filesystem that has none.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import alma_store
from alma_store import (
    AlreadyLabeledError,
    ReadOnlyError,
    StaleIndexError,
    StoreExistsError,
    UnsupportedStorageError,
)

from .conftest import (
    REPO,
    S3,
    Counted,
    Where,
    check_workers_reopen,
    labeled_of,
    start_together,
)

pytest.importorskip("obstore")
pytest.importorskip("moto.server")


# -- the model ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_two_handles_against_a_plain_model(where: Where, seed: int) -> None:
    """Random adds, relabels and removes through two handles; every state is the model's."""
    rng = random.Random(seed)
    n = 120
    first = where.create(n, chunk_rows=16)
    second = where.open()
    model: dict[int, int] = {}
    states = [dict(model)]
    for _ in range(40):
        store = rng.choice([first, second])
        free = [i for i in range(n) if i not in model]
        kind = rng.choice(["add", "add", "position", "relabel", "remove"])
        if kind == "add" or (kind in ("relabel", "remove") and not model):
            items = rng.sample(free, rng.randint(1, 6))
            values = [rng.randint(0, 4) for _ in items]
            store.add_labels(items, values, relative_to="dataset")
        elif kind == "position":
            positions = sorted(rng.sample(range(len(free)), 2))
            values = [rng.randint(0, 4) for _ in positions]
            items = store.add_labels(positions, values).tolist()  # positions: at the newest
            assert items == [free[p] for p in positions]
        elif kind == "relabel":
            items = rng.sample(sorted(model), min(3, len(model)))
            values = [rng.randint(0, 4) for _ in items]
            store.relabel(items, values)
        else:
            items = rng.sample(sorted(model), min(2, len(model)))
            store.remove_labels(items)
            for i in items:
                del model[i]
            states.append(dict(model))
            continue
        model.update(zip(items, values, strict=True))
        states.append(dict(model))
    for store in (first, second):
        assert store.version == len(states) - 1
        assert labeled_of(store) == model
    with where.open(mode="r") as fresh:
        assert labeled_of(fresh) == model
        for version in rng.sample(range(len(states)), 8):
            assert labeled_of(fresh.at(version=version)) == states[version]  # type: ignore[arg-type]
        assert [e.version for e in fresh.history()] == list(range(1, len(states)))
        assert fresh.verify()["records"] == len(states) - 1
    first.close()
    second.close()


def test_a_store_is_created_once_and_refuses_what_it_cannot_hold(where: Where) -> None:
    where.create().close()
    with pytest.raises(StoreExistsError):
        where.create()
    with where.open() as store:
        store.add_labels([1], [2], relative_to="dataset")
        with pytest.raises(AlreadyLabeledError):
            store.add_labels([1, 3], [2, 2], relative_to="dataset")  # nothing of it written
        with pytest.raises(StaleIndexError):
            store.add_labels([3], [1], relative_to="dataset", expected_version=0)
        assert store.version == 1 and labeled_of(store) == {1: 2}
    assert where.names("log/") == ["log/00000000000000000001"]


# -- writer processes -------------------------------------------------------------

WRITER = r"""
import json, os, sys
if sys.argv[3] == "noflock":  # a filesystem without locks: any flock fails
    import errno, fcntl
    def refuse(*args, **kwargs):
        raise OSError(errno.ENOLCK, "no locks on this filesystem")
    fcntl.flock = fcntl.lockf = refuse
import numpy as np
import alma_store
location, options, _, worker, n = sys.argv[1], json.loads(sys.argv[2]), *sys.argv[3:]
worker, n = int(worker), int(n)
store = alma_store.open(location, storage_options=options or None)
print("ready", flush=True)
sys.stdin.readline()
for c in range(n):
    if c % 2:  # the first unlabeled item, whichever that is when the commit lands
        got = store.add_labels([0], [worker], annotator=f"w{worker}")
    else:
        got = store.add_labels([1000 + 100 * worker + c], [worker], relative_to="dataset",
                               annotator=f"w{worker}")
    print(json.dumps({"items": got.tolist(), "version": store.version}), flush=True)
store.close()
"""


def run_writers(
    where: Where, mode: str, writers: int = 4, n: int = 15
) -> tuple[list[list[int]], dict[int, list[int]]]:
    """Each writer's acknowledged items, and which writers saw each version right after a commit."""
    options = json.dumps(where.options or {})
    procs = start_together(
        WRITER, [[where.location, options, mode, str(w), str(n)] for w in range(writers)]
    )
    acked, seen = [], {}
    for w, proc in enumerate(procs):
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        acked.append([item for line in lines for item in line["items"]])
        for line in lines:
            seen.setdefault(line["version"], []).append(w)
    return acked, seen


def test_four_writer_processes_lose_and_double_nothing(where: Where) -> None:
    where.create(2000).close()
    mode = "noflock" if where.options is None else "s3"
    acked, seen = run_writers(where, mode)
    with where.open(mode="r") as store:
        labels = labeled_of(store)
        lost = [(w, i) for w, items in enumerate(acked) for i in items if labels.get(i) != w]
        twice = {v: ws for v, ws in seen.items() if len(ws) > 1}
        assert not lost, (
            f"acknowledged (writer, item) pairs missing: {lost}; versions that more than one "
            f"writer stood at right after its commit: {twice} (two writers told they created "
            "one commit object: the storage's create-if-absent is not atomic)"
        )
        assert store.version == 60  # gapless: one version per commit
        history = store.history()
        assert [e.version for e in history] == list(range(1, 61))
        assert all(len(e.dataset_indices) == 1 for e in history)
        for worker, items in enumerate(acked):
            assert len(items) == 15
            assert all(labels[i] == worker for i in items)  # every acknowledged label is there
        assert sorted(i for items in acked for i in items) == sorted(labels)  # nothing else
        assert store.verify()["records"] == 60
    # One commit object per version, or (group commits) several writers' batches in one.
    firsts = [int(name.rsplit("/", 1)[1]) for name in where.names("log/")]
    assert firsts[0] == 1 and len(firsts) <= 60
    assert not where.names("pending/")  # every offered batch withdrawn once it landed


# -- kills ------------------------------------------------------------------------

KILLED = r"""
import json, sys
import alma_store
location, options = sys.argv[1], json.loads(sys.argv[2]) or None
store = alma_store.open(location, storage_options=options)
for c in range(4):
    store.add_labels([10 + c], [1], relative_to="dataset")
    print(store.version, flush=True)
"""


@pytest.mark.parametrize(
    ("point", "durable"),
    [("commit-object", 3), ("append-torn", 4)],  # before the create / after it, unacknowledged
)
def test_a_writer_killed_mid_commit(where: Where, point: str, durable: int) -> None:
    where.create().close()
    env = {**os.environ, "PYTHONPATH": str(REPO), "ALMA_STORE_CRASH": f"{point}:4"}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, where.location, json.dumps(where.options)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = child.communicate(timeout=300)
    assert child.returncode == -9, err
    assert out.split() == ["1", "2", "3"]  # three acknowledged
    left = Path(tempfile.gettempdir()).glob(f"alma-mirror-{child.pid}-*")
    assert len(list(left)) == 1  # the killed writer's private mirror, until the next open
    with where.open() as store:
        assert store.version == durable
        assert labeled_of(store) == {10 + c: 1 for c in range(durable)}  # all or nothing
        store.add_labels([50], [2], relative_to="dataset")
        assert store.version == durable + 1
        assert store.verify()["records"] == durable + 1
    assert not list(Path(tempfile.gettempdir()).glob(f"alma-mirror-{child.pid}-*"))
    assert not [n for n in where.names("log/") if ".tmp" in n]


KILLED_COMPACTOR = r"""
import json, sys
import alma_store
location, options = sys.argv[1], json.loads(sys.argv[2]) or None
store = alma_store.open(location, storage_options=options)
store._engine.mirror.compact(min_records=1)
"""


def test_a_compactor_killed_between_segment_and_deletes(where: Where) -> None:
    with where.create() as store:
        for c in range(12):
            store.add_labels([c], [c % 3], relative_to="dataset")
        expected = labeled_of(store)
    env = {**os.environ, "PYTHONPATH": str(REPO), "ALMA_STORE_CRASH": "compact-segment:1"}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_COMPACTOR, where.location, json.dumps(where.options)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr
    assert len(where.names("segments/")) == 1 and len(where.names("log/")) == 12  # both
    with where.open() as store:
        assert store.version == 12 and labeled_of(store) == expected  # each version once
        store.add_labels([100], [1], relative_to="dataset")
    # The lease of the killed compactor is left; once it expires, compaction goes on.
    held = where.log(grace=0.0)  # the lease holds: by the storage's clock it is fresh
    with where.open(mode="r") as reader:
        mirror = reader._engine.mirror
        assert mirror is not None
        assert held.compact(lambda a, b: [mirror.raw(a, b)], 13) == (0, 0)
        stamped = held.objects.modified("lease/compact")
        assert stamped is not None
        log = where.log(grace=0.0, storage_clock=lambda: stamped + 120.0)  # 2 minutes on
        assert log.compact(lambda a, b: [mirror.raw(a, b)], 13) == (1, 13)
    assert where.names("log/") == []
    with where.open(mode="r") as fresh:
        assert fresh.version == 13 and labeled_of(fresh) == {**expected, 100: 1}


# -- compaction and readers -----------------------------------------------------------


def test_readers_stay_exact_while_the_log_is_compacted(where: Where) -> None:
    writer = where.create(400, chunk_rows=32)
    states = [labeled_of(writer)]
    for c in range(30):
        writer.add_labels([c * 7 % 400, (c * 7 + 1) % 400], [c % 5, 1], relative_to="dataset")
        states.append(labeled_of(writer))
    before = where.open(mode="r")  # all from log objects
    assert before._engine.mirror is not None
    keep = where.log()  # default grace: a segment, no deletes
    assert keep.compact(lambda a, b: [before._engine.mirror.raw(a, b)], 30) == (30, 0)
    during = where.open(mode="r")  # a segment and every log object it covers
    drop = where.log(grace=0.0)
    assert drop.compact(lambda a, b: [before._engine.mirror.raw(a, b)], 30) == (0, 30)
    after = where.open(mode="r")  # the segment only
    for c in range(30, 36):
        writer.add_labels([c * 7 % 400], [2], relative_to="dataset")
        states.append(labeled_of(writer))
    for reader in (before, during, after):
        assert reader.version == 36  # each takes in the newest commits
        for version in (0, 1, 17, 29, 30, 31, 36):
            assert labeled_of(reader.at(version=version)) == states[version]  # type: ignore[arg-type]
        reader.close()
    assert where.names("log/") == [f"log/{v:020d}" for v in range(31, 37)]
    writer.close()


def test_a_first_read_fetches_the_log_objects_listed(where: Where) -> None:
    """A reader catching up from far behind asks object storage for the log objects a
    listing finds and one more, never for names not created yet, and takes the missing one
    for the end without listing again; a log folded and deleted between that listing and
    the fetch is read from its segment."""
    writer = where.create(400)
    for c in range(12):
        writer.add_labels([c], [c % 5], relative_to="dataset")
    want = [(v, r) for v, r in where.log().read_after(0)]
    assert [v for v, _ in want] == list(range(1, 13))

    log = where.log()
    log.objects = counted = Counted(log.objects)
    assert list(log.read_after(0)) == want
    logs = [n for n in counted.got if n.startswith("log/")]
    if where.options is None:  # a directory: a fetch of 32, no listing needed
        assert len(logs) == 32
    else:  # exactly the 12 listed and the 13th, where the log ends
        assert logs == [f"log/{v:020d}" for v in range(1, 14)]
        assert counted.listed == ["segments/", "log/"]  # and no listing at the end

    now = [0.0]  # the listing is older than grace / 2 by the fetch: the end is checked
    log = where.log(grace=10.0, clock=lambda: now[0])
    log.objects = counted = Counted(log.objects, lambda: now.__setitem__(0, 6.0))
    assert list(log.read_after(0)) == want
    if where.options is not None:
        assert counted.listed == ["segments/", "log/", "segments/", "log/"]

    log = where.log()
    folder = where.log(grace=0.0)
    raw = writer._engine.mirror
    assert raw is not None
    log.objects = Counted(
        log.objects, lambda: folder.compact(lambda a, b: [raw.raw(a, b)], 12) and None
    )
    assert list(log.read_after(0)) == want
    assert where.names("log/") == [] and len(where.names("segments/")) == 1
    writer.close()


def test_an_attempt_slower_than_half_the_grace_looks_again(where: Where) -> None:
    """A name freed by compaction could be created twice; a slow attempt never tries it."""
    where.create().close()
    now = [0.0]
    log = where.log(grace=10.0, clock=lambda: now[0])
    assert list(log.read_after(0)) == []
    now[0] = 6.0  # more than grace / 2 after the end was seen
    assert log.publish(1, [b"whatever"]) == []  # too late: read the log again
    assert where.names("log/") == []
    with where.open() as store:
        mirror = store._engine.mirror
        assert mirror is not None
        mirror.log.clock = lambda: now[0]
        store.add_labels([5], [1], relative_to="dataset")  # looks again, then commits
        now[0] = 20.0
        store.add_labels([6], [1], relative_to="dataset")
        assert store.version == 2


def test_writers_compact_as_they_go(where: Where) -> None:
    from alma_store.engine import COMPACT_EVERY

    store = where.create(1000)
    every = COMPACT_EVERY
    batch = [[i] for i in range(every + 3)]
    for items in batch:
        store.add_labels(items, [1], relative_to="dataset")
    assert where.names("segments/") == [f"segments/{every:020d}-{1:020d}"]
    with where.open(mode="r") as fresh:
        assert fresh.version == every + 3 and len(fresh.labeled) == every + 3
    store.close()


def test_the_test_server_has_one_winner_per_conditional_create(s3: S3) -> None:
    """Processes race conditional creates of the same keys: exactly one wins each, as on S3."""
    code = r"""
import json, sys
from alma_store.storage import Location, open_objects
objects = open_objects(Location.parse(sys.argv[1], json.loads(sys.argv[2])))
print("ready", flush=True)
sys.stdin.readline()
won = [k for k in range(60) if objects.create(f"race/{k}", sys.argv[3].encode())]
print(json.dumps(won))
"""
    where = f"s3://bkt/{uuid.uuid4().hex}"
    procs = start_together(
        code, [[where, json.dumps(s3.options()), f"writer-{w}"] for w in range(4)]
    )
    winners: dict[int, list[int]] = {}
    for w, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        for k in json.loads(out):
            winners.setdefault(k, []).append(w)
    assert {k: ws for k, ws in winners.items() if len(ws) != 1} == {}
    assert sorted(winners) == list(range(60))
    from alma_store.storage import Location, open_objects

    objects = open_objects(Location.parse(where, s3.options()))
    for k, (w,) in winners.items():
        assert objects.get(f"race/{k}") == f"writer-{w}".encode()  # the winner's bytes


# -- storage that cannot hold a shared store ---------------------------------------------


def test_a_bucket_without_conditional_writes_is_refused_and_nothing_written() -> None:
    server = S3("no-conditional")
    try:
        with pytest.raises(UnsupportedStorageError, match="conditional writes"):
            alma_store.create("s3://bkt/st", n_items=10, storage_options=server.options())
        assert server.keys() == []
    finally:
        server.stop()


def test_read_only_credentials(tmp_path: Path) -> None:
    server = S3("read-only")
    try:
        with pytest.raises(ReadOnlyError, match="may not write"):
            alma_store.create("s3://bkt/st", n_items=10, storage_options=server.options("reader"))
        assert server.keys() == []
        with alma_store.create("s3://bkt/st", n_items=10, storage_options=server.options()) as s:
            s.add_labels([1], [1], relative_to="dataset")
        before = server.keys()
        with alma_store.open("s3://bkt/st", storage_options=server.options("reader")) as s:
            assert s.version == 1 and labeled_of(s) == {1: 1}
            with pytest.raises(ReadOnlyError, match="may not write"):
                s.add_labels([2], [1], relative_to="dataset")
            assert s.version == 1
        assert server.keys() == before
    finally:
        server.stop()


# -- the campaign log ---------------------------------------------------------------

CLAIMER = r"""
import json, sys
import alma_store
location, options, annotator = sys.argv[1], json.loads(sys.argv[2]) or None, sys.argv[3]
store = alma_store.open(location, storage_options=options)
print("ready", flush=True)
sys.stdin.readline()
got = [store.claim_next(3, annotator=annotator, ttl=3600).dataset_indices.tolist() for _ in range(4)]
store.log_metrics(round=1, claimed=sum(map(len, got)))
print(json.dumps(got), flush=True)
"""


def test_claims_and_metrics_from_four_processes(where: Where) -> None:
    where.create(200, chunk_rows=16).close()
    argv = [[where.location, json.dumps(where.options), f"w{k}"] for k in range(4)]
    procs = start_together(CLAIMER, argv)
    results = [json.loads(p.communicate(timeout=600)[0].splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    items = [i for got in results for claim in got for i in claim]
    assert sorted(items) == list(range(48))  # every item claimed once, the first 48 in order
    with where.open() as store:
        claims = store.claims()
        assert len(claims) == 16 and {c.annotator for c in claims} == {"w0", "w1", "w2", "w3"}
        assert [m["claimed"] for m in store.metrics()] == [12] * 4
        held = claims[0]
        with pytest.raises(alma_store.ClaimedError):
            store.claim(held.dataset_indices[:1], annotator="someone else", ttl=60)
        assert store.release(held) and not store.release(held)
        assert store.verify()["campaign_records"] == 16 + 4 + 1


# -- scoring and workers --------------------------------------------------------------


def norm_score(rows: np.ndarray) -> np.ndarray:
    """A module-level scoring function (workers unpickle it)."""
    return np.linalg.norm(rows, axis=1)


def with_features(
    where: Where, tmp_path: Path, seed: int, **kwargs: Any
) -> tuple[alma_store.Store, np.ndarray]:
    """A shared store at ``where`` over 300 x 3 random features in a local ``.npy``."""
    x = np.random.default_rng(seed).normal(size=(300, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    store = alma_store.create(
        where.location,
        str(tmp_path / "x.npy"),
        chunk_rows=32,
        shared=True,
        storage_options=where.options,
        **kwargs,
    )
    return store, x


def test_scoring_runs_live_with_the_store(where: Where, tmp_path: Path) -> None:
    store, x = with_features(where, tmp_path, 3)
    store.add_labels([0, 5, 9], [1, 1, 1], relative_to="dataset")
    store.score(norm_score, "norm", plan=lambda done, total: None)
    unlabeled = np.setdiff1d(np.arange(300), [0, 5, 9])
    best = unlabeled[np.argsort(-norm_score(x[unlabeled]), kind="stable")[:7]]
    with where.open(mode="r") as other:  # another process's view of the same run
        assert other.top_k("norm", 7).dataset_indices.tolist() == best.tolist()
    assert any(n.startswith("scores/norm/steps/") for n in where.names("scores/norm/steps/"))
    store.close()


def test_selections_and_requirements_live_with_the_store(where: Where, tmp_path: Path) -> None:
    """A named selection's picks and a campaign's requirements are read by another handle."""
    store, _ = with_features(where, tmp_path, 4, annotations_per_item=2)
    store.add_labels([0, 5], [1, 1], relative_to="dataset", annotator="a")
    store.add_labels([0, 5], [1, 1], relative_to="dataset", annotator="b")
    picks = store.select(6, name="round-1")
    store.require_annotations(3, picks.dataset_indices[:2])
    with where.open(mode="r") as other:
        assert other.selection("round-1").dataset_indices.tolist() == picks.dataset_indices.tolist()
        assert other.required_annotations(picks.dataset_indices[:3]).tolist() == [3, 3, 2]
    assert any(n.startswith("selections/round-1/") for n in where.names("selections/round-1/"))
    store.close()


@pytest.mark.slow
def test_dask_and_torch_workers_reopen_by_url(s3: S3, tmp_path: Path) -> None:
    x = np.random.default_rng(4).normal(size=(500, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    location = f"s3://bkt/{uuid.uuid4().hex}"
    store = alma_store.create(
        location, str(tmp_path / "x.npy"), chunk_rows=64, storage_options=s3.options()
    )
    store.add_labels([3, 400], [1, 2], relative_to="dataset")
    check_workers_reopen(store, x, norm_score, 5, (400, 2))
    store.close()


# -- copies -------------------------------------------------------------------------


def history_of(store: alma_store.Store) -> list[tuple[Any, ...]]:
    return [
        (
            e.version,
            e.kind,
            e.dataset_indices.tolist(),
            np.asarray(e.values).tolist(),
            e.time,
            e.annotator,
            e.round,
        )
        for e in store.history()
    ]


def test_copy_to_shared_storage_and_back(where: Where, tmp_path: Path) -> None:
    x = np.random.default_rng(6).normal(size=(150, 2))
    np.save(tmp_path / "x.npy", x)
    if where.options is not None:  # in-memory features cannot go to object storage
        alma_store.create(tmp_path / "inside", x).close()
        with pytest.raises(alma_store.InvalidInputError, match="by URL"):
            alma_store.copy(tmp_path / "inside", where.location, dst_storage_options=where.options)
        assert where.names("") == []
    # A directory store takes the array in (copied with it); S3 takes the .npy by path.
    features = x if where.options is None else str(tmp_path / "x.npy")
    with alma_store.create(tmp_path / "local", features, chunk_rows=16) as store:
        store.add_labels([1, 2, 3], [0, 1, 0], relative_to="dataset", annotator="ann", round=1)
        store.relabel([2], [5])
        store.remove_labels([1])
        store.claim([40, 41], annotator="ann", ttl=3600)
        store.log_metrics(round=1, accuracy=0.5)
        store.add_labels([(0, 3)], round=2)
        expected = (history_of(store), labeled_of(store), store.metrics())
    summary = alma_store.copy(
        tmp_path / "local", where.location, shared=True, dst_storage_options=where.options
    )
    assert summary == {"version": 4, "campaign_records": 2}
    with where.open() as shared:
        assert (history_of(shared), labeled_of(shared), shared.metrics()) == expected
        assert [c.dataset_indices.tolist() for c in shared.claims()] == [[40, 41]]
        shared.add_labels([100], [1], relative_to="dataset")  # it goes on from there
        expected = (history_of(shared), labeled_of(shared), shared.metrics())
    alma_store.copy(where.location, tmp_path / "back", storage_options=where.options)
    with alma_store.open(tmp_path / "back") as back:
        assert (history_of(back), labeled_of(back), back.metrics()) == expected
        assert np.array_equal(np.asarray(back.features), x)
        assert back.verify()["records"] == 5
    with pytest.raises(StoreExistsError):
        alma_store.copy(
            tmp_path / "local", where.location, shared=True, dst_storage_options=where.options
        )


def test_cli_copy_and_info_by_url(s3: S3, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((80, 2)))
    with alma_store.create(tmp_path / "local", str(tmp_path / "x.npy")) as store:
        store.add_labels([3, 4], [1, 2], relative_to="dataset")
    key, secret = s3.info["writer"]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AWS_ENDPOINT_URL": s3.info["endpoint"],
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    url = f"s3://bkt/{uuid.uuid4().hex}"

    def alma(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "alma_store", *args],
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "1 versions" in alma("copy", str(tmp_path / "local"), url)
    info = json.loads(alma("info", url, "--json"))
    assert (info["path"], info["version"], info["num_labeled"]) == (url, 1, 2)
    alma("label", url, "10=1")
    assert json.loads(alma("info", url, "--json"))["version"] == 2


# -- clocks that disagree ------------------------------------------------------------

SKEWED = r"""
import json, sys, time
skew = float(sys.argv[3])
real = time.time
time.time = lambda: real() + skew  # this host's wall clock is off by skew seconds
import alma_store
from alma_store import ClaimedError
where, options = sys.argv[1], json.loads(sys.argv[2]) or None
with alma_store.open(where, storage_options=options) as store:
    out = {"live": sorted(c.annotator for c in store.claims())}
    try:
        store.claim([int(sys.argv[4])], annotator=sys.argv[5], ttl=600)
        out["claimed"] = True
    except ClaimedError:
        out["claimed"] = False
print(json.dumps(out))
"""


def test_hosts_an_hour_and_a_day_apart_agree_on_claims(where: Where) -> None:
    """Claims of a shared store expire by the storage's clock, not by each host's."""
    where.create(100).close()
    options = json.dumps(where.options)

    def host(skew: float, item: int, who: str) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-c", SKEWED, where.location, options, str(skew), str(item), who],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert host(0.0, 5, "here") == {"live": [], "claimed": True}
    # An hour ahead: the 10-minute claim made here is live there too.
    assert host(3600.0, 5, "ahead") == {"live": ["here"], "claimed": False}
    assert host(-86400.0, 5, "behind") == {"live": ["here"], "claimed": False}
    assert host(86400.0, 6, "day-ahead") == {"live": ["here"], "claimed": True}
    # Its claim, made by a clock a day ahead, is not a day long here either.
    assert host(0.0, 6, "here-again") == {"live": ["day-ahead", "here"], "claimed": False}


def test_a_lease_left_by_a_host_a_day_ahead_lapses_by_the_storage_clock(where: Where) -> None:
    with where.create(100) as store:
        for c in range(4):
            store.add_labels([c], [1], relative_to="dataset")
    log = where.log()
    objects = log.objects
    # A compactor on a host a day ahead wrote its lease (before format 8: an expiry a day
    # out, by its own clock) and was killed.
    objects.put("lease/compact", json.dumps({"holder": "x", "expires": 1e12}).encode())
    stamped = objects.modified("lease/compact")
    assert stamped is not None
    with where.open(mode="r") as reader:
        mirror = reader._engine.mirror
        assert mirror is not None
        records = lambda a, b: [mirror.raw(a, b)]
        held = where.log(storage_clock=lambda: stamped + 119.0)
        assert held.compact(records, 4) == (0, 0)  # still held, by the storage's clock
        lapsed = where.log(storage_clock=lambda: stamped + 121.0)
        assert lapsed.compact(records, 4) == (4, 0)  # two minutes on, whatever it said


# -- a network that fails --------------------------------------------------------------


def test_commits_through_a_faulty_network_lose_and_double_nothing(s3: S3) -> None:
    """Replies lost after the server applied a create, 500/503 before and after, stalls past
    the client's timeout: every acknowledged batch is in once, no batch twice, versions
    gapless; a commit that raised may or may not be in (its error says so), never twice."""
    from alma_store import StorageUnavailableError

    from .fault_proxy import FaultProxy, Rule

    location = f"s3://bkt/{uuid.uuid4().hex}"
    direct = s3.options()
    alma_store.create(location, n_items=100, storage_options=direct).close()
    rules = [
        Rule("PUT", "/log/", 2, "drop-after"),
        Rule("PUT", "/log/", 4, "error-after"),
        Rule("PUT", "/log/", 6, "error-before"),
        Rule("PUT", "/log/", 8, "stall-after"),
        Rule("PUT", "/log/", 10, "stall-before"),
        Rule("GET", "/log/", 3, "error-before"),
        Rule("GET", "/log/", 5, "drop-after"),
        Rule("GET", "/log/", 7, "stall-after"),
        Rule("PUT", "/campaign/", 1, "drop-after"),
        Rule("PUT", "/campaign/", 3, "error-after"),
    ]
    proxy = FaultProxy(direct["endpoint_url"], rules)
    try:
        faulty = {**direct, "endpoint_url": proxy.endpoint, "client_options": {"timeout": "1s"}}
        acked, unsure = [], []
        with alma_store.open(location, storage_options=faulty) as store:
            for c in range(14):
                try:
                    store.add_labels([c * 5], [c], relative_to="dataset", annotator=f"b{c}")
                    acked.append(c * 5)
                except StorageUnavailableError:
                    unsure.append(c * 5)
            claims = []
            for c in range(3):
                with contextlib.suppress(StorageUnavailableError):
                    claims.append(store.claim([90 + c], annotator=f"a{c}", ttl=1e9).id)
        assert len(proxy.hits) >= 8, proxy.hits  # the faults did happen
    finally:
        proxy.close()
    with alma_store.open(location, mode="r", storage_options=direct) as store:
        history = list(store.history())
        assert [e.version for e in history] == list(range(1, len(history) + 1))  # gapless
        items = [int(i) for e in history for i in e.dataset_indices]
        assert len(items) == len(set(items))  # no batch twice
        assert set(acked) <= set(items) <= set(acked) | set(unsure)  # every acknowledged one
        assert store.verify()["records"] == len(history)
        made = {c.id for c in store.claims()}
        assert set(claims) <= made and len(made) <= 3


def test_a_forked_child_uses_threads_of_its_own_or_says_it_cannot(where: Where) -> None:
    """The parent's threads are not in a ``fork``-ed child. In a directory, its background
    listings run on threads it makes; object storage's client cannot work there at all
    (its requests would wait forever), and says so at once."""
    with where.create() as store:
        for k in range(3):
            store.add_labels([k], [k], relative_to="dataset")
    log = where.log()
    names = [f"log/{v:020d}" for v in (1, 2, 3)]
    want = log.objects.get_many(names)  # the parent's threads exist now
    assert all(want)
    assert log.offered_meanwhile(3).result() == []
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process
        pid = os.fork()
    if pid == 0:  # the child: report, and leave without running the parent's exit code
        try:
            same = log.objects.get_many(names) == want and log.offered_meanwhile(3).result(60)
            os.write(write, b"same" if same == [] else b"different")
        except UnsupportedStorageError as exc:
            os.write(write, b"refused" if "forkserver" in str(exc) else b"unclear")
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 120)
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert ready, "the child's requests never returned"
    assert os.read(read, 100) == (b"same" if where.options is None else b"refused")
    os.close(read)
    log.close()
