"""Zarr features in object storage, against a local S3 server (moto, 127.0.0.1, port 0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import alma_store
from alma_store import SourceMissingError

from .conftest import REPO, S3, check_workers_reopen

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")


def start_server() -> tuple[S3, dict[str, Any]]:
    """A fresh S3 server on a free loopback port, and the storage options that reach it."""
    server = S3("plain")
    # A server that is gone is reported at once, not after backing off.
    retries = {"config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    return server, {**server.options(), **retries}


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    server, options = start_server()
    yield options
    server.stop()


def put_features(options: dict[str, Any], key: str, n: int = 2000) -> np.ndarray:
    x = np.random.default_rng(n).normal(size=(n, 5)).astype(np.float32)
    arr = zarr.create_array(
        f"s3://bkt/{key}",
        shape=x.shape,
        chunks=(256, 5),
        dtype=x.dtype,
        storage_options=options,
        overwrite=True,
    )
    arr[:] = x
    return x


def test_create_stream_gather_score_and_resume_over_s3(tmp_path: Path, s3: dict[str, Any]) -> None:
    x = put_features(s3, "feat.zarr")
    store = alma_store.create(tmp_path / "s", "s3://bkt/feat.zarr", storage_options=s3)
    assert store.meta["features"]["url"] == "s3://bkt/feat.zarr"
    assert "testing" not in (tmp_path / "s" / "meta.json").read_text()  # no secrets on disk
    store.add_labels(np.arange(0, 2000, 3), np.ones(667, np.int64), relative_to="dataset")
    mask = np.asarray(store.labeled_mask)
    assert np.array_equal(np.asarray(store.unlabeled), x[~mask])
    pos = np.sort(np.random.default_rng(1).choice(len(store.unlabeled), 50, replace=False))
    assert np.array_equal(store.unlabeled[pos], x[~mask][pos])
    store.score(lambda rows: rows[:, 1], "col1", batch_rows=300)
    best = np.flatnonzero(~mask)[np.argsort(-x[~mask, 1], kind="stable")[:4]]
    assert store.top_k("col1", 4).dataset_indices.tolist() == best.tolist()
    store.close()
    code = (  # a new process resumes it, with the options passed again
        "import json, sys, numpy as np, alma_store\n"
        "s = alma_store.open(sys.argv[1], storage_options=json.loads(sys.argv[2]))\n"
        "s.add_labels([1], [5], relative_to='dataset')\n"
        "print(s.num_labeled, float(np.asarray(s.labeled)[:, 0].sum()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s"), json.dumps(s3)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    n, total = out.stdout.split()
    mask[1] = True
    assert int(n) == 668 and np.isclose(float(total), x[mask, 0].sum(), rtol=1e-4)


def test_a_zarr_array_opened_on_s3(tmp_path: Path, s3: dict[str, Any]) -> None:
    x = put_features(s3, "arr.zarr", n=300)
    arr = zarr.open_array("s3://bkt/arr.zarr", mode="r", storage_options=s3)
    with alma_store.create(tmp_path / "s", arr, storage_options=s3) as store:
        assert store.meta["features"]["url"] == "s3://bkt/arr.zarr"
        assert np.array_equal(store.unlabeled[[0, 299]], x[[0, 299]])
    with alma_store.open(tmp_path / "s", mode="r", storage_options=s3) as store:
        assert len(store) == 300


def test_a_zarr_array_is_used_with_its_own_options_and_endpoint(
    tmp_path: Path, s3: dict[str, Any]
) -> None:
    """An array opened with storage_options and given to create without them: used through
    its own store here; elsewhere reopened at the recorded endpoint (never a public one),
    with only the credentials passed again."""
    x = put_features(s3, "own.zarr", n=200)
    arr = zarr.open_array("s3://bkt/own.zarr", mode="r", storage_options=s3)
    with alma_store.create(tmp_path / "s", arr) as store:  # no storage_options
        assert np.array_equal(store.unlabeled[[0, 199]], x[[0, 199]])
    meta = (tmp_path / "s" / "meta.json").read_text()
    assert s3["endpoint_url"] in meta and "testing" not in meta  # the endpoint, no secret
    credentials = {k: v for k, v in s3.items() if k != "endpoint_url"}
    with alma_store.open(tmp_path / "s", mode="r", storage_options=credentials) as store:
        assert np.array_equal(np.asarray(store.unlabeled[[5]]), x[[5]])


def test_missing_bucket_or_key_creates_nothing(tmp_path: Path, s3: dict[str, Any]) -> None:
    for url in ("s3://bkt/nothing.zarr", "s3://no-such-bucket/x.zarr"):
        with pytest.raises(SourceMissingError, match=r"no Zarr array at|cannot be opened"):
            alma_store.create(tmp_path / "s", url, storage_options=s3)
        assert not (tmp_path / "s").exists()
    for url in ("s3://bkt/x.npy", "s3://bkt/x.h5:/data"):
        with pytest.raises(alma_store.InvalidInputError, match="reads Zarr arrays"):
            alma_store.create(tmp_path / "s", url, storage_options=s3)
    with pytest.raises(alma_store.InvalidInputError, match="storage_options must be a dict"):
        alma_store.create(tmp_path / "s", "s3://bkt/feat.zarr", storage_options="key=x")


def test_a_dropped_connection_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    server, options = start_server()
    x = put_features(options, "drop.zarr", n=4000)
    store = alma_store.create(tmp_path / "s", "s3://bkt/drop.zarr", storage_options=options)
    store.add_labels([0, 1], [1, 1], relative_to="dataset")
    version = store.version
    batches = store.unlabeled.batches(500)
    _, first = next(batches)
    assert np.array_equal(first, x[2:502])
    server.stop()  # the connection goes away mid-stream
    with pytest.raises(SourceMissingError, match=r"could not be read from s3://bkt/drop\.zarr"):
        for _ in batches:
            pass
    with pytest.raises(SourceMissingError):
        store.score(lambda rows: rows[:, 0], "never", batch_rows=500)
    assert store.version == version and store.scoring_progress("never")[0] == 0
    store.close()
    with pytest.raises(SourceMissingError):
        alma_store.open(tmp_path / "s", storage_options=options)  # the server is gone


def test_remote_reads_match_numpy_in_any_order_of_access(
    tmp_path: Path, s3: dict[str, Any]
) -> None:
    """Chunk spans kept from the last read and fetched ahead never serve wrong rows."""
    from alma_store.sources import RemoteZarrSource

    x = put_features(s3, "order.zarr", n=1500)
    src = RemoteZarrSource("s3://bkt/order.zarr", s3)
    rng = np.random.default_rng(7)
    for _ in range(25):
        lo = int(rng.integers(0, 1400))
        hi = int(rng.integers(lo + 1, min(1500, lo + 700) + 1))
        idx = np.flatnonzero(rng.random(hi - lo) < 0.9) + lo  # dense: the chunk-span path
        if len(idx):
            assert np.array_equal(src.read_sorted(idx), x[idx])
    for lo in range(0, 1500, 333):  # a sequential stream: look-ahead in use
        idx = np.arange(lo, min(lo + 333, 1500))
        assert np.array_equal(src.read_sorted(idx, src.buffer(400)), x[idx])
    src.close()


def test_wrong_credentials_are_named_and_nothing_is_created(tmp_path: Path) -> None:
    server = S3("read-only")  # access control on; its writer may do everything
    try:
        good = server.options()
        put_features(good, "secured.zarr", n=100)
        with pytest.raises(alma_store.InvalidInputError, match="refused: check storage_options"):
            alma_store.create(
                tmp_path / "s", "s3://bkt/secured.zarr", storage_options={**good, "secret": "wrong"}
            )
        assert not (tmp_path / "s").exists()
        with alma_store.create(tmp_path / "s", "s3://bkt/secured.zarr", storage_options=good) as s:
            assert len(s) == 100
    finally:
        server.stop()


def first_column(rows: np.ndarray) -> np.ndarray:
    """A module-level scoring function (workers unpickle it)."""
    return rows[:, 0]


@pytest.mark.slow
def test_workers_reopen_s3_features(tmp_path: Path, s3: dict[str, Any]) -> None:
    """Dask workers and a DataLoader-style worker reopen the store with the same options."""
    x = put_features(s3, "workers.zarr", n=1200)
    store = alma_store.create(tmp_path / "s", "s3://bkt/workers.zarr", storage_options=s3)
    store.add_labels([3, 700], [1, 2], relative_to="dataset")
    check_workers_reopen(store, x, first_column, 3, (700, 2))
    assert "secret" not in (tmp_path / "s" / "meta.json").read_text()
    store.close()
