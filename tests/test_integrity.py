"""Format v2: every damaged, truncated, missing or swapped file gives CorruptStoreError.

Each case damages one file of a checkpointed store (with a journal tail), then reads it
as a user would. The read must either raise CorruptStoreError or return exactly what the
undamaged store returns: never another exception type, never wrong data.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store.errors import CorruptStoreError


def build(path: Path) -> None:
    with alma_store.create(path, np.arange(40.0).reshape(20, 2), chunk_rows=4) as s:
        s.add_labels([0, 5, 6, 9, 13, 19], [10, 11, 12, 13, 14, 15], relative_to="dataset")
        s.checkpoint()
        s.add_labels([2], [16], relative_to="dataset")
        s.close(checkpoint=False)


def read_all(path: Path) -> tuple[list[int], list[int], list[int], dict[str, int]]:
    with alma_store.open(path, mode="r") as s:
        return (
            np.flatnonzero(np.asarray(s.labeled_mask)).tolist(),
            s.labels.tolist(),
            s.unlabeled.to_dataset_index(np.arange(s.num_unlabeled)).tolist(),
            s.verify(),
        )


def flip(p: Path) -> None:
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    p.write_bytes(bytes(raw))


def truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def delete(p: Path) -> None:
    p.unlink()


DAMAGE: dict[str, Callable[[Path], None]] = {"flip": flip, "truncate": truncate, "delete": delete}
FILES = [
    "meta.json",
    "journal.bin",
    "features/zarr.json",
    *(f"features/c/{j}/0" for j in range(3)),
    "checkpoint.bin",
    "marks-1.bin",
    "state/mask/zarr.json",
    "state/labels/zarr.json",
    *(f"state/mask/c/{j}" for j in range(5)),
    *(f"state/labels/c/{j}" for j in range(5)),
]


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("golden") / "s"
    build(path)
    return path, read_all(path)


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("how", list(DAMAGE))
def test_damaged_file_is_an_error_or_harmless(
    tmp_path: Path, golden: tuple[Path, object], name: str, how: str
) -> None:
    path, want = golden
    copy = tmp_path / "s"
    shutil.copytree(path, copy)
    DAMAGE[how](copy / name)
    try:
        got = read_all(copy)
    except CorruptStoreError as exc:
        message = str(exc)
    else:
        assert got == want, f"{how} of {name} gave wrong data silently"
        return
    assert Path(name).name in message or name.split("/")[0] in message, message


@pytest.mark.parametrize("kind", ["mask", "labels"])
def test_swapped_chunk_files_are_an_error(
    tmp_path: Path, golden: tuple[Path, object], kind: str
) -> None:
    path, _ = golden
    copy = tmp_path / "s"
    shutil.copytree(path, copy)
    a, b = copy / f"state/{kind}/c/1", copy / f"state/{kind}/c/3"
    raw_a, raw_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(raw_b)
    b.write_bytes(raw_a)
    with pytest.raises(CorruptStoreError, match=f"{kind}/c/[13]"):
        read_all(copy)


def test_n_items_bit_flip_in_meta_is_refused(tmp_path: Path, golden: tuple[Path, object]) -> None:
    path, _ = golden
    copy = tmp_path / "s"
    shutil.copytree(path, copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["n_items"] ^= 1  # 20 -> 21: a phantom item, with the checksum left as it was
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CorruptStoreError, match=r"meta\.json is damaged"):
        alma_store.open(copy, mode="r")


def test_same_shape_replacement_of_features_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((50, 3)))
    alma_store.create(tmp_path / "s", str(tmp_path / "x.npy")).close()
    np.save(tmp_path / "x.npy", np.ones((50, 3)))  # same shape, dtype and size
    with pytest.raises(alma_store.SourceChangedError, match="sample"):
        alma_store.open(tmp_path / "s")


def test_damaged_external_zarr_features_are_a_source_error(tmp_path: Path) -> None:
    """The user's own Zarr features, damaged: a SourceChangedError naming them, not a RuntimeError."""
    import zarr

    X = np.arange(400.0).reshape(200, 2)
    zarr.create_array(tmp_path / "x.zarr", data=X, chunks=(10, 2))
    alma_store.create(tmp_path / "s", tmp_path / "x.zarr").close()
    (tmp_path / "x.zarr" / "c" / "5" / "0").write_bytes(b"garbage")
    # Caught at open if the sampled rows cover the chunk, else when its rows are read.
    with (
        pytest.raises(alma_store.SourceChangedError, match=r"x\.zarr cannot be read"),
        alma_store.open(tmp_path / "s", mode="r") as s,
    ):
        np.asarray(s.unlabeled)
