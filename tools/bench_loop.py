"""Benchmark: the active-learning loop, through the store and in memory, in one run.

    python tools/bench_loop.py                          # N = 1e7 x 32 float32, 20 rounds
    python tools/bench_loop.py --rows 1000000 --rounds 5

Each round: score the Unlabeled pool with a model, take the best 100, label
them (from the synthetic ground truth), fetch the Labeled set (rows and labels)
as a trainer would. The model's own time (inside ``fn``) is subtracted: what is
left is the round's *bookkeeping*. Four contenders, each in its own process
with the page cache warm:

``alma``
    ALMa-style in memory: features loaded in RAM, a boolean mask,
    ``fn(X[~mask])``, ``np.flatnonzero(~mask)[best]``, ``X[mask], y[mask]``.
``modal``
    modAL-style in memory: the pool is its own array, shrunk by ``np.delete``
    after each query, and the training set grown by ``np.concatenate``.
``store-score``
    The documented store path: ``store.score`` (durable, resumable), then
    ``store.top_k``, ``add_labels(..., expected_version=...)`` and the
    Labeled view's rows and labels. Features stay in the ``.npy`` file.
``store-batches``
    ``for idx, rows in store.unlabeled.batches()``: ``fn`` per batch, a running
    top-k by ``np.argpartition``, then the same labeling and fetch.

Peak anonymous memory (RssAnon growth over the process's baseline) is sampled
every 10 ms. The store starts 1% labeled at random, like the in-memory ones.
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

CHILD = r"""
import json, sys, threading, time
import numpy as np
mode, feats, store_path, rounds, k = sys.argv[1:6]
rounds, k = int(rounds), int(k)

def rss_anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024

base = rss_anon()
peak = [base]
stop = False
def sample():
    while not stop:
        peak[0] = max(peak[0], rss_anon())
        time.sleep(0.01)
threading.Thread(target=sample, daemon=True).start()

W = np.random.default_rng(0).normal(size=(32, 10)).astype(np.float32)
model_s = [0.0]
def negative_margin(rows):
    t = time.perf_counter()
    logits = rows @ W
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    p.sort(axis=1)
    out = p[:, -2] - p[:, -1]
    model_s[0] += time.perf_counter() - t
    return out

truth = np.load(feats.replace(".npy", ".labels.npy"), mmap_mode="r")
initial = np.load(store_path + ".initial.npy")
picked, per_round = [], []

if mode == "alma":
    X = np.load(feats)  # in RAM: ALMa's dataset
    y = np.full(len(X), -1, np.int64)
    mask = np.zeros(len(X), bool)
    mask[initial] = True
    y[initial] = truth[initial]
elif mode == "modal":
    X_all = np.load(feats)
    keep = np.ones(len(X_all), bool)
    keep[initial] = False
    X_pool, pool_idx = X_all[keep], np.flatnonzero(keep)
    X_train, y_train = X_all[initial], np.asarray(truth[initial], np.int64)
    del X_all, keep
else:
    import alma_store
    store = alma_store.open(store_path)

base_peak = peak[0] = rss_anon()
for r in range(rounds):
    model_s[0] = 0.0
    t = time.perf_counter()
    if mode == "alma":
        scores = negative_margin(X[~mask])
        best = np.argpartition(-scores, k)[:k]
        idx = np.flatnonzero(~mask)[best]
        mask[idx] = True
        y[idx] = truth[idx]
        train_X, train_y = X[mask], y[mask]
    elif mode == "modal":
        scores = negative_margin(X_pool)
        best = np.argpartition(-scores, k)[:k]
        idx = pool_idx[best]
        X_train = np.concatenate([X_train, X_pool[best]])
        y_train = np.concatenate([y_train, np.asarray(truth[idx], np.int64)])
        X_pool, pool_idx = np.delete(X_pool, best, axis=0), np.delete(pool_idx, best)
        train_X, train_y = X_train, y_train
    elif mode == "store-score":
        store.score(negative_margin, f"round-{r}", batch_rows=65536)
        q = store.top_k(f"round-{r}", k)
        idx = q.dataset_indices
        store.add_labels(idx, truth[idx].astype(np.int64), relative_to="dataset",
                         expected_version=q.version)
        labeled = store.labeled
        train_X, train_y = np.asarray(labeled), labeled.labels
    else:
        best_s, best_i = np.empty(0, np.float32), np.empty(0, np.int64)
        for batch_idx, rows in store.unlabeled.batches(65536, reuse=True):
            s = negative_margin(rows)
            if len(best_s) == k:  # only what beats the k-th best so far
                better = np.flatnonzero(s > best_s.min())
                s, batch_idx = s[better], batch_idx[better]
            s, i = np.concatenate([best_s, s]), np.concatenate([best_i, batch_idx])
            top = np.argpartition(-s, k)[:k] if len(s) > k else np.arange(len(s))
            best_s, best_i = s[top], i[top]
        idx = best_i
        version = store.version
        store.add_labels(idx, truth[idx].astype(np.int64), relative_to="dataset",
                         expected_version=version)
        labeled = store.labeled
        train_X, train_y = np.asarray(labeled), labeled.labels
    wall = time.perf_counter() - t
    assert len(train_X) == len(train_y) == len(initial) + (r + 1) * k
    per_round.append({"wall": wall, "model": model_s[0]})
    picked.append(sorted(int(i) for i in idx))
    del train_X, train_y
