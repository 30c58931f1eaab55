"""Model-based tests: random operation sequences against ALMa's in-memory algorithm.

The model is the seed algorithm itself: a numpy boolean mask and a label array,
``np.flatnonzero(~mask)`` as the offset map. Every step is checked against it,
including views taken earlier (they must still show their own version), and
the store is reopened (in this process and in fresh processes) between steps.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alma_store
from alma_store.engine import _engine as engine_module

from .conftest import BACKENDS, make_features, run_python


class SeedModel:
    """ALMa 0.0.3's bookkeeping, verbatim in spirit: a mask, labels, nonzero()."""

    def __init__(self, n: int) -> None:
        self.mask = np.zeros(n, bool)
        self.labels = np.zeros(n, np.int64)
        self.version = 0

    def unlabeled_indices(self) -> np.ndarray:
        return np.flatnonzero(~self.mask)

    def add(self, dataset_indices: np.ndarray, values: np.ndarray) -> None:
        self.mask[dataset_indices] = True
        self.labels[dataset_indices] = values
        self.version += 1

    def remove(self, dataset_indices: np.ndarray) -> None:
        self.mask[dataset_indices] = False
        self.version += 1

    def copy(self) -> SeedModel:
        other = SeedModel(len(self.mask))
        other.mask, other.labels, other.version = self.mask.copy(), self.labels.copy(), self.version
        return other


def check(store: alma_store.Store, model: SeedModel, features: np.ndarray) -> None:
    """Everything the store shows agrees with the model."""
    assert store.version == model.version
    assert store.num_labeled == int(model.mask.sum())
    assert store.num_unlabeled == int((~model.mask).sum())
    assert np.array_equal(np.asarray(store.labeled_mask), model.mask)
    assert np.array_equal(store.labels, model.labels[model.mask])
    check_views(store.labeled, store.unlabeled, model, features)
    unl = model.unlabeled_indices()
    if len(unl):
        assert np.array_equal(store.to_unlabeled_position(unl), np.arange(len(unl)))


def check_views(
    labeled: alma_store.LabeledView,
    unlabeled: alma_store.UnlabeledView,
    model: SeedModel,
    features: np.ndarray,
) -> None:
    for view, mask in ((labeled, model.mask), (unlabeled, ~model.mask)):
        want = np.flatnonzero(mask)
        assert view.version == model.version
        assert len(view) == len(want)
        assert view.shape == (len(want), *features.shape[1:])
        assert np.array_equal(view.to_dataset_index(np.arange(len(want))), want)
        assert np.array_equal(np.asarray(view), features[mask])
        if len(want):
            assert np.array_equal(view[::-1], features[mask][::-1])
            assert np.array_equal(view[-1], features[want[-1]])
        got = [idx for idx, _ in view.batches(3)]
        assert np.array_equal(np.concatenate(got) if got else np.empty(0, np.int64), want)
        assert all(len(g) <= 3 for g in got)
    assert np.array_equal(labeled.labels, model.labels[model.mask])


ops = st.lists(
    st.one_of(
        st.tuples(st.just("add_unlabeled"), st.lists(st.integers(0, 80), max_size=6)),
        st.tuples(st.just("add_dataset"), st.lists(st.integers(0, 80), max_size=6)),
        st.tuples(st.just("relabel"), st.lists(st.integers(0, 80), max_size=4)),
        st.tuples(st.just("remove"), st.lists(st.integers(0, 80), max_size=4)),
        st.tuples(st.just("snapshot"), st.none()),
        st.tuples(st.just("reopen"), st.none()),
        st.tuples(st.just("checkpoint"), st.none()),
    ),
    max_size=14,
)


