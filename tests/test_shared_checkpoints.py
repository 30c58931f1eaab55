"""Shared checkpoints (format 7): an open reads the newest checkpoint and the log after it.

Every test runs on a directory and on a local S3 server (moto, 127.0.0.1). The
checkpoint interval is made small in-process (``COMPACT_EVERY``,
``SHARED_CHECKPOINT_EVERY``), and in child processes by the same assignment
before their first commit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import alma_store
from alma_store.engine import _commit as commit_module
from alma_store.engine import _open as open_module
from alma_store.storage import SHARED_FORMAT_VERSION, DirObjects, open_objects

from .conftest import REPO, Where, labeled_of

pytest.importorskip("obstore")

SMALL = (
    "import alma_store.engine._commit as c; c.COMPACT_EVERY = 8; c.SHARED_CHECKPOINT_EVERY = 16\n"
)


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compaction every 8 versions, a shared checkpoint every 16."""
    monkeypatch.setattr(commit_module, "COMPACT_EVERY", 8)
    monkeypatch.setattr(commit_module, "SHARED_CHECKPOINT_EVERY", 16)


def commit_many(store: alma_store.Store, first: int, count: int, model: dict[int, int]) -> None:
    for k in range(first, first + count):
        items = [(7 * k) % 200, (7 * k + 3) % 200]
        items = [i for i in items if i not in model]
        if items:
            store.add_labels(items, [k % 5] * len(items), relative_to="dataset", annotator=f"a{k}")
            model.update(dict.fromkeys(items, k % 5))


def chunk_files(store: alma_store.Store) -> int:
    return len(list((store._engine.root / "state").rglob("c/*")))


def test_an_open_starts_from_the_newest_checkpoint_and_fetches_chunks_when_read(
    where: Where, small: None
) -> None:
    model: dict[int, int] = {}
    with where.create(200, chunk_rows=16) as writer:
        assert writer.meta["format_version"] == SHARED_FORMAT_VERSION
        commit_many(writer, 0, 50, model)
        history = [(e.version, e.annotator) for e in writer.history()]
        sizes = [len(e.dataset_indices) for e in writer.history()]
        version = writer.version
    names = where.names("checkpoints/")
    assert 1 <= len(names) <= 2  # older manifests are deleted
    newest = int(names[-1].split("/")[1])
    assert newest >= 32 and where.names("chunks/")
    with where.open(mode="r") as reader:
        mirror = reader._engine.mirror
        assert mirror is not None and mirror.start == newest
        assert chunk_files(reader) == 0  # nothing fetched yet: the offset map needs no chunk
        assert reader.num_labeled == len(model)
        assert reader.unlabeled.to_dataset_index([0]).tolist() == [
            min(set(range(200)) - set(model))
        ]
        assert labeled_of(reader) == model  # reads labels: their chunk files are fetched now
        assert chunk_files(reader) > 0
        assert [(e.version, e.annotator) for e in reader.history()] == history  # from the log
        assert reader.version == version
        assert reader.verify()["records"] == version
        past = reader.at(version=3)  # before the checkpoint: the log's records
        assert past.num_labeled == sum(sizes[:3])
        assert len(past.labeled.labels) == sum(sizes[:3])


class MetaWaits:
    """A shared store's objects whose get of ``meta.json`` returns only once the listing of
    ``checkpoints/`` went out: an open that asked for them in turn fails."""

    def __init__(self, objects: Any) -> None:
        self.objects, self.sent = objects, threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.objects, name)

    def list_soon(self, prefix: str) -> Any:
        if prefix == "checkpoints/":
            self.sent.set()
        return self.objects.list_soon(prefix)

    def get(self, name: str) -> bytes | None:
        if name == "meta.json":
            assert self.sent.wait(30), "meta.json was read before the checkpoints were listed"
        return self.objects.get(name)


