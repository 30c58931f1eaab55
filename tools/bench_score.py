"""Benchmark: scoring the Unlabeled pool through the store vs the naive way, in one run.

    python tools/bench_score.py                  # 10M x 32 float32 (1.28 GB), 1% labeled
    python tools/bench_score.py --rows 1000000   # smaller

Store: ``store.score(fn, ...)`` chunk by chunk (durable, resumable) then
``store.top_k``. Naive (ALMa): ``fn(features[unlabeled_mask])`` on the
materialised pool, then ``np.argsort``. Each runs in its own process; peak
anonymous memory (RssAnon) is sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, threading, time
import numpy as np
import alma_store
mode, feats, store_path = sys.argv[1:4]

def rss_anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024

peak = [rss_anon()]
base = peak[0]
stop = False
def sample():
    while not stop:
        peak[0] = max(peak[0], rss_anon())
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()

W = np.random.default_rng(0).normal(size=(32, 10)).astype(np.float32)
def negative_margin(rows):
    logits = rows @ W
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    p.sort(axis=1)
    return p[:, -2] - p[:, -1]

t = time.perf_counter()
if mode == "store":
    with alma_store.open(store_path) as s:
        s.score(negative_margin, "bench", batch_rows=65536)
        t_score = time.perf_counter() - t
        top = s.top_k("bench", 1000).dataset_indices
        n = s.num_unlabeled
else:
    features = np.load(feats, mmap_mode="r")
    with alma_store.open(store_path, mode="r") as s:
        mask = np.asarray(s.labeled_mask)
    pool = features[~mask]                      # ALMa's manager.unlabeled
    scores = negative_margin(pool)
    t_score = time.perf_counter() - t
    order = np.argsort(-scores, kind="stable")[:1000]
    top = np.flatnonzero(~mask)[order]
    n = len(pool)
total = time.perf_counter() - t
stop = True
print(json.dumps({"mode": mode, "rows": n, "score_s": t_score, "total_s": total,
                  "peak_anon_mib": peak[0] - base, "top": top[:20].tolist()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    if args.dim != 32:
        raise SystemExit("the benchmark's model is 32 -> 10; keep --dim 32")
    root = args.dir or Path(tempfile.mkdtemp(prefix="alma-bench-score-"))
    root.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_synthetic import make

    import alma_store

    feats = root / f"synthetic-{args.rows}.npy"
    if not feats.exists():
        make(feats, args.rows, args.dim)
    store_path = root / "store"
    labeled = np.random.default_rng(5).choice(args.rows, args.rows // 100, replace=False)
    with alma_store.create(store_path, str(feats), overwrite=True) as store:
        store.add_labels(labeled, np.zeros(len(labeled), np.int64), relative_to="dataset")
        store.checkpoint()
    np.load(feats, mmap_mode="r").sum()  # warm the page cache for both contenders
    results = {}
    for mode in ("naive", "store"):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, mode, str(feats), str(store_path)],
            capture_output=True,
            text=True,
            check=True,
        )
        results[mode] = json.loads(out.stdout)
    naive, store = results["naive"], results["store"]
    assert naive["top"] == store["top"], "the two top-k lists differ"
    gb = naive["rows"] * args.dim * 4 / 1e9
    print(
        f"# scoring {naive['rows']:,} unlabeled rows x {args.dim} float32 ({gb:.2f} GB), "
        f"top-1000; {time.strftime('%Y-%m-%d')}\n"
    )
    print("| | score (s) | rows/s | score + top-k (s) | peak RssAnon (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in (
        ("naive `fn(features[~mask])` + argsort", naive),
        ("store.score + store.top_k", store),
    ):
        print(
            f"| {name} | {r['score_s']:.2f} | {r['rows'] / r['score_s']:,.0f} | {r['total_s']:.2f} "
            f"| {r['peak_anon_mib']:.0f} |"
        )
    print(
        f"\nstore / naive: time {store['total_s'] / naive['total_s']:.2f}x, "
        f"peak memory {store['peak_anon_mib'] / naive['peak_anon_mib']:.3f}x; same top-1000: yes"
    )
    if args.dir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