@pytest.mark.parametrize("kind", BACKENDS)
@settings(max_examples=30)
@given(
    n=st.integers(1, 60),
    chunk_rows=st.integers(1, 9),
    ckpt=st.integers(1, 12),
    tail_every=st.integers(1, 4),
    steps=ops,
)
def test_random_operations_match_seed_model(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    n: int,
    chunk_rows: int,
    ckpt: int,
    tail_every: int,
    steps: list[tuple[str, list[int] | None]],
) -> None:
    # Tail files every few commits: reopens start from them, time travel reads past them.
    monkeypatch.setattr(engine_module, "TAIL_FILE_RECORDS", tail_every)
    tmp = tmp_path_factory.mktemp("model")
    features = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    alma_store.create(tmp / "s", make_features(kind, tmp, features), chunk_rows=chunk_rows).close()
    store = alma_store.open(tmp / "s", checkpoint_rows=ckpt)
    model = SeedModel(n)
    snapshots: list[tuple[alma_store.LabeledView, alma_store.UnlabeledView, SeedModel]] = []
    past = [model.copy()]  # the model at every version, for time travel
    corrections: list[bool] = []
    try:
        for step, (op, arg) in enumerate(steps):
            if op in ("add_unlabeled", "add_dataset"):
                assert arg is not None
                idx = np.array(arg, dtype=np.int64)
                values = np.arange(len(idx), dtype=np.int64) + 100 * step
                unl = model.unlabeled_indices()
                if op == "add_unlabeled":
                    ok = len(set(arg)) == len(arg) and all(p < len(unl) for p in arg)
                    target = unl[idx] if ok else None
                    relative_to = "unlabeled"
                else:
                    ok = len(set(arg)) == len(arg) and all(i < n and not model.mask[i] for i in arg)
                    target = idx
                    relative_to = "dataset"
                if ok:
                    got = store.add_labels(idx, values, relative_to=relative_to)
                    assert np.array_equal(got, target)
                    if len(idx):
                        model.add(target, values)
                else:
                    with pytest.raises(alma_store.InvalidIndexError):
                        store.add_labels(idx, values, relative_to=relative_to)
            elif op in ("relabel", "remove"):
                assert arg is not None
                labeled = np.flatnonzero(model.mask)
                # Most picks are labeled items; picks >= 60 name an index that may not be.
                idx = np.array(
                    [labeled[a % len(labeled)] if a < 60 and len(labeled) else a for a in arg],
                    np.int64,
                )
                ok = len(set(idx.tolist())) == len(idx) and all(
                    i < n and model.mask[i] for i in idx
                )
                values = np.arange(len(idx), dtype=np.int64) - 100 * step
                corrections.append(ok and len(idx) > 0)
                if ok:
                    if op == "relabel":
                        store.relabel(idx, values, annotator="fixer", round=step)
                        if len(idx):
                            model.add(idx, values)
                    else:
                        store.remove_labels(idx, round=step)
                        if len(idx):
                            model.remove(idx)
                elif op == "relabel":
                    with pytest.raises(alma_store.InvalidIndexError):
                        store.relabel(idx, values)
                else:
                    with pytest.raises(alma_store.InvalidIndexError):
                        store.remove_labels(idx)
            elif op == "snapshot":
                snapshots.append((store.labeled, store.unlabeled, model.copy()))
            elif op == "reopen":
                store.close()
                for labeled, _, _ in snapshots:
                    with pytest.raises(alma_store.StoreClosedError, match="is closed"):
                        labeled.to_dataset_index([0] if len(labeled) else [])
                snapshots.clear()
                store = alma_store.open(tmp / "s", checkpoint_rows=ckpt)
            elif op == "checkpoint":
                store.checkpoint()
            if model.version == len(past):
                past.append(model.copy())
            check(store, model, features)
            for labeled, unlabeled, old in snapshots:
                check_views(labeled, unlabeled, old, features)
            then = past[step % len(past)]
            at = store.at(version=then.version)
            assert np.array_equal(np.asarray(at.labeled_mask), then.mask)
            check_views(at.labeled, at.unlabeled, then, features)
        assert store.verify()["num_labeled"] == int(model.mask.sum())
        kinds = [e.kind for e in store.history()]
        assert len(kinds) == model.version
        assert kinds.count("relabel") + kinds.count("remove") == sum(corrections)
    finally:
        store.close()


