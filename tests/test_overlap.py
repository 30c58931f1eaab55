"""Claims on a store of several annotations per item: each item goes to k annotators, once each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import alma_store
from alma_store import ClaimedError, InvalidInputError

from .conftest import REPO

ANNOTATORS = ["ann", "bob", "cyd", "dee"]


class Model:
    """Who annotated what and who holds what, as plain sets."""

    def __init__(self, n: int, k: int) -> None:
        self.n, self.k = n, k
        self.done: dict[int, set[str]] = {i: set() for i in range(n)}
        self.holds: dict[int, dict[str, float]] = {i: {} for i in range(n)}
        self.need: dict[int, int] = {}
        self.labeled: set[int] = set()

    def needs(self, i: int) -> int:
        return self.need.get(i, self.k)

    def open_for(self, who: str, now: float) -> list[int]:
        out = []
        for i in range(self.n):
            live = {a for a, t in self.holds[i].items() if t > now and a not in self.done[i]}
            if i in self.labeled or len(self.done[i]) >= self.needs(i):
                continue
            if who in self.done[i] or who in live:
                continue
            if len(self.done[i]) + len(live) < self.needs(i):
                out.append(i)
        return out


@given(
    k=st.integers(2, 3),
    n=st.integers(1, 12),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["claim", "annotate", "wait", "need"]),
            st.sampled_from(ANNOTATORS),
            st.integers(1, 12),
        ),
        max_size=25,
    ),
)
def test_claims_route_items_as_a_plain_model_does(
    tmp_path_factory: pytest.TempPathFactory, k: int, n: int, ops: list[tuple[str, str, int]]
) -> None:
    store = alma_store.create(
        tmp_path_factory.mktemp("ov") / "s",
        n_items=n,
        chunk_rows=4,
        annotations_per_item=k,
        classes=["x", "y"],
    )
    now = [1000.0]
    store.clock = lambda: now[0]
    model = Model(n, k)
    for op, who, m in ops:
        if op == "claim":
            want = model.open_for(who, now[0])[:m]
            got = store.claim_next(m, annotator=who, ttl=10)
            assert got.dataset_indices.tolist() == want
            for i in want:
                model.holds[i][who] = now[0] + 10
        elif op == "annotate":  # everything its live claims hold
            # A held item may be labeled meanwhile (a requirement lowered under its claims):
            # as in a store of one label per item, annotating it then is AlreadyLabeledError.
            held = [
                i
                for i in range(n)
                if model.holds[i].get(who, 0) > now[0] and who not in model.done[i]
            ]
            late = [i for i in held if i in model.labeled]
            if late:
                with pytest.raises(alma_store.AlreadyLabeledError):
                    store.add_labels(late, ["x"] * len(late), relative_to="dataset", annotator=who)
            mine = [i for i in held if i not in model.labeled]
            if mine:
                store.add_labels(mine, ["x"] * len(mine), relative_to="dataset", annotator=who)
                for i in mine:
                    model.done[i].add(who)
                    if len(model.done[i]) == model.needs(i):
                        model.labeled.add(i)
        elif op == "need":  # item m % n needs (m % 3) + 1 annotations from now on
            i, need = m % n, m % 3 + 1
            if i in model.labeled:
                with pytest.raises(alma_store.AlreadyLabeledError):
                    store.require_annotations(need, [i])
            elif len(model.done[i]) >= need:
                with pytest.raises(InvalidInputError, match="needs more than"):
                    store.require_annotations(need, [i])
            else:
                store.require_annotations(need, [i])
                model.need[i] = need
            assert store.required_annotations([i]).tolist() == [model.needs(i)]
        else:
            now[0] += 6 * m  # claims lapse after 10
        # Invariants: nobody twice, never more than k given or held.
        for i, anns in zip(range(n), store.annotations(range(n)), strict=True):
            names = [a.annotator for a in anns]
            assert len(names) == len(set(names)) <= model.needs(i)
            assert sorted(names) == sorted(model.done[i])
    labeled = np.flatnonzero(np.asarray(store.labeled_mask)).tolist()
    assert labeled == sorted(model.labeled)
    store.close()


def test_explicit_claims_on_several_annotations(tmp_path: Path) -> None:
    store = alma_store.create(
        tmp_path / "s", n_items=10, chunk_rows=4, annotations_per_item=2, classes=["x", "y"]
    )
    store.claim([0, 1], annotator="ann", ttl=60)
    store.claim([0, 1], annotator="bob", ttl=60)  # the second of two annotations
    with pytest.raises(ClaimedError, match="claimed by another annotator"):
        store.claim([0], annotator="cyd", ttl=60)
    store.add_labels([0], ["x"], relative_to="dataset", annotator="ann")
    with pytest.raises(InvalidInputError, match="'ann' annotated dataset indices \\[0\\] already"):
        store.claim([0], annotator="ann", ttl=60)
    store.add_labels([0], ["y"], relative_to="dataset", annotator="bob")  # disputed
    assert store.disputed().tolist() == [0]
    with pytest.raises(InvalidInputError, match="have all the annotations they take"):
        store.claim([0], annotator="cyd", ttl=60)
    # top_k for an annotator passes over what it may not take.
    store.score(lambda rows: -rows.astype(float), "first")
    assert store.top_k("first", 3, annotator="cyd").dataset_indices.tolist() == [2, 3, 4]
    assert store.top_k("first", 3, annotator="ann").dataset_indices.tolist() == [1, 2, 3]
    store.close()


def test_required_annotations(tmp_path: Path) -> None:
    store = alma_store.create(
        tmp_path / "s", n_items=12, chunk_rows=4, annotations_per_item=2, classes=["x", "y"]
    )
    store.require_annotations(1)  # easy by default
    store.require_annotations([3, 3], [0, 1])  # hard ones
    assert store.required_annotations(range(4)).tolist() == [3, 3, 1, 1]
    first = store.claim_next(4, annotator="ann", ttl=60)
    store.add_labels(first.dataset_indices, ["x"] * 4, relative_to="dataset", annotator="ann")
    assert np.flatnonzero(np.asarray(store.labeled_mask)).tolist() == [2, 3]  # one was enough
    assert store.claim_next(4, annotator="bob", ttl=60).dataset_indices.tolist() == [0, 1, 4, 5]
    store.add_labels([0], ["y"], relative_to="dataset", annotator="bob")
    store.add_labels([0], ["x"], relative_to="dataset", annotator="cyd")  # x, y, x: x
    assert np.asarray(store.labeled_mask)[0]
    # A disputed item is sent back for one more annotation.
    store.add_labels([6, 7], ["x", "x"], relative_to="dataset", annotator="ann")
    store.require_annotations(2, [8])
    store.add_labels([8], ["x"], relative_to="dataset", annotator="ann")
    store.add_labels([8], ["y"], relative_to="dataset", annotator="bob")
    assert store.disputed().tolist() == [8]
    store.require_annotations(3, store.disputed())
    assert store.disputed().tolist() == []
    assert store.claim_next(1, annotator="cyd", ttl=60).dataset_indices.tolist() == [1]
    # 1 has ann's annotation and bob's and cyd's claims: its three; 4 and 5 are bob's.
    assert store.claim_next(5, annotator="dee", ttl=60).dataset_indices.tolist() == [8, 9, 10, 11]
    store.add_labels([8], ["y"], relative_to="dataset", annotator="dee")
    assert np.asarray(store.labeled_mask)[8]
    # Bad requirements write nothing.
    for bad in (0, -1, 1.5, "2", [[2]]):
        with pytest.raises(InvalidInputError, match="k must be an int >= 1"):
            store.require_annotations(bad, [9])
    with pytest.raises(InvalidInputError, match="k must be an int >= 1"):
        store.require_annotations([2, 2], [9])
    with pytest.raises(alma_store.AlreadyLabeledError):
        store.require_annotations(3, [2])
    with pytest.raises(InvalidInputError, match="has 1 annotations already"):
        store.require_annotations(1, [1])  # ann annotated it: one is not more
    store.require_annotations(2)  # the default again
    store.add_labels([9], ["x"], relative_to="dataset", annotator="ann")
    with pytest.raises(InvalidInputError, match="give it its own requirement first"):
        store.require_annotations(1)  # 9 would have all it needs, undecided
    store.close()
    with alma_store.open(tmp_path / "s", mode="r") as again:  # read back from the log
        assert again.required_annotations([0, 1, 8, 9]).tolist() == [3, 3, 3, 2]
    one = alma_store.create(tmp_path / "one", n_items=4)
    with pytest.raises(InvalidInputError, match="keeps one label per item"):
        one.require_annotations(2)
    one.close()


WORKER = r"""
import sys, alma_store
path, who = sys.argv[1], sys.argv[2]
with alma_store.open(path) as s:
    while True:
        c = s.claim_next(3, annotator=who, ttl=3600)
        if not len(c.dataset_indices):
            break
        s.add_labels(c.dataset_indices, ["x"] * len(c.dataset_indices),
                     relative_to="dataset", annotator=who)
print("done", flush=True)
"""


@pytest.mark.slow
def test_annotators_in_processes_give_every_item_its_annotations(tmp_path: Path) -> None:
    """Four processes claim and annotate until nothing is left: every item has exactly the
    annotations it needs (1, 3 or 4), from as many different annotators, and is labeled."""
    k, n = 3, 60
    store = alma_store.create(
        tmp_path / "s", n_items=n, chunk_rows=16, annotations_per_item=k, classes=["x", "y"]
    )
    need = np.where(np.arange(n) % 5 == 0, 4, np.where(np.arange(n) % 5 == 1, 1, k))
    store.require_annotations(need[need != k], np.flatnonzero(need != k))
    store.close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "s"), who],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ANNOTATORS
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "done" in out, err
    with alma_store.open(tmp_path / "s", mode="r") as s:
        assert s.num_labeled == n
        for anns, want in zip(s.annotations(range(n)), need.tolist(), strict=True):
            names = [a.annotator for a in anns]
            assert len(names) == want == len(set(names))
        assert s.claims() == []
