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
  the floor: encoding the same record and making it durable as the format does
  (appended with ``fdatasync``; in a shared directory, created as a commit object).
- ``growth``: one writer commits 20,000 times (10 labels each) to a shared store in a
  directory, and 5,000 times on the S3 server, well within the 10 minutes a commit
  object outlives its fold: CPU per commit in each block of 2,000 (1,000), against the
  create of as many commit objects under a prefix of their own that fills the same way
  (the floor), and the last block's ratio against the first's (a cost that follows the
  log objects left, not the commits, grows there).
- ``takein``: CPU per commit (10 labels) that another open of the store takes in (as
  every writer of a busy store does with the others' commits, a few dozen at a time),
  1, 16 or 64 at once, with a journal tail of 5K or 100K rows; beside it the same
  batches written into an in-memory mask and label array.
- ``open``: a fresh process opens a store after 1K, 10K and 100K commits of 10 labels
  (local; shared in a directory and on a local S3 server, made by ``alma_store.copy``
  of the local one and 300 more commits through the API), each against the local open
  and against its own figure at 1K commits.
- ``tasks``: ``to_dask().sum()`` of the Unlabeled view over 64 chunks after 2,000
  commits, on a ``LocalCluster`` of 2 worker processes, against the same sum of a plain
  ``dask.array`` over the ``.npy`` file (the scheduler's own cost) and in-process.
- ``writers``: 1 and 4 writer processes, commits per second, p99 and CPU per commit, on
  every kind of store, interleaved repetitions; shared stores with both commit protocols
  (``race``: format 8, every version raced for; ``group``: format 9, offers and group
  commits). Beside them, four writers each on a store of its own: the ceiling of four
  processes on this machine (and server). ``--reps N`` repeats the runs N times (the
  ratios' minimum, median and maximum are reported). ``--latency MS`` adds the S3 server
  again with every request of the writers waiting ``MS`` first: the round trip of a real
  endpoint, which the local server lacks.

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
from bench_core import local_cluster, table

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

    The floor is a record of the same 100 labels encoded and made durable the way
    the store's format does it: appended with ``fdatasync`` (a local store), or
    created as a commit object (temp file, ``fsync``, ``link``, ``fsync`` of the
    directory: a shared store in a directory). Blocks of 50 commits and 50 floor
    writes alternate, so that the machine's noise falls on both; the ratio is
    that of the medians of the blocks' CPU per operation.
    """
    from alma_store.core import LabelEvent
    from alma_store.storage import DirObjects

    k, block = 100, 50
    rng = np.random.default_rng(2)
    for kind in ("local", "shared directory"):
        items = rng.permutation(n)[: (commits + 20) * k]
        path = root / f"cpu-{kind.replace(' ', '-')}"
        store = alma_store.create(
            path, n_items=n, shared=kind != "local", overwrite=kind == "local"
        )
        fd = os.open(root / "floor.bin", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
        objects = DirObjects(root / f"floor-{kind.replace(' ', '-')}")
        shutil.rmtree(objects.root, ignore_errors=True)
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
                    record = event.encode(np.dtype(np.int64))
                    if kind == "local":
                        os.write(fd, record)
                        os.fdatasync(fd)
                    else:
                        objects.create(f"log/{c + 1:020d}", record)
                floor.append((cpu_seconds() - c0) / block)
        finally:
            os.close(fd)
            store.close()
        shutil.rmtree(path)
        shutil.rmtree(objects.root, ignore_errors=True)
        rows.append(
            {
                "store": kind,
                "floor": "append + fdatasync" if kind == "local" else "create-if-absent object",
                "labels_per_commit": k,
                "cpu_ms_per_commit": statistics.median(ours) * 1e3,
                "wall_ms_per_commit": statistics.median(walls) * 1e3,
                "floor_cpu_ms": statistics.median(floor) * 1e3,
                "cpu_x_floor": statistics.median(ours) / statistics.median(floor),
            }
        )
        print(table("cpu", rows[-1:]), flush=True)


def bench_growth(root: Path, rows: list[dict], runs: list[tuple[int, int]], s3: bool) -> None:
    """One writer of a shared store, blocks of commits of 10 labels, each block followed by
    as many creates of commit objects alone (the floor, under a prefix of their own that
    fills as ``log/`` does): CPU per commit, block by block. ``runs``: ``(commits, block)``
    in a directory, then on the S3 server when ``s3``."""
    import uuid

    from alma_store.core import LabelEvent
    from alma_store.storage import Location, open_objects

    server = endpoint = None
    kinds: list[tuple[str, dict | None]] = [("shared directory", None)]
    if s3:
        from bench_core import make_bucket, moto_options, start_moto

        server, endpoint = start_moto()
        make_bucket(endpoint, "growth")
        kinds.append(("shared on moto S3", moto_options(endpoint)))
    k = 10
    try:
        for (kind, options), (commits, block) in zip(kinds, runs, strict=False):
            name = uuid.uuid4().hex[:8]
            if options is None:
                where, floor_at = str(root / f"growth-{name}"), str(root / f"floor-{name}")
            else:
                where, floor_at = f"s3://growth/{name}", f"s3://growth/floor-{name}"
            objects = open_objects(Location.parse(floor_at, options))
            store = alma_store.create(
                where, n_items=commits * k, shared=True, storage_options=options
            )
            first: float | None = None
            try:
                for a in range(0, commits, block):
                    c0, t0 = cpu_seconds(), time.perf_counter()
                    for c in range(a, a + block):
                        idx = np.arange(c * k, (c + 1) * k)
                        store.add_labels(idx, np.ones(k, np.int64), relative_to="dataset")
                    ours, wall = (cpu_seconds() - c0) / block, (time.perf_counter() - t0) / block
                    c0 = cpu_seconds()
                    for c in range(a, a + block):
                        idx = np.arange(c * k, (c + 1) * k)
                        event = LabelEvent(c + 1, "add", idx, np.ones(k, np.int64))
                        objects.create(f"log/{c + 1:020d}", event.encode(np.dtype(np.int64)))
                    floor = (cpu_seconds() - c0) / block
                    first = first or ours / floor
                    rows.append(
                        {
                            "store": kind,
                            "commits": a + block,
                            "cpu_ms_per_commit": ours * 1e3,
                            "commits_per_s": 1 / wall,
                            "floor_cpu_ms": floor * 1e3,
                            "cpu_x_floor": ours / floor,
                            "x_first_block": ours / floor / first,
                        }
                    )
                    print(table("growth", rows[-1:]), flush=True)
            finally:
                store.close()
                objects.close()
                if options is None:
                    shutil.rmtree(where, ignore_errors=True)
                    shutil.rmtree(floor_at, ignore_errors=True)
    finally:
        if server is not None:
            server.stop()


OPEN_CHILD = r"""
import json, sys, time
import alma_store
import numcodecs, obstore  # what any first open imports: paid once per process, like the interpreter
where, options = sys.argv[1], json.loads(sys.argv[2])
t = time.perf_counter()
with alma_store.open(where, mode="r", storage_options=options) as store:
    version, labeled = store.version, store.num_labeled
    took = time.perf_counter() - t  # the open and a first read, not the close
print(json.dumps({"s": took, "version": version, "labeled": labeled}))
"""

SHARED_WRITER = r"""
import json, sys
import numpy as np
import alma_store
where, options, first, count = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with alma_store.open(where, storage_options=options) as store:
    for c in range(first, first + count):
        store.add_labels(np.arange(c * 10, c * 10 + 10) * 3 % 2_000_000, np.ones(10, np.int64), relative_to="dataset")
    print(store.version)
"""


def open_seconds(where: str, options: dict | None, repeat: int = 5) -> float:
    """Median seconds a fresh process takes to open the store (interpreter start and the
    imports of the codecs and object-store client excluded)."""
    import json
    import subprocess
    import sys

    times = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", OPEN_CHILD, where, json.dumps(options)],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(json.loads(out.stdout.splitlines()[-1])["s"])
    return statistics.median(times)


def history_store(root: Path, commits: int) -> Path:
    """A local store after ``commits`` commits of 10 labels each (N = 2e6)."""
    path = root / f"history-{commits}"
    if path.exists():
        return path
    with alma_store.create(path, n_items=2_000_000, chunk_rows=32768) as store:
        for c in range(commits):
            store.add_labels(
                np.arange(c * 10, c * 10 + 10) * 3 % 2_000_000,
                np.ones(10, np.int64),
                relative_to="dataset",
            )
    return path


def bench_open(root: Path, histories: list[int], rows: list[dict], s3: bool) -> None:
    """A fresh process opens a store after 1K, 10K, 100K commits: local and shared."""
    import json
    import subprocess
    import sys

    server = endpoint = None
    if s3:
        from bench_core import make_bucket, moto_options, start_moto

        server, endpoint = start_moto()
        make_bucket(endpoint, "scale")
    try:
        for commits in histories:
            local = history_store(root, commits)
            row: dict = {"commits": commits, "local_ms": open_seconds(str(local), None) * 1e3}
            kinds = [("shared_dir", str(root / f"shared-{commits}"), None)]
            if s3:
                kinds.append(("shared_s3", f"s3://scale/h{commits}", moto_options(endpoint)))
            for name, where, options in kinds:
                # The history as a copy (segments and a checkpoint), then 300 commits of
                # 10 labels through the API: log objects, and a checkpoint or not after them.
                alma_store.copy(local, where, dst_storage_options=options, shared=True)
                subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        SHARED_WRITER,
                        where,
                        json.dumps(options),
                        str(commits),
                        "300",
                    ],
                    check=True,
                    capture_output=True,
                )
                row[f"{name}_ms"] = open_seconds(where, options) * 1e3
                row[f"{name}_x_local"] = row[f"{name}_ms"] / row["local_ms"]
            rows.append(row)
            print(table("open", rows[-1:]), flush=True)
    finally:
        if server is not None:
            server.stop()
    for key in [k for k in rows[0] if k.endswith("_ms")]:
        for row in rows:
            row[key.replace("_ms", "_x_1k")] = row[key] / rows[0][key]


def _npy_block(path: str, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of a ``.npy`` file, mapped: one task of the plain Dask baseline."""
    return np.array(np.load(path, mmap_mode="r")[lo:hi])


def bench_tasks(root: Path, rows: list[dict]) -> None:
    """Per-task cost of ``to_dask()`` over 64 chunks after 2,000 commits, on 2 worker processes."""
    from dask.distributed import Client

    n, chunk_rows = 64 * 4096, 4096
    features = np.random.default_rng(0).random((n, 16), dtype=np.float32)
    np.save(root / "tasks.npy", features)
    for kind in ("local", "shared directory"):
        path = root / f"tasks-{kind.replace(' ', '-')}"
        with alma_store.create(
            path, str(root / "tasks.npy"), chunk_rows=chunk_rows, shared=kind != "local"
        ) as store:
            for c in range(2000):
                store.add_labels([c * 37 % n], [1], relative_to="dataset")
            view = store.unlabeled
            t = time.perf_counter()
            want = float(np.asarray(view).sum(dtype=np.float64))
            direct = time.perf_counter() - t
            with (
                local_cluster(2) as cluster,
                Client(cluster) as client,
            ):
                import dask.array as da
                from dask import delayed

                plain = da.stack(  # each task maps the file and reads its block: no store
                    [
                        da.from_delayed(
                            delayed(_npy_block)(str(root / "tasks.npy"), lo, lo + chunk_rows),
                            (chunk_rows, 16),
                            np.float32,
                        )
                        for lo in range(0, n, chunk_rows)
                    ]
                )
                client.compute(view.to_dask().sum()).result()  # workers warm (imports)
                client.compute(plain.sum()).result()
                took, base = [], []
                for _ in range(3):
                    t = time.perf_counter()
                    got = float(client.compute(view.to_dask().sum(dtype=np.float64)).result())
                    took.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    client.compute(plain.sum(dtype=np.float64)).result()
                    base.append(time.perf_counter() - t)
        assert abs(got - want) < 1e-6 * abs(want)
        ours, theirs = statistics.median(took), statistics.median(base)
        rows.append(
            {
                "store": kind,
                "commits": 2000,
                "blocks": 64,
                "in_process_ms": direct * 1e3,
                "to_dask_ms": ours * 1e3,
                "plain_dask_ms": theirs * 1e3,
                "per_task_ms": ours / 64 * 1e3,
                "plain_per_task_ms": theirs / 64 * 1e3,
                "x_plain_dask": ours / theirs,
            }
        )
        print(table("tasks", rows[-1:]), flush=True)


def bench_takein(root: Path, rows: list[dict], rounds: int) -> None:
    """CPU to take in another writer's commits, per commit, against the in-memory update.

    What every writer of a busy store pays for each commit of the others (it takes them
    in a few dozen at a time), and a reader on its next read: one open of the store
    commits ``k`` batches of 10 labels by dataset index, a second open of the same store
    reads its version (which decodes, checks and applies them, and makes its snapshot),
    with a journal tail of ``tail`` rows taken in already. Beside it the naive baseline,
    the same batches written into an in-memory mask and label array (ALMa's update); both
    as CPU (thread) time per commit taken in, medians of ``rounds``.
    """
    n = 2_000_000
    rng = np.random.default_rng(3)
    for tail in (5_000, 100_000):
        for k in (1, 16, 64):
            path = root / f"takein-{tail}-{k}"
            alma_store.create(path, n_items=n, overwrite=True).close()
            items = iter(rng.permutation(n).tolist())
            # Written (so in memory) before the timing, as the store's are: not np.zeros.
            mask, labels = np.full(n, False), np.full(n, 0, np.int64)
            writer = alma_store.open(path, checkpoint_rows=10**8)  # nothing folded meanwhile
            reader = alma_store.open(path, mode="r", checkpoint_rows=10**8)
            ours, naive = [], []
            try:
                for _ in range(tail // 1000):
                    batch = [next(items) for _ in range(1000)]
                    writer.add_labels(batch, np.ones(1000, np.int64), relative_to="dataset")
                assert reader.num_labeled == tail
                for r in range(rounds):
                    batches = [np.array([next(items) for _ in range(10)]) for _ in range(k)]
                    for b in batches:
                        writer.add_labels(b, np.full(10, r, np.int64), relative_to="dataset")
                    t = time.thread_time()
                    version = reader.version  # takes the k commits in
                    ours.append((time.thread_time() - t) / k)
                    t = time.thread_time()
                    for b in batches:
                        mask[b] = True
                        labels[b] = r
                    naive.append((time.thread_time() - t) / k)
                    assert version == writer.version
            finally:
                writer.close(checkpoint=False)
                reader.close()
            shutil.rmtree(path)
            ours_us, naive_us = statistics.median(ours) * 1e6, statistics.median(naive) * 1e6
            rows.append(
                {
                    "tail_rows": tail,
                    "commits_taken_in": k,
                    "cpu_us_per_commit": ours_us,
                    "naive_us_per_commit": naive_us,
                    "x_naive": ours_us / naive_us,
                }
            )


RACE = "import alma_store.engine._engine as e; e.Engine.offers = property(lambda self: False)\n"
"""Run a writer that races for every version (as in shared format 8)."""
GROUP = ""
"""Run a writer as it runs: it offers its batches and carries others' (format 9)."""


def latency_prelude(ms: float) -> str:
    """Code a writer runs first: each request to object storage waits ``ms`` before it
    is sent (a round trip to a real endpoint; the local server answers in about one).

    The requests are obstore's calls, so that the gets of one ``get_many``, sent in
    parallel, wait in parallel, as they would on the wire.
    """
    return (
        "import time as _t, obstore as _ob\n"
        "def _late(f):\n"
        f"    def g(*a, **k):\n        _t.sleep({ms / 1e3!r})\n        return f(*a, **k)\n"
        "    return g\n"
        "for _n in ('put', 'get', 'list', 'delete', 'head'):\n"
        "    setattr(_ob, _n, _late(getattr(_ob, _n)))\n"
    )


def bench_writers(
    root: Path, rows: list[dict], s3: bool, reps: int, commits: int, latency: float = 0.0
) -> None:
    """1 and 4 writer processes on one store, each commit 10 labels: commits/s and p99.

    One writer makes as many commits as the four together (``4 x commits``), so that
    both runs pay for the same history (compactions, checkpoints). Shared stores run
    both protocols, interleaved: ``race`` (every version raced for, losers back off:
    format 8) and ``group`` (format 9: offers, and group commits). Beside them, four
    writers each on a store of its own (``apart``): what four processes commit on this
    machine and server when they share nothing, the ceiling for four writers of one store.
    """
    import uuid

    from bench_shared import apart_row, writers_row

    def new_store(kind: str, options: dict | None, name: str, n_items: int) -> str:
        if options is None:
            where = str(root / f"writers-{kind.split()[0]}-{name}-{uuid.uuid4().hex[:8]}")
        else:
            where = f"s3://writers/{uuid.uuid4().hex}"
        alma_store.create(
            where, n_items=n_items, shared=kind != "local", storage_options=options
        ).close()
        return where

    server = endpoint = None
    if s3:
        from bench_core import make_bucket, moto_options, start_moto

        server, endpoint = start_moto()
        make_bucket(endpoint, "writers")
    kinds: list[tuple[str, dict | None, int, str]] = [("local", None, commits, "")]
    kinds.append(("shared directory", None, commits, ""))
    if s3:
        kinds.append(("shared on moto S3", moto_options(endpoint), max(commits // 5, 20), ""))
    if s3 and latency:
        late = latency_prelude(latency)
        kinds.append((f"shared on moto S3 + {latency:g} ms", moto_options(endpoint), 20, late))
    try:
        for kind, options, per_writer, first in kinds:
            protocols = {"": ""} if kind == "local" else {"race": RACE, "group": GROUP}
            got: dict[tuple[str, int], list[dict]] = {}
            for _ in range(reps):  # interleaved: 1, 4 apart, 4 (race), 4 (group), 1, ...
                runs = [("", 1, ""), *((name, 4, code) for name, code in protocols.items())]
                runs.insert(1, ("apart", 4, ""))
                for name, writers, protocol in runs:
                    prelude = first + protocol
                    if name == "apart":  # four stores, one writer each: the ceiling
                        wheres = [new_store(kind, options, name, per_writer * 10) for _ in "abcd"]
                        row = apart_row(wheres, options, per_writer, prelude=prelude)
                    else:
                        where = new_store(kind, options, f"{name}{writers}", 4 * per_writer * 10)
                        each = per_writer * 4 // writers  # the same commits (and history)
                        row = writers_row(where, options, writers, each, prelude=prelude)
                    got.setdefault((name, writers), []).append(row)
            ones, apart = got[("", 1)], got[("apart", 4)]
            for name in protocols:
                fours = got[(name, 4)]
                ratios = [
                    four["commits_per_s"] / one["commits_per_s"]
                    for one, four in zip(ones, fours, strict=True)
                ]
                ceiling = [
                    four["commits_per_s"] / sep["commits_per_s"]
                    for sep, four in zip(apart, fours, strict=True)
                ]
                p99_x = [r["p99_ms"] / r["median_ms"] for r in fours]
                rows.append(
                    {
                        "store": f"{kind}, {name}" if name else kind,
                        "commits": 4 * per_writer,
                        "1_writer_commits_s": statistics.median(r["commits_per_s"] for r in ones),
                        "4_writers_commits_s": statistics.median(r["commits_per_s"] for r in fours),
                        "4_vs_1_min": min(ratios),
                        "4_vs_1_median": statistics.median(ratios),
                        "4_vs_1_max": max(ratios),
                        "4_apart_vs_1": statistics.median(
                            sep["commits_per_s"] / one["commits_per_s"]
                            for one, sep in zip(ones, apart, strict=True)
                        ),
                        "4_vs_4_apart": statistics.median(ceiling),
                        "cpu_ms_1_writer": statistics.median(r["cpu_ms_per_commit"] for r in ones),
                        "cpu_ms_4_writers": statistics.median(
                            r["cpu_ms_per_commit"] for r in fours
                        ),
                        "cpu_ms_4_apart": statistics.median(r["cpu_ms_per_commit"] for r in apart),
                        "4_writers_median_ms": statistics.median(r["median_ms"] for r in fours),
                        "4_writers_p99_ms": statistics.median(r["p99_ms"] for r in fours),
                        "p99_x_median_max": max(p99_x),
                    }
                )
                print(table("writers", rows[-1:]), flush=True)
    finally:
        if server is not None:
            server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument(
        "--sections",
        default="density,cpu,growth,takein,open,tasks,writers",
        help="comma-separated subset",
    )
    ap.add_argument("--no-s3", action="store_true", help="skip the local S3 server (moto)")
    ap.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="writers: also on S3 with this many ms before every request (a real round trip)",
    )
    ap.add_argument(
        "--reps",
        type=int,
        default=None,
        help="writers: interleaved repetitions (default 3, 2 with --quick)",
    )
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
    growth: list[dict] = []
    if "growth" in sections:
        runs = [(2000, 500), (400, 100)] if args.quick else [(20_000, 2000), (5000, 1000)]
        bench_growth(root, growth, runs, s3=not args.no_s3)
    takein: list[dict] = []
    if "takein" in sections:
        bench_takein(root, takein, rounds=5 if args.quick else 15)
    opens: list[dict] = []
    if "open" in sections:
        histories = [1000, 3000] if args.quick else [1000, 10_000, 100_000]
        bench_open(root, histories, opens, s3=not args.no_s3)
    tasks: list[dict] = []
    if "tasks" in sections:
        bench_tasks(root, tasks)
    writers: list[dict] = []
    if "writers" in sections:
        bench_writers(
            root,
            writers,
            s3=not args.no_s3,
            reps=args.reps or (2 if args.quick else 3),
            commits=200,
            latency=args.latency,
        )
    print(f"# alma_store scale benchmark ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)")
    print(table("Map 100 positions / commit 100 labels by position, by share labeled", density))
    print(table("CPU per commit (100 labels by dataset index) against its format's floor", cpu))
    print(
        table(
            "One writer of a shared store: CPU per commit by block, against the floor",
            growth,
        )
    )
    print(
        table("CPU per commit taken in from another writer, against the in-memory update", takein)
    )
    print(table("Open in a fresh process after a history of commits of 10 labels", opens))
    print(table("to_dask() over 64 chunks after 2,000 commits, 2 worker processes", tasks))
    print(table("1 vs 4 writer processes, commits of 10 labels", writers))
    if args.dir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
