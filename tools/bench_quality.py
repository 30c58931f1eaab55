"""Agreement, annotator quality and consensus over a store's annotations: time and peak RssAnon.

A store of ``n`` items with three annotations each (five simulated annotators of 2-30 %
mistakes over 10 classes, as in ``tests/test_quality.py``) is built once. Then each
contender runs in a fresh process, the reference libraries on the same annotations
handed to them as arrays (their floor: no store to read):

- ``store.agreement()``: kappa, Krippendorff's alpha, Gwet's AC1/AC2, per class and round;
- ``reference agreement``: statsmodels' Fleiss' kappa and ``krippendorff.alpha`` on arrays;
- ``store.annotator_quality()`` and ``store.consensus(which="all")`` (one-coin Dawid-Skene);
- ``crowd-kit`` one-coin Dawid-Skene on the same annotations as a DataFrame.

Peak RssAnon is the growth over the process's baseline (after imports), sampled every 10 ms.
Usage::

    python tools/bench_quality.py --n 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent
FLIPS = [0.02, 0.05, 0.10, 0.20, 0.30]

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
mode, store_dir, arrays, tools = sys.argv[1:5]
sys.path.insert(0, tools)
import numpy as np, pandas as pd, krippendorff, alma_store
from statsmodels.stats.inter_rater import fleiss_kappa
from crowdkit.aggregation import OneCoinDawidSkene
from bench_core import PeakRssAnon

data = np.load(arrays)
items, workers, labels = data["items"], data["workers"], data["labels"]
store = alma_store.open(store_dir, mode="r") if mode.startswith("store") else None
memory = PeakRssAnon()
t = time.perf_counter()
if mode == "store agreement":
    got = store.agreement()["ac1"]
elif mode == "reference agreement":
    n = int(items.max()) + 1
    counts = np.zeros((n, 10))
    np.add.at(counts, (items, labels), 1)
    kappa = fleiss_kappa(counts, method="fleiss")
    table = np.full((5, n), np.nan)
    table[workers, items] = labels
    got = krippendorff.alpha(reliability_data=table, level_of_measurement="nominal") + kappa
elif mode == "store quality+consensus":
    got = len(store.annotator_quality()) + len(store.consensus(which="all").dataset_indices)
else:
    frame = pd.DataFrame({"task": items, "worker": workers, "label": labels})
    model = OneCoinDawidSkene(n_iter=100).fit(frame)
    got = len(model.skills_) + len(model.labels_)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_mib": memory.stop(), "got": float(got)}))
"""

MODES = ("store agreement", "reference agreement", "store quality+consensus", "crowd-kit")


def build(root: Path, n: int) -> tuple[Path, Path]:
    """The store and the same annotations as arrays."""
    import alma_store

    rng = np.random.default_rng(7)
    truth = rng.integers(0, 10, n)
    workers = np.stack([rng.choice(5, 3, replace=False) for _ in range(n)])
    labels = np.repeat(truth[:, None], 3, axis=1)
    flip = rng.random((n, 3)) < np.array(FLIPS)[workers]
    labels[flip] = (labels[flip] + rng.integers(1, 10, flip.sum())) % 10
    store_dir = root / "s"
    classes = [str(c) for c in range(10)]
    with alma_store.create(store_dir, n_items=n, classes=classes, annotations_per_item=3) as s:
        for w in range(5):
            rows, cols = np.nonzero(workers == w)
            s.add_labels(rows, labels[rows, cols], relative_to="dataset", annotator=f"w{w}")
    arrays = root / "annotations.npz"
    items = np.repeat(np.arange(n), 3)
    np.savez(arrays, items=items, workers=workers.ravel(), labels=labels.ravel())
    return store_dir, arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store_dir, arrays = build(Path(tmp), args.n)
        results: dict[str, list[dict[str, float]]] = {}
        for _ in range(args.repeat):  # contenders interleaved in each repetition
            for mode in MODES:
                proc = subprocess.run(
                    [sys.executable, "-c", CHILD, mode, str(store_dir), str(arrays), str(TOOLS)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results.setdefault(mode, []).append(json.loads(proc.stdout.splitlines()[-1]))
    print(f"n = {args.n:,} items x 3 annotations; min-max of {args.repeat} runs")
    pairs = {"store agreement": "reference agreement", "store quality+consensus": "crowd-kit"}
    for mode, rows in results.items():
        s = [x["seconds"] for x in rows]
        m = [x["peak_mib"] for x in rows]
        ratio = ""
        if mode in pairs:
            r = [
                a["seconds"] / b["seconds"] for a, b in zip(rows, results[pairs[mode]], strict=True)
            ]
            ratio = f"  {min(r):.2f}-{max(r):.2f}x {pairs[mode]}"
        print(
            f"  {mode:24s} {min(s):7.2f}-{max(s):7.2f} s  peak RssAnon "
            f"{min(m):6.0f}-{max(m):6.0f} MiB{ratio}"
        )


if __name__ == "__main__":
    main()
