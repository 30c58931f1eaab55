"""End-to-end example: margin sampling vs random sampling on scikit-learn's digits.

    python tools/example_digits.py --out docs/img/learning_curve.png

Each strategy runs ROUNDS rounds of "train, score the Unlabeled pool through
the store, label the top BATCH" on its own store. Half-way the script stops
and a *new process* resumes both campaigns from disk, as a preempted cluster
job would. The learning curves (test accuracy vs labels) are plotted to PNG.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import alma_store

SEED_LABELS, BATCH = 20, 20


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(X))
    test, pool = order[:500], order[500:]
    return X[pool], y[pool], X[test], y[test]


def setup(workdir: Path) -> None:
    X, y, _, _ = data()
    np.save(workdir / "pool.npy", X)
    seed = np.random.default_rng(1).choice(len(X), SEED_LABELS, replace=False)
    for strategy in ("margin", "random"):
        with alma_store.create(
            workdir / f"{strategy}.alma",
            str(workdir / "pool.npy"),
            label_dtype="int8",
            overwrite=True,
        ) as store:
            store.add_labels(seed, y[seed], relative_to="dataset", annotator="seed", round=0)
    (workdir / "curves.json").write_text(json.dumps({"margin": [], "random": []}))


def run_rounds(workdir: Path, first: int, last: int) -> None:
    _, y, X_test, y_test = data()
    curves = json.loads((workdir / "curves.json").read_text())
    for strategy in ("margin", "random"):
        rng = np.random.default_rng(100 + first)
        with alma_store.open(workdir / f"{strategy}.alma") as store:
            for r in range(first, last + 1):
                labeled = store.labeled
                model = LogisticRegression(max_iter=1000).fit(np.asarray(labeled), labeled.labels)
                curves[strategy].append([len(labeled), float(model.score(X_test, y_test))])
                if strategy == "margin":

                    def negative_margin(rows: np.ndarray, model=model) -> np.ndarray:
                        p = np.sort(model.predict_proba(rows), axis=1)
                        return p[:, -2] - p[:, -1]  # largest = least certain

                    store.score(negative_margin, f"margin-r{r}", batch_rows=512)
                    query = store.top_k(f"margin-r{r}", BATCH)
                    picks, version = query.dataset_indices, query.version
                    # the round's strategy, so that `alma replay` can check its picks
                    store.log_metrics(round=r, strategy="top_k", score_run=f"margin-r{r}", k=BATCH)
                else:
                    pool = store.unlabeled
                    picks = pool.to_dataset_index(rng.choice(len(pool), BATCH, replace=False))
                    version = pool.version
                store.add_labels(
                    picks,
                    y[picks],
                    relative_to="dataset",
                    annotator="oracle",
                    round=r,
                    expected_version=version,
                )
        print(f"{strategy}: rounds {first}-{last} done, {curves[strategy][-1]}", flush=True)
    (workdir / "curves.json").write_text(json.dumps(curves))


def plot(workdir: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = json.loads((workdir / "curves.json").read_text())
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, points in curves.items():
        n, acc = zip(*points, strict=True)
        ax.plot(n, acc, marker="o", label=f"{strategy} sampling")
    ax.set(
        xlabel="labeled examples",
        ylabel="test accuracy",
        title="Digits: margin vs random sampling (resumed half-way)",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dir", type=Path, default=Path("example-digits"))
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--resume-from", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    half = args.rounds // 2
    if args.resume_from is not None:  # the second process: resume from disk
        run_rounds(args.dir, args.resume_from, args.rounds)
        return
    setup(args.dir)
    run_rounds(args.dir, 1, half)
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--dir",
            str(args.dir),
            "--rounds",
            str(args.rounds),
            "--resume-from",
            str(half + 1),
        ],
        check=True,
    )
    for strategy in ("margin", "random"):
        with alma_store.open(args.dir / f"{strategy}.alma", mode="r") as store:
            summary = store.verify()
            print(
                f"{strategy}: {summary['num_labeled']} labels in {summary['records']} commits, verified"
            )
    plot(args.dir, args.out or args.dir / "learning_curve.png")


if __name__ == "__main__":
    main()
