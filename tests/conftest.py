"""Shared fixtures: feature arrays in every backend the store reads."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile("default")

BACKENDS = ["npy", "zarr", "hdf5", "memory"]
REPO = Path(__file__).resolve().parents[1]


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


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with the repo importable; fail loudly on error."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stderr}")
    return proc
