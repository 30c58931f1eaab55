"""Benchmark of the core store against the naive in-memory (ALMa) approach, in one run.

Prints, side by side: open time, offset map of 100 positions, durable commit latency,
Unlabeled-view streaming throughput and peak anonymous memory (RssAnon).

    python tools/bench_core.py                 # N = 1e6, 1e8 (+1e9 with --huge)
    python tools/bench_core.py --quick         # small sizes, for a smoke run
    python tools/bench_core.py --sections tail # journal tail at N = 1e8 and 1e9
    python tools/bench_core.py --sections campaign  # claims, top_k past claims, annotations

Everything is written under --dir (default: a temporary directory).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import alma_store


def rss_anon_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status")


class PeakRssAnon:
    """The peak growth of RssAnon over its value at creation, sampled every 10 ms."""

    def __init__(self) -> None:
        self.base = self.peak = rss_anon_kib()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, rss_anon_kib())

    def stop(self) -> float:
        """Stop sampling; the peak growth in MiB."""
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon_kib())
        return (self.peak - self.base) / 1024


def sparse_npy(path: Path, shape: tuple[int, ...], dtype: str) -> None:
    """A .npy header plus a sparse file: N rows without writing N rows."""
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    del mm


def make_store(
    root: Path, n: int, n_labeled: int, chunk_rows: int = 65536
) -> tuple[Path, np.ndarray]:
    feats = root / f"features-{n}.npy"
    sparse_npy(feats, (n, 1), "uint8")
    path = root / f"store-{n}-{n_labeled}"
    rng = np.random.default_rng(n_labeled)
    labeled = (
        np.sort(rng.choice(n, n_labeled, replace=False)) if n_labeled else np.empty(0, np.int64)
    )
    with alma_store.create(path, str(feats), chunk_rows=chunk_rows, overwrite=True) as store:
        for part in np.array_split(labeled, max(1, n_labeled // 200_000)):
            if len(part):
                store.add_labels(part, np.ones(len(part), np.int64), relative_to="dataset")
        store.checkpoint()
    return path, labeled


def timeit(fn, repeat: int) -> float:
    """Median wall time of ``fn`` in seconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_map(root: Path, n: int, n_labeled: int, rows: list[dict]) -> None:
    path, labeled = make_store(root, n, n_labeled)
    mask = np.zeros(n, bool)
    mask[labeled] = True
    rng = np.random.default_rng(1)
    n_unl = n - n_labeled
    draws = [rng.choice(n_unl, 100, replace=False) for _ in range(5)]

    def naive() -> None:
        np.flatnonzero(~mask)[draws[0]]

    t_naive = timeit(naive, 3)
    t_open = timeit(lambda: alma_store.open(path, mode="r").close(), 20)
    with alma_store.open(path, mode="r") as store:
        view = store.unlabeled
        want = np.flatnonzero(~mask)[draws[0]]
        assert np.array_equal(view.to_dataset_index(draws[0]), want)

        # Cold: the first mapping after a fresh open (nothing cached); warm: same view again.
        cold_times = []
        for draw in draws:
            with alma_store.open(path, mode="r") as s:
                t = time.perf_counter()
                s.unlabeled.to_dataset_index(draw)
                cold_times.append(time.perf_counter() - t)
        t_cold = statistics.median(cold_times)
        it = iter(draws * 10)
        t_warm = timeit(lambda: view.to_dataset_index(next(it)), 20)
    rows.append(
        {
            "N": n,
            "labeled": n_labeled,
            "open_ms": t_open * 1e3,
            "naive_flatnonzero_ms": t_naive * 1e3,
            "store_map_cold_ms": t_cold * 1e3,
            "store_map_warm_ms": t_warm * 1e3,
            "speedup_cold": t_naive / t_cold,
            "speedup_warm": t_naive / t_warm,
        }
    )
    shutil.rmtree(path)


OPEN_CHILD = r"""
import json, os, sys, time
import alma_store  # imported before the clock starts: a process opens many stores
path, cold = sys.argv[1], sys.argv[2] == "1"
if cold:  # every file the open reads, out of the page cache
    feats = json.load(open(os.path.join(path, "meta.json")))["features"]["path"]
    files = [feats] + [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    for name in files:
        fd = os.open(name, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
t = time.perf_counter()
store = alma_store.open(path, mode="r")
opened = time.perf_counter() - t
n = len(store.unlabeled)
store.close()
print(json.dumps({"open_s": opened, "unlabeled": n}))
"""


