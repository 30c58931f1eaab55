"""Several real processes labeling one store at the same time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import alma_store

from .conftest import REPO, start_together

WORKER = r"""
import json, sys
import numpy as np
import alma_store

path, worker, n_workers, shared, reserve = (sys.argv[1], *map(int, sys.argv[2:6]))
won, lost, by_position = [], [], []
with alma_store.open(path, checkpoint_rows=7) as store:  # checkpoints race with appends
    # Items [0, shared) are contended, the last `reserve` are taken by position, the rest owned.
    own = np.arange(shared + worker, len(store) - reserve, n_workers)
    for k, batch in enumerate(np.array_split(own, 25)):
        store.add_labels(batch, batch * 10 + worker, relative_to="dataset", annotator=f"w{worker}")
        # Contended items: every worker tries to take the same one.
        try:
            store.add_labels([k], [k * 10 + worker], relative_to="dataset")
            won.append(k)
        except alma_store.AlreadyLabeledError:
            lost.append(k)
    # Optimistic labeling by position: retry whenever another writer moved the store.
    for _ in range(5):
        while True:
            view = store.unlabeled
            if len(view) == 0:
                break
            target = int(view.to_dataset_index([len(view) - 1])[0])
            try:
                store.add_labels([len(view) - 1], [-1], expected_version=view.version)
                by_position.append(target)
                break
            except alma_store.StaleIndexError:
                continue
print(json.dumps({"won": won, "lost": lost, "by_position": by_position}))
"""


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    n_workers, shared, reserve, n = 4, 25, 40, 1200
    alma_store.create(tmp_path / "s", np.zeros((n, 1)), chunk_rows=32).close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(tmp_path / "s"),
                str(w),
                str(n_workers),
                str(shared),
                str(reserve),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for w in range(n_workers)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    with alma_store.open(tmp_path / "s", mode="r") as store:
        assert store.verify()["num_labeled"] == store.num_labeled
        mask = np.asarray(store.labeled_mask)
        labels = dict(zip(np.flatnonzero(mask).tolist(), store.labels.tolist(), strict=True))
    # Every worker's own items are labeled with that worker's value.
    for w in range(n_workers):
        for i in range(shared + w, n - reserve, n_workers):
            assert labels[i] == i * 10 + w
    # Each contended item went to exactly one worker, with that worker's value.
    for k in range(shared):
        winners = [w for w, r in enumerate(results) if k in r["won"]]
        assert len(winners) == 1, (k, winners)
        assert labels[k] == k * 10 + winners[0]
        assert all(k in r["lost"] for w, r in enumerate(results) if w != winners[0])
    # Positional labels hit the item the worker saw, and no two workers got the same one:
    # the top of the reserve, taken one by one.
    taken = sorted(i for r in results for i in r["by_position"])
    assert taken == list(range(n - 5 * n_workers, n))
    assert all(labels[i] == -1 for i in taken)
    assert len(labels) == n - reserve + 5 * n_workers


GROUP_WRITER = r"""
import sys
import alma_store
path, w, writers, n = sys.argv[1], *map(int, sys.argv[2:5])
store = alma_store.open(path, checkpoint_rows=10**9)  # no checkpoint: only commits fsync
print("ready", flush=True)
sys.stdin.readline()
for i in range(w, n, writers):
    store.add_labels([i], [w], relative_to="dataset")
    print(i, flush=True)  # acknowledged: add_labels returned
store.close(checkpoint=False)
"""


@pytest.mark.slow
def test_group_commit_survives_killed_writers(tmp_path: Path) -> None:
    """Writers killed inside the group commit leave every acknowledged label and no stuck lock.

    Writer 0 is killed about to ``fdatasync`` a size that may cover other writers' records
    (before it can record that size in ``journal.sync``); writer 1 right after appending its
    third commit and releasing the writer lock, before syncing it. The other two must finish, and every label any writer
    acknowledged must be there with its writer's value.
    """
    writers, n = 4, 400
    alma_store.create(tmp_path / "s", np.zeros((n, 1)), chunk_rows=32).close()
    crashes = {0: "fsync:3", 1: "commit-unsynced:3"}
    procs = start_together(
        GROUP_WRITER,
        [[str(tmp_path / "s"), str(w), str(writers), str(n)] for w in range(writers)],
        [{"ALMA_STORE_CRASH": crashes.get(w, "")} for w in range(writers)],
    )
    acknowledged: dict[int, int] = {}
    for w, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == (-9 if w in crashes else 0), err
        acknowledged.update((int(i), w) for i in out.split())
    assert len([i for i, w in acknowledged.items() if w >= 2]) == 2 * n // writers
    with alma_store.open(tmp_path / "s") as store:
        summary = store.verify()
        labels = dict(
            zip(
                np.flatnonzero(np.asarray(store.labeled_mask)).tolist(),
                store.labels.tolist(),
                strict=True,
            )
        )
        # The killed writers' last commits were appended but never acknowledged: present or
        # not, never half there; everything acknowledged is there with its writer's value.
        assert all(labels.get(i) == w for i, w in acknowledged.items())
        in_flight = {
            max((i for i, k in acknowledged.items() if k == w), default=w - writers) + writers
            for w in crashes
        }
        assert set(labels) - set(acknowledged) <= in_flight
        assert summary["num_labeled"] == len(labels) == store.version
        store.relabel([n - 1], [9])  # the store goes on


@pytest.mark.parametrize(
    ("commits", "rows", "taken_in"),
    [(3, 10, False), (62, 1, False), (63, 1, True), (2, 2047, False), (2, 2048, True)],
)
def test_a_writer_takes_the_others_commits_in_once_enough_piled_up(
    tmp_path: Path, commits: int, rows: int, taken_in: bool
) -> None:
    """Until then each of its commits only checks its batch against them; once they are
    :data:`REFRESH_AFTER_EVENTS` commits or name :data:`REFRESH_AFTER_ROWS` rows, it
    applies them, so that those checks stay short."""
    from alma_store.engine._commit import REFRESH_AFTER_EVENTS, REFRESH_AFTER_ROWS

    assert (REFRESH_AFTER_EVENTS, REFRESH_AFTER_ROWS) == (64, 4096)  # what the cases are of
    alma_store.create(tmp_path / "s", n_items=10_000).close()
    with alma_store.open(tmp_path / "s") as ours, alma_store.open(tmp_path / "s") as theirs:
        ours.add_labels([9_999], [1], relative_to="dataset")  # piled up with theirs
        items = iter(range(commits * rows))
        for _ in range(commits):
            batch = [next(items) for _ in range(rows)]
            theirs.add_labels(batch, np.ones(rows, np.int64), relative_to="dataset")
        ours.add_labels([9_998], [1], relative_to="dataset")  # checked against theirs only
        held = ours._engine.tail.version
        assert held == (commits + 2 if taken_in else 0)  # ours, theirs, ours: or none yet
        with pytest.raises(alma_store.AlreadyLabeledError):  # theirs count, taken in or not
            ours.add_labels([0], [1], relative_to="dataset")
        assert ours.num_labeled == commits * rows + 2
