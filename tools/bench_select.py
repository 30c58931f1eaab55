"""k-center greedy selection: ``store.select`` against scikit-activeml and the numpy floor.

Each contender runs in a fresh process (time, peak RssAnon growth over the process's
baseline after imports, sampled every 10 ms), interleaved in every repetition:

- ``store.select(k)``: the store's features, a memory-mapped ``.npy``, streamed a chunk at a
  time, one pass per pick (the passes are counted);
- ``skactiveml k_greedy_center``: scikit-activeml's in-RAM k-center greedy on the same
  features and labeled set (``--n`` only);
- ``store.select nn=faiss``: the same with the first pass (the nearest labeled item) by faiss;
- ``numpy floor``: the least work k-center greedy can do with the features in RAM: the
  distance to the labeled items once, then per pick one exact distance update and an argmax
  over the whole array (no store, no chunks);
- ``streaming floor`` (``--big-n``): the same k passes reading the memory-mapped ``.npy``
  chunk by chunk, with the distances in a mapped scratch file as ``store.select`` keeps
  them, and nothing else: no store, no snapshot (the page cache is warm: the file was just
  written).

Part 1 is ``--n`` items of dimension ``--d`` with ``--labeled`` labeled items and ``k``
picks, where the picks must equal scikit-activeml's; part 2 is ``--big-n`` items from a
memory-mapped ``.npy`` with ``--big-k`` picks (the targets: at most k + 2 passes and a peak
RssAnon of at most 256 MiB). With ``--nn`` (faiss-cpu installed) it also times the first
pass, every item's distance to the nearest of ``--nn`` labeled items, by alma_store's numpy
BLAS blocks and by faiss's exact ``IndexFlatL2``.

Usage::

    python tools/bench_select.py --n 100000 --d 32 --k 100 --big-n 10000000 --big-k 20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, tempfile, time, warnings
warnings.simplefilter("ignore")
mode, store_dir, npy, labeled_path, k, tools = sys.argv[1:7]
k = int(k)
sys.path.insert(0, tools)
import numpy as np, alma_store
from alma_store.scoring import _select
from alma_store.scoring._kcenter import NearestCenter
from bench_core import PeakRssAnon

labeled = np.load(labeled_path)
passes = {"n": 0}
blocks = _select.Pool.blocks
def counted(self):
    passes["n"] += 1
    return blocks(self)
_select.Pool.blocks = counted
if mode == "skactiveml k_greedy_center":
    from skactiveml.pool._core_set import k_greedy_center
memory = PeakRssAnon()  # from here on: loading the features counts
t = time.perf_counter()
if mode.startswith("store.select"):
    store = alma_store.open(store_dir, mode="r")
    picks = store.select(k, nn="faiss" if "faiss" in mode else "numpy").dataset_indices
elif mode == "skactiveml k_greedy_center":
    X = np.load(npy)
    y = np.full(len(X), np.nan)
    y[labeled] = 0
    picks, _ = k_greedy_center(X, y, batch_size=k, random_state=0)
elif mode == "numpy floor":
    X = np.load(npy).astype(np.float64)
    d = NearestCenter(X[labeled], "numpy")(X)
    d[labeled] = -np.inf
    picks = []
    for _ in range(k):
        p = int(np.argmax(d))
        picks.append(p)
        diff = X - X[p]
        np.minimum(d, np.einsum("ij,ij->i", diff, diff), out=d)
        d[p] = -np.inf
    passes["n"] = k
else:  # streaming floor: the same passes over the memory-mapped file, chunk by chunk
    X = np.load(npy, mmap_mode="r")
    nearest = NearestCenter(np.asarray(X[labeled], np.float64), "numpy")
    step = 65536
    d = np.memmap(tempfile.TemporaryFile(), np.float64, "w+", shape=(len(X),))
    picks, c = [], None
    for _ in range(k):
        best, where = -np.inf, -1
        for a in range(0, len(X), step):
            block = np.asarray(X[a : a + step], np.float64)
            if c is None:
                part = nearest(block)
            else:
                diff = block - c
                part = np.minimum(d[a : a + step], np.einsum("ij,ij->i", diff, diff))
            part[np.isin(np.arange(a, a + len(block)), labeled)] = -np.inf
            d[a : a + step] = part
            i = int(np.argmax(part))
            if part[i] > best:
                best, where = part[i], a + i
        picks.append(where)
        c = np.asarray(X[where], np.float64)
        passes["n"] += 1
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_mib": memory.stop(), "passes": passes["n"],
                  "picks": [int(p) for p in picks]}))
"""


def build(root: Path, n: int, d: int, n_labeled: int, chunk_rows: int) -> tuple[Path, Path, Path]:
    """Clustered features (a mixture of 50 Gaussians) in a ``.npy``, a store over them and
    ``n_labeled`` random labeled items."""
    import alma_store

    rng = np.random.default_rng(3)
    npy = root / f"x-{n}.npy"
    mm = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=(n, d))
    centers = rng.normal(scale=5.0, size=(50, d)).astype(np.float32)
    for a in range(0, n, 1 << 20):
        b = min(a + (1 << 20), n)
        mm[a:b] = centers[rng.integers(0, 50, b - a)] + rng.normal(size=(b - a, d))
    del mm
    labeled = np.sort(rng.choice(n, n_labeled, replace=False))
    labeled_path = root / f"labeled-{n}.npy"
    np.save(labeled_path, labeled)
    store_dir = root / f"s-{n}"
    with alma_store.create(store_dir, str(npy), chunk_rows=chunk_rows) as s:
        s.add_labels(labeled, np.zeros(len(labeled), np.int64), relative_to="dataset")
    return store_dir, npy, labeled_path