DUMP = """
import json, sys, numpy as np, alma_store
with alma_store.open(sys.argv[1], mode="r") as s:
    print(json.dumps({"version": s.version, "mask": np.asarray(s.labeled_mask).tolist(),
                      "labels": s.labels.tolist(),
                      "map": s.unlabeled.to_dataset_index(np.arange(s.num_unlabeled)).tolist()}))
"""

LABEL = """
import sys, numpy as np, alma_store
with alma_store.open(sys.argv[1]) as s:
    idx = np.array(sys.argv[2].split(","), dtype=np.int64)
    s.add_labels(idx, idx * 7, relative_to="dataset", annotator="other-process")
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", BACKENDS)
@settings(max_examples=6)
@given(
    n=st.integers(5, 40),
    chunk_rows=st.integers(1, 6),
    batches=st.lists(
        st.lists(st.integers(0, 39), min_size=1, max_size=4, unique=True), min_size=1, max_size=4
    ),
)
def test_other_processes_write_and_read_between_steps(
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    n: int,
    chunk_rows: int,
    batches: list[list[int]],
) -> None:
    """Another process labels while this one holds views; fresh processes see the same state."""
    tmp = tmp_path_factory.mktemp("xproc")
    features = np.arange(n * 3, dtype=np.int32).reshape(n, 3)
    model = SeedModel(n)
    with alma_store.create(
        tmp / "s", make_features(kind, tmp, features), chunk_rows=chunk_rows
    ) as store:
        for batch in batches:
            batch = [i for i in batch if i < n and not model.mask[i]]
            if not batch:
                continue
            before = (store.labeled, store.unlabeled, model.copy())
            run_python(LABEL, str(tmp / "s"), ",".join(map(str, batch)))
            model.add(np.array(batch), np.array(batch) * 7)
            check(store, model, features)
            check_views(*before, features)
            # This process labels too, by position, then a fresh process checks everything.
            if model.unlabeled_indices().size:
                store.add_labels([(0, 1)])
                model.add(model.unlabeled_indices()[:1], np.array([1]))
            out = json.loads(run_python(DUMP, str(tmp / "s")).stdout)
            assert out["version"] == model.version
            assert out["mask"] == model.mask.tolist()
            assert out["labels"] == model.labels[model.mask].tolist()
            assert out["map"] == model.unlabeled_indices().tolist()
        assert store.verify()["version"] == model.version


@settings(max_examples=25, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["add", "relabel", "remove", "read", "checkpoint"]),
            st.lists(st.integers(0, 59), min_size=1, max_size=6),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_labels_read_after_unread_commits_match_seed_model(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, list[int]]]
) -> None:
    """Labels asked for after several commits nobody read between (carried over versions)."""
    n = 60
    tmp = tmp_path_factory.mktemp("carried")
    store = alma_store.create(tmp / "s", n_items=n, chunk_rows=8)
    model = SeedModel(n)
    store.add_labels(np.arange(0, n, 3), np.arange(0, n, 3) * 10, relative_to="dataset")
    model.add(np.arange(0, n, 3), np.arange(0, n, 3) * 10)
    assert np.array_equal(store.labels, model.labels[model.mask])  # every chunk's labels read
    for step, (op, picks) in enumerate(ops):
        idx = np.unique(picks)
        values = idx * 100 + step
        if op == "add" and not model.mask[idx].any():
            store.add_labels(idx, values, relative_to="dataset")
            model.add(idx, values)
        elif op == "relabel" and model.mask[idx].all():
            store.relabel(idx, values)
            model.add(idx, values)
        elif op == "remove" and model.mask[idx].all():
            store.remove_labels(idx)
            model.remove(idx)
        elif op == "read":
            assert np.array_equal(store.labels, model.labels[model.mask])
        elif op == "checkpoint":
            store.checkpoint()
    assert np.array_equal(store.labels, model.labels[model.mask])
    assert np.array_equal(store.labeled.labels, model.labels[model.mask])
    store.close()
