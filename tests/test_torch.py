"""The map-style dataset adapter, with and without torch."""

from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store.torch import ViewDataset


@pytest.fixture
def store(tmp_path: Path) -> alma_store.Store:
    np.save(tmp_path / "x.npy", np.arange(200, dtype=np.float32).reshape(100, 2))
    s = alma_store.create(tmp_path / "s", str(tmp_path / "x.npy"), chunk_rows=16)
    s.add_labels(np.arange(0, 100, 3), np.arange(0, 100, 3) * 10, relative_to="dataset")
    yield s
    s.close()


def _fetch(dataset: ViewDataset, positions: list[int]) -> list:
    return dataset.__getitems__(positions)


def test_batches_and_labels(store: alma_store.Store) -> None:
    labeled = ViewDataset(store.labeled)
    assert len(labeled) == 34
    row, label = labeled[2]
    assert row.tolist() == [12.0, 13.0] and label == 60
    batch = labeled.__getitems__([5, 0, 5])
    assert [int(y) for _, y in batch] == [150, 0, 150]
    unlabeled = ViewDataset(store.unlabeled)
    assert unlabeled[0].tolist() == [2.0, 3.0]
    with pytest.raises(IndexError):
        unlabeled[66]
    with pytest.raises(alma_store.InvalidInputError, match="needs the Labeled view"):
        ViewDataset(store.unlabeled, with_labels=True)


def test_pickles_by_path_into_worker_processes(store: alma_store.Store) -> None:
    dataset = ViewDataset(store.unlabeled)
    store.add_labels([(0, 1)])  # the dataset stays at its version
    blob = pickle.dumps(dataset)
    assert len(blob) < 2000  # no data, no open files: path and version
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        got = pool.starmap(_fetch, [(dataset, [0, 1]), (dataset, [65, 10])])
    want = np.asarray(store.at(version=1).unlabeled)
    assert [r.tolist() for r in got[0]] == want[[0, 1]].tolist()
    assert [r.tolist() for r in got[1]] == want[[65, 10]].tolist()


def test_with_torch_dataloader(store: alma_store.Store) -> None:
    torch = pytest.importorskip("torch")  # optional: torch is not a test dependency
    loader = torch.utils.data.DataLoader(ViewDataset(store.labeled), batch_size=8, num_workers=2)
    rows, labels = zip(*[(x, y) for x, y in loader], strict=True)
    assert torch.cat(labels).tolist() == (np.arange(0, 100, 3) * 10).tolist()
    assert torch.cat(rows).shape == (34, 2)


def test_shuffled_labels_stay_a_snapshot(store: alma_store.Store) -> None:
    dataset = ViewDataset(store.labeled)
    version = store.version
    order = np.random.default_rng(3).permutation(len(dataset))
    first = [int(y) for _, y in dataset.__getitems__(order[:10].tolist())]  # labels now cached
    store.relabel([0, 3], [-1, -2])  # later corrections do not reach the dataset's version
    again = [int(y) for _, y in dataset.__getitems__(order.tolist())]
    want = store.at(version=version).labels
    assert again == want[order].tolist() and first == again[:10]
    assert ViewDataset(store.labeled)[0][1] == -1  # a new dataset shows the new version


def test_items_can_carry_their_dataset_index(store: alma_store.Store) -> None:
    unlabeled = ViewDataset(store.unlabeled, with_index=True)
    row, index = unlabeled[0]
    assert index == 1 and row.tolist() == [2.0, 3.0]
    got = ViewDataset(store.labeled, with_index=True).__getitems__([1, 0, 1])
    assert [(int(y), i) for _, y, i in got] == [(30, 3), (0, 0), (30, 3)]
    with pytest.raises(alma_store.InvalidInputError, match="with_index must be a bool"):
        ViewDataset(store.labeled, with_index=1)  # type: ignore[arg-type]


def test_is_a_torch_dataset_where_torch_is(store: alma_store.Store) -> None:
    torch = pytest.importorskip("torch")
    dataset = ViewDataset(store.unlabeled, with_index=True, transform=torch.from_numpy)
    assert isinstance(dataset, torch.utils.data.Dataset)
    seen = []
    for rows, indices in torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=True):
        assert rows.dtype == torch.float32
        assert (rows[:, 0] == 2 * indices).all()  # each row is the row of its own index
        seen += indices.tolist()
    assert sorted(seen) == np.concatenate(list(store.unlabeled.iter_dataset_indices())).tolist()
