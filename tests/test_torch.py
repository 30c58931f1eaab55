"""The map-style dataset adapter, with and without torch."""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import alma_store
from alma_store.torch import ViewDataset

from .conftest import S3


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


def _s3_features(s3: S3, n: int = 100) -> tuple[str, np.ndarray]:
    """Zarr features on the local S3 server (read through s3fs, as users' are)."""
    import zarr

    x = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
    url = f"s3://bkt/{uuid.uuid4().hex}.zarr"
    zarr.create_array(
        url, shape=x.shape, chunks=(16, 2), dtype=x.dtype, storage_options=s3.options()
    )[:] = x
    return url, x


def _rows_and_labels(loader: Any) -> tuple[list, list]:
    got = [(x, y) for x, y in loader]
    return [r.tolist() for x, _ in got for r in x], [int(v) for _, y in got for v in y]


def test_forked_dataloader_workers_reopen_the_store(tmp_path: Path, s3: S3) -> None:
    """torch's workers are forked on Linux: the parent's view, whose Zarr client on S3
    belongs to the parent's threads, is not used there; the store is opened again."""
    torch = pytest.importorskip("torch")
    url, x = _s3_features(s3)
    with alma_store.create(tmp_path / "s", url, storage_options=s3.options()) as store:
        store.add_labels(np.arange(0, 100, 3), np.arange(34), relative_to="dataset")
        dataset = ViewDataset(store.labeled)
        assert dataset[1][0].tolist() == x[3].tolist()  # the parent reads through its client
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=8, num_workers=2, multiprocessing_context="fork", timeout=300
        )
        rows, labels = _rows_and_labels(loader)
    assert rows == x[::3].tolist() and labels == list(range(34))


def test_a_shared_store_in_object_storage_needs_workers_that_are_not_forked(s3: S3) -> None:
    """obstore's threads are not in a forked child, whose requests would wait forever:
    a forked worker says so at once, and forkserver workers read the store."""
    torch = pytest.importorskip("torch")
    features, x = _s3_features(s3)
    where = f"s3://bkt/{uuid.uuid4().hex}"
    with alma_store.create(where, features, shared=True, storage_options=s3.options()) as store:
        store.add_labels(np.arange(0, 100, 3), np.arange(34), relative_to="dataset")
        dataset = ViewDataset(store.labeled)

        def loader(context: str) -> Any:
            return torch.utils.data.DataLoader(
                dataset, batch_size=8, num_workers=2, multiprocessing_context=context, timeout=300
            )

        with pytest.raises(alma_store.UnsupportedStorageError, match="forkserver"):
            _rows_and_labels(loader("fork"))
        gc.collect()  # the traceback held the loader's iterator: its workers end now
        rows, labels = _rows_and_labels(loader("forkserver"))
    assert rows == x[::3].tolist() and labels == list(range(34))
