"""Diversity-aware selection (k-center greedy, k-means++ seeding), streaming over the store."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import alma_store
from alma_store import CorruptStoreError, InvalidInputError

from .conftest import run_crashing


def kcenter_model(x: np.ndarray, labeled: np.ndarray, pool: np.ndarray, k: int) -> list[int]:
    """k-center greedy in memory, exact differences, ties to the lowest dataset index."""
    d = np.full(len(x), np.inf)
    for c in labeled:
        d = np.minimum(d, ((x - x[c]) ** 2).sum(1))
    live = np.zeros(len(x), bool)
    live[pool] = True
    picks: list[int] = []
    while len(picks) < k and live.any():
        cand = np.flatnonzero(live)
        top = d[cand].max()
        p = int(cand[d[cand] == top].min())
        picks.append(p)
        live[p] = False
        d = np.minimum(d, ((x - x[p]) ** 2).sum(1))
    return picks


def make(tmp_path: Path, x: np.ndarray, labeled: np.ndarray, chunk_rows: int) -> alma_store.Store:
    np.save(tmp_path / "x.npy", x)
    store = alma_store.create(tmp_path / "s", str(tmp_path / "x.npy"), chunk_rows=chunk_rows)
    if len(labeled):
        store.add_labels(labeled, np.zeros(len(labeled), np.int64), relative_to="dataset")
    return store


def identity(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows, np.float32)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.float64)


def test_kcenter_picks_what_scikit_activeml_picks(tmp_path: Path, digits: np.ndarray) -> None:
    """Pick by pick: each pick is a farthest item by skactiveml's own utilities, given
    the same labeled set and the picks before it, and the radius is that utility."""
    k_greedy_center = pytest.importorskip("skactiveml.pool._core_set").k_greedy_center
    labeled = np.sort(np.random.default_rng(0).choice(len(digits), 30, replace=False))
    store = make(tmp_path, digits, labeled, chunk_rows=256)
    sel = store.select(25)
    assert sel.version == store.version
    y = np.full(len(digits), np.nan)
    y[labeled] = 0
    for pick, radius in zip(sel.dataset_indices.tolist(), sel.radii.tolist(), strict=True):
        _, utilities = k_greedy_center(digits, y, batch_size=1, random_state=0)
        best = np.nanmax(utilities[0])
        assert np.isclose(radius, best)
        assert pick in np.flatnonzero(np.isclose(utilities[0], best))
        y[pick] = 0
    # Where no two items tie, the whole sequence is the reference's.
    y[:] = np.nan
    y[labeled] = 0
    ref, _ = k_greedy_center(digits, y, batch_size=25, random_state=0)
    assert sel.dataset_indices.tolist() == ref.tolist()
    assert sel.dataset_indices.tolist() == kcenter_model(
        digits, labeled, np.setdiff1d(np.arange(len(digits)), labeled), 25
    )
    # The same embedding as a scoring run of every row gives the same picks.
    store.score(identity, "emb", columns=64, labeled=True)
    by_run = store.select(25, embeddings="emb")
    assert by_run.dataset_indices.tolist() == sel.dataset_indices.tolist()
    assert np.allclose(by_run.radii, sel.radii)
    store.close()


@given(
    data=st.data(),
    n=st.integers(1, 60),
    d=st.integers(1, 4),
    chunk_rows=st.integers(1, 16),
    k=st.integers(1, 12),
)
def test_kcenter_matches_the_in_memory_model(
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
    n: int,
    d: int,
    chunk_rows: int,
    k: int,
) -> None:
    """Small integer features (exact distances, many ties) at every density of labels and
    claims: the picks are the model's, never labeled, claimed or repeated, and the radius
    never increases."""
    tmp_path = tmp_path_factory.mktemp("kc")
    x = np.asarray(
        data.draw(st.lists(st.integers(-3, 3), min_size=n * d, max_size=n * d)), np.float64
    ).reshape(n, d)
    flags = data.draw(st.lists(st.sampled_from("luc"), min_size=n, max_size=n))
    labeled = np.array([i for i, f in enumerate(flags) if f == "l"], np.int64)
    claimed = np.array([i for i, f in enumerate(flags) if f == "c"], np.int64)
    store = make(tmp_path, x, labeled, chunk_rows)
    if len(claimed):
        store.claim(claimed, annotator="other", ttl=1e9)
    sel = store.select(k, annotator="me")
    pool = np.array([i for i, f in enumerate(flags) if f == "u"], np.int64)
    picks = sel.dataset_indices.tolist()
    assert picks == kcenter_model(x, labeled, pool, k)
    assert len(picks) == min(k, len(pool)) == len(set(picks))
    assert not set(picks) & (set(labeled.tolist()) | set(claimed.tolist()))
    # The covering radius never increases (only a first pick without any center has none).
    assert np.isfinite(sel.radii[1:]).all()
    assert (np.diff(sel.radii[np.isfinite(sel.radii)]) <= 0).all()
    if len(labeled) and len(picks):
        assert np.isfinite(sel.radii[0])
    # Claims of the annotator who asks are no obstacle; skip_claimed=False ignores them all.
    mine = store.select(k, annotator="other")
    other_pool = np.array([i for i, f in enumerate(flags) if f != "l"], np.int64)
    assert mine.dataset_indices.tolist() == kcenter_model(x, labeled, other_pool, k)
    assert (
        store.select(k, skip_claimed=False).dataset_indices.tolist()
        == mine.dataset_indices.tolist()
    )
    store.close()


def test_faiss_finds_the_same_nearest_labeled_items(
    tmp_path: Path, digits: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Digits are small integers: float32 distances are exact, so faiss picks as numpy does."""
    pytest.importorskip("faiss")
    labeled = np.sort(np.random.default_rng(1).choice(len(digits), 200, replace=False))
    store = make(tmp_path, digits, labeled, chunk_rows=256)
    by_numpy = store.select(30)
    by_faiss = store.select(30, nn="faiss")
    assert by_faiss.dataset_indices.tolist() == by_numpy.dataset_indices.tolist()
    assert np.allclose(by_faiss.radii, by_numpy.radii)
    with pytest.raises(InvalidInputError, match="nn must be one of"):
        store.select(3, nn="annoy")
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if faiss-cpu were not installed
    with pytest.raises(alma_store.MissingExtraError, match="faiss"):
        store.select(3, nn="faiss")
    store.close()


