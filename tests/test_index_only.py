"""Index-only stores (no features) and paths that are URLs."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store import InvalidInputError, StorageUnavailableError
from alma_store.torch import ViewDataset


class Images:
    """A map-style dataset that is not an array: item i is decoded on demand."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, object]:
        return {"path": f"img/{i:05d}.png", "pixels": np.full((2, 2), i)}


def test_index_only_store_keeps_everything_but_rows(tmp_path: Path) -> None:
    store = alma_store.create(tmp_path / "s", n_items=1000, label_dtype="str", chunk_rows=64)
    assert len(store) == 1000 and store.meta["features"] == {"kind": "none", "shape": [1000]}
    store.add_labels([(0, "cat"), (10, "dog")])  # positions, the offset map, history: as ever
    store.add_labels([500, 999], ["dog", "cat"], relative_to="dataset")
    assert store.unlabeled.to_dataset_index([0, 9, 10]).tolist() == [1, 11, 12]
    assert store.labeled.to_dataset_index([0, 1, 2, 3]).tolist() == [0, 10, 500, 999]
    assert [len(e.dataset_indices) for e in store.history()] == [2, 2]
    with pytest.raises(InvalidInputError, match=r"index-only.*ViewDataset"):
        store.unlabeled[0]
    with pytest.raises(InvalidInputError, match="index-only"):
        next(store.unlabeled.batches(10))
    assert np.concatenate(list(store.unlabeled.iter_dataset_indices(100))).size == 996
    store.close()
    with alma_store.open(tmp_path / "s", mode="r") as s:  # reopens as it was
        assert s.labels.tolist() == ["cat", "dog", "dog", "cat"]


def test_index_only_scoring_gets_dataset_indices(tmp_path: Path) -> None:
    store = alma_store.create(tmp_path / "s", n_items=3000, chunk_rows=256)
    labeled = np.arange(0, 3000, 7)
    store.add_labels(labeled, np.zeros(len(labeled), np.int64), relative_to="dataset")
    seen: list[np.ndarray] = []

    def by_index(idx: np.ndarray) -> np.ndarray:
        seen.append(np.array(idx))
        return -np.abs(idx - 1234.4)  # best: the items nearest to 1234

    store.score(by_index, "near", batch_rows=100)
    got = np.concatenate(seen)
    assert got.dtype.kind == "i" and got.min() >= 0 and got.max() < 3000
    assert store.top_k("near", 3).dataset_indices.tolist() == [1234, 1235, 1233]
    store.close()


def test_view_dataset_over_a_map_style_dataset(tmp_path: Path) -> None:
    store = alma_store.create(tmp_path / "s", n_items=50, chunk_rows=8)
    store.add_labels([3, 20, 41], [1, 2, 3], relative_to="dataset")
    ds = ViewDataset(store.labeled, dataset=Images(50))
    assert len(ds) == 3
    items = ds.__getitems__([2, 0])
    assert [(item["path"], label) for item, label in items] == [
        ("img/00041.png", 3),
        ("img/00003.png", 1),
    ]
    unlabeled = ViewDataset(store.unlabeled, dataset=Images(50))
    assert unlabeled[3]["path"] == "img/00004.png"
    again = pickle.loads(pickle.dumps(ds))  # a DataLoader worker reopens by path
    assert again[1][0]["path"] == "img/00020.png" and again[1][1] == 2
    with pytest.raises(InvalidInputError, match="indexable"):
        ViewDataset(store.labeled, dataset=42)
    store.close()


@pytest.mark.parametrize("n_items", [0, -1, 2.5, True, "10"])
def test_bad_n_items_creates_nothing(tmp_path: Path, n_items: object) -> None:
    with pytest.raises(InvalidInputError, match="n_items"):
        alma_store.create(tmp_path / "s", n_items=n_items)  # type: ignore[arg-type]
    assert not (tmp_path / "s").exists()


def test_features_or_n_items_not_both(tmp_path: Path) -> None:
    for kwargs in ({}, {"features": np.zeros((3, 1)), "n_items": 3}):
        with pytest.raises(InvalidInputError, match="n_items alone"):
            alma_store.create(tmp_path / "s", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "s").exists()


def test_a_url_store_path_is_never_taken_for_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("obstore")
    monkeypatch.chdir(tmp_path)
    np.save("x.npy", np.zeros((4, 2)))
    closed = {"endpoint_url": "http://127.0.0.1:9", "key": "k", "secret": "s"}  # nobody listens
    with pytest.raises(StorageUnavailableError, match=r"s3://bkt/run.alma"):
        alma_store.create("s3://bkt/run.alma", "x.npy", storage_options=closed)
    with pytest.raises(StorageUnavailableError, match=r"s3://bkt/run.alma"):
        alma_store.open("s3://bkt/run.alma", storage_options=closed)
    with pytest.raises(InvalidInputError, match=r"reads Zarr arrays|features path .* is a URL"):
        alma_store.create("local.alma", "s3://bkt/feat.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # no ./s3:/ directory


def test_file_urls_are_local_paths(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((4, 2)))
    with alma_store.create(f"file://{tmp_path}/s", f"file://{tmp_path}/x.npy") as store:
        assert len(store) == 4
    with alma_store.open(f"file://{tmp_path}/s", mode="r") as store:
        assert len(store) == 4 and store.features.shape == (4, 2)


def test_cli_info_and_verify_of_an_index_only_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from alma_store.cli import main

    with alma_store.create(tmp_path / "s", n_items=40) as store:
        store.add_labels([1, 2], [3, 4], relative_to="dataset")
    assert main(["info", str(tmp_path / "s")]) == 0
    assert "none (index-only: no features)" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "s")]) == 0
    assert "ok: version 1, 2 labeled" in capsys.readouterr().out
