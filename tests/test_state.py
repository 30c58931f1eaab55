"""The on-disk state: the fast chunk reader agrees with zarr; checkpoints are validated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from alma_store import _state
from alma_store.errors import CorruptStoreError


@settings(max_examples=25)
@given(n=st.integers(1, 300), chunk_rows=st.integers(1, 64), data=st.data())
def test_fast_reader_matches_zarr(
    tmp_path_factory, n: int, chunk_rows: int, data: st.DataObject
) -> None:
    root = tmp_path_factory.mktemp("state")
    _state.create_arrays(root, n, chunk_rows, np.dtype("int16"), ())
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    arr = zarr.open_array(root / "state" / "mask", mode="r+")
    arr[:] = mask
    fast = _state.StateArrays(root, n, chunk_rows)
    slow = _state.StateArrays(root, n, chunk_rows)
    slow._decoder = None  # through zarr-python
    assert fast._decoder is not None
    for j in range(-(-n // chunk_rows)):
        lo, hi = fast.chunk_bounds(j)
        want = np.flatnonzero(mask[lo:hi])
        assert np.array_equal(fast.read_marks(j), want)
        assert np.array_equal(slow.read_marks(j), want)


def test_cache_is_bounded(tmp_path: Path) -> None:
    _state.create_arrays(tmp_path, 1000, 10, np.dtype("int8"), ())
    zarr.open_array(tmp_path / "state" / "mask", mode="r+")[:] = True
    arrays = _state.StateArrays(tmp_path, 1000, 10, cache_bytes=2000)
    for j in range(100):
        arrays.read_marks(j)
    assert arrays._cache_used <= 2000 and 0 < len(arrays._cache) < 100


def test_checkpoint_round_trip_and_damage(tmp_path: Path) -> None:
    counts = np.array([3, 0, 7], np.int64)
    _state.write_checkpoint(tmp_path, version=5, journal_offset=99, counts=counts)
    version, offset, got = _state.read_checkpoint(tmp_path, 3)
    assert (version, offset, got.tolist()) == (5, 99, [3, 0, 7])
    with pytest.raises(CorruptStoreError, match="3 chunk counts, the store has 4"):
        _state.read_checkpoint(tmp_path, 4)
    (tmp_path / "checkpoint.bin").write_bytes(b"ALMACKP1")
    with pytest.raises(CorruptStoreError, match="damaged"):
        _state.read_checkpoint(tmp_path, 3)