def bench_open(root: Path, n: int, n_labeled: int, rows: list[dict]) -> None:
    """Open in a fresh process, page cache warm and cold (every file the open reads dropped)."""
    path, _ = make_store(root, n, n_labeled)
    for cold in (False, True):
        times = []
        for _ in range(7):
            out = subprocess.run(
                [sys.executable, "-c", OPEN_CHILD, str(path), "1" if cold else "0"],
                capture_output=True,
                text=True,
                check=True,
            )
            times.append(json.loads(out.stdout)["open_s"])
        rows.append(
            {
                "N": n,
                "labeled": n_labeled,
                "page_cache": "cold" if cold else "warm",
                "open_median_ms": statistics.median(times) * 1e3,
                "open_max_ms": max(times) * 1e3,
            }
        )
    shutil.rmtree(path)


def bench_commit(root: Path, n: int, rows: list[dict]) -> None:
    path, _ = make_store(root, n, 0)
    rng = np.random.default_rng(2)
    with alma_store.open(path) as store:
        for k in (1, 100, 1000):
            lat = []
            for _ in range(30):
                pos = rng.choice(store.num_unlabeled, k, replace=False)
                t = time.perf_counter()
                store.add_labels(pos, np.ones(k, np.int64))
                lat.append(time.perf_counter() - t)
            # Naive durable baseline: ALMa's in-RAM update, then persist mask + labels with np.save.
            mask, labels = np.zeros(n, bool), np.zeros(n, np.int64)
            naive = []
            for _ in range(5):
                idx = rng.choice(n, k, replace=False)
                t = time.perf_counter()
                mask[idx] = True
                labels[idx] = 1
                for name, arr in (("mask", mask), ("labels", labels)):
                    with open(root / f"naive-{name}.npy", "wb") as f:
                        np.save(f, arr)
                        f.flush()
                        os.fsync(f.fileno())
                naive.append(time.perf_counter() - t)
            rows.append(
                {
                    "N": n,
                    "labels_per_commit": k,
                    "store_median_ms": statistics.median(lat) * 1e3,
                    "store_p90_ms": sorted(lat)[int(0.9 * len(lat))] * 1e3,
                    "naive_np_save_median_ms": statistics.median(naive) * 1e3,
                }
            )
    shutil.rmtree(path)