def test_uncertainty_then_diversity(tmp_path: Path, digits: np.ndarray) -> None:
    labeled = np.arange(0, 1797, 20)
    store = make(tmp_path, digits, labeled, chunk_rows=128)
    store.score(lambda rows: rows[:, 20] + rows[:, 43] / 100, "u")
    top = store.top_k("u", 200)
    sel = store.select(15, scores="u", candidates=200)
    pool = np.sort(top.dataset_indices)
    assert sel.dataset_indices.tolist() == kcenter_model(digits, labeled, pool, 15)
    low = store.select(15, scores="u", candidates=200, largest=False)
    assert set(low.dataset_indices.tolist()) <= set(
        store.top_k("u", 200, largest=False).dataset_indices.tolist()
    )
    store.close()


def test_kmeans_plus_plus_seeding(tmp_path: Path, digits: np.ndarray) -> None:
    labeled = np.arange(0, 1797, 50)
    store = make(tmp_path, digits, labeled, chunk_rows=200)
    a = store.select(20, method="kmeans++", seed=1)
    assert (
        a.dataset_indices.tolist()
        == store.select(20, method="kmeans++", seed=1).dataset_indices.tolist()
    )
    b = store.select(20, method="kmeans++", seed=2)
    assert a.dataset_indices.tolist() != b.dataset_indices.tolist()
    for sel in (a, b):
        picks = sel.dataset_indices.tolist()
        assert len(set(picks)) == 20 and not set(picks) & set(labeled.tolist())
    # Drawn in proportion to the squared distance: far items are drawn far more often.
    x = np.zeros((400, 1))
    x[200:] = np.arange(1, 201)[:, None] * 1e-3  # near the labeled item at 0
    x[399] = 100.0  # one item far away
    sub = tmp_path / "far"
    sub.mkdir()
    far = make(sub, x, np.array([0]), chunk_rows=64)
    firsts = [far.select(1, method="kmeans++", seed=s).dataset_indices[0] for s in range(20)]
    assert firsts.count(399) >= 18
    # Every item left coincides with a center: nothing more to draw.
    dup = tmp_path / "dup"
    dup.mkdir()
    same = make(dup, np.ones((10, 2)), np.array([3]), chunk_rows=4)
    assert len(same.select(5, method="kmeans++").dataset_indices) == 0
    assert len(same.select(5).dataset_indices) == 5  # k-center still covers them, radius 0
    for s in (store, far, same):
        s.close()


