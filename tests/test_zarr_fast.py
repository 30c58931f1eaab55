"""The Zarr chunk-file fast path reads exactly what zarr-python reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.codecs import BloscCodec, ZstdCodec

import alma_store
from alma_store.sources import ZarrSource

CODECS = {"raw": None, "zstd": [ZstdCodec(level=3)], "blosc": [BloscCodec(cname="lz4")]}


def make(
    tmp_path: Path, name: str, shape: tuple[int, ...], chunk: int, codec: str, **kw: object
) -> tuple[np.ndarray, Path]:
    x = np.random.default_rng(len(name)).normal(size=shape).astype(np.float32)
    path = tmp_path / name
    arr = zarr.create_array(
        path,
        shape=shape,
        chunks=(chunk, *shape[1:]),
        dtype=x.dtype,
        compressors=CODECS[codec],
        fill_value=-7.0,
        **kw,
    )
    arr[:] = x
    return x, path


@pytest.mark.parametrize("codec", list(CODECS))
def test_fast_path_matches_zarr(tmp_path: Path, codec: str) -> None:
    x, path = make(tmp_path, f"x-{codec}", (1003, 4, 2), 64, codec)
    src = ZarrSource(path)
    assert src.fast_path
    rng = np.random.default_rng(0)
    for size in (1, 7, 300, 1003):
        idx = np.sort(rng.choice(1003, size, replace=False))
        assert np.array_equal(src.read_sorted(idx), x[idx])
        buf = src.buffer(1100)
        assert np.array_equal(src.read_sorted(idx, buf), x[idx])
    for lo, hi in ((0, 1003), (5, 6), (60, 70), (990, 1003)):
        assert np.array_equal(src.read_range(lo, hi), x[lo:hi])
    src.close()


def test_missing_chunks_are_the_fill_value(tmp_path: Path) -> None:
    path = tmp_path / "sparse"
    arr = zarr.create_array(path, shape=(100, 3), chunks=(10, 3), dtype="f4", fill_value=-7.0)
    arr[20:30] = 1.0  # only chunk 2 is written
    src = ZarrSource(path)
    assert src.fast_path
    assert np.array_equal(src.read_range(0, 100), arr[:])
    assert np.array_equal(src.read_sorted(np.array([0, 25, 99])), arr.oindex[[0, 25, 99]])


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 300),
    st.integers(1, 70),
    st.lists(st.integers(0, 299), max_size=120),
    st.sampled_from(list(CODECS)),
)
def test_fast_path_property(n: int, chunk: int, picks: list[int], codec: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        x, path = make(Path(d), "p", (n, 3), chunk, codec)
        src = ZarrSource(path)
        idx = np.unique(np.array([p % n for p in picks], dtype=np.int64))
        assert np.array_equal(src.read_sorted(idx), x[idx])
        # A stream of consecutive ranges, as view.batches() asks: the look-ahead stays right.
        for lo in range(0, n, 17):
            assert np.array_equal(src.read_range(lo, min(n, lo + 17)), x[lo : lo + 17])
        src.close()


def test_layouts_it_does_not_handle_go_through_zarr(tmp_path: Path) -> None:
    x, split = make(tmp_path, "split", (50, 6), 10, "zstd")
    zarr.create_array(tmp_path / "cols", shape=(50, 6), chunks=(10, 3), dtype="f4")[:] = x
    zarr.create_array(tmp_path / "v2", shape=(50, 6), chunks=(10, 6), dtype="f4", zarr_format=2)[
        :
    ] = x
    zarr.create_array(
        tmp_path / "sharded", shape=(50, 6), chunks=(10, 6), shards=(50, 6), dtype="f4"
    )[:] = x
    assert ZarrSource(split).fast_path
    for name in ("cols", "v2", "sharded"):
        src = ZarrSource(tmp_path / name)
        assert not src.fast_path, name
        assert np.array_equal(src.read_sorted(np.array([1, 11, 49])), x[[1, 11, 49]])


def test_damaged_chunk_of_a_source_is_a_source_error(tmp_path: Path) -> None:
    _, path = make(tmp_path, "feat", (200, 4), 50, "zstd")
    store = alma_store.create(tmp_path / "s", str(path))
    (path / "c" / "1" / "0").write_bytes(b"not zstd at all")
    store.close()
    with (
        pytest.raises(alma_store.SourceChangedError, match="cannot be read"),
        alma_store.open(tmp_path / "s") as s,  # the fingerprint reads chunk 1 too
    ):
        s.unlabeled[60]
