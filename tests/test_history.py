"""Label history, corrections and time travel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store import InvalidInputError, NotLabeledError, StaleIndexError


@pytest.fixture
def store(tmp_path: Path) -> alma_store.Store:
    s = alma_store.create(tmp_path / "s", np.arange(30.0).reshape(30, 1), chunk_rows=4)
    s.add_labels([0, 5, 9], [1, 2, 3], relative_to="dataset", annotator="ann", round=0)
    s.add_labels([10, 11], [4, 4], relative_to="dataset", annotator="bob", round=0)
    s.relabel([5], [7], annotator="bob", round=1)
    s.remove_labels([0], annotator="ann", round=1)
    yield s
    s.close()


def test_history_records_every_label_with_provenance(store: alma_store.Store) -> None:
    events = list(store.history())
    assert [(e.version, e.kind, e.annotator, e.round) for e in events] == [
        (1, "add", "ann", 0),
        (2, "add", "bob", 0),
        (3, "relabel", "bob", 1),
        (4, "remove", "ann", 1),
    ]
    relabel = events[2]
    assert relabel.previous.tolist() == [2] and relabel.values.tolist() == [7]
    assert events[3].values.tolist() == [1]  # the label that was removed
    assert all(e.time > 0 for e in events)
    assert [e.version for e in store.history(annotator="bob")] == [2, 3]
    assert [e.version for e in store.history(round=1, kinds=("remove",))] == [4]
    cut = list(store.history(start=5, stop=11))
    assert [e.dataset_indices.tolist() for e in cut] == [[5, 9], [10], [5]]
    with pytest.raises(InvalidInputError, match="kinds"):
        list(store.history(kinds="add"))


def test_rounds(store: alma_store.Store) -> None:
    r0, r1 = store.rounds()
    assert (r0.round, r0.commits, r0.added, r0.annotators) == (0, 2, 5, ("ann", "bob"))
    assert (r1.round, r1.relabeled, r1.removed, r1.first_version, r1.last_version) == (
        1,
        1,
        1,
        3,
        4,
    )


def test_corrections_are_checked(store: alma_store.Store) -> None:
    with pytest.raises(NotLabeledError, match=r"\[1\] are not labeled") as info:
        store.relabel([1, 5], [0, 0])
    assert isinstance(info.value, IndexError)
    with pytest.raises(NotLabeledError):
        store.remove_labels([0])  # removed already
    with pytest.raises(
        InvalidInputError, match="values has 1 labels but dataset_indices has 2 indices"
    ):
        store.relabel([5, 9], [1])
    with pytest.raises(StaleIndexError):
        store.relabel([5], [1], expected_version=2)
    with pytest.raises(alma_store.AlreadyLabeledError):
        store.add_labels([5], [1], relative_to="dataset")  # never silently overwritten
    assert store.version == 4
    assert store.labels.tolist() == [7, 3, 4, 4]


def test_time_travel(store: alma_store.Store) -> None:
    v2 = store.at(version=2)
    assert v2.version == 2 and v2.num_labeled == 5
    assert v2.labels.tolist() == [1, 2, 3, 4, 4]
    assert v2.unlabeled.to_dataset_index([0, 1]).tolist() == [1, 2]
    assert v2.to_unlabeled_position([12]).tolist() == [7]
    assert np.array_equal(np.asarray(v2.labeled), np.array([[0.0], [5.0], [9.0], [10.0], [11.0]]))
    store.checkpoint()  # a past before the checkpoint is computed from the journal
    assert store.at(round=0).labels.tolist() == [1, 2, 3, 4, 4]
    assert store.at(round=1).labels.tolist() == [7, 3, 4, 4]
    assert store.at(version=0).num_labeled == 0
    with pytest.raises(InvalidInputError, match="exactly one"):
        store.at()
    with pytest.raises(InvalidInputError, match="no commit of the store has round 7"):
        store.at(round=7)
    with pytest.raises(InvalidInputError, match=r"version must lie in \[0, 4\]"):
        store.at(version=5)


def test_reopened_store_keeps_history(store: alma_store.Store) -> None:
    path = store.path
    store.close()
    with alma_store.open(path, mode="r") as s:
        assert [e.kind for e in s.history()] == ["add", "add", "relabel", "remove"]
        assert s.verify()["num_labeled"] == 4
        assert s.at(version=3).labels.tolist() == [1, 7, 3, 4, 4]
