"""Scoring as tasks: one process, Dask and Ray on the same scoring, and their per-task overhead.

    python tools/bench_tasks.py --rows 400000 --repeat 3

A store of ``--rows`` x 16 float32 features in chunks of 4,096 rows is scored three ways,
interleaved in every repetition, each into a fresh run: ``store.score`` in this process,
``alma_store.dask.score`` on a ``LocalCluster`` of 2 worker processes and
``alma_store.ray.score`` on a local Ray of 2 CPUs (both started before the clock, and
bound to 127.0.0.1). Both send one task per 8 unfinished chunks. Two scoring functions:
``norm`` (almost no work: the time is the machinery's) and ``mlp`` (a 16-256-10 network in
numpy, ~0.1 ms per 100 rows). The per-task overhead is the distributed time less the
single process's time shared by the 2 workers, per task each worker ran.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

W1 = np.random.default_rng(1).normal(size=(16, 256)).astype(np.float32)
W2 = np.random.default_rng(2).normal(size=(256, 10)).astype(np.float32)


def norm(rows: np.ndarray) -> np.ndarray:
    return np.linalg.norm(rows, axis=1)


def mlp(rows: np.ndarray) -> np.ndarray:
    hidden = np.maximum(rows @ W1, 0)
    return (hidden @ W2).max(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import ray
    from bench_core import local_cluster
    from dask.distributed import Client

    import alma_store
    from alma_store import dask as alma_dask
    from alma_store import ray as alma_ray
    from alma_store.scoring import TASK_CHUNKS

    with tempfile.TemporaryDirectory() as tmp:
        x = np.random.default_rng(0).normal(size=(args.rows, 16)).astype(np.float32)
        np.save(Path(tmp) / "x.npy", x)
        store = alma_store.create(Path(tmp) / "s", str(Path(tmp) / "x.npy"), chunk_rows=4096)
        seed = np.arange(0, args.rows, 100)
        store.add_labels(seed, np.zeros(len(seed), np.int64), relative_to="dataset")
        chunks = math.ceil(args.rows / 4096)
        tasks = math.ceil(chunks / TASK_CHUNKS)
        t = time.perf_counter()
        cluster = local_cluster(2)
        client = Client(cluster)
        dask_start = time.perf_counter() - t
        t = time.perf_counter()
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            configure_logging=False,
            log_to_driver=False,
        )
        ray_start = time.perf_counter() - t
        times: dict[tuple[str, str], list[float]] = {}
        try:
            for rep in range(args.repeat):
                for fn in (norm, mlp):
                    for way in ("one process", "dask", "ray"):
                        name = f"{fn.__name__}-{way.replace(' ', '-')}-{rep}"
                        t = time.perf_counter()
                        if way == "one process":
                            store.score(fn, name)
                        elif way == "dask":
                            alma_dask.score(store, fn, name, client=client)
                        else:
                            alma_ray.score(store, fn, name)
                        times.setdefault((fn.__name__, way), []).append(time.perf_counter() - t)
        finally:
            client.close()
            cluster.close()
            ray.shutdown()
            store.close()
    print(
        f"{args.rows:,} rows x 16 in {chunks} chunks, {tasks} tasks of {TASK_CHUNKS} chunks on "
        f"2 workers; min-max of {args.repeat} runs (start-up: Dask {dask_start:.1f} s, "
        f"Ray {ray_start:.1f} s, not counted)"
    )
    per_worker = math.ceil(tasks / 2)
    for fn_name in ("norm", "mlp"):
        single = times[(fn_name, "one process")]
        for way in ("one process", "dask", "ray"):
            ts = times[(fn_name, way)]
            ratio = [a / b for a, b in zip(ts, single, strict=True)]
            line = f"  {fn_name:4s} {way:12s} {min(ts):6.2f}-{max(ts):6.2f} s  {min(ratio):.2f}-{max(ratio):.2f}x one process"
            if way != "one process":
                over = [(a - b / 2) / per_worker * 1000 for a, b in zip(ts, single, strict=True)]
                line += f"  overhead {min(over):6.0f}-{max(over):6.0f} ms per task"
            print(line)


if __name__ == "__main__":
    main()
