"""The on-disk state: chunk files zarr reads, marks index and checkpoint checked on read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from alma_store import storage as _state
from alma_store.core import STR_DTYPE
from alma_store.errors import CorruptStoreError


@settings(max_examples=25)
@given(
    n=st.integers(1, 120),
    chunk_rows=st.integers(1, 40),
    dtype=st.sampled_from(["int16", "float64", "bool", "U3", "str"]),
    data=st.data(),
)
def test_chunk_files_round_trip_through_zarr(
    tmp_path_factory: pytest.TempPathFactory,
    n: int,
    chunk_rows: int,
    dtype: str,
    data: st.DataObject,
) -> None:
    """Chunks the store encodes read back through zarr-python, and zarr's through the store."""
    root = tmp_path_factory.mktemp("state")
    label_dtype = STR_DTYPE if dtype == "str" else np.dtype(dtype)
    _state.create_arrays(root, n, chunk_rows, label_dtype, ())
    arrays = _state.StateArrays(root, n, chunk_rows, label_dtype, ())
    values = np.array(data.draw(st.lists(st.integers(0, 99), min_size=n, max_size=n)))
    labels = (
        values.astype(str).astype(label_dtype) if dtype in ("U3", "str") else values.astype(dtype)
    )
    mask = values % 3 == 0
    files = {}
    for j in range(-(-n // chunk_rows)):
        lo, hi = j * chunk_rows, min(n, (j + 1) * chunk_rows)
        files["mask", j] = arrays.codecs["mask"].encode(mask[lo:hi])
        files["labels", j] = arrays.codecs["labels"].encode(labels[lo:hi])
    arrays.write(files)
    assert np.array_equal(zarr.open_array(root / "state" / "mask")[:], mask)
    assert np.array_equal(zarr.open_array(root / "state" / "labels")[:], labels)
    zarr.open_array(root / "state" / "labels", mode="r+")[:] = labels[::-1]
    for j in range(-(-n // chunk_rows)):
        lo, hi = j * chunk_rows, min(n, (j + 1) * chunk_rows)
        codec = arrays.codecs["labels"]
        assert np.array_equal(codec.decode(codec.read_raw(j), j, hi - lo), labels[::-1][lo:hi])


def test_marks_index_round_trip_and_damage(tmp_path: Path) -> None:
    runs = [np.array([1, 3]), np.empty(0, np.int64), np.array([0, 1, 2])]
    table = np.zeros(3, _state.ENTRY)
    table["labels"][2] = _state.file_checksum(b"x")
    _state.write_marks(tmp_path, 4, runs, table)
    counts = np.array([2, 0, 3])
    index = _state.open_marks(tmp_path, 4, counts, 3)
    assert index is not None
    got = index.runs(np.array([0, 2]))
    assert got.run(0).tolist() == [1, 3] and got.run(1).tolist() == [0, 1, 2]
    assert index.file_entry("labels", 2) == _state.file_checksum(b"x")
    pending = _state.open_marks(tmp_path, 4, None, 3)  # a checkpoint in progress: counts inside
    assert pending is not None and pending.counts.tolist() == [2, 0, 3]
    with pytest.raises(CorruptStoreError, match="does not match the checkpoint"):
        _state.open_marks(tmp_path, 4, np.array([2, 0, 2]), 3)
    path = _state.marks_path(tmp_path, 4)
    raw = bytearray(path.read_bytes())
    raw[-4:] = (7).to_bytes(4, "little")  # an offset of chunk 2 changes
    path.write_bytes(bytes(raw))
    index = _state.open_marks(tmp_path, 4, counts, 3)
    assert index is not None
    index.runs(np.array([0]))  # chunk 0 is intact
    with pytest.raises(CorruptStoreError, match="damaged at chunk 2"):
        index.runs(np.array([2]))
    path.write_bytes(bytes(raw[:-4]))
    with pytest.raises(CorruptStoreError, match="wrong size"):
        _state.open_marks(tmp_path, 4, counts, 3)
    assert _state.open_marks(tmp_path, 5, counts, 3) is None


def test_checkpoint_round_trip_and_damage(tmp_path: Path) -> None:
    counts = np.array([3, 0, 7], np.int64)
    _state.write_checkpoint(tmp_path, _state.Checkpoint(5, 99, counts))
    got = _state.read_checkpoint(tmp_path, 3)
    assert (got.version, got.journal_offset, got.counts.tolist()) == (5, 99, [3, 0, 7])
    with pytest.raises(CorruptStoreError, match="3 chunk counts, the store has 4"):
        _state.read_checkpoint(tmp_path, 4)
    (tmp_path / "checkpoint.bin").write_bytes(b"ALMACKP1")
    with pytest.raises(CorruptStoreError, match="damaged"):
        _state.read_checkpoint(tmp_path, 3)
    (tmp_path / "checkpoint.bin").unlink()
    with pytest.raises(CorruptStoreError, match="missing"):
        _state.read_checkpoint(tmp_path, 3)
