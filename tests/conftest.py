"""Shared fixtures: feature arrays in every backend the store reads."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, settings

import alma_store
from alma_store.storage import Location, SharedLog, open_objects, read_shared_meta, shared_log

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile("default")

BACKENDS = ["npy", "zarr", "hdf5", "memory"]
REPO = Path(__file__).resolve().parents[1]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """With ``ALMA_NO_SKIPS=1`` (CI sets it) a skipped test fails: CI installs every
    optional dependency, so a skip there is missing work, not a missing library."""
    report = yield
    if report.skipped and os.environ.get("ALMA_NO_SKIPS") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped where nothing may be: {report.longrepr}"
    return report


def make_features(kind: str, directory: Path, array: np.ndarray) -> object:
    """Write ``array`` in backend ``kind`` under ``directory``; return what ``create`` takes."""
    directory.mkdir(parents=True, exist_ok=True)
    if kind == "npy":
        path = directory / "features.npy"
        np.save(path, array)
        return str(path)
    if kind == "zarr":
        path = directory / "features.zarr"
        zarr.create_array(path, data=array, chunks=(max(1, min(len(array), 7)), *array.shape[1:]))
        return path
    if kind == "hdf5":
        path = directory / "features.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("data/x", data=array)
        return f"{path}:/data/x"
    if kind == "memory":
        return array
    raise ValueError(kind)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each feature backend in turn."""
    return request.param


@pytest.fixture
def features_factory(tmp_path: Path, backend: str) -> Callable[[np.ndarray], object]:
    """Builds features in the current backend."""
    counter = iter(range(10**6))

    def build(array: np.ndarray) -> object:
        return make_features(backend, tmp_path / f"src{next(counter)}", array)

    return build


