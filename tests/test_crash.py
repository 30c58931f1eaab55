"""Crash safety with real processes and real SIGKILL.

A writer subprocess labels batches and prints each batch after ``add_labels``
returned (acknowledged). It kills itself with SIGKILL at a crash point
(``ALMA_STORE_CRASH``, see :mod:`alma_store.storage._fs`): at a random fsync, or at the
dangerous instants (mid-append, after an append, between chunk writes of a
checkpoint, before the checkpoint file is replaced). Never after a sleep. After every kill the
store must hold every acknowledged batch, whole, and at most the one batch in
flight; mask, labels and counts must agree with the journal.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import alma_store

from .conftest import REPO

WRITER = r"""
import json, sys
import numpy as np
import alma_store

path, ckpt_rows, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
with alma_store.open(path, checkpoint_rows=ckpt_rows) as store:
    while store.num_unlabeled:
        k = int(min(store.num_unlabeled, rng.integers(1, 6)))
        positions = rng.choice(store.num_unlabeled, size=k, replace=False)
        values = store.unlabeled.to_dataset_index(positions) * 3 + 1  # label = f(dataset index)
        done = store.add_labels(positions, values, expected_version=store.version)
        print(json.dumps({"v": store.version, "idx": done.tolist()}), flush=True)
        if store.version % 3 == 0:  # a correction to the same value: a commit the checks survive
            again = done[:1]
            store.relabel(again, again * 3 + 1, annotator="checker")
            print(json.dumps({"v": store.version, "idx": again.tolist()}), flush=True)
"""


def start_writer(path: Path, ckpt_rows: int, seed: int, crash: str = "") -> subprocess.Popen[str]:
    """A labeling process; ``crash`` (``ALMA_STORE_CRASH``) makes it SIGKILL itself there."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "ALMA_STORE_CRASH": crash}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(ckpt_rows), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def acknowledged(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def check_after_crash(
    path: Path,
    acked: list[dict[str, object]],
    n_before: int,
    acked_before: list[dict[str, object]] = (),
) -> int:
    """Every acknowledged batch is there, whole; at most one more batch; state consistent.

    ``acked`` are this writer's acknowledged batches, ``n_before`` the version it started at.
    """
    with alma_store.open(path) as store:
        summary = store.verify()
        mask = np.asarray(store.labeled_mask)
        labeled = np.flatnonzero(mask)
        labels = store.labels
        for batch in [*acked_before, *acked]:
            idx = np.array(batch["idx"])
            assert mask[idx].all(), f"acknowledged batch {batch} lost"
            assert np.array_equal(labels[np.searchsorted(labeled, idx)], idx * 3 + 1)
        assert np.array_equal(labels, labeled * 3 + 1)
        last_acked = max([int(b["v"]) for b in acked], default=n_before)
        assert store.version in (last_acked, last_acked + 1), (store.version, last_acked)
        return summary["version"]


@pytest.mark.slow
def test_random_sigkill_loses_no_acknowledged_label(tmp_path: Path) -> None:
    n = 3000
    alma_store.create(tmp_path / "s", np.zeros((n, 2), np.float32), chunk_rows=64).close()
    rng = random.Random(1234)
    version = 0
    acked_all: list[dict[str, object]] = []
    for round_no in range(12):
        # Killed at a random fsync: inside an append, a truncation, a checkpoint's chunk
        # files, its marks index, its checkpoint file, or the directory entries after them.
        crash = f"fsync:{rng.randint(1, 120)}"
        proc = start_writer(
            tmp_path / "s", ckpt_rows=rng.choice([3, 20, 200]), seed=round_no, crash=crash
        )
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, err
        acked = acknowledged(out)
        version = check_after_crash(tmp_path / "s", acked, version, acked_all)
        acked_all += acked
    assert version > 0, "no writer ever got to label anything"


@pytest.mark.slow
@pytest.mark.parametrize(
    "crash_at", ["append-torn:5", "append-done:5", "checkpoint-chunks:2", "checkpoint-file:2"]
)
def test_sigkill_at_dangerous_instants(tmp_path: Path, crash_at: str) -> None:
    alma_store.create(tmp_path / "s", np.zeros((500, 2), np.float32), chunk_rows=16).close()
    proc = start_writer(tmp_path / "s", ckpt_rows=4, seed=7, crash=crash_at)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    acked = acknowledged(out)
    assert acked, "the writer died before acknowledging anything"
    version = check_after_crash(tmp_path / "s", acked, 0)
    if crash_at.startswith("append-torn"):
        assert version == len(acked)  # the torn record is not a commit
    if crash_at.startswith("append-done"):
        assert version == len(acked) + 1  # durable though never acknowledged
    # The store goes on: a new writer labels over the crash site.
    proc = start_writer(tmp_path / "s", ckpt_rows=4, seed=8)
    _, err2 = proc.communicate(timeout=300)
    assert proc.returncode == 0, err2
    with alma_store.open(tmp_path / "s") as store:
        assert store.num_unlabeled == 0
        assert store.verify()["num_labeled"] == 500
        assert np.array_equal(store.labels, np.arange(500) * 3 + 1)
