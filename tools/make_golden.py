"""Write the golden store of the current format version under tests/data/.

    python tools/make_golden.py

A golden set, once committed, is never overwritten (the script refuses).
The store is small and self-contained (its features are copied into it), has a
checkpoint and a journal tail after it, string labels, provenance and a partial
scoring, so
tests/test_can_read_old.py checks that every later release still reads it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import alma_store
from alma_store._meta import FORMAT_VERSION

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / f"store-v{FORMAT_VERSION}"


def main() -> None:
    if OUT.exists():
        # A released set is what later releases must read: it is never rewritten.
        raise SystemExit(f"{OUT} exists: golden stores of released formats are never overwritten")
    features = np.arange(60, dtype=np.float32).reshape(20, 3)
    store = alma_store.create(OUT, features, label_dtype="str", chunk_rows=8)
    store.add_labels([(0, "cat"), (5, "dog")], annotator="ann", round=0)
    store.add_labels([12, 19], ["dog", "bird"], relative_to="dataset", annotator="bob", round=1)
    store.checkpoint()
    store.add_labels([(3, "cat")], round=2)  # position 3 is item 4; stays in the journal tail
    # Chunks 0 and 2 of 3 scored, one step file each (format version 3 and later).
    store.score(lambda rows: np.linalg.norm(rows, axis=1), "norm", shard=(0, 2), step_seconds=0)
    store.close(checkpoint=False)
    (OUT / "lock").unlink(missing_ok=True)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