def start_together(
    code: str, argvs: list[list[str]], envs: list[dict[str, str]] | None = None
) -> list[subprocess.Popen[str]]:
    """Start one ``python -c code`` per argument list and release them at once.

    Each child prints ``ready`` once it is set up, then waits for a line on
    stdin; this returns when every child got its line. ``envs`` adds variables
    to each child's environment (the repo is importable in all).
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), **(envs[k] if envs else {})},
        )
        for k, argv in enumerate(argvs)
    ]
    for proc in procs:  # every child is set up: let them go at once
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return procs


def run_crashing(
    code: str, *args: str, crash: str = "", timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with the repo importable and
    ``ALMA_STORE_CRASH=crash`` (it SIGKILLs itself there); the caller checks how it ended."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "ALMA_STORE_CRASH": crash,
    }
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with the repo importable; fail loudly on error."""
    proc = run_crashing(code, *args, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def local_cluster(n_workers: int) -> Any:
    """A ``dask.distributed.LocalCluster`` of worker processes bound to 127.0.0.1.

    Without a dashboard; the scheduler's HTTP server (which it starts anyway) takes
    a free loopback port rather than 8787 on every interface, so that concurrent
    test processes never collide.
    """
    from dask.distributed import LocalCluster

    return LocalCluster(
        n_workers=n_workers,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )


def check_workers_reopen(
    store: object,
    x: np.ndarray,
    score: Callable[[np.ndarray], np.ndarray],
    k: int,
    labeled_row: tuple[int, object],
) -> None:
    """Dask workers (a ``LocalCluster``) and a pickled ``ViewDataset`` reopen ``store``.

    The workers compute the Unlabeled view and score it (``score`` must be
    picklable); the view's rows, the best ``k`` and the Labeled view's second
    row ``(dataset index, label)`` must be those of ``x``.
    """
    import pickle

    from dask.distributed import Client

    from alma_store import dask as alma_dask
    from alma_store.torch import ViewDataset

    with (
        local_cluster(n_workers=1) as cluster,
        Client(cluster) as client,
    ):
        rows = client.compute(store.unlabeled.to_dask()).result()  # type: ignore[attr-defined]
        assert alma_dask.score(store, score, "workers", client=client) > 0  # type: ignore[arg-type]
    mask = np.asarray(store.labeled_mask)  # type: ignore[attr-defined]
    assert np.array_equal(rows, x[~mask])
    free = np.flatnonzero(~mask)
    best = free[np.argsort(-score(x[free]), kind="stable")[:k]]
    assert store.top_k("workers", k).dataset_indices.tolist() == best.tolist()  # type: ignore[attr-defined]
    worker_copy = pickle.loads(pickle.dumps(ViewDataset(store.labeled)))  # type: ignore[attr-defined]
    row, label = worker_copy[1]
    index, expected = labeled_row
    assert np.array_equal(row, x[index]) and label == expected


S3_SERVER = Path(__file__).parents[1] / "tools" / "s3_server.py"


class S3:
    """A running ``tools/s3_server.py``: its endpoint and storage options."""

    def __init__(self, mode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(S3_SERVER), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.info = json.loads(self.proc.stdout.readline())

    def options(self, who: str = "writer") -> dict[str, Any]:
        key, secret = self.info[who]
        return {
            "endpoint_url": self.info["endpoint"],
            "key": key,
            "secret": secret,
            "client_kwargs": {"region_name": "us-east-1"},
        }

    def keys(self) -> list[str]:
        import boto3

        key, secret = self.info["writer"]
        client = boto3.client(
            "s3",
            endpoint_url=self.info["endpoint"],
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )
        return [o["Key"] for o in client.list_objects_v2(Bucket="bkt").get("Contents", [])]

    def stop(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    server = S3("plain")
    yield server
    server.stop()


AZURITE_KEY = (  # the emulator's well-known account key (published, not a secret)
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def cached_tool(variable: str, pattern: str, *, on_path: bool = False) -> Path | None:
    """A tool ``.ci/run`` installs: ``$variable``, else the newest match of ``pattern`` in
    its cache (``$ALMA_CACHE``, default ``~/.cache/alma_store-ci``), else (``on_path``)
    the command of that name on PATH."""
    if os.environ.get(variable):
        return Path(os.environ[variable])
    cache = Path(os.environ.get("ALMA_CACHE", Path.home() / ".cache" / "alma_store-ci"))
    found = sorted(cache.glob(pattern))
    if found:
        return found[-1]
    command = shutil.which(Path(pattern).name) if on_path else None
    return Path(command) if command else None


def free_port() -> int:
    """A free TCP port on 127.0.0.1, for a server that cannot be given port 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Azurite:
    """A running Azurite blob server on 127.0.0.1 (a free port), in memory, with a
    container ``cont``; its storage options are one connection string, which serves
    the shared store (obstore) and Zarr features (adlfs) alike."""

    def __init__(self) -> None:
        command = cached_tool(
            "ALMA_AZURITE", "azurite-*/node_modules/.bin/azurite-blob", on_path=True
        )
        if command is None:
            pytest.skip("Azurite is not installed (.ci/run installs it from npm)")
        self.proc = subprocess.Popen(
            [
                command,
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "0",
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--loose",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # it says where it listens once it does
            if "listens on" in line:
                self.endpoint = line.split("listens on", 1)[1].strip() + "/devstoreaccount1"
                break
        else:
            raise RuntimeError(f"Azurite did not start (exit code {self.proc.wait()})")
        self._drain = threading.Thread(target=self.proc.stdout.read, daemon=True)  # its log
        self._drain.start()
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(self.connection_string).create_container("cont")

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.endpoint};"
        )

    def options(self) -> dict[str, Any]:
        return {"connection_string": self.connection_string}

    def stop(self) -> None:
        assert self.proc.stdout is not None
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self._drain.join(timeout=60)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    server = Azurite()
    yield server
    server.stop()


class Counted:
    """A store's objects, counting the names each ``get`` asked for, with a hook run
    right after a listing of ``log/`` (to change the store between it and the fetch)."""

    def __init__(self, objects: Any, after_log_listing: Any = None) -> None:
        self.objects, self.hook, self.got, self.listed = objects, after_log_listing, [], []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.objects, name)

    def get(self, name: str) -> bytes | None:
        self.got.append(name)
        return self.objects.get(name)

    def get_many(self, names: list[str]) -> list[bytes | None]:
        self.got.extend(names)
        return self.objects.get_many(names)

    def list(self, prefix: str, after: str = "", limit: int | None = None) -> Any:
        out = self.objects.list(prefix, after, limit)
        self.listed.append(prefix)
        if prefix == "log/" and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return out


class Where:
    """Where a test's shared store lives: a location and its storage options."""

    def __init__(self, location: str, options: dict[str, Any] | None) -> None:
        self.location = location
        self.options = options

    def create(self, n: int = 200, **kwargs: Any) -> alma_store.Store:
        return alma_store.create(
            self.location, n_items=n, shared=True, storage_options=self.options, **kwargs
        )

    def open(self, **kwargs: Any) -> alma_store.Store:
        return alma_store.open(self.location, storage_options=self.options, **kwargs)

    def log(self, **kwargs: Any) -> SharedLog:
        objects = open_objects(Location.parse(self.location, self.options))
        return shared_log(objects, read_shared_meta(objects), **kwargs)

    def names(self, prefix: str) -> list[str]:
        return [
            item.name
            for item in open_objects(Location.parse(self.location, self.options)).list(prefix)
        ]


@pytest.fixture(params=["dir", "s3", "azure"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    if request.param == "dir":
        return Where(str(tmp_path / "shared"), None)
    if request.param == "azure":
        azure: Azurite = request.getfixturevalue("azurite")
        return Where(f"az://cont/{uuid.uuid4().hex}", azure.options())
    server: S3 = request.getfixturevalue("s3")
    return Where(f"s3://bkt/{uuid.uuid4().hex}", server.options())


def labeled_of(store: alma_store.Store) -> dict[int, int]:
    labeled = store.labeled
    idx = labeled.to_dataset_index(np.arange(len(labeled)))
    return dict(zip(idx.tolist(), np.asarray(labeled.labels).tolist(), strict=True))


@pytest.fixture
def local_ray() -> Iterator[Any]:
    """A local Ray, started for the test: 2 CPUs, no dashboard, on 127.0.0.1."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        configure_logging=False,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()
