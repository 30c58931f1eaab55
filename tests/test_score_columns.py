"""Score runs of several values per row (scoring layout 3) and top-k by a reduction."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store import InvalidInputError

from .conftest import local_cluster, run_crashing
from .test_scoring import make

W = np.random.default_rng(7).normal(size=(3, 4))


def proba(rows: np.ndarray) -> np.ndarray:
    """Four class probabilities per row: a softmax of a linear map (picklable)."""
    z = np.asarray(rows, np.float64) @ W
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def numpy_reduce(values: np.ndarray, how: str) -> np.ndarray:
    """The reductions, written out independently of alma_store's."""
    ordered = np.sort(values, axis=1)
    if how == "max":
        return ordered[:, -1]
    if how == "margin":
        return ordered[:, -1] - ordered[:, -2]
    safe = np.where(values > 0, values, 1.0)
    return -(values * np.log(safe)).sum(axis=1)


def brute(values: np.ndarray, key: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """The ``k`` best unlabeled (non-NaN) rows by ``key``, ties to the lower index."""
    idx = np.flatnonzero(~np.isnan(values[:, 0]))
    sort_key = -key[idx] if largest else key[idx]
    return idx[np.lexsort((idx, sort_key))[:k]]


def second_column(values: np.ndarray) -> np.ndarray:
    return values[:, 1]


def test_columns_are_stored_loaded_and_ranked_by_each_reduction(tmp_path: Path) -> None:
    store, X = make(tmp_path, n=1000, chunk_rows=64)
    assert store.score(proba, "p", columns=4, batch_rows=50, shard=(0, 2)) == 8
    assert store.score(proba, "p", columns=4, shard=(1, 2)) == 8
    assert store.score(proba, "p", columns=4) == 0  # resumed: nothing left
    meta = json.loads((tmp_path / "s" / "scores" / "p" / "meta.json").read_text())
    assert (meta["layout"], meta["columns"]) == (3, 4)
    mask = np.asarray(store.labeled_mask)
    values = store.load_scores("p")
    assert values.shape == (1000, 4) and values.dtype == np.float32
    assert np.isnan(values[mask]).all()
    assert np.allclose(values[~mask], proba(X[~mask]), atol=1e-6)
    for how in ("max", "margin", "entropy"):
        key = numpy_reduce(values, how)
        for largest in (True, False):
            q = store.top_k("p", 40, reduce=how, largest=largest)
            assert q.dataset_indices.tolist() == brute(values, key, 40, largest).tolist(), how
            assert np.allclose(q.scores, key[q.dataset_indices], atol=1e-6)
    q = store.top_k("p", 10, reduce=second_column)
    assert q.dataset_indices.tolist() == brute(values, values[:, 1], 10, True).tolist()
    # Labeled since the scoring: no longer a candidate.
    first = q.dataset_indices[:3]
    store.add_labels(first, [0, 1, 2], relative_to="dataset", expected_version=q.version)
    again = store.top_k("p", 7, reduce=second_column).dataset_indices.tolist()
    assert again == q.dataset_indices[3:].tolist()
    # A claim by a scoring of several values per row.
    claim = store.claim_next(5, annotator="ann", ttl=60, scores="p", reduce="margin", largest=False)
    values = store.load_scores("p")
    values[np.asarray(store.labeled_mask)] = np.nan
    key = numpy_reduce(values, "margin")
    assert claim.dataset_indices.tolist() == brute(values, key, 5, False).tolist()
    store.close()


def test_errors_of_runs_with_columns(tmp_path: Path) -> None:
    store, _ = make(tmp_path, n=200)
    with pytest.raises(InvalidInputError, match=r"score with columns=4"):
        store.score(proba, "wide")  # 4 values per row into a run of one
    with pytest.raises(InvalidInputError, match=r"takes shape \(50, 3\)"):
        store.score(proba, "narrow", columns=3, batch_rows=50)
    for bad in (0, -1, True, 2.0, "4"):
        with pytest.raises(InvalidInputError, match="columns must be None or an int"):
            store.score(proba, "bad", columns=bad)  # type: ignore[arg-type]
    store.score(proba, "p", columns=4)
    with pytest.raises(InvalidInputError, match="have 4 values per row; this scoring says one"):
        store.score(proba, "p")
    with pytest.raises(InvalidInputError, match="pass reduce="):
        store.top_k("p", 3)
    with pytest.raises(InvalidInputError, match="reduce must be one of"):
        store.top_k("p", 3, reduce="variance")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"returned shape \(\d+, 4\)"):
        store.top_k("p", 3, reduce=lambda v: v)
    with pytest.raises(InvalidInputError, match="pass reduce="):
        store.claim_next(3, annotator="a", ttl=60, scores="p")
    store.score(lambda rows: rows[:, 0], "one")
    with pytest.raises(InvalidInputError, match="one value per row: reduce= applies"):
        store.top_k("one", 3, reduce="max")
    store.score(lambda rows: rows[:, :1], "single", columns=1)
    with pytest.raises(InvalidInputError, match="needs at least 2 columns"):
        store.top_k("single", 3, reduce="margin")
    assert len(store.top_k("single", 3, reduce="max").dataset_indices) == 3
    store.close()


