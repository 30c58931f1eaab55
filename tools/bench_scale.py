"""Costs that follow the work, not the dataset: density, history, tasks, writers, in one run.

    python tools/bench_scale.py                        # every section, the sizes below
    python tools/bench_scale.py --sections density     # one section
    python tools/bench_scale.py --quick                # small sizes (a smoke run)

Sections (figures in ``docs/benchmarks.md``, "Scale"):

- ``density``: at N = 1e7, an open store at 0.1 %, 10 %, 50 % and 90 % labeled maps
  100 positions of a fresh Unlabeled view and commits 100 labels by position, round
  after round (each round is a new version with a journal tail). Beside it, the naive
  ``np.flatnonzero(~mask)[positions]`` over an in-memory mask, and each figure's ratio
  to its figure at 0.1 %.
- ``cpu``: CPU time per single-writer commit of 100 labels by dataset index, against
  the floor: encoding the same record and appending it with ``fdatasync``.
- ``open``: a fresh process opens a store after 1K, 10K and 100K commits of 10 labels
  (local, shared in a directory, shared on a local S3 server), against a local store
  holding the same labels in one commit; and the per-task cost of ``to_dask()`` over 64
  chunks against the work itself.
- ``writers``: 1 and 4 writer processes, commits per second and p99, on every kind of store.

Everything is written under ``--dir`` (default: a temporary directory).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_core import table

import alma_store


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def labeled_store(path: Path, n: int, labeled: int, seed: int = 0) -> np.ndarray:
    """An index-only store of ``n`` items with ``labeled`` random ones labeled, checkpointed."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n, labeled, replace=False)) if labeled else np.empty(0, np.int64)
    with alma_store.create(path, n_items=n, overwrite=True) as store:
        for part in np.array_split(pick, max(1, labeled // 500_000)):
            if len(part):
                store.add_labels(part, np.ones(len(part), np.int64), relative_to="dataset")
        store.checkpoint()
    mask = np.zeros(n, bool)
    mask[pick] = True
    return mask


def bench_density(root: Path, n: int, shares: list[float], rows: list[dict], rounds: int) -> None:
    """Map 100 positions and commit 100 labels by position, at each share labeled."""
    k = 100
    for share in shares:
        path = root / f"density-{share}"
        mask = labeled_store(path, n, round(n * share))
        rng = np.random.default_rng(1)
        maps, commits, naive = [], [], []
        with alma_store.open(path) as store:
            for r in range(rounds + 1):
                view = store.unlabeled
                pos = np.sort(rng.choice(len(view), k, replace=False))
                t = time.perf_counter()
                got = view.to_dataset_index(pos)
                maps.append(time.perf_counter() - t)
                t = time.perf_counter()
                want = np.flatnonzero(~mask)[pos]
                naive.append(time.perf_counter() - t)
                assert np.array_equal(got, want)
                pos = np.sort(rng.choice(len(view), k, replace=False))
                t = time.perf_counter()
                done = store.add_labels(pos, np.ones(k, np.int64), expected_version=view.version)
                commits.append(time.perf_counter() - t)
                mask[done] = True
                if r == 0:
                    first = (maps[0], commits[0])
        shutil.rmtree(path)
        rows.append(
            {
                "N": n,
                "labeled_pct": 100 * share,
                "map_first_ms": first[0] * 1e3,
                "map_ms": statistics.median(maps[1:]) * 1e3,
                "commit_first_ms": first[1] * 1e3,
                "commit_ms": statistics.median(commits[1:]) * 1e3,
                "naive_flatnonzero_ms": statistics.median(naive[1:]) * 1e3,
            }
        )
        print(table("density", rows[-1:]), flush=True)
    for row in rows:
        row["map_x_sparsest"] = row["map_ms"] / rows[0]["map_ms"]
        row["commit_x_sparsest"] = row["commit_ms"] / rows[0]["commit_ms"]
        row["map_x_naive"] = row["map_ms"] / row["naive_flatnonzero_ms"]


def bench_cpu(root: Path, n: int, rows: list[dict], commits: int) -> None:
    """CPU per single-writer commit of 100 labels by dataset index, against its floor.

    The floor is a record of the same 100 labels encoded and appended with
    ``fdatasync``. Blocks of 50 commits and 50 floor appends alternate, so that
    the machine's noise falls on both; the ratio is that of the medians of the
    blocks' CPU per operation.
    """
    from alma_store.core import LabelEvent

    k, block = 100, 50
    rng = np.random.default_rng(2)
    for kind in ("local", "shared directory"):
        items = rng.permutation(n)[: (commits + 20) * k]
        path = root / f"cpu-{kind.replace(' ', '-')}"
        store = alma_store.create(
            path, n_items=n, shared=kind != "local", overwrite=kind == "local"
        )
        fd = os.open(root / "floor.bin", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
        ours, floor, walls = [], [], []
        try:
            for c in range(20):  # warm up: the first commits open files and fill caches
                idx = np.sort(items[(commits + c) * k : (commits + c + 1) * k])
                store.add_labels(idx, np.ones(k, np.int64), relative_to="dataset")
            for a in range(0, commits, block):
                c0, t0 = cpu_seconds(), time.perf_counter()
                for c in range(a, a + block):
                    idx = np.sort(items[c * k : (c + 1) * k])
                    store.add_labels(idx, np.ones(k, np.int64), relative_to="dataset")
                ours.append((cpu_seconds() - c0) / block)
                walls.append((time.perf_counter() - t0) / block)
                c0 = cpu_seconds()
                for c in range(a, a + block):
                    idx = np.sort(items[c * k : (c + 1) * k])
                    event = LabelEvent(c + 1, "add", idx, np.ones(k, np.int64))
                    os.write(fd, event.encode(np.dtype(np.int64)))
                    os.fdatasync(fd)
                floor.append((cpu_seconds() - c0) / block)
        finally:
            os.close(fd)
            store.close()
        shutil.rmtree(path)
        rows.append(
            {
                "store": kind,
                "labels_per_commit": k,
                "cpu_ms_per_commit": statistics.median(ours) * 1e3,
                "wall_ms_per_commit": statistics.median(walls) * 1e3,
                "floor_cpu_ms": statistics.median(floor) * 1e3,
                "cpu_x_floor": statistics.median(ours) / statistics.median(floor),
            }
        )
        print(table("cpu", rows[-1:]), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--sections", default="density", help="comma-separated subset")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="alma-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    sections = set(args.sections.split(","))
    density: list[dict] = []
    if "density" in sections:
        n = 10**5 if args.quick else 10**7
        bench_density(root, n, [0.001, 0.1, 0.5, 0.9], density, rounds=5 if args.quick else 30)
    cpu: list[dict] = []
    if "cpu" in sections:
        bench_cpu(root, 10**6, cpu, commits=200 if args.quick else 1000)
    print(f"# alma_store scale benchmark ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)")
    print(table("Map 100 positions / commit 100 labels by position, by share labeled", density))
    print(table("CPU per commit (100 labels by dataset index) against encode + fdatasync", cpu))
    if args.dir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