SELECTOR = r"""
import sys, alma_store
with alma_store.open(sys.argv[1]) as s:
    sel = s.select(int(sys.argv[2]), name="round-1", method=sys.argv[3])
    print(",".join(map(str, sel.dataset_indices.tolist())), flush=True)
"""


def run_selector(
    path: Path, k: int, method: str, crash: str = ""
) -> subprocess.CompletedProcess[str]:
    return run_crashing(SELECTOR, str(path), str(k), method, crash=crash)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["kcenter", "kmeans++"])
def test_killed_selection_resumes_to_the_same_picks(
    tmp_path: Path, digits: np.ndarray, method: str
) -> None:
    labeled = np.arange(0, 1797, 40)
    store = make(tmp_path, digits, labeled, chunk_rows=100)
    want = store.select(30, method=method, name="reference")
    store.close()
    # The third kill comes when the temp file of pick 12 is written, before it replaces
    # the list of 11: a pick is durable once the list holding it is in place.
    for crash, done in (("select-pick:4", 4), ("select-pick:7", 11), ("fsync:1", 11)):
        proc = run_selector(tmp_path / "s", 30, method, crash)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        with alma_store.open(tmp_path / "s", mode="r") as s:
            picks = s.selection("round-1").dataset_indices
        assert picks.tolist() == want.dataset_indices[:done].tolist(), crash
    proc = run_selector(tmp_path / "s", 30, method)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ",".join(map(str, want.dataset_indices.tolist()))
    # Labels added since do not move a named selection: it stays at its version.
    with alma_store.open(tmp_path / "s") as s:
        s.add_labels(want.dataset_indices[:5], np.zeros(5, np.int64), relative_to="dataset")
        again = s.select(30, name="round-1", method=method)
        assert again.dataset_indices.tolist() == want.dataset_indices.tolist()
        assert again.version == want.version


def test_named_selection_state(tmp_path: Path, digits: np.ndarray) -> None:
    store = make(tmp_path, digits[:300], np.arange(0, 300, 30), chunk_rows=64)
    first = store.select(5, name="r1")
    folder = tmp_path / "s" / "selections" / "r1"
    meta = json.loads((folder / "meta.json").read_text())
    assert (meta["k"], meta["method"], meta["version"]) == (5, "kcenter", store.version)
    with pytest.raises(InvalidInputError, match=r"other parameters \(k=5\)"):
        store.select(6, name="r1")
    with pytest.raises(InvalidInputError, match="method='kcenter'"):
        store.select(5, name="r1", method="kmeans++")
    with pytest.raises(InvalidInputError, match=r"other parameters \(k=5\)"):
        store.select(3, name="r1")
    raw = bytearray((folder / "picks.bin").read_bytes())
    raw[14] ^= 0xFF
    (folder / "picks.bin").write_bytes(bytes(raw))
    with pytest.raises(CorruptStoreError, match=r"picks\.bin is damaged"):
        store.select(5, name="r1")
    (folder / "picks.bin").unlink()  # what the error says to do
    assert store.select(5, name="r1").dataset_indices.tolist() == first.dataset_indices.tolist()
    with pytest.raises(InvalidInputError, match="a scores name must be"):
        store.select(5, name="../x")
    store.close()
    with alma_store.open(tmp_path / "s", mode="r") as ro, pytest.raises(alma_store.ReadOnlyError):
        ro.select(5, name="r2")