stop = True
print(json.dumps({"mode": mode, "rounds": per_round, "picked": picked,
                  "peak_anon_mib": peak[0] - base, "loop_anon_mib": peak[0] - base_peak}))
"""

MODES = ("alma", "modal", "store-score", "store-batches")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--dir", type=Path, default=None, help="keep the data here (reused)")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="alma-bench-loop-"))
    root.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_synthetic import make

    import alma_store

    feats = root / f"synthetic-{args.rows}.npy"
    if not feats.exists():
        make(feats, args.rows, 32)
    initial = np.sort(np.random.default_rng(5).choice(args.rows, args.rows // 100, replace=False))
    truth = np.load(feats.with_suffix(".labels.npy"), mmap_mode="r")
    results = {}
    for mode in MODES:
        store_path = root / f"store-{mode}"
        np.save(f"{store_path}.initial.npy", initial)
        if mode.startswith("store"):
            with alma_store.create(store_path, str(feats), overwrite=True) as store:
                store.add_labels(initial, truth[initial].astype(np.int64), relative_to="dataset")
                store.checkpoint()
        np.load(feats, mmap_mode="r").sum()  # the page cache warm for every contender
        out = subprocess.run(
            [sys.executable, "-c", CHILD, mode]
            + [str(v) for v in (feats, store_path, args.rounds, args.k)],
            check=False,
            capture_output=True,
            text=True,
        )
        if out.returncode:
            raise SystemExit(f"{mode} failed:\n{out.stderr}")
        results[mode] = json.loads(out.stdout)

    def book(mode: str) -> np.ndarray:
        return np.array([r["wall"] - r["model"] for r in results[mode]["rounds"]])

    alma = float(np.median(book("alma")))
    print(
        f"# {args.rounds} rounds over {args.rows:,} x 32 float32 ({args.rows * 128 / 1e9:.2f} GB), "
        f"1% labeled at start, best {args.k} per round; {time.strftime('%Y-%m-%d %H:%M')}\n"
    )
    print(
        "| path | bookkeeping per round, median (s) | p90 (s) | model per round (s) "
        "| x ALMa-style | peak RssAnon (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for mode in MODES:
        b = book(mode)
        model = np.median([r["model"] for r in results[mode]["rounds"]])
        print(
            f"| {mode} | {np.median(b):.3f} | {np.percentile(b, 90):.3f} | {model:.3f} "
            f"| {np.median(b) / alma:.2f} | {results[mode]['peak_anon_mib']:.0f} |"
        )
    same = [
        np.mean(
            [
                len(set(a) & set(b)) / args.k
                for a, b in zip(results["alma"]["picked"], results[mode]["picked"], strict=True)
            ]
        )
        for mode in MODES[1:]
    ]
    print(
        "\npicks shared with ALMa-style, per round: "
        + ", ".join(f"{m} {s:.0%}" for m, s in zip(MODES[1:], same, strict=True))
        + " (batched matrix products may differ in the last bit, so a tie may break otherwise)"
    )


if __name__ == "__main__":
    main()
