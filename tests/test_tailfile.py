"""Tail files: an open replays only the commits after the newest one (format 6)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store import storage
from alma_store.engine import _commit as commit_module
from alma_store.engine import _engine as engine_module

from .conftest import run_python


def small_commits(path: Path, commits: int, n: int = 1000) -> None:
    with alma_store.create(path, n_items=n, chunk_rows=64) as store:
        for i in range(commits):
            store.add_labels([i * 3 % n], [i], relative_to="dataset", annotator=f"a{i % 3}")
        store.close(checkpoint=False)


def small_tails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tail file every 16 commits, of a writer that takes its own commits in every 16."""
    monkeypatch.setattr(engine_module, "TAIL_FILE_RECORDS", 16)
    monkeypatch.setattr(commit_module, "REFRESH_AFTER_EVENTS", 16)


def tail_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("tail-*.bin"))


def test_an_open_replays_only_the_commits_after_the_newest_tail_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_tails(monkeypatch)
    small_commits(tmp_path / "s", 100)
    assert len(tail_files(tmp_path / "s")) == 1  # older ones are removed
    newest = int(tail_files(tmp_path / "s")[0][5:-4])
    assert 100 - 32 <= newest <= 100  # saved when due, its own commits taken in every 16
    with alma_store.open(tmp_path / "s", mode="r") as store:
        tail = store._engine.tail
        assert tail.held_from == newest and len(tail.events) == 100 - newest
        loaded = (store.version, store.labels, np.asarray(store.labeled_mask))
        history = [(e.version, e.annotator) for e in store.history()]
        past = [np.asarray(store.at(version=v).labeled_mask) for v in (1, newest - 1, 99)]
    for path in tail_files(tmp_path / "s"):
        (tmp_path / "s" / path).unlink()
    with alma_store.open(tmp_path / "s", mode="r") as store:  # the journal alone agrees
        assert store._engine.tail.held_from == 0
        assert store.version == loaded[0] == 100
        assert np.array_equal(store.labels, loaded[1])
        assert np.array_equal(np.asarray(store.labeled_mask), loaded[2])
        assert [(e.version, e.annotator) for e in store.history()] == history
        for got, v in zip(past, (1, newest - 1, 99), strict=True):
            assert np.array_equal(np.asarray(store.at(version=v).labeled_mask), got)


def test_a_fresh_process_uses_the_tail_file_and_a_checkpoint_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_tails(monkeypatch)
    small_commits(tmp_path / "s", 60)
    out = run_python(
        "import sys, alma_store\n"
        "with alma_store.open(sys.argv[1], mode='r') as s:\n"
        "    print(s.version, s._engine.tail.held_from, s.verify()['num_labeled'])",
        str(tmp_path / "s"),
    )
    version, held_from, labeled = map(int, out.stdout.split())
    assert version == labeled == 60 and held_from > 0
    with alma_store.open(tmp_path / "s") as store:
        store.checkpoint()
        assert tail_files(tmp_path / "s") == []
        assert store.num_labeled == 60


def test_a_damaged_tail_file_is_named_and_a_stale_one_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_tails(monkeypatch)
    small_commits(tmp_path / "s", 40)
    (name,) = tail_files(tmp_path / "s")
    path = tmp_path / "s" / name
    good = path.read_bytes()
    path.write_bytes(good[:-9] + bytes([good[-9] ^ 1]) + good[-8:])
    with pytest.raises(alma_store.CorruptStoreError, match=f"tail file .*{name}.* delete it"):
        alma_store.open(tmp_path / "s", mode="r")
    path.write_bytes(good[:20])
    with pytest.raises(alma_store.CorruptStoreError, match=name):
        alma_store.open(tmp_path / "s", mode="r")
    # A tail file of an earlier checkpoint (copied back after a checkpoint) is not used.
    path.write_bytes(good)
    with alma_store.open(tmp_path / "s") as store:
        store.checkpoint()
        store.add_labels([999], [1], relative_to="dataset")
        store.close(checkpoint=False)  # the checkpoint stays at 40
    path.write_bytes(good)
    with alma_store.open(tmp_path / "s", mode="r") as store:
        assert store._engine.tail.held_from == 40 and store.version == 41
        assert store.verify()["num_labeled"] == 41


def test_writers_of_one_store_save_one_tail_file_per_interval_not_one_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_tails(monkeypatch)
    saved: list[int] = []
    write = engine_module.write_tail_file

    def counted(root: Path, tail: storage.TailFile) -> None:
        saved.append(tail.overlay.version)
        write(root, tail)

    monkeypatch.setattr(engine_module, "write_tail_file", counted)
    alma_store.create(tmp_path / "s", n_items=1000, chunk_rows=64).close()
    a, b = alma_store.open(tmp_path / "s"), alma_store.open(tmp_path / "s")
    for i in range(100):  # two writers, taking turns
        (a, b)[i % 2].add_labels([i], [i], relative_to="dataset")
    # One tail file per 16 versions (the writer that finds one due first writes it), where
    # each writer counting from its own last one wrote as many again.
    assert 100 // 16 - 1 <= len(saved) <= 100 // 16
    assert all(later - earlier >= 16 for earlier, later in itertools.pairwise(saved))
    for store in (a, b):
        store.close(checkpoint=False)
    with alma_store.open(tmp_path / "s", mode="r") as store:  # the newest is used
        assert store._engine.tail.held_from == saved[-1] and store.version == 100
        assert store.verify()["num_labeled"] == 100