def test_select_errors(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    store = make(tmp_path, x, np.arange(10), chunk_rows=32)
    for k in (0, -1, True, 2.5):
        with pytest.raises(InvalidInputError, match="k must be a positive int"):
            store.select(k)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="method must be one of"):
        store.select(3, method="typiclust")
    with pytest.raises(InvalidInputError, match="candidates= and scores= go together"):
        store.select(3, candidates=10)
    store.score(lambda rows: rows[:, 0], "one")
    with pytest.raises(InvalidInputError, match=r"candidates must be an int >= k \(3\)"):
        store.select(3, scores="one", candidates=2)
    with pytest.raises(InvalidInputError, match="one value per row: embeddings= needs"):
        store.select(3, embeddings="one")
    store.score(identity, "unlabeled-only", columns=3)
    with pytest.raises(InvalidInputError, match="leave out the labeled rows"):
        store.select(3, embeddings="unlabeled-only")
    store.score(identity, "half", columns=3, labeled=True, shard=(0, 2))
    with pytest.raises(InvalidInputError, match="incomplete: 2 chunks"):
        store.select(3, embeddings="half")
    with pytest.raises(
        InvalidInputError, match="include the labeled rows; this scoring says labeled=False"
    ):
        store.score(identity, "half", columns=3)
    with pytest.raises(InvalidInputError, match="no scores named"):
        store.select(3, embeddings="nope")
    with pytest.raises(InvalidInputError, match="seed must be"):
        store.select(3, seed=-1)
    with pytest.raises(InvalidInputError, match="reduce by name"):
        store.select(3, scores="half", candidates=5, reduce=lambda v: v[:, 0], name="n")
    store.close()
    index_only = alma_store.create(tmp_path / "io", n_items=50, chunk_rows=16)
    with pytest.raises(InvalidInputError, match="index-only store has no features"):
        index_only.select(3)
    index_only.close()


def test_cli_select(tmp_path: Path, digits: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    from alma_store.cli import main

    store = make(tmp_path, digits[:500], np.arange(0, 500, 25), chunk_rows=64)
    want = store.select(7)
    store.close()

    def alma(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = alma("select", str(tmp_path / "s"), "--k", "7", "--json")
    assert code == 0
    got = json.loads(out)
    assert got["dataset_indices"] == want.dataset_indices.tolist()
    assert np.allclose(got["radii"], want.radii)
    code, out, _ = alma("select", str(tmp_path / "s"), "--k", "7", "--name", "r1")
    assert code == 0 and out.splitlines()[0].startswith("# store version")
    assert [int(line.split("\t")[0]) for line in out.splitlines()[1:]] == got["dataset_indices"]
    code, _, err = alma("select", str(tmp_path / "s"), "--k", "3", "--candidates", "9")
    assert code == 1 and "go together" in err
    code, out, _ = alma("select", str(tmp_path / "s"), "--k", "4", "--claim", "ann", "--json")
    assert code == 0 and json.loads(out)["claim"] is not None
    held = json.loads(out)["dataset_indices"]
    assert held == want.dataset_indices[:4].tolist()
    code, out, _ = alma("select", str(tmp_path / "s"), "--k", "4", "--claim", "bob")
    assert code == 0 and out.startswith("# claim")
    bobs = [int(line.split("\t")[0]) for line in out.splitlines()[2:]]
    assert len(bobs) == 4 and not set(bobs) & set(held)
    with alma_store.open(tmp_path / "s", mode="r") as s:
        assert sorted(c.annotator for c in s.claims()) == ["ann", "bob"]
