"""Features in a column of Arrow IPC files, Hugging Face datasets and pyarrow tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import alma_store
from alma_store import InvalidInputError, SourceChangedError

from .conftest import REPO


def embeddings(n: int = 500, d: int = 6) -> np.ndarray:
    return np.random.default_rng(n).normal(size=(n, d)).astype(np.float32)


def write_ipc(path: Path, table: pa.Table, *, stream: bool, batch: int = 64) -> None:
    with pa.OSFile(str(path), "wb") as sink:
        writer = pa.ipc.new_stream if stream else pa.ipc.new_file
        with writer(sink, table.schema) as w:
            for b in table.to_batches(max_chunksize=batch):
                w.write_batch(b)


def fixed_table(x: np.ndarray) -> pa.Table:
    col = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
    return pa.table({"embedding": col, "id": pa.array(np.arange(len(x)))})


def check_reads(store: alma_store.Store, x: np.ndarray) -> None:
    mask = np.asarray(store.labeled_mask)
    rng = np.random.default_rng(0)
    pos = np.sort(rng.choice(len(store.unlabeled), 40, replace=False))
    assert np.array_equal(store.unlabeled[pos], x[~mask][pos])
    assert np.array_equal(np.asarray(store.unlabeled), x[~mask])
    rows = np.concatenate([r for _, r in store.unlabeled.batches(77)])
    assert np.array_equal(rows, x[~mask])


@pytest.mark.parametrize("stream", [False, True])
def test_arrow_ipc_file_column(tmp_path: Path, stream: bool) -> None:
    x = embeddings()
    write_ipc(tmp_path / "x.arrow", fixed_table(x), stream=stream)
    store = alma_store.create(tmp_path / "s", str(tmp_path / "x.arrow"), column="embedding")
    assert store.features is None and store.unlabeled.shape == (500, 6)
    store.add_labels(np.arange(0, 500, 9), np.ones(56, np.int64), relative_to="dataset")
    check_reads(store, x)
    store.score(lambda rows: rows[:, 0], "first", batch_rows=50)
    mask = np.asarray(store.labeled_mask)
    best = np.flatnonzero(~mask)[np.argsort(-x[~mask, 0], kind="stable")[:5]]
    assert store.top_k("first", 5).dataset_indices.tolist() == best.tolist()
    store.close()
    code = (  # a fresh process reopens it by path and reads the same rows
        "import sys, numpy as np, alma_store\n"
        "s = alma_store.open(sys.argv[1], mode='r')\n"
        "print(float(np.asarray(s.unlabeled).sum()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s")],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
    )
    assert np.isclose(float(out.stdout), x[~mask].sum(), rtol=1e-5)


def test_hugging_face_dataset_saved_on_disk(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    x = embeddings(300, 4)
    ds = datasets.Dataset.from_dict({"embedding": x, "label": np.arange(300) % 3})
    ds.save_to_disk(str(tmp_path / "hf"))
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    store = alma_store.create(tmp_path / "s", loaded, column="embedding")
    assert store.meta["features"]["kind"] == "arrow"  # memory-mapped in place, not copied
    assert not (tmp_path / "s" / "features").exists()
    store.add_labels([(0, 1), (10, 2)])
    check_reads(store, x)
    with pytest.raises(InvalidInputError, match="flatten_indices"):
        alma_store.create(tmp_path / "t", loaded.shuffle(seed=0), column="embedding")
    in_memory = datasets.Dataset.from_dict({"embedding": x})
    with alma_store.create(tmp_path / "m", in_memory, column="embedding") as copied:
        assert copied.meta["features"]["path"] == "features"  # copied into the store
        assert np.array_equal(np.asarray(copied.unlabeled), x)
    store.close()


def test_pyarrow_table_is_copied(tmp_path: Path) -> None:
    x = embeddings(100, 3)
    with alma_store.create(tmp_path / "s", fixed_table(x), column="embedding") as store:
        assert np.array_equal(np.asarray(store.unlabeled), x)


def test_bad_columns_give_clear_errors_and_create_nothing(tmp_path: Path) -> None:
    x = embeddings(50, 3)
    ragged = pa.table({"v": pa.array([[1.0, 2.0], [3.0]] * 25)})
    words = pa.table({"v": pa.array(["a", "b"] * 25)})
    nulls = pa.table({"v": pa.array([1.0, None] * 25)})
    cases = {
        "ragged": (ragged, "v", "ragged"),
        "words": (words, "v", "not numbers"),
        "nulls": (nulls, "v", "missing values"),
        "missing": (fixed_table(x), "nope", "no column 'nope'.*embedding"),
    }
    for name, (table, column, message) in cases.items():
        write_ipc(tmp_path / f"{name}.arrow", table, stream=False)
        with pytest.raises(InvalidInputError, match=message):
            alma_store.create(
                tmp_path / f"s-{name}", str(tmp_path / f"{name}.arrow"), column=column
            )
        with pytest.raises(InvalidInputError, match=message):
            alma_store.create(tmp_path / f"t-{name}", table, column=column)
    (tmp_path / "junk.arrow").write_bytes(b"not arrow at all")
    with pytest.raises(InvalidInputError, match="not an Arrow IPC file"):
        alma_store.create(tmp_path / "s-junk", str(tmp_path / "junk.arrow"), column="v")
    with pytest.raises(InvalidInputError, match="name the column"):
        alma_store.create(tmp_path / "s-nocol", str(tmp_path / "ragged.arrow"))
    with pytest.raises(alma_store.SourceMissingError):
        alma_store.create(tmp_path / "s-gone", str(tmp_path / "gone.arrow"), column="v")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("s-", "t-"))) == []


def test_a_replaced_arrow_file_is_refused(tmp_path: Path) -> None:
    x = embeddings(200, 4)
    write_ipc(tmp_path / "x.arrow", fixed_table(x), stream=True)
    alma_store.create(tmp_path / "s", str(tmp_path / "x.arrow"), column="embedding").close()
    y = x.copy()
    y[160] += 1  # same shape and size, other content in a sampled block
    write_ipc(tmp_path / "x.arrow", fixed_table(y), stream=True)
    with pytest.raises(SourceChangedError, match="sample"):
        alma_store.open(tmp_path / "s")
