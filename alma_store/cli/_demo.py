"""The demo behind ``alma demo``: active learning on scikit-learn's digits through a store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .._entry import create, open_store


def run_demo(
    workdir: Path, *, rounds: int = 6, batch: int = 20, echo: Callable[[str], None] = print
) -> list[float]:
    """Margin sampling with logistic regression; the store is reopened every round.

    Returns the test accuracy after each round.
    """
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    test, pool = order[:400], order[400:]
    workdir.mkdir(parents=True, exist_ok=True)
    np.save(workdir / "digits.npy", X[pool])  # the dataset D, memory-mapped by the store
    oracle = y[pool]
    store_path = workdir / "digits.alma"
    echo(f"dataset: {len(pool)} digits, 64 features, at {workdir / 'digits.npy'}")
    with create(
        store_path, str(workdir / "digits.npy"), label_dtype="int8", overwrite=True
    ) as store:
        seed = rng.choice(len(store), batch, replace=False)
        store.add_labels(seed, oracle[seed], relative_to="dataset", annotator="seed", round=0)
    accuracies = []
    for r in range(1, rounds + 1):
        with open_store(store_path) as store:  # every round resumes from disk
            labeled = store.labeled
            model = LogisticRegression(max_iter=500).fit(np.asarray(labeled), labeled.labels)
            accuracies.append(float(model.score(X[test], y[test])))
            unlabeled = store.unlabeled
            margins = []
            for _, rows in unlabeled.batches(512):  # stream the pool, never load it whole
                proba = np.sort(model.predict_proba(rows), axis=1)
                margins.append(proba[:, -1] - proba[:, -2])
            positions = np.argsort(np.concatenate(margins))[:batch]
            dataset_idx = unlabeled.to_dataset_index(positions)
            store.add_labels(
                positions,
                oracle[dataset_idx],
                annotator="oracle",
                round=r,
                expected_version=unlabeled.version,
            )
            echo(
                f"round {r}: trained on {len(labeled):4d} labels, test accuracy "
                f"{accuracies[-1]:.3f}; labeled {batch} more (store version {store.version})"
            )
    with open_store(store_path, mode="r") as store:
        summary = store.verify()
        echo(
            f"store {store_path}: {summary['num_labeled']} labeled in {summary['records']} commits, verified"
        )
    return accuracies
