"""Write a synthetic feature matrix as .npy for scale runs, block by block.

    python tools/make_synthetic.py out.npy --rows 10000000 --dim 32

Rows are drawn from a mixture of 10 Gaussian classes (so a linear model has
something to learn); the class of each row goes to ``<out>.labels.npy``.
Memory stays at one block whatever the size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def make(
    path: Path, rows: int, dim: int, *, classes: int = 10, seed: int = 0, block: int = 1 << 20
) -> None:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(classes, dim)).astype(np.float32)
    features = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    labels = np.lib.format.open_memmap(
        path.with_suffix(".labels.npy"), mode="w+", dtype=np.int8, shape=(rows,)
    )
    for lo in range(0, rows, block):
        n = min(block, rows - lo)
        y = rng.integers(0, classes, n)
        features[lo : lo + n] = centers[y] + rng.normal(size=(n, dim)).astype(np.float32)
        labels[lo : lo + n] = y
    features.flush()
    labels.flush()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out", type=Path)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    make(args.out, args.rows, args.dim, seed=args.seed)
    print(f"wrote {args.out} ({args.rows} x {args.dim} float32) and its labels")


if __name__ == "__main__":
    main()
