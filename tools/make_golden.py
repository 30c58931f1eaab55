"""Write the golden stores of the current format version under tests/data/.

    python tools/make_golden.py

A golden set, once committed, is never overwritten (the script skips it).
``store-v<N>`` is small and self-contained (its features are copied into it),
has a checkpoint and a journal tail after it, string labels, provenance, a
partial scoring and (format 4) a campaign log with a claim and metrics;
``store-v<N>-index-only`` has no features and (format 4) a Prodigy import
with each label's own annotator and time; ``store-v<N>-campaign`` (format 4)
keeps two annotations per item, with a majority, a dispute and a resolve.
``store-v<N>-columns`` (from format 6) holds a partial scoring of three values
per row (scoring layout 3); ``store-v<N>-overlap`` (from format 6) a campaign
log with ``need`` records (annotations required per item) and a claim.
``store-v5-shared`` is a shared store in a directory (format 5) with the
contents of ``store-v<N>``: a segment (its log objects deleted), a log object
after it, a claim and metrics as campaign objects, and a partial scoring.
From format 6 on, ``store-v<N>``'s journal tail is also saved in a tail file
(written after every commit while the golden stores are made). ``store-v7-shared``
(format 7) also holds a shared checkpoint of version 2, its chunk files as objects;
``store-v9-shared`` a group commit (versions 4 and 5, of two writers, in one commit object).
Tests in tests/test_can_read_old.py check that every later release still
reads them.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

import numpy as np

import alma_store
from alma_store.core import LabelEvent, Provenance
from alma_store.engine import _engine as engine_module
from alma_store.engine._commit import CONTENDED_COMMITS
from alma_store.storage import (
    FORMAT_VERSION,
    SHARED_FORMAT_VERSION,
    DirObjects,
    read_shared_meta,
    shared_log,
)

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def write_main(out: Path) -> None:
    features = np.arange(60, dtype=np.float32).reshape(20, 3)
    store = alma_store.create(out, features, label_dtype="str", chunk_rows=8)
    store.add_labels([(0, "cat"), (5, "dog")], annotator="ann", round=0)
    store.add_labels([12, 19], ["dog", "bird"], relative_to="dataset", annotator="bob", round=1)
    store.checkpoint()
    store.add_labels([(3, "cat")], round=2)  # position 3 is item 4; stays in the journal tail
    store._engine.refresh()  # the tail taken in: saved in a tail file (format 6 and later)
    store._engine.save_tail_if_due()
    # Chunks 0 and 2 of 3 scored, one step file each (format version 3 and later).
    store.score(lambda rows: np.linalg.norm(rows, axis=1), "norm", shard=(0, 2), step_seconds=0)
    store.clock = lambda: 1_790_000_000.0  # the claim below never lapses in the tests
    store.claim([7, 8], annotator="ann", ttl=1e12)
    store.log_metrics(round=1, accuracy=0.625, model="knn")
    store.close(checkpoint=False)


def columns(rows: np.ndarray) -> np.ndarray:
    """Three class probabilities per row, a softmax of the features (scoring layout 3)."""
    z = np.asarray(rows, np.float64) / 10.0
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def write_columns(out: Path) -> None:
    features = np.arange(60, dtype=np.float32).reshape(20, 3) % 7
    store = alma_store.create(out, features, chunk_rows=8)
    store.add_labels([1, 9, 17], [0, 1, 2], relative_to="dataset")
    # Chunks 0 and 2 of 3 scored with three values per row (scoring layout 3).
    store.score(columns, "proba", shard=(0, 2), step_seconds=0, columns=3)
    store.close()


def write_overlap(out: Path) -> None:
    """Annotations required per item (campaign-log ``need`` records, alma_store 0.3)."""
    store = alma_store.create(
        out, n_items=12, classes=["cat", "dog"], annotations_per_item=2, chunk_rows=4
    )
    store.clock = lambda: 1_790_000_000.0
    store.require_annotations(1)  # every item without its own: one annotation
    store.require_annotations([3, 3], [0, 1])  # these: three
    store.add_labels([0, 1, 2], ["cat", "dog", "cat"], relative_to="dataset", annotator="a")
    store.add_labels([0, 1], ["cat", "cat"], relative_to="dataset", annotator="b")
    store.claim([0], annotator="c", ttl=1e12)
    store.close(checkpoint=False)


def write_index_only(out: Path) -> None:
    store = alma_store.create(out, n_items=30, chunk_rows=8)
    store.add_labels([2, 17, 29], [1, 0, 1], relative_to="dataset", annotator="ann", round=0)
    store.checkpoint()
    store.remove_labels([17], round=1)  # stays in the journal tail
    with tempfile.TemporaryDirectory() as tmp:  # prodigy db-out lines, each its own annotator
        export = Path(tmp) / "db.jsonl"
        rows = [(5, "alice", 1_780_000_000), (6, "bob", 1_780_000_060)]
        export.write_text(
            "".join(
                json.dumps(
                    {"dataset_index": i, "label": 1, "answer": "accept"}
                    | {"_annotator_id": who, "_timestamp": t}
                )
                + "\n"
                for i, who, t in rows
            )
        )
        store.import_labels(export, format="prodigy", round=2)
    store.close(checkpoint=False)


def write_campaign(out: Path) -> None:
    store = alma_store.create(
        out, n_items=12, classes=["cat", "dog"], annotations_per_item=2, chunk_rows=4
    )
    store.add_labels([0, 1, 2], ["cat", "dog", "cat"], relative_to="dataset", annotator="a")
    store.checkpoint()
    store.add_labels([0, 1, 2], ["cat", "cat", "cat"], relative_to="dataset", annotator="b")
    store.resolve([1], ["dog"], annotator="rev", round=1)
    store.add_labels([5], ["dog"], relative_to="dataset", annotator="a")  # waits for a second
    store.log_metrics(round=1, accuracy=0.5)
    store.close(checkpoint=False)


def offer_from_another_writer(out: Path, item: int, label: str) -> None:
    """Offer a batch labelling ``item`` from a second handle, as a writer that lost a race does."""
    with alma_store.open(out) as other:
        engine = other._engine
        snap = engine.current()
        event = LabelEvent.following(
            snap.version,
            "add",
            np.array([item], np.int64),
            np.array([label], dtype=engine.meta.label_dtype),
            Provenance(annotator="other"),
        ).renumbered(snap.version + 1, batch=uuid.uuid4().hex)
        other._writer._offer(event)


def write_shared(out: Path) -> None:
    features = np.arange(60, dtype=np.float32).reshape(20, 3)
    store = alma_store.create(out, features, label_dtype="str", chunk_rows=8, shared=True)
    store.add_labels([(0, "cat"), (5, "dog")], annotator="ann", round=0)
    store.add_labels([12, 19], ["dog", "bird"], relative_to="dataset", annotator="bob", round=1)
    mirror = store._engine.mirror
    assert mirror is not None
    objects = DirObjects(out)
    fold = shared_log(objects, read_shared_meta(objects), grace=0.0)  # segment, log objects go
    assert fold.compact(lambda a, b: [mirror.raw(a, b)], 2) == (2, 2)
    if SHARED_FORMAT_VERSION >= 7:  # a shared checkpoint of version 2
        assert store._engine.publish_checkpoint() is not None
    store.add_labels([(3, "cat")], round=2)  # a log object after the segment
    if SHARED_FORMAT_VERSION >= 9:  # a group commit: versions 4 and 5 in one object
        offer_from_another_writer(out, 17, "fish")
        store._writer._contended = CONTENDED_COMMITS
        store.add_labels([9], ["cat"], relative_to="dataset", annotator="ann")
    store.score(lambda rows: np.linalg.norm(rows, axis=1), "norm", shard=(0, 2), step_seconds=0)
    store.clock = lambda: 1_790_000_000.0
    store.claim([7, 8], annotator="ann", ttl=1e12)
    store.log_metrics(round=1, accuracy=0.625, model="knn")
    store.close()


def main() -> None:
    engine_module.TAIL_FILE_RECORDS = 1  # a tail file after every commit: small stores have them
    for version, suffix, write in (
        (FORMAT_VERSION, "", write_main),
        (FORMAT_VERSION, "-index-only", write_index_only),
        (FORMAT_VERSION, "-campaign", write_campaign),
        (FORMAT_VERSION, "-columns", write_columns),
        (FORMAT_VERSION, "-overlap", write_overlap),
        (SHARED_FORMAT_VERSION, "-shared", write_shared),
    ):
        out = DATA / f"store-v{version}{suffix}"
        if out.exists():  # a released set is what later releases must read: never rewritten
            print(f"{out} exists: golden stores of released formats are never overwritten")
            continue
        write(out)
        (out / "lock").unlink(missing_ok=True)
        (out / "journal.sync").unlink(missing_ok=True)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