def test_an_open_lists_the_checkpoints_beside_the_get_of_its_meta(
    where: Where, small: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither needs the other, so in object storage both go out at once; the open then
    starts from the checkpoint that listing found."""
    model: dict[int, int] = {}
    with where.create(200, chunk_rows=16) as writer:
        commit_many(writer, 0, 20, model)  # publishes one
    newest = int(where.names("checkpoints/")[-1].split("/")[1])
    opened: list[MetaWaits] = []

    def waiting(objects: Any) -> MetaWaits:
        opened.append(MetaWaits(objects))
        return opened[-1]

    monkeypatch.setattr(open_module, "open_objects", lambda loc: waiting(open_objects(loc)))
    monkeypatch.setattr(open_module, "DirObjects", lambda root: waiting(DirObjects(root)))
    with where.open(mode="r") as reader:
        assert len(opened) == 1 and opened[0].sent.is_set()
        assert reader._engine.mirror.start == newest
        assert labeled_of(reader) == model


def test_readers_before_and_after_a_checkpoint_follow_later_commits(
    where: Where, small: None
) -> None:
    model: dict[int, int] = {}
    writer = where.create(200, chunk_rows=16)
    before = where.open(mode="r")  # no checkpoint yet: built from the log
    commit_many(writer, 0, 20, model)  # publishes one
    after = where.open(mode="r")  # starts from it
    assert after._engine.mirror.start > 0 and before._engine.mirror.start == 0
    commit_many(writer, 20, 30, model)  # more commits, another checkpoint
    for store in (before, after, writer):
        assert labeled_of(store) == model
        assert store.version == writer.version
    second = where.open()  # a second writer from the newest checkpoint
    commit_many(second, 50, 10, model)
    for store in (before, after, writer, second):
        assert labeled_of(store) == model
    for store in (before, after, writer, second):
        store.close()


KILLED = (
    SMALL
    + r"""
import json, sys
import alma_store
where, options = sys.argv[1], json.loads(sys.argv[2])
store = alma_store.open(where, storage_options=options)
for k in range(100):  # dies in the publish of a checkpoint (ALMA_STORE_CRASH)
    store.add_labels([k], [k % 3], relative_to="dataset")
    print(store.version, flush=True)
"""
)


@pytest.mark.parametrize("point", ["shared-checkpoint-chunks", "shared-checkpoint-manifest"])
def test_a_publisher_killed_at_each_point_loses_and_doubles_nothing(
    where: Where, small: None, point: str
) -> None:
    where.create(200, chunk_rows=16).close()
    env = {"ALMA_STORE_CRASH": f"{point}:1", "PYTHONPATH": str(REPO)}
    child = subprocess.run(
        [sys.executable, "-c", KILLED, where.location, json.dumps(where.options)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert child.returncode == -9, child.stderr  # SIGKILL at the point, mid-publish
    acknowledged = [int(v) for v in child.stdout.split()]
    assert acknowledged == list(range(1, len(acknowledged) + 1)) and len(acknowledged) >= 7
    model = {k: k % 3 for k in range(len(acknowledged))}
    with where.open() as store:  # a checkpoint before, or the log: every acknowledged label
        assert store.version >= len(acknowledged)  # the commit in flight may be in too
        got = labeled_of(store)
        assert {i: got[i] for i in model} == model
        commit_many(store, 100, 40, model)  # publishes over what the killed one left
        model = labeled_of(store)
    with where.open(mode="r") as reader:
        assert reader._engine.mirror.start > len(acknowledged)
        assert labeled_of(reader) == model
        assert reader.verify()["num_labeled"] == len(model)


def test_copy_to_a_shared_store_writes_a_checkpoint(where: Where, tmp_path: Path) -> None:
    local = alma_store.create(tmp_path / "local", n_items=300, chunk_rows=32)
    model: dict[int, int] = {}
    commit_many(local, 0, 60, model)
    local.close()  # checkpointed
    alma_store.copy(
        tmp_path / "local", where.location, dst_storage_options=where.options, shared=True
    )
    assert len(where.names("checkpoints/")) == 1
    with where.open(mode="r") as store:
        assert store._engine.mirror.start == store.version
        assert labeled_of(store) == model
        assert store.verify()["records"] == store.version
