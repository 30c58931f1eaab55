"""The Store API: creation, reopening, labeling, views, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

import alma_store
from alma_store import (
    AlmaError,
    AlreadyLabeledError,
    CorruptStoreError,
    InvalidIndexError,
    InvalidInputError,
    ReadOnlyError,
    SourceChangedError,
    SourceMissingError,
    StaleIndexError,
    StoreExistsError,
    StoreNotFoundError,
)


@pytest.fixture
def store(tmp_path: Path) -> alma_store.Store:
    s = alma_store.create(tmp_path / "s", np.arange(40.0).reshape(20, 2), chunk_rows=6)
    yield s
    s.close()


def test_create_and_reopen_every_backend(tmp_path: Path, features_factory, backend: str) -> None:
    data = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    with alma_store.create(tmp_path / "s", features_factory(data), chunk_rows=8) as s:
        assert len(s) == 50 and s.version == 0 and s.num_unlabeled == 50
        s.add_labels([(3, 1), (10, 2)], annotator="ann", round=0)
    with alma_store.open(tmp_path / "s", mode="r") as s:
        assert s.version == 1
        assert s.labels.tolist() == [1, 2]
        assert np.array_equal(s.labeled[:], data[[3, 10]])  # one batch: positions before it
        assert np.array_equal(np.asarray(s.unlabeled), np.delete(data, [3, 10], axis=0))
        assert np.array_equal(np.asarray(s.features[5]), data[5])


def test_features_are_not_copied(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((10, 2)))
    with alma_store.create(tmp_path / "s", str(tmp_path / "x.npy")) as s:
        assert isinstance(s.features, np.memmap)
        assert not s.features.flags.writeable
    assert not (tmp_path / "s" / "features").exists()
    with h5py.File(tmp_path / "f.h5", "w") as f:
        ds = f.create_dataset("x", data=np.ones((4, 2)))
    with h5py.File(tmp_path / "f.h5", "r") as f, alma_store.create(tmp_path / "h", f["x"]) as s:
        assert s.features.file.mode == "r"
    z = zarr.create_array(tmp_path / "z.zarr", data=np.ones((4, 2)))
    with alma_store.create(tmp_path / "zs", z) as s:
        assert len(s) == 4
    del ds


def test_views_are_snapshots(store: alma_store.Store) -> None:
    unl, lab = store.unlabeled, store.labeled
    store.add_labels([(0, 5)])
    assert len(unl) == 20 and len(lab) == 0 and unl.version == 0
    assert unl.to_dataset_index([0]).tolist() == [0]
    assert store.unlabeled.to_dataset_index([0]).tolist() == [1]
    assert store.labeled.labels.tolist() == [5]


def test_seed_tuple_batch_refers_to_view_before_batch(store: alma_store.Store) -> None:
    # ALMa semantics: all positions of one batch index the Unlabeled view before it.
    got = store.add_labels([(0, 1), (1, 1), (5, 1)])
    assert got.tolist() == [0, 1, 5]
    assert store.add_labels([(0, 2)]).tolist() == [2]


def test_relative_to_dataset_and_inverse_map(store: alma_store.Store) -> None:
    store.add_labels(np.array([4, 9]), np.array([1, 1]), relative_to="dataset")
    pos = store.to_unlabeled_position([5, 10, 0])
    assert pos.tolist() == [4, 8, 0]
    assert store.unlabeled.to_dataset_index(pos).tolist() == [5, 10, 0]
    with pytest.raises(InvalidIndexError, match="labeled, not in the Unlabeled view"):
        store.to_unlabeled_position([4])


@pytest.mark.parametrize(
    ("indices", "values", "error", "match"),
    [
        ([-1], [1], InvalidIndexError, r"positions must be >= 0, got \[-1\]"),
        ([19], [1], InvalidIndexError, r"positions must lie in \[0, 19\), got \[19\]"),
        ([1.0], [1], InvalidInputError, "must be integers, got dtype float64"),
        ([1, 1], [1, 2], InvalidIndexError, r"repeats \[1\] within one batch"),
        ([True], [1], InvalidInputError, "must be integers, got dtype bool"),
        (["1"], [1], InvalidInputError, "must be integers"),
        ([1, 2, 3], [1, 2], InvalidInputError, "values has 2 labels but labels has 3 indices"),
        ([1], [1.5], InvalidInputError, "cannot be stored as int64 without change: 1.5"),
        ([1], ["a"], InvalidInputError, "labels must be numbers for label dtype int64"),
        ([[1]], [1], InvalidInputError, "1-D sequence of indices"),
    ],
)
def test_bad_batches_write_nothing(store, indices, values, error, match) -> None:
    store.add_labels([(0, 1)])
    before = (store.version, np.asarray(store.labeled_mask).copy())
    with pytest.raises(error, match=match) as info:
        store.add_labels(indices, values)
    assert isinstance(info.value, AlmaError)
    assert (store.version, np.asarray(store.labeled_mask).tolist()) == (
        before[0],
        before[1].tolist(),
    )


def test_already_labeled_and_partial_batches_rejected_whole(store: alma_store.Store) -> None:
    store.add_labels([3], [1], relative_to="dataset")
    with pytest.raises(AlreadyLabeledError, match=r"\[3\] are labeled already") as info:
        store.add_labels([2, 3], [1, 1], relative_to="dataset")
    assert isinstance(info.value, IndexError) and info.value.positions == [3]
    assert store.num_labeled == 1
    with pytest.raises(InvalidIndexError):  # position 19 no longer exists (19 unlabeled)
        store.add_labels([(0, 1), (19, 1)])
    assert store.version == 1


def test_malformed_seed_batches(store: alma_store.Store) -> None:
    with pytest.raises(InvalidInputError, match=r"an .index, label. tuple or a list"):
        store.add_labels({1: 2})
    with pytest.raises(InvalidInputError, match="pair"):
        store.add_labels([(1, 2, 3)])
    with pytest.raises(InvalidInputError, match="relative_to"):
        store.add_labels([(1, 2)], relative_to="pool")
    with pytest.raises(InvalidInputError, match="annotator"):
        store.add_labels([(1, 2)], annotator=3)
    with pytest.raises(InvalidInputError, match="round"):
        store.add_labels([(1, 2)], round="r1")
    assert store.add_labels([]).size == 0 and store.version == 0


def test_stale_positions(store: alma_store.Store) -> None:
    view = store.unlabeled
    store.add_labels([(0, 1)])
    with pytest.raises(
        StaleIndexError, match="expected_version is 0 but the store is at version 1"
    ) as info:
        store.add_labels([(0, 1)], expected_version=view.version)
    assert (info.value.expected_version, info.value.actual_version) == (0, 1)
    assert store.version == 1
    store.add_labels([(0, 1)], expected_version=store.version)


def test_string_and_vector_labels(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "a", np.zeros((5, 1)), label_dtype="str") as s:
        s.add_labels([(0, "cat"), (1, "a much longer label")])
        with pytest.raises(InvalidInputError, match="must be strings"):
            s.add_labels([(0, 3)])
    with alma_store.open(tmp_path / "a") as s:
        assert s.labels.tolist() == ["cat", "a much longer label"]
    with (
        alma_store.create(tmp_path / "b", np.zeros((5, 1)), label_dtype="U3") as s,
        pytest.raises(InvalidInputError, match="longer than the 3 characters"),
    ):
        s.add_labels([(0, "cats")])
    with alma_store.create(
        tmp_path / "c", np.zeros((5, 1)), label_dtype="float32", label_shape=(3,)
    ) as s:
        s.add_labels([0, 4], [[0, 0.5, 1], [1, 1, 1]], relative_to="dataset")
        with pytest.raises(InvalidInputError, match=r"shape \(1, 2\), expected \(1, 3\)"):
            s.add_labels([1], [[1, 2]])
        s.checkpoint()
        assert s.labels.tolist() == [[0, 0.5, 1], [1, 1, 1]]
        assert s.verify()["num_labeled"] == 2


def test_create_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceMissingError, match="does not exist"):
        alma_store.create(tmp_path / "s", str(tmp_path / "nope.npy"))
    with pytest.raises(InvalidInputError, match="features must be"):
        alma_store.create(tmp_path / "s", [1, 2, 3])
    with pytest.raises(InvalidInputError, match="label_dtype"):
        alma_store.create(tmp_path / "s", np.zeros(3), label_dtype="object")
    with pytest.raises(InvalidInputError, match="chunk_rows"):
        alma_store.create(tmp_path / "s", np.zeros(3), chunk_rows=0)
    with pytest.raises(InvalidInputError, match="is not a Zarr array"):
        alma_store.create(tmp_path / "s", str(tmp_path))  # a directory, not a zarr array
    (tmp_path / "README").write_text("x")
    with pytest.raises(InvalidInputError, match=r"'file\.h5:/dataset'"):
        alma_store.create(tmp_path / "s", str(tmp_path / "README"))
    (tmp_path / "README").unlink()
    assert not (tmp_path / "s").exists()
    alma_store.create(tmp_path / "s", np.zeros(3)).close()
    with pytest.raises(StoreExistsError, match="overwrite=True") as info:
        alma_store.create(tmp_path / "s", np.zeros(3))
    assert isinstance(info.value, FileExistsError)
    alma_store.create(tmp_path / "s", np.zeros(4), overwrite=True).close()
    assert len(alma_store.open(tmp_path / "s", "r")) == 4
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(StoreExistsError, match="not an empty directory"):
        alma_store.create(tmp_path / "other", np.zeros(3), overwrite=True)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError) as info:
        alma_store.open(tmp_path / "missing")
    assert isinstance(info.value, FileNotFoundError)
    np.save(tmp_path / "x.npy", np.zeros((6, 2)))
    alma_store.create(tmp_path / "s", str(tmp_path / "x.npy")).close()
    with pytest.raises(InvalidInputError, match="mode"):
        alma_store.open(tmp_path / "s", mode="w")
    np.save(tmp_path / "x.npy", np.zeros((7, 2)))
    with pytest.raises(SourceChangedError, match="shape was"):
        alma_store.open(tmp_path / "s")
    (tmp_path / "x.npy").unlink()
    with pytest.raises(SourceMissingError):
        alma_store.open(tmp_path / "s")


def test_read_only_mode(store: alma_store.Store) -> None:
    store.add_labels([(0, 1)])
    with alma_store.open(store.path, mode="r") as ro:
        with pytest.raises(ReadOnlyError, match="mode='r'"):
            ro.add_labels([(0, 1)])
        with pytest.raises(ReadOnlyError):
            ro.checkpoint()
        assert ro.labels.tolist() == [1]
        store.add_labels([(0, 2)])
        assert ro.version == 2  # readers see other writers' commits
    store.close()
    store.path.joinpath("lock").unlink()
    with alma_store.open(store.path, mode="r") as ro:
        assert ro.labels.tolist() == [1, 2]
    assert not store.path.joinpath("lock").exists()  # a reader takes no lock


def test_damaged_files_give_clear_errors(tmp_path: Path) -> None:
    def fresh(name: str) -> Path:
        with alma_store.create(tmp_path / name, np.zeros((30, 1)), chunk_rows=4) as s:
            for k in range(3):
                s.add_labels([(k, k)])
        return tmp_path / name

    p = fresh("flip")
    data = bytearray((p / "journal.bin").read_bytes())
    data[-3] ^= 0xFF
    (p / "journal.bin").write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match="checksum mismatch"):
        alma_store.open(p).verify()

    p = fresh("short")
    data = (p / "journal.bin").read_bytes()
    (p / "journal.bin").write_bytes(data[:40])
    with pytest.raises(CorruptStoreError, match="truncated"):
        alma_store.open(p)

    p = fresh("ckpt")
    raw = bytearray((p / "checkpoint.bin").read_bytes())
    raw[20] ^= 1
    (p / "checkpoint.bin").write_bytes(bytes(raw))
    with pytest.raises(CorruptStoreError, match=r"checkpoint file .* damaged"):
        alma_store.open(p)

    p = fresh("foreign")
    other = fresh("other")
    (p / "journal.bin").write_bytes((other / "journal.bin").read_bytes())
    with pytest.raises(CorruptStoreError, match="another store"):
        alma_store.open(p)

    p = fresh("chunk")
    chunk = next((p / "state" / "mask" / "c").iterdir())
    chunk.write_bytes(b"garbage")
    with pytest.raises(CorruptStoreError, match=r"chunk file .*mask.* damaged"):
        alma_store.open(p).verify()

    p = fresh("marks")
    with alma_store.open(p) as s:
        s.checkpoint()
    marks = next(p.glob("marks-*.bin"))
    raw = bytearray(marks.read_bytes())
    raw[-4:] = (7).to_bytes(4, "little")  # the last offset now repeats or breaks the order
    raw_first = bytes(raw)
    marks.write_bytes(raw_first)
    with pytest.raises(CorruptStoreError, match="marks index"):
        alma_store.open(p).verify()
    marks.write_bytes(raw_first[:-4])
    with pytest.raises(CorruptStoreError, match="wrong size"):
        alma_store.open(p)
    marks.write_bytes(b"x" * 40)
    with pytest.raises(CorruptStoreError, match="damaged or does not match"):
        alma_store.open(p)

    p = fresh("meta")
    (p / "meta.json").write_text("{")
    with pytest.raises(CorruptStoreError, match=r"meta\.json is damaged"):
        alma_store.open(p)


def test_verify_detects_disagreement(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", np.zeros((30, 1)), chunk_rows=4) as s:
        s.add_labels([(0, 1), (9, 1)])
        s.checkpoint()
        arr = zarr.open_array(tmp_path / "s" / "state" / "mask", mode="r+")
        arr[20] = True  # a label nobody journaled: the chunk file no longer matches its checksum
        with pytest.raises(CorruptStoreError, match=r"chunk file .*mask/c/5 is damaged"):
            s.verify()


def test_view_indexing(store: alma_store.Store) -> None:
    store.add_labels([1, 2, 7], [0, 0, 0], relative_to="dataset")
    u = store.unlabeled
    data = np.arange(40.0).reshape(20, 2)
    want = np.delete(data, [1, 2, 7], axis=0)
    assert np.array_equal(u[0], want[0]) and np.array_equal(u[-1], want[-1])
    assert np.array_equal(u[2:9:3], want[2:9:3])
    assert np.array_equal(u[np.array([5, 0, 5])], want[[5, 0, 5]])
    with pytest.raises(InvalidIndexError, match="out of range"):
        u[17]
    with pytest.raises(InvalidInputError, match="int, slice or"):
        u[1.5]
    with pytest.raises(InvalidIndexError, match="must lie in"):
        u.to_dataset_index([-1])
    assert u.ndim == 2 and u.dtype == np.float64
    lab = store.labeled
    rows = list(lab.batches_with_labels(2))
    assert [r[0].tolist() for r in rows] == [[1, 2], [7]]
    assert np.array_equal(np.concatenate([r[1] for r in rows]), data[[1, 2, 7]])
    mask = store.labeled_mask
    assert mask[1] is True and mask[0] is False and mask.count() == 3
    assert mask[0:3].tolist() == [False, True, True]


def test_errors_pickle() -> None:
    for err in (
        InvalidIndexError("positions", [3], upper=2),
        AlreadyLabeledError([4]),
        StaleIndexError(1, 2),
        CorruptStoreError("x"),
    ):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err) and back.__dict__ == err.__dict__


def test_closed_store(store: alma_store.Store) -> None:
    view = store.unlabeled
    mask = store.labeled_mask
    store.close()
    store.close()  # idempotent
    for use in (
        lambda: view[0],
        lambda: view.to_dataset_index([0]),
        lambda: list(view.batches()),
        lambda: mask[0],
        lambda: store.version,
        lambda: store.labels,
        lambda: store.add_labels([(0, 1)]),
        lambda: store.score(np.sum, "s"),
        lambda: list(store.history()),
    ):
        with pytest.raises(alma_store.StoreClosedError, match="closed"):
            use()


def test_create_reports_copy_progress(tmp_path: Path) -> None:
    seen: list[int] = []
    data = np.arange(300.0).reshape(100, 3)
    with alma_store.create(tmp_path / "s", data, chunk_rows=32, progress=seen.append) as s:
        assert seen == [32, 32, 32, 4]
        assert np.array_equal(np.asarray(s.features), data)
        ticks: list[int] = []
        assert s.verify(progress=ticks.append)["chunks_checked"] == len(ticks) == 4
