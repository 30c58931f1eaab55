"""The guide's picture of selection: top_k by uncertainty against k-center greedy, in 2-D.

    python tools/figure_select.py --out docs/img/select.png

Two classes of 4,000 points each in 2-D, 20 labeled; a logistic regression trained on them
scores every unlabeled point by its margin. Three panels pick 30 points each: the 30 most
uncertain (``top_k`` of the margin: they bunch up along the decision boundary), k-center
greedy over the whole pool (``select``: spread over the data, far from the labeled
points), and k-center greedy among the 600 most uncertain (``select(scores=,
candidates=)``: along the boundary, but spread out).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import alma_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img/select.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    n = 4000
    x = np.concatenate(
        [
            rng.normal([-1.0, 0.0], [1.0, 1.4], size=(n, 2)),
            rng.normal([1.5, 0.5], [0.8, 1.0], size=(n, 2)),
        ]
    ).astype(np.float32)
    y = np.repeat([0, 1], n)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", x)
        store = alma_store.create(Path(tmp) / "s", str(Path(tmp) / "x.npy"), chunk_rows=1024)
        seed = np.sort(np.concatenate([rng.choice(n, 10, replace=False), n + rng.choice(n, 10)]))
        store.add_labels(seed, y[seed], relative_to="dataset")
        model = LogisticRegression().fit(np.asarray(store.labeled), store.labels)

        def margin(rows: np.ndarray) -> np.ndarray:
            p = np.sort(model.predict_proba(rows), axis=1)
            return p[:, -1] - p[:, -2]

        store.score(margin, "margin")
        panels = [
            ("top_k: the 30 smallest margins", store.top_k("margin", 30, largest=False)),
            ("select: k-center greedy", store.select(30)),
            (
                "select among the 600 smallest margins",
                store.select(30, scores="margin", candidates=600, largest=False),
            ),
        ]
        labeled = np.asarray(store.labeled_mask)
        store.close()
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.4), sharex=True, sharey=True)
    for ax, (title, picked) in zip(axes, panels, strict=True):
        ax.scatter(*x[~labeled].T, s=2, c=np.where(y[~labeled], "#9ecae1", "#fdd0a2"), lw=0)
        ax.scatter(*x[labeled].T, s=40, c="k", marker="x", label="labeled")
        ax.scatter(
            *x[picked.dataset_indices].T,
            s=30,
            facecolors="none",
            edgecolors="#d62728",
            label="picked",
        )
        ax.set_title(title, fontsize=10)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
