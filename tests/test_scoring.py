"""Resumable sharded scoring, streaming top-k, Dask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store import InvalidInputError

from .conftest import REPO, local_cluster


def norm_score(rows: np.ndarray) -> np.ndarray:
    """A module-level scoring function (picklable for Dask workers)."""
    return np.linalg.norm(rows, axis=1)


class DiesOnce:
    """``norm_score``, but the first call anywhere SIGKILLs its worker (a marker file
    says it happened, so the retry goes through)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return norm_score(rows)
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


def make(
    tmp_path: Path, n: int = 1000, chunk_rows: int = 64
) -> tuple[alma_store.Store, np.ndarray]:
    X = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    store = alma_store.create(tmp_path / "s", str(tmp_path / "x.npy"), chunk_rows=chunk_rows)
    labeled = np.random.default_rng(1).choice(n, n // 5, replace=False)
    store.add_labels(labeled, np.zeros(len(labeled), np.int64), relative_to="dataset")
    return store, X


def brute_top_k(X: np.ndarray, mask: np.ndarray, k: int, largest: bool) -> np.ndarray:
    scores = norm_score(X).astype(np.float32).astype(np.float64)
    idx = np.flatnonzero(~mask)
    key = -scores[idx] if largest else scores[idx]
    return idx[np.lexsort((idx, key))[:k]]


def test_score_and_top_k_match_brute_force(tmp_path: Path) -> None:
    store, X = make(tmp_path)
    assert store.score(norm_score, "norm", batch_rows=50, shard=(0, 3)) == 6
    assert store.scoring_progress("norm") == (6, 16)
    assert (
        store.score(norm_score, "norm", shard="1/3") + store.score(norm_score, "norm", shard="2/3")
        == 10
    )
    assert store.score(norm_score, "norm") == 0  # all done: nothing redone
    mask = np.asarray(store.labeled_mask)
    values = store.load_scores("norm")
    assert np.isnan(values[mask]).all()
    assert np.allclose(values[~mask], norm_score(X[~mask]))
    for largest in (True, False):
        q = store.top_k("norm", 25, largest=largest)
        assert q.version == store.version
        assert q.dataset_indices.tolist() == brute_top_k(X, mask, 25, largest).tolist()
        assert np.allclose(q.scores, norm_score(X[q.dataset_indices]))
    # Labeling the query (with stale-index protection) removes it from later queries.
    q = store.top_k("norm", 5)
    store.add_labels(
        q.dataset_indices, np.ones(5, np.int64), relative_to="dataset", expected_version=q.version
    )
    with pytest.raises(alma_store.StaleIndexError):
        store.add_labels([1], [1], relative_to="dataset", expected_version=q.version)
    mask = np.asarray(store.labeled_mask)
    assert store.top_k("norm", 5).dataset_indices.tolist() == brute_top_k(X, mask, 5, True).tolist()


def test_scoring_errors(tmp_path: Path) -> None:
    store, _ = make(tmp_path, n=200)
    with pytest.raises(InvalidInputError, match=r"returned shape \(2,\) for 50 rows"):
        store.score(lambda rows: np.zeros(2), "bad", batch_rows=50)
    with pytest.raises(InvalidInputError, match="scores must be numbers"):
        store.score(lambda rows: np.array(["x"] * len(rows)), "bad2")
    with pytest.raises(InvalidInputError, match="a scores name"):
        store.score(norm_score, "../evil")
    for shard in [(2, 2), "1", (0, 0), "a/b", (True, 2)]:
        with pytest.raises(InvalidInputError, match="shard must be"):
            store.score(norm_score, "s", shard=shard)
    with pytest.raises(InvalidInputError, match="no scores named 'nope'"):
        store.top_k("nope", 3)
    store.score(norm_score, "half", shard=(0, 2))
    with pytest.raises(InvalidInputError, match="are incomplete: 2 of 4 chunks"):
        store.top_k("half", 3)
    assert len(store.top_k("half", 3, allow_partial=True).dataset_indices) == 3
    with pytest.raises(InvalidInputError, match="k must be a positive int"):
        store.top_k("half", 0, allow_partial=True)


SCORER = r"""
import sys, numpy as np, alma_store
with alma_store.open(sys.argv[1]) as s:
    print(s.score(lambda rows: np.linalg.norm(rows, axis=1), "norm", batch_rows=16,
                  shard=sys.argv[2], step_seconds=float(sys.argv[3])), flush=True)
"""


def start_scorer(
    path: Path, shard: str, crash: str = "", step_seconds: float = 0.0
) -> subprocess.Popen[str]:
    """A scoring process; ``crash`` (e.g. ``"score-step:4"``) makes it SIGKILL itself there."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "ALMA_STORE_CRASH": crash}
    return subprocess.Popen(
        [sys.executable, "-c", SCORER, str(path), shard, str(step_seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_killed_scoring_resumes_to_the_same_result(tmp_path: Path) -> None:
    store, _ = make(tmp_path, n=2000, chunk_rows=64)  # 32 chunks, ~0.1 s each
    reference_dir = tmp_path / "ref"
    reference_dir.mkdir()
    reference, _ = make(reference_dir, n=2000, chunk_rows=64)
    reference.score(norm_score, "norm")
    store.close()
    # Killed three times at deterministic points: right after the third one-chunk step is
    # durable (the fourth being scored meanwhile), before the file of a step holding every
    # remaining chunk is fsynced (nothing of it may count), and after two more steps.
    expect_done = 0
    for crash, step_seconds, gained in (
        ("score-step:3", 0.0, 3),
        ("fsync:1", float("inf"), 0),
        ("score-step:2", 0.0, 2),
    ):
        proc = start_scorer(tmp_path / "s", "0/1", crash, step_seconds)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, err
        expect_done += gained
        with alma_store.open(tmp_path / "s", mode="r") as s:
            done, total = s.scoring_progress("norm")
        assert done == expect_done, crash
    proc = start_scorer(tmp_path / "s", "0/1")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert int(out) == total - done  # only the unfinished chunks were redone
    with alma_store.open(tmp_path / "s", mode="r") as s:
        got = s.load_scores("norm")
    want = reference.load_scores("norm")
    assert np.array_equal(got, want, equal_nan=True)
    with alma_store.open(tmp_path / "s") as s:
        assert (
            s.top_k("norm", 50).dataset_indices.tolist()
            == reference.top_k("norm", 50).dataset_indices.tolist()
        )
    reference.close()


@pytest.mark.slow
def test_shards_in_parallel_processes(tmp_path: Path) -> None:
    store, X = make(tmp_path, n=1500, chunk_rows=50)
    store.close()
    procs = [start_scorer(tmp_path / "s", f"{i}/3") for i in range(3)]
    counts = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        counts.append(int(out))
    assert sum(counts) == 30
    with alma_store.open(tmp_path / "s") as s:
        mask = np.asarray(s.labeled_mask)
        assert (
            s.top_k("norm", 40).dataset_indices.tolist() == brute_top_k(X, mask, 40, True).tolist()
        )


def opened_by_this_process() -> int:
    """How many stores this (worker) process opened for worker tasks."""
    from alma_store.engine._open import _WORKERS

    return _WORKERS.opened


@pytest.mark.slow
def test_dask_matches_single_process(tmp_path: Path) -> None:
    from dask.distributed import Client

    from alma_store import dask as alma_dask

    store, _ = make(tmp_path, n=1200, chunk_rows=64)
    unlabeled = store.unlabeled
    with (
        local_cluster(n_workers=2) as cluster,
        Client(cluster) as client,
    ):
        assert alma_dask.score(store, norm_score, "dask", client=client) == 19
        rows = client.compute(unlabeled.to_dask()).result()
        again = client.compute(unlabeled.to_dask()).result()
        # Each worker process opened the store once to write scores and once to read blocks,
        # whatever the number of tasks (19 blocks twice, 3 scoring tasks).
        opened = client.run(opened_by_this_process)
        assert sum(opened.values()) >= 2 and max(opened.values()) <= 2, opened
    assert np.array_equal(again, rows)
    store.add_labels([(0, 1)])  # the dask array stays a snapshot
    assert np.array_equal(rows, np.asarray(unlabeled))
    assert unlabeled.to_dask().compute(scheduler="synchronous").shape == unlabeled.shape
    store.score(norm_score, "single")
    dask_values = store.load_scores("dask")
    single_values = store.load_scores("single")
    # The single run scored one version later (one more label); compare where both scored.
    both = ~np.isnan(single_values)
    assert np.array_equal(dask_values[both], single_values[both])
    assert (
        store.top_k("dask", 30).dataset_indices.tolist()
        == store.top_k("single", 30).dataset_indices.tolist()
    )
    store.close()


@pytest.mark.slow
def test_dask_survives_a_killed_worker(tmp_path: Path) -> None:
    """A worker SIGKILLed in its first batch is replaced and its task runs again."""
    from dask.distributed import Client

    from alma_store import dask as alma_dask

    store, _ = make(tmp_path, n=1200, chunk_rows=64)
    marker = tmp_path / "died"
    with local_cluster(n_workers=2) as cluster, Client(cluster) as client:
        assert alma_dask.score(store, DiesOnce(marker), "killed", client=client) == 19
    assert marker.exists()
    store.score(norm_score, "single")
    assert np.array_equal(store.load_scores("killed"), store.load_scores("single"), equal_nan=True)
    store.close()


def coarse_score(rows: np.ndarray) -> np.ndarray:
    """Few distinct values: most items tie."""
    return np.round(rows[:, 0])


@pytest.mark.parametrize("k", [1, 7, 64, 500, 5000])
def test_top_k_with_many_ties_matches_brute_force(tmp_path: Path, k: int) -> None:
    store, X = make(tmp_path, n=3000, chunk_rows=16)  # 188 chunks: many blocks
    store.score(coarse_score, "coarse")
    later = np.random.default_rng(5).choice(np.flatnonzero(~np.asarray(store.labeled_mask)), 40)
    store.add_labels(later, np.ones(len(later), np.int64), relative_to="dataset")
    mask = np.asarray(store.labeled_mask)
    scores = coarse_score(X).astype(np.float32).astype(np.float64)
    idx = np.flatnonzero(~mask)
    for largest in (True, False):
        key = -scores[idx] if largest else scores[idx]
        want = idx[np.lexsort((idx, key))[:k]]  # ties go to the lower dataset index
        got = store.top_k("coarse", k, largest=largest)
        assert got.dataset_indices.tolist() == want.tolist()
        assert np.array_equal(got.scores, scores[want])


@pytest.mark.parametrize("unlabeled", [150, 2000])
def test_top_k_of_a_mostly_labeled_pool_matches_brute_force(tmp_path: Path, unlabeled: int) -> None:
    """Blocks large enough for the sampled bound, with samples of too few keys (NaN) or not."""
    store, X = make(tmp_path, n=3000, chunk_rows=1000)
    store.score(coarse_score, "coarse")
    rest = np.flatnonzero(~np.asarray(store.labeled_mask))
    chosen = np.random.default_rng(9).choice(rest, len(rest) - unlabeled, replace=False)
    store.add_labels(chosen, np.ones(len(chosen), np.int64), relative_to="dataset")
    mask = np.asarray(store.labeled_mask)
    assert (~mask).sum() == unlabeled
    scores = coarse_score(X).astype(np.float32).astype(np.float64)
    idx = np.flatnonzero(~mask)
    for k in (1, 7, 15):
        for largest in (True, False):
            key = -scores[idx] if largest else scores[idx]
            want = idx[np.lexsort((idx, key))[:k]]
            got = store.top_k("coarse", k, largest=largest)
            assert got.dataset_indices.tolist() == want.tolist()


def test_damaged_step_file_is_named_and_recomputed(tmp_path: Path) -> None:
    store, X = make(tmp_path, n=300, chunk_rows=64)
    store.score(norm_score, "norm", step_seconds=0)  # 5 chunks, 5 step files
    steps = sorted((tmp_path / "s" / "scores" / "norm" / "steps").glob("*.bin"))
    assert len(steps) == 5
    raw = bytearray(steps[2].read_bytes())
    raw[len(raw) // 2] ^= 0x10
    steps[2].write_bytes(bytes(raw))
    with pytest.raises(alma_store.CorruptStoreError, match=steps[2].name):
        store.top_k("norm", 3)
    steps[2].unlink()  # what the error says to do
    assert store.score(norm_score, "norm") == 1
    mask = np.asarray(store.labeled_mask)
    assert store.top_k("norm", 9).dataset_indices.tolist() == brute_top_k(X, mask, 9, True).tolist()
    steps[0].write_bytes(steps[0].read_bytes()[:7])  # a torn header
    with pytest.raises(alma_store.CorruptStoreError, match=steps[0].name):
        store.scoring_progress("norm")
    store.close()