def bench_tail(root: Path, n: int, rows: list[dict]) -> None:
    """Offset map and commit cost just after a checkpoint and with a journal tail behind it."""
    n_labeled = min(10**6, n // 100)
    path, labeled = make_store(root, n, n_labeled)
    mask = np.zeros(n, bool)
    mask[labeled] = True
    rng = np.random.default_rng(4)
    record = root / "fdatasync-probe.bin"  # the hardware limit of a commit: one durable append
    with open(record, "wb") as f:
        payload = os.urandom(100 * 16 + 200)

        def probe() -> None:
            f.write(payload)
            f.flush()
            os.fdatasync(f.fileno())

        t_fsync = timeit(probe, 30)
    record.unlink()
    # checkpoint_rows beyond the largest tail: nothing is folded in while measuring.
    with alma_store.open(path, checkpoint_rows=10**9) as store:
        have = 0
        for tail in (0, 1000, 10_000, 60_000):
            while have < tail:  # grow the tail in commits of 100 labels, as a campaign would
                pos = rng.choice(store.num_unlabeled, 100, replace=False)
                idx = store.add_labels(pos, np.ones(100, np.int64))
                mask[idx] = True
                have += 100
            view = store.unlabeled
            draws = [rng.choice(len(view), 100, replace=False) for _ in range(40)]
            want = np.flatnonzero(~mask)
            assert np.array_equal(view.to_dataset_index(draws[0]), want[draws[0]])
            t_naive = timeit(lambda d=draws[0]: np.flatnonzero(~mask)[d], 3)
            for draw in draws:  # warm: every chunk hit is checked (and merged) once
                view.to_dataset_index(draw)
            it = iter(draws * 5)
            t_map = timeit(lambda v=view, it=it: v.to_dataset_index(next(it)), 200)
            lat = []
            for _ in range(20):
                pos = rng.choice(store.num_unlabeled, 100, replace=False)
                t = time.perf_counter()
                idx = store.add_labels(pos, np.ones(100, np.int64))
                lat.append(time.perf_counter() - t)
                mask[idx] = True
                have += 100
            rows.append(
                {
                    "N": n,
                    "labeled": n_labeled,
                    "tail_labels": tail,
                    "map100_warm_us": t_map * 1e6,
                    "naive_flatnonzero_ms": t_naive * 1e3,
                    "commit100_median_ms": statistics.median(lat) * 1e3,
                    "bare_fdatasync_ms": t_fsync * 1e3,
                }
            )
    base = {r["N"]: r for r in rows if r["tail_labels"] == 0}
    for r in rows:
        r["map_vs_checkpointed"] = r["map100_warm_us"] / base[r["N"]]["map100_warm_us"]
        r["commit_vs_checkpointed"] = r["commit100_median_ms"] / base[r["N"]]["commit100_median_ms"]
    shutil.rmtree(path)


def bench_checkpoint(root: Path, n: int, rows: list[dict]) -> None:
    """Folding 65,536 random labels into the chunk files: one writer thread against several."""
    from alma_store.storage import _chunkfiles as _state

    feats = root / f"features-{n}.npy"
    sparse_npy(feats, (n, 1), "uint8")
    threads = _state.WRITE_THREADS
    for workers in (1, threads):
        path = root / f"ckpt-{n}-{workers}"
        alma_store.create(path, str(feats), chunk_rows=65536, overwrite=True).close()
        idx = np.random.default_rng(workers).choice(n, 65536, replace=False)
        with alma_store.open(path, checkpoint_rows=10**9) as store:
            store.add_labels(idx, np.ones(len(idx), np.int64), relative_to="dataset")
            _state.WRITE_THREADS = workers
            t = time.perf_counter()
            store.checkpoint()
            seconds = time.perf_counter() - t
            _state.WRITE_THREADS = threads
        rows.append(
            {
                "N": n,
                "labels": len(idx),
                "chunk_files": 2 * len(np.unique(idx // 65536)),
                "writer_threads": workers,
                "checkpoint_s": seconds,
            }
        )
        shutil.rmtree(path)
    rows[-1]["vs_one_thread"] = rows[-1]["checkpoint_s"] / rows[-2]["checkpoint_s"]
    rows[-2]["vs_one_thread"] = 1.0


def bench_dataset(root: Path, n: int, rows: list[dict]) -> None:
    """ViewDataset batches over the Labeled view: sorted against shuffled positions.

    Side by side: the in-memory baseline (``X[pos], y[pos]`` of materialised arrays, what a
    ``TensorDataset`` does) and the labels read per batch from the label chunks
    (``view.labels_at``, what ``ViewDataset`` did before it kept the view's labels).
    """
    from alma_store.torch import ViewDataset

    feats = root / f"dataset-{n}.npy"
    mm = np.lib.format.open_memmap(feats, mode="w+", dtype="float32", shape=(n, 32))
    mm[:] = np.random.default_rng(0).random((n, 32), np.float32)
    mm.flush()
    del mm
    path = root / "dataset-store"
    labeled = np.random.default_rng(1).choice(n, n // 10, replace=False)
    with alma_store.create(path, str(feats), overwrite=True) as store:
        store.add_labels(labeled, labeled % 7, relative_to="dataset")
        store.checkpoint()
        view = store.labeled
        x_mem, y_mem = np.asarray(view), view.labels
        batch, n_batches = 256, 200
        rng = np.random.default_rng(2)
        plans = {
            "sorted": [np.arange(a, a + batch) for a in range(0, n_batches * batch, batch)],
            "shuffled": [rng.choice(len(view), batch, replace=False) for _ in range(n_batches)],
        }
        for order, batches in plans.items():
            dataset = ViewDataset(view)
            dataset.__getitems__(batches[0].tolist())  # the labels are read once, up front
            t = time.perf_counter()
            for pos in batches:
                dataset.__getitems__(pos.tolist())
            t_store = time.perf_counter() - t
            t = time.perf_counter()
            for pos in batches:
                view.labels_at(view.to_dataset_index(np.unique(pos)))
            t_chunks = time.perf_counter() - t
            t = time.perf_counter()
            for pos in batches:
                list(zip(x_mem[pos], y_mem[pos], strict=True))
            t_mem = time.perf_counter() - t
            rows.append(
                {
                    "N": n,
                    "labeled": len(view),
                    "order": order,
                    "store_rows_per_s": n_batches * batch / t_store,
                    "in_memory_rows_per_s": n_batches * batch / t_mem,
                    "labels_from_chunks_only_rows_per_s": n_batches * batch / t_chunks,
                }
            )
    for r in rows:
        r["vs_sorted"] = r["store_rows_per_s"] / rows[0]["store_rows_per_s"]
        r["vs_in_memory"] = r["store_rows_per_s"] / r["in_memory_rows_per_s"]
    shutil.rmtree(path)
    feats.unlink()


STREAM_CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[4])
from bench_core import rss_anon_kib
import alma_store
mode, feats, store_path, _, batch = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
base = rss_anon_kib()
peak = base
best = float("inf")
for _ in range(3):  # best of three passes over the page-cache-warm file
    total = 0
    t = time.perf_counter()
    if mode == "raw":
        mm = np.load(feats, mmap_mode="r")
        for a in range(0, len(mm), batch):
            rows = np.array(mm[a : a + batch])
            total += rows.nbytes
            peak = max(peak, rss_anon_kib())
    elif mode == "store":
        with alma_store.open(store_path, mode="r") as s:
            for _, rows in s.unlabeled.batches(batch):
                total += rows.nbytes
                peak = max(peak, rss_anon_kib())
    elif mode == "naive":
        mm = np.load(feats, mmap_mode="r")
        with alma_store.open(store_path, mode="r") as s:
            mask = np.asarray(s.labeled_mask)
        rows = mm[~mask]  # ALMa's manager.unlabeled
        total = rows.nbytes
        peak = max(peak, rss_anon_kib())
        del rows
    best = min(best, time.perf_counter() - t)
print(json.dumps({"mode": mode, "seconds": best, "gb": total / 1e9, "peak_anon_mib": (peak - base) / 1024}))
"""


def bench_stream(
    root: Path, n: int, dim: int, frac_labeled: float, batch: int, rows: list[dict]
) -> None:
    feats = root / f"stream-{n}x{dim}.npy"
    if not feats.exists():
        mm = np.lib.format.open_memmap(feats, mode="w+", dtype="float32", shape=(n, dim))
        for a in range(0, n, 1 << 20):
            mm[a : a + (1 << 20)] = np.random.default_rng(a).random(
                (min(1 << 20, n - a), dim), np.float32
            )
        mm.flush()
        del mm
    store_path = root / "stream-store"
    rng = np.random.default_rng(3)
    labeled = rng.choice(n, int(n * frac_labeled), replace=False)
    with alma_store.create(store_path, str(feats), overwrite=True) as store:
        store.add_labels(labeled, np.ones(len(labeled), np.int64), relative_to="dataset")
        store.checkpoint()
    here = str(Path(__file__).resolve().parent)
    results = {}
    for mode in ("raw", "store", "naive"):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                STREAM_CHILD,
                mode,
                str(feats),
                str(store_path),
                here,
                str(batch),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[mode] = json.loads(out.stdout)
    raw, store, naive = results["raw"], results["store"], results["naive"]
    rows.append(
        {
            "N": n,
            "dim": dim,
            "labeled_frac": frac_labeled,
            "batch_rows": batch,
            "raw_memmap_GBps": raw["gb"] / raw["seconds"],
            "store_GBps": store["gb"] / store["seconds"],
            "store_vs_raw": (store["gb"] / store["seconds"]) / (raw["gb"] / raw["seconds"]),
            "naive_materialise_s": naive["seconds"],
            "peak_anon_MiB_raw": raw["peak_anon_mib"],
            "peak_anon_MiB_store": store["peak_anon_mib"],
            "peak_anon_MiB_naive": naive["peak_anon_mib"],
        }
    )
    shutil.rmtree(store_path)


WRITER_CHILD = r"""
import json, sys, time
import numpy as np
import alma_store
path, w, writers, commits, per = sys.argv[1], *map(int, sys.argv[2:6])
options = json.loads(sys.argv[6]) if len(sys.argv) > 6 else None  # a store in object storage
store = alma_store.open(path, lock_timeout=60, storage_options=options)
items = np.arange(w, commits * per * writers, writers)  # this writer's own items
print("ready", flush=True)
sys.stdin.readline()  # all writers start together
import resource
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
lat = []
cpu0 = cpu()
start = time.perf_counter()
for c in range(commits):
    t = time.perf_counter()
    store.add_labels(items[c * per : (c + 1) * per], np.ones(per, np.int64), relative_to="dataset")
    lat.append(time.perf_counter() - t)
end = time.perf_counter()
used = cpu() - cpu0
store.close(checkpoint=False)
print(json.dumps({"start": start, "end": end, "lat": lat, "cpu": used}))
"""


class _Moto:
    """``tools/s3_server.py`` in its own process (writes atomic, as on S3); ``stop()`` ends it."""

    def __init__(self) -> None:
        server = Path(__file__).with_name("s3_server.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(server), "plain"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.endpoint = json.loads(self.proc.stdout.readline())["endpoint"]

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def local_cluster(n_workers: int = 2) -> Any:
    """A ``LocalCluster`` of worker processes on 127.0.0.1, no dashboard, the scheduler's
    HTTP server on a free loopback port."""
    from dask.distributed import LocalCluster

    return LocalCluster(
        n_workers=n_workers,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )


def start_moto() -> tuple[Any, str]:
    """A moto S3 server on 127.0.0.1 and a free port, in its own process: ``(server, endpoint)``."""
    server = _Moto()
    return server, server.endpoint


def moto_options(endpoint: str) -> dict[str, Any]:
    """fsspec-style storage options that reach the moto server at ``endpoint``."""
    return {
        "endpoint_url": endpoint,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }


def make_bucket(endpoint: str, bucket: str) -> None:
    """Create ``bucket`` on the local S3 server at ``endpoint`` (moto's test credentials)."""
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)


def run_together(code: str, argvs: list[list[str]]) -> list[dict]:
    """Run one ``python -c code`` per argument list, released at once; their JSON results.

    Each child prints ``ready`` when set up, waits for a line on stdin, and
    prints its result as JSON on its last line.
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    for proc in procs:  # every child is set up: start them at once
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return [json.loads(proc.communicate(timeout=1800)[0].splitlines()[-1]) for proc in procs]


def writers_released(argvs: list[list[str]], prelude: str = "") -> dict[str, float]:
    """:data:`WRITER_CHILD` (after ``prelude``) once per argument list, released at once:
    the commits per second, latency (ms) and CPU time per commit of all of them together."""
    out = run_together(prelude + WRITER_CHILD, argvs)
    lat = np.concatenate([o["lat"] for o in out]) * 1e3
    span = max(o["end"] for o in out) - min(o["start"] for o in out)
    cpu = sum(o["cpu"] for o in out)  # user and system, from the writers' own clocks
    return {
        "commits_per_s": len(lat) / span,
        "median_ms": float(np.median(lat)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "cpu_ms_per_commit": cpu / len(lat) * 1e3,
        "cores_busy": cpu / span,
    }


def bench_writers(root: Path, n: int, rows: list[dict], commits: int = 400, per: int = 10) -> None:
    """Commits per second and latency with 1 and 4 writer processes on one store."""
    feats = root / f"features-{n}.npy"
    sparse_npy(feats, (n, 1), "uint8")
    for writers in (1, 4):
        path = root / f"writers-{writers}"
        alma_store.create(path, str(feats), overwrite=True).close()
        got = writers_released(
            [[str(path), *(str(v) for v in (w, writers, commits, per))] for w in range(writers)]
        )
        with alma_store.open(path, mode="r") as store:
            assert store.version == writers * commits
            assert store.num_labeled == writers * commits * per
        rows.append({"writers": writers, "labels_per_commit": per, **got})
    rows[-1]["x_one_writer"] = rows[-1]["commits_per_s"] / rows[-2]["commits_per_s"]
    rows[-2]["x_one_writer"] = 1.0


CLAIMER_CHILD = r"""
import json, sys, time
import alma_store
path, worker, claims = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = alma_store.open(path)
print("ready", flush=True)
sys.stdin.readline()
lat, start = [], time.perf_counter()
for _ in range(claims):
    t = time.perf_counter()
    store.claim_next(10, annotator=f"w{worker}", ttl=3600)
    lat.append(time.perf_counter() - t)
end = time.perf_counter()
store.close(checkpoint=False)
print(json.dumps({"start": start, "end": end, "lat": lat}))
"""


def fdatasync_floor(root: Path, repeat: int = 200) -> float:
    """Median seconds of a 200-byte append plus fdatasync: the durable-write floor here."""
    fd = os.open(root / "floor.bin", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    lat = []
    try:
        for _ in range(repeat):
            t = time.perf_counter()
            os.write(fd, b"x" * 200)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    return statistics.median(lat)


def bench_campaign(root: Path, n: int, rows: list[dict], claims: int = 200) -> None:
    """Claims with 1 and 4 processes, top_k with live claims, annotation commits."""
    floor = fdatasync_floor(root)
    for workers in (1, 4):
        path = root / f"claims-{workers}"
        alma_store.create(path, n_items=n, overwrite=True).close()
        out = run_together(
            CLAIMER_CHILD, [[str(path), str(w), str(claims)] for w in range(workers)]
        )
        lat = np.concatenate([o["lat"] for o in out]) * 1e3
        span = max(o["end"] for o in out) - min(o["start"] for o in out)
        with alma_store.open(path, mode="r") as store:
            live = store.claims()
            items = np.concatenate([c.dataset_indices for c in live])
            assert len(live) == workers * claims
            assert len(np.unique(items)) == len(items)  # no item claimed twice
        rows.append(
            {
                "what": f"claim_next(10), {workers} process{'es' if workers > 1 else ''}",
                "per_s": workers * claims / span,
                "median_ms": float(np.median(lat)),
                "p99_ms": float(np.percentile(lat, 99)),
                "x_fdatasync": float(np.median(lat)) / (floor * 1e3),
            }
        )
    # top_k with and without 800 live claims (8,000 items held), same scoring.
    feats = root / f"campaign-{n}.npy"
    np.save(feats, np.random.default_rng(0).random((n, 1), dtype=np.float32))
    path = root / "campaign-topk"
    with alma_store.create(path, str(feats), overwrite=True) as store:
        store.score(lambda r: r[:, 0], "s")
        plain = timeit(lambda: store.top_k("s", 100, skip_claimed=False), 10)
        for _ in range(800):
            store.claim_next(10, annotator="a", ttl=3600)
        held = timeit(lambda: store.top_k("s", 100), 10)
        rows.append(
            {
                "what": "top_k(100), 800 live claims",
                "median_ms": held * 1e3,
                "x_no_claims": held / plain,
            }
        )
    # A 10-item annotation commit (2 per item, 20,000 annotations before) against a plain one.
    rng = np.random.default_rng(1)
    lat = {}
    for k in (1, 2):
        path = root / f"annotate-{k}"
        with alma_store.create(path, n_items=n, annotations_per_item=k, overwrite=True) as store:
            if k == 2:
                for start in range(0, 10_000, 1000):
                    items = np.arange(start, start + 1000)
                    store.add_labels(
                        items, np.ones(1000, np.int64), relative_to="dataset", annotator="a"
                    )
            times = []
            fresh = 20_000 + rng.choice(n - 20_000, 1000, replace=False)  # never labeled twice
            for c in range(100):
                items = fresh[c * 10 : (c + 1) * 10]
                t = time.perf_counter()
                store.add_labels(items, np.ones(10, np.int64), relative_to="dataset", annotator="b")
                times.append(time.perf_counter() - t)
            lat[k] = statistics.median(times)
    rows.append(
        {
            "what": "10-item annotation commit (k=2) vs plain add_labels",
            "median_ms": lat[2] * 1e3,
            "x_plain_commit": lat[2] / lat[1],
            "x_fdatasync": lat[2] / floor,
        }
    )
    rows.append({"what": "fdatasync floor (200-byte append)", "median_ms": floor * 1e3})


def bench_overlap(root: Path, n: int, rows: list[dict], cycles: int = 200) -> None:
    """``claim_next(10)`` then annotating the claim, 4 annotators in turn, in one process:
    a fixed 2 annotations per item against variable overlap (3 for a tenth of the items,
    1 for the rest)."""
    for mode in ("fixed k=2", "variable 3/1"):
        path = root / f"overlap-{mode[:5]}"
        with alma_store.create(path, n_items=n, annotations_per_item=2, overwrite=True) as store:
            if mode != "fixed k=2":
                store.require_annotations(1)
                store.require_annotations(3, np.arange(0, n, 10))
            claim_lat, commit_lat = [], []
            for c in range(cycles):
                who = f"a{c % 4}"
                t = time.perf_counter()
                claim = store.claim_next(10, annotator=who, ttl=3600)
                claim_lat.append(time.perf_counter() - t)
                t = time.perf_counter()
                store.add_labels(
                    claim.dataset_indices,
                    np.ones(len(claim.dataset_indices), np.int64),
                    relative_to="dataset",
                    annotator=who,
                )
                commit_lat.append(time.perf_counter() - t)
            rows.append(
                {
                    "what": f"claim_next(10) + annotate, {mode}",
                    "per_s": cycles / (sum(claim_lat) + sum(commit_lat)),
                    "median_ms": statistics.median(claim_lat) * 1e3,
                    "p99_ms": float(np.percentile(claim_lat, 99)) * 1e3,
                    "labeled": store.num_labeled,
                }
            )
    fixed, variable = rows[-2], rows[-1]
    variable["x_fixed_k"] = variable["median_ms"] / fixed["median_ms"]


def table(title: str, rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = [f"\n### {title}\n", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--huge", action="store_true", help="also N = 1e9 for the offset map")
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--sections", default="map,commit,tail,stream", help="comma-separated subset")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="alma-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    sizes = [10**5, 10**6] if args.quick else [10**6, 10**8] + ([10**9] if args.huge else [])
    sections = set(args.sections.split(","))
    maps: list[dict] = []
    for n in sizes if "map" in sections else []:
        for n_labeled in (1000, min(n // 100, 10**6)):
            bench_map(root, n, n_labeled, maps)
            print(table("offset map, 100 positions", maps[-1:]), flush=True)
    opens: list[dict] = []
    if "open" in sections:
        bench_open(root, 10**6 if args.quick else 10**9, 10**4 if args.quick else 10**6, opens)
    commits: list[dict] = []
    for n in sizes[:2] if "commit" in sections else []:
        bench_commit(root, n, commits)
    tails: list[dict] = []
    for n in ([10**6] if args.quick else [10**8, 10**9]) if "tail" in sections else []:
        t = time.perf_counter()
        bench_tail(root, n, tails)
        print(f"tail section at N={n}: {time.perf_counter() - t:.0f} s", flush=True)
    datasets: list[dict] = []
    if "dataset" in sections:
        bench_dataset(root, 10**5 if args.quick else 10**6, datasets)
    ckpts: list[dict] = []
    if "checkpoint" in sections:
        bench_checkpoint(root, 10**6 if args.quick else 10**8, ckpts)
    writers: list[dict] = []
    if "writers" in sections:
        bench_writers(root, 10**6, writers, commits=100 if args.quick else 400)
    campaign: list[dict] = []
    if "campaign" in sections:
        bench_overlap(root, 10**5 if args.quick else 10**6, campaign)
        bench_campaign(
            root, 10**5 if args.quick else 10**6, campaign, claims=50 if args.quick else 200
        )
    streams: list[dict] = []
    if "stream" in sections:
        n_stream = 200_000 if args.quick else 10_000_000
        bench_stream(root, n_stream, 32, 0.01, 65536, streams)
    print(f"# alma_store core benchmark ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)")
    print(table("Offset map: 100 random Unlabeled positions -> dataset indices", maps))
    print(table("Open in a fresh process (read-only)", opens))
    print(table("Durable commit latency (add_labels returns after fdatasync)", commits))
    print(table("Journal tail: 100 Unlabeled positions and a 100-label commit", tails))
    print(table("Checkpoint: 65,536 random labels folded into the chunk files", ckpts))
    print(table("ViewDataset over the Labeled view, batches of 256", datasets))
    print(table("Concurrent writers: 10-label commits by dataset index", writers))
    print(table("Campaigns: claims, top_k past claims, annotation commits", campaign))
    print(table("Streaming the Unlabeled view (float32 features, page cache warm)", streams))
    if args.dir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
