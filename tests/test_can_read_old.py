"""Stores written by earlier releases stay readable (golden data from tools/make_golden.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store.storage import FORMAT_VERSION

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("name", ["store-v1", "store-v2", "store-v3", "store-v4", "store-v6"])
def test_can_read_old(tmp_path: Path, name: str) -> None:
    with alma_store.open(DATA / name, mode="r") as store:  # read-only: touches nothing
        if name == "store-v6":  # its journal tail is read from its tail file
            assert store._engine.tail.held_from == 3
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
        assert store.meta["format_version"] == FORMAT_VERSION  # upgraded by its first write
    # The writer checkpointed when it closed: one marks index, of version 4.
    assert sorted(p.name for p in (tmp_path / name).glob("marks-*.bin")) == ["marks-4.bin"]


def test_upgrade_of_v1_keeps_everything(tmp_path: Path) -> None:
    shutil.copytree(DATA / "store-v1", tmp_path / "s")
    with alma_store.open(tmp_path / "s", mode="r") as store:
        before = (store.version, store.labels.tolist(), np.asarray(store.labeled_mask).tolist())
    with alma_store.open(tmp_path / "s") as store:
        store.upgrade()
        assert store.meta["format_version"] == FORMAT_VERSION
        assert (store.version, store.labels.tolist(), np.asarray(store.labeled_mask).tolist()) == (
            before
        )
        assert store.verify()["records"] == 3


def norm(rows: np.ndarray) -> np.ndarray:
    return np.linalg.norm(rows, axis=1)


@pytest.mark.parametrize("name", ["store-v2-scores", "store-v3", "store-v4", "store-v6"])
def test_scorings_of_every_layout(tmp_path: Path, name: str) -> None:
    """A partial scoring (chunks 0 and 2 of 3) is read as it is and resumed by a writer.

    ``store-v2-scores`` holds a scoring of layout 1 (a Zarr array and a marker per
    chunk), written by alma_store 0.1 with format version 2; the writer that resumes
    it rewrites it as step files first.
    """
    features = np.arange(60, dtype=np.float32).reshape(20, 3)
    labeled = [0, 4, 5, 12, 19]
    want = norm(features).astype(np.float32)
    want[labeled] = np.nan
    unscored = np.arange(8, 16)  # chunk 1
    with alma_store.open(DATA / name, mode="r") as store:
        assert store.scoring_progress("norm") == (2, 3)
        partial = want.copy()
        partial[unscored] = np.nan
        assert np.array_equal(store.load_scores("norm"), partial, equal_nan=True)
        q = store.top_k("norm", 3, allow_partial=True)
        assert q.dataset_indices.tolist() == [18, 17, 16]
        with pytest.raises(alma_store.InvalidInputError, match="incomplete"):
            store.top_k("norm", 3)
    shutil.copytree(DATA / name, tmp_path / name)
    with alma_store.open(tmp_path / name) as store:
        assert store.score(norm, "norm") == 1  # only chunk 1 is scored now
        assert store.scoring_progress("norm") == (3, 3)
        assert np.allclose(store.load_scores("norm"), want, equal_nan=True)
        assert store.top_k("norm", 2).dataset_indices.tolist() == [18, 17]
    folder = tmp_path / name / "scores" / "norm"
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "steps"]


def test_scoring_of_layout_3(tmp_path: Path) -> None:
    """A partial scoring of three values per row (layout 3) is read, ranked and resumed."""

    def columns(rows: np.ndarray) -> np.ndarray:  # as tools/make_golden.py scored it
        z = np.asarray(rows, np.float64) / 10.0
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    features = np.arange(60, dtype=np.float32).reshape(20, 3) % 7
    want = columns(features).astype(np.float32)
    want[[1, 9, 17]] = np.nan
    with alma_store.open(DATA / "store-v6-columns", mode="r") as store:
        assert store.scoring_progress("proba") == (2, 3)
        partial = want.copy()
        partial[8:16] = np.nan  # chunk 1 is not scored
        assert np.array_equal(store.load_scores("proba"), partial, equal_nan=True)
        q = store.top_k("proba", 4, reduce="max", allow_partial=True)
        assert np.array_equal(q.scores, partial[q.dataset_indices].max(axis=1))
        rows = partial[~np.isnan(partial[:, 0])]
        assert np.isclose(q.scores[0], rows.max())
    shutil.copytree(DATA / "store-v6-columns", tmp_path / "s")
    with alma_store.open(tmp_path / "s") as store:
        assert store.score(columns, "proba", columns=3) == 1
        assert np.allclose(store.load_scores("proba"), want, equal_nan=True)


def test_required_annotations_of_alma_store_0_3(tmp_path: Path) -> None:
    """``need`` records: item 2 needed one annotation, items 0 and 1 three (two given)."""
    with alma_store.open(DATA / "store-v6-overlap", mode="r") as store:
        store.clock = lambda: 1_790_000_000.0
        assert store.required_annotations([0, 1, 2, 3]).tolist() == [3, 3, 1, 1]
        assert np.flatnonzero(np.asarray(store.labeled_mask)).tolist() == [2]
        assert [len(a) for a in store.annotations([0, 1, 2])] == [2, 2, 1]
        (claim,) = store.claims()
        assert (claim.annotator, claim.dataset_indices.tolist()) == ("c", [0])
    shutil.copytree(DATA / "store-v6-overlap", tmp_path / "s")
    with alma_store.open(tmp_path / "s") as store:
        store.clock = lambda: 1_790_000_000.0
        assert store.claim_next(3, annotator="d", ttl=60).dataset_indices.tolist() == [1, 3, 4]
        store.add_labels([0, 1], ["dog", "cat"], relative_to="dataset", annotator="c")
        assert np.flatnonzero(np.asarray(store.labeled_mask)).tolist() == [0, 1, 2]
        assert store.class_names(store.labels).tolist() == ["cat", "cat", "cat"]


def test_index_only_golden_store(tmp_path: Path) -> None:
    """An index-only store (no features) of format version 3 reads and goes on."""
    with alma_store.open(DATA / "store-v3-index-only", mode="r") as store:
        assert (len(store), store.version, store.num_labeled) == (30, 2, 2)
        assert store.labeled.to_dataset_index([0, 1]).tolist() == [2, 29]
        assert store.labels.tolist() == [1, 1]
        assert store.verify()["records"] == 2
        with pytest.raises(alma_store.InvalidInputError, match="index-only"):
            store.labeled[0]
    shutil.copytree(DATA / "store-v3-index-only", tmp_path / "s")
    with alma_store.open(tmp_path / "s") as store:
        store.add_labels([(0, 5)])
        assert store.labeled.to_dataset_index([0]).tolist() == [0]


@pytest.mark.parametrize("version", [4, 6])
def test_campaign_records_of_format_4(tmp_path: Path, version: int) -> None:
    """Claims, metrics, per-label provenance and annotations as format version 4 wrote them
    (and version 6, whose campaign store keeps part of its tail in a tail file)."""
    with alma_store.open(DATA / f"store-v{version}", mode="r") as store:
        store.clock = lambda: 1_790_000_000.0
        (claim,) = store.claims()
        assert (claim.annotator, claim.dataset_indices.tolist()) == ("ann", [7, 8])
        (m,) = store.metrics()
        assert (m["round"], m["version"], m["num_labeled"], m["accuracy"], m["model"]) == (
            1,
            3,
            5,
            0.625,
            "knn",
        )
    with alma_store.open(DATA / f"store-v{version}-index-only", mode="r") as store:
        assert (store.version, store.labels.tolist()) == (3, [1, 1, 1, 1])
        last = list(store.history())[-1]
        assert last.row_annotators == ("alice", "bob")
        assert last.row_times == (1_780_000_000.0, 1_780_000_060.0) and last.round == 2
    with alma_store.open(DATA / f"store-v{version}-campaign", mode="r") as store:
        assert store.annotations_per_item == 2 and store.version == 4
        assert store.labeled.to_dataset_index([0, 1, 2]).tolist() == [0, 1, 2]
        assert store.class_names(store.labels).tolist() == ["cat", "dog", "cat"]
        assert store.disputed().tolist() == []
        anns = store.annotations([1, 5])
        assert [(a.annotator, a.value) for a in anns[0]] == [("a", 1), ("b", 0)]
        assert [(a.annotator, a.value) for a in anns[1]] == [("a", 1)]
        assert store.verify()["records"] == 4
    shutil.copytree(DATA / f"store-v{version}-campaign", tmp_path / "s")
    with alma_store.open(tmp_path / "s") as store:
        store.add_labels([5], ["dog"], relative_to="dataset", annotator="b")
        assert store.num_labeled == 4


@pytest.mark.parametrize("version", [5, 7, 8])
def test_shared_stores_of_formats_5_7_8(tmp_path: Path, version: int) -> None:
    """A shared store in a directory: a segment, a log object, campaign objects, a scoring
    (from version 7, a shared checkpoint of version 2 the open starts from; in version 8,
    every object in its envelope)."""
    name = f"store-v{version}-shared"
    with alma_store.open(DATA / name, mode="r") as store:  # touches nothing
        assert store.meta["format_version"] == version
        assert store._engine.mirror.start == (2 if version >= 7 else 0)
        assert (len(store), store.version, store.num_labeled) == (20, 3, 5)
        assert np.flatnonzero(np.asarray(store.labeled_mask)).tolist() == [0, 4, 5, 12, 19]
        assert store.labels.tolist() == ["cat", "cat", "dog", "dog", "bird"]
        assert np.array_equal(store.labeled[1], np.arange(12, 15, dtype=np.float32))
        assert [e.annotator for e in store.history()] == ["ann", "bob", None]
        assert store.scoring_progress("norm") == (2, 3)
        store.clock = lambda: 1_790_000_000.0
        (claim,) = store.claims()
        assert (claim.annotator, claim.dataset_indices.tolist()) == ("ann", [7, 8])
        assert store.metrics()[0]["accuracy"] == 0.625
        assert store.verify() == {
            "version": 3,
            "num_labeled": 5,
            "records": 3,
            "chunks_checked": 3,
            "campaign_records": 2,
        }
    shutil.copytree(DATA / name, tmp_path / "s")
    with alma_store.open(tmp_path / "s") as store:
        store.add_labels([(0, "fish")])
    assert (tmp_path / "s" / "log" / f"{4:020d}").exists()
    with alma_store.open(tmp_path / "s", mode="r") as store:
        assert store.version == 4 and store.labels.tolist()[0] == "cat"


def test_shared_store_of_format_9(tmp_path: Path) -> None:
    """Version 9: as version 8, and a group commit: versions 4 and 5, two writers' batches,
    in one commit object (``log/...4``), the second under its offer's batch id."""
    name = "store-v9-shared"
    with alma_store.open(DATA / name, mode="r") as store:  # touches nothing
        assert store.meta["format_version"] == 9
        assert store._engine.mirror.start == 2
        assert (len(store), store.version, store.num_labeled) == (20, 5, 7)
        assert np.flatnonzero(np.asarray(store.labeled_mask)).tolist() == [0, 4, 5, 9, 12, 17, 19]
        history = list(store.history())
        assert [(e.version, e.annotator) for e in history] == [
            (1, "ann"),
            (2, "bob"),
            (3, None),
            (4, "ann"),
            (5, "other"),
        ]
        assert store.labels.tolist() == ["cat", "cat", "dog", "cat", "dog", "fish", "bird"]
        assert store.scoring_progress("norm") == (2, 3)
        assert store.verify()["records"] == 5
    assert sorted(p.name for p in (DATA / name / "log").iterdir()) == [
        f"{3:020d}",
        f"{4:020d}",
    ]
    shutil.copytree(DATA / name, tmp_path / "s")
    with alma_store.open(tmp_path / "s") as store:
        store.add_labels([11], ["dog"], relative_to="dataset")
    assert (tmp_path / "s" / "log" / f"{6:020d}").exists()  # after the group: 4 + 2
    with alma_store.open(tmp_path / "s", mode="r") as store:
        assert store.version == 6 and store.verify()["records"] == 6
