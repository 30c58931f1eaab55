"""Stores written by earlier releases stay readable (golden data from tools/make_golden.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import alma_store

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("name", ["store-v1", "store-v2"])
def test_can_read_old(tmp_path: Path, name: str) -> None:
    with alma_store.open(DATA / name, mode="r") as store:  # read-only: touches nothing
        assert (len(store), store.version, store.num_labeled) == (20, 3, 5)
        assert np.flatnonzero(np.asarray(store.labeled_mask)).tolist() == [0, 4, 5, 12, 19]
        assert store.labels.tolist() == ["cat", "cat", "dog", "dog", "bird"]
        assert store.unlabeled.to_dataset_index([0, 1, 2]).tolist() == [1, 2, 3]
        assert np.array_equal(store.labeled[1], np.arange(12, 15, dtype=np.float32))
        assert store.verify()["records"] == 3
    # And a writer can go on from it (on a copy: the golden data stays as released).
    shutil.copytree(DATA / name, tmp_path / name)
    with alma_store.open(tmp_path / name) as store:
        store.add_labels([(0, "fish")])
    with alma_store.open(tmp_path / name, mode="r") as store:
        assert store.version == 4 and store.labels.tolist()[0] == "cat"
        assert store.verify()["num_labeled"] == 6
        assert store.meta["format_version"] == 2  # a v1 store is upgraded by its first write
    # The writer checkpointed when it closed: one marks index, of version 4.
    assert sorted(p.name for p in (tmp_path / name).glob("marks-*.bin")) == ["marks-4.bin"]


def test_upgrade_of_v1_keeps_everything(tmp_path: Path) -> None:
    shutil.copytree(DATA / "store-v1", tmp_path / "s")
    with alma_store.open(tmp_path / "s", mode="r") as store:
        before = (store.version, store.labels.tolist(), np.asarray(store.labeled_mask).tolist())
    with alma_store.open(tmp_path / "s") as store:
        store.upgrade()
        assert store.meta["format_version"] == 2
        assert (store.version, store.labels.tolist(), np.asarray(store.labeled_mask).tolist()) == (
            before
        )
        assert store.verify()["records"] == 3
