"""Stores, versions, views and masks pickle by location and reopen where they land:
``multiprocessing`` under fork, spawn and forkserver, ``concurrent.futures`` and
``pickle`` itself; the same version is shown however far the store moved meanwhile."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import alma_store


def summary(obj: Any) -> dict[str, Any]:
    """What a worker computes from what it was sent."""
    if isinstance(obj, alma_store.LabeledView):
        return {"n": len(obj), "rows": np.asarray(obj).tolist(), "labels": obj.labels.tolist()}
    if isinstance(obj, alma_store.UnlabeledView):
        return {"n": len(obj), "first": obj.to_dataset_index([0, 1]).tolist()}
    if isinstance(obj, alma_store.Store):
        with obj:  # a handle of this process: closed here
            return {"version": obj.version, "mode": obj.mode, "n": obj.num_labeled}
    if isinstance(obj, alma_store.StoreVersion):
        return {"version": obj.version, "labels": obj.labels.tolist()}
    return {"mask": np.flatnonzero(np.asarray(obj)).tolist()}


@pytest.fixture
def made(tmp_path: Path) -> tuple[alma_store.Store, dict[str, Any], dict[str, Any]]:
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    store = alma_store.create(tmp_path / "s", x)
    store.add_labels([3, 7], [1, 2], relative_to="dataset")
    sent = {
        "labeled": store.labeled,
        "unlabeled": store.unlabeled,
        "version": store.at(version=1),
        "mask": store.labeled_mask,
    }
    want = {
        "labeled": {"n": 2, "rows": x[[3, 7]].tolist(), "labels": [1, 2]},
        "unlabeled": {"n": 18, "first": [0, 1]},
        "version": {"version": 1, "labels": [1, 2]},
        "mask": {"mask": [3, 7]},
    }
    store.add_labels([0, 1], [5, 5], relative_to="dataset")  # moved on: they still show v1
    return store, sent, want


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_views_and_versions_reopen_in_a_pool(made: Any, method: str) -> None:
    store, sent, want = made
    with multiprocessing.get_context(method).Pool(2) as pool:
        got = dict(zip(sent, pool.map(summary, list(sent.values())), strict=True))
    assert got == want
    store.close()


def test_views_reopen_in_concurrent_futures_and_a_store_keeps_its_mode(made: Any) -> None:
    store, sent, want = made
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        got = dict(zip(sent, pool.map(summary, list(sent.values())), strict=True))
        assert got == want
        writable = pool.submit(summary, store).result()
        reader = alma_store.open(store.path, mode="r")
        read_only = pool.submit(summary, reader).result()
        reader.close()
    assert writable == {"version": 2, "mode": "r+", "n": 4}
    assert read_only == {"version": 2, "mode": "r", "n": 4}
    store.close()


def test_pickle_round_trip_in_this_process(made: Any) -> None:
    store, sent, want = made
    for name, obj in sent.items():
        assert summary(pickle.loads(pickle.dumps(obj))) == want[name]
    store.close()


def test_views_travel_into_ray_tasks(made: Any, local_ray: Any) -> None:
    """A local Ray (2 CPUs, no dashboard, 127.0.0.1): views and versions passed to remote
    tasks reopen there, by location."""
    store, sent, want = made
    remote = local_ray.remote(summary)
    got = dict(zip(sent, local_ray.get([remote.remote(obj) for obj in sent.values()]), strict=True))
    assert got == want
    store.close()