def run(mode: str, store_dir: Path, npy: Path, labeled: Path, k: int) -> dict[str, object]:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            mode,
            str(store_dir),
            str(npy),
            str(labeled),
            str(k),
            str(TOOLS),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return out


def report(title: str, results: dict[str, list[dict[str, object]]], base: str) -> None:
    print(title)
    for mode, rows in results.items():
        s = [float(x["seconds"]) for x in rows]  # type: ignore[arg-type]
        m = [float(x["peak_mib"]) for x in rows]  # type: ignore[arg-type]
        ratio = ""
        if mode != base:
            r = [
                float(a["seconds"]) / float(b["seconds"])  # type: ignore[arg-type]
                for a, b in zip(results[base], rows, strict=True)
            ]
            ratio = f"  store.select {min(r):.2f}-{max(r):.2f}x this"
        print(
            f"  {mode:28s} {min(s):8.2f}-{max(s):8.2f} s  passes {rows[0]['passes']}  "
            f"peak RssAnon {min(m):6.0f}-{max(m):6.0f} MiB{ratio}"
        )


def nn_first_pass(n: int, d: int, n_labeled: int) -> None:
    """The first pass: every item's distance to the nearest labeled item, numpy vs faiss."""
    import faiss

    from alma_store.scoring._kcenter import sq_dist_to_set

    rng = np.random.default_rng(5)
    X = rng.normal(size=(n, d)).astype(np.float32)
    C = X[rng.choice(n, n_labeled, replace=False)]
    X64, C64 = X.astype(np.float64), C.astype(np.float64)
    faiss.omp_set_num_threads(1)
    times: dict[str, list[float]] = {"numpy BLAS blocks (float64)": [], "faiss IndexFlatL2": []}
    for _ in range(3):
        t = time.perf_counter()
        ours = sq_dist_to_set(X64, C64, (C64 * C64).sum(1))
        times["numpy BLAS blocks (float64)"].append(time.perf_counter() - t)
        t = time.perf_counter()
        index = faiss.IndexFlatL2(d)
        index.add(C)
        theirs, _ = index.search(X, 1)
        times["faiss IndexFlatL2"].append(time.perf_counter() - t)
    assert np.allclose(ours, theirs[:, 0], rtol=1e-3, atol=1e-3)
    print(f"first pass: {n:,} items to the nearest of {n_labeled:,} labeled, d = {d} (one thread)")
    base = times["numpy BLAS blocks (float64)"]
    for name, ts in times.items():
        r = [a / b for a, b in zip(base, ts, strict=True)]
        print(
            f"  {name:28s} {min(ts):7.3f}-{max(ts):7.3f} s  numpy {min(r):.2f}-{max(r):.2f}x this"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--labeled", type=int, default=1000)
    parser.add_argument("--big-n", type=int, default=0)
    parser.add_argument("--big-k", type=int, default=20)
    parser.add_argument("--nn", type=int, default=0, help="labeled items for the faiss timing")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store_dir, npy, labeled = build(Path(tmp), args.n, args.d, args.labeled, 8192)
        results: dict[str, list[dict[str, object]]] = {}
        modes = (
            "store.select",
            "store.select nn=faiss",
            "skactiveml k_greedy_center",
            "numpy floor",
        )
        for _ in range(args.repeat):
            for mode in modes:
                results.setdefault(mode, []).append(run(mode, store_dir, npy, labeled, args.k))
        same = all(
            a["picks"] == b["picks"]
            for a, b in zip(
                results["store.select"], results["skactiveml k_greedy_center"], strict=True
            )
        )
        report(
            f"n = {args.n:,} x {args.d}, {args.labeled:,} labeled, k = {args.k}; min-max of "
            f"{args.repeat} runs; same picks as scikit-activeml: {same}",
            results,
            "store.select",
        )
        if args.big_n:
            store_dir, npy, labeled = build(Path(tmp), args.big_n, args.d, args.labeled, 65536)
            results = {}
            for _ in range(args.repeat):
                for mode in ("store.select", "store.select nn=faiss", "streaming floor"):
                    results.setdefault(mode, []).append(
                        run(mode, store_dir, npy, labeled, args.big_k)
                    )
            report(
                f"n = {args.big_n:,} x {args.d} (memory-mapped .npy, "
                f"{args.big_n * args.d * 4 / 2**30:.2f} GiB), {args.labeled:,} labeled, "
                f"k = {args.big_k}; min-max of {args.repeat} runs",
                results,
                "store.select",
            )
    if args.nn:
        nn_first_pass(args.n, args.d, args.nn)


if __name__ == "__main__":
    main()