def test_damaged_step_of_a_run_with_columns(tmp_path: Path) -> None:
    store, X = make(tmp_path, n=300, chunk_rows=64)
    store.score(proba, "p", columns=4, step_seconds=0)
    steps = sorted((tmp_path / "s" / "scores" / "p" / "steps").glob("*.bin"))
    assert len(steps) == 5
    raw = bytearray(steps[1].read_bytes())
    raw[len(raw) // 2] ^= 0x01
    steps[1].write_bytes(bytes(raw))
    with pytest.raises(alma_store.CorruptStoreError, match=steps[1].name):
        store.top_k("p", 3, reduce="max")
    with pytest.raises(alma_store.CorruptStoreError, match=steps[1].name):
        store.load_scores("p")
    steps[1].unlink()
    assert store.score(proba, "p", columns=4) == 1
    mask = np.asarray(store.labeled_mask)
    want = proba(X).astype(np.float32)
    want[mask] = np.nan
    assert np.array_equal(store.load_scores("p"), want, equal_nan=True)
    # A run's meta.json that says a width its step files do not have: refused as damaged.
    meta_path = tmp_path / "s" / "scores" / "p" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "columns": 2}))
    with pytest.raises(alma_store.CorruptStoreError, match="wrong length"):
        store.load_scores("p")
    meta_path.write_text(json.dumps({**meta, "columns": "4"}))
    with pytest.raises(alma_store.CorruptStoreError, match="columns '4'"):
        store.load_scores("p")
    store.close()


SCORER = r"""
import sys, alma_store
from tests.test_score_columns import proba
with alma_store.open(sys.argv[1]) as s:
    print(s.score(proba, "p", columns=4, batch_rows=16, step_seconds=float(sys.argv[2])),
          flush=True)
"""


@pytest.mark.slow
def test_killed_scoring_with_columns_resumes_to_the_same_result(tmp_path: Path) -> None:
    store, _ = make(tmp_path, n=2000, chunk_rows=64)  # 32 chunks
    store.close()
    reference_dir = tmp_path / "ref"
    reference_dir.mkdir()
    reference, _ = make(reference_dir, n=2000, chunk_rows=64)
    reference.score(proba, "p", columns=4)
    done = 0
    for crash, step_seconds, gained in (("score-step:3", 0.0, 3), ("fsync:1", float("inf"), 0)):
        proc = run_crashing(SCORER, str(tmp_path / "s"), str(step_seconds), crash=crash)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        done += gained
        with alma_store.open(tmp_path / "s", mode="r") as s:
            assert s.scoring_progress("p") == (done, 32)
    proc = run_crashing(SCORER, str(tmp_path / "s"), "0")
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == 32 - done
    with alma_store.open(tmp_path / "s", mode="r") as s:
        assert np.array_equal(s.load_scores("p"), reference.load_scores("p"), equal_nan=True)
        for how in ("margin", "entropy"):
            assert (
                s.top_k("p", 30, reduce=how).dataset_indices.tolist()
                == reference.top_k("p", 30, reduce=how).dataset_indices.tolist()
            )
    reference.close()


@pytest.mark.slow
def test_dask_scores_columns_as_one_process_does(tmp_path: Path) -> None:
    from dask.distributed import Client

    from alma_store import dask as alma_dask

    store, _ = make(tmp_path, n=600, chunk_rows=64)
    with local_cluster(n_workers=2) as cluster, Client(cluster) as client:
        assert alma_dask.score(store, proba, "dask", client=client, columns=4) == 10
    store.score(proba, "single", columns=4)
    assert np.array_equal(store.load_scores("dask"), store.load_scores("single"), equal_nan=True)
    store.close()
