"""Write the golden stores of the current format version under tests/data/.

    python tools/make_golden.py

A golden set, once committed, is never overwritten (the script skips it).
``store-v<N>`` is small and self-contained (its features are copied into it),
has a checkpoint and a journal tail after it, string labels, provenance and a
partial scoring; ``store-v<N>-index-only`` has no features. Tests in
tests/test_can_read_old.py check that every later release still reads them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import alma_store
from alma_store._meta import FORMAT_VERSION

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def write_main(out: Path) -> None:
    features = np.arange(60, dtype=np.float32).reshape(20, 3)
    store = alma_store.create(out, features, label_dtype="str", chunk_rows=8)
    store.add_labels([(0, "cat"), (5, "dog")], annotator="ann", round=0)
    store.add_labels([12, 19], ["dog", "bird"], relative_to="dataset", annotator="bob", round=1)
    store.checkpoint()
    store.add_labels([(3, "cat")], round=2)  # position 3 is item 4; stays in the journal tail
    # Chunks 0 and 2 of 3 scored, one step file each (format version 3 and later).
    store.score(lambda rows: np.linalg.norm(rows, axis=1), "norm", shard=(0, 2), step_seconds=0)
    store.close(checkpoint=False)


def write_index_only(out: Path) -> None:
    store = alma_store.create(out, n_items=30, chunk_rows=8)
    store.add_labels([2, 17, 29], [1, 0, 1], relative_to="dataset", annotator="ann", round=0)
    store.checkpoint()
    store.remove_labels([17], round=1)  # stays in the journal tail
    store.close(checkpoint=False)


def main() -> None:
    for suffix, write in (("", write_main), ("-index-only", write_index_only)):
        out = DATA / f"store-v{FORMAT_VERSION}{suffix}"
        if out.exists():  # a released set is what later releases must read: never rewritten
            print(f"{out} exists: golden stores of released formats are never overwritten")
            continue
        write(out)
        (out / "lock").unlink(missing_ok=True)
        (out / "journal.sync").unlink(missing_ok=True)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
