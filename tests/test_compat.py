"""ALMa's ActiveLearningManager API, its fixed bugs, and the seed loop on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alma_store import (
    ActiveLearningManager,
    InvalidIndexError,
    InvalidInputError,
    SourceChangedError,
)


def test_seed_api_surface() -> None:
    X = np.arange(20).reshape(10, 2)
    m = ActiveLearningManager(X, sources=[f"doc{i}" for i in range(10)])
    assert m.labeled_mask.dtype == bool and not m.labeled_mask.any()
    assert m.labels.size == 0 and m.get_original_index_from_unlabeled_index(3) == [3]
    m.add_labels((2, 7))
    m.add_labels([(0, 8), (1, 9)])  # positions 0, 1 of the Unlabeled part: items 0 and 1
    assert m.labeled_mask.tolist() == [True, True, True] + [False] * 7
    assert m.unlabeled_mask.tolist() == [False] * 3 + [True] * 7
    assert m.labels.tolist() == [8, 9, 7]
    assert np.array_equal(m.labeled, X[:3]) and np.array_equal(m.unlabeled, X[3:])
    assert np.array_equal(m.unlabeld, m.unlabeled)
    assert m.remaining_sources.tolist() == [f"doc{i}" for i in range(3, 10)]
    assert m.get_original_index_from_unlabeled_index(np.int64(0)) == [3]
    assert m.get_original_index_from_unlabeled_index(0) == [3]
    assert m.get_original_index_from_unlabeled_index([0, 6]) == [3, 9]
    assert m.get_original_index_from_unlabeled_index(np.array([1, 2])) == [4, 5]
    m.add_labels([(9, 1)], offset_to_unlabeled=False)
    assert m.labeled_mask[9]
    m.close()


def test_fixed_bugs() -> None:
    m = ActiveLearningManager(np.zeros((6, 1)))
    m.add_labels([(0, "spam"), (1, "ham")])  # string labels: ALMa stored them as floats
    assert m.labels.tolist() == ["spam", "ham"]
    for bad, error in [
        ([(-1, "x")], InvalidIndexError),  # ALMa wrapped around to the last item
        ([(4, "x")], InvalidIndexError),  # out of range: only 4 unlabeled
        ([(1.0, "x")], InvalidInputError),
        ([(0, "x"), (0, "y")], InvalidIndexError),  # ALMa kept the second silently
        ([(0, 5)], InvalidInputError),  # a number where the labels are strings
        ({0: "x"}, InvalidInputError),
    ]:
        with pytest.raises(error):
            m.add_labels(bad)
        assert m.labels.tolist() == ["spam", "ham"], bad  # nothing half-applied
    m.add_labels([(np.int64(0), "eggs")])
    assert m.labeled_mask.sum() == 3
    with pytest.raises(InvalidIndexError):
        m.get_original_index_from_unlabeled_index([-1])


def test_typed_and_persistent(tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(30, 4))
    with ActiveLearningManager(X, labels_dtype="int8", path=tmp_path / "m") as m:
        m.add_labels([(5, 1), (6, 0)])
        with pytest.raises(InvalidInputError, match="int8"):
            m.add_labels([(0, 300)])
    with ActiveLearningManager(X, path=tmp_path / "m") as m:  # resumes
        assert m.labels.tolist() == [1, 0] and m.labeled_mask[[5, 6]].all()
    with pytest.raises(
        InvalidInputError, match=r"have shape \(29, 4\).*store.s features have shape \(30, 4\)"
    ):
        ActiveLearningManager(X[:29], path=tmp_path / "m")


def test_seed_loop_on_digits_with_a_real_classifier() -> None:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    rng = np.random.default_rng(0)
    test = rng.choice(len(X), 400, replace=False)
    pool = np.setdiff1d(np.arange(len(X)), test)
    m = ActiveLearningManager(X[pool])
    m.add_labels([(int(i), int(y[pool][i])) for i in rng.choice(len(pool), 20, replace=False)])
    accuracies = []
    for _ in range(8):
        model = LogisticRegression(max_iter=300).fit(m.labeled, m.labels)
        accuracies.append(model.score(X[test], y[test]))
        proba = np.sort(model.predict_proba(m.unlabeled), axis=1)
        margin = proba[:, -1] - proba[:, -2]
        picks = np.argsort(margin)[:20]  # positions in the Unlabeled part
        originals = m.get_original_index_from_unlabeled_index(picks)
        m.add_labels([(int(p), int(y[pool][o])) for p, o in zip(picks, originals, strict=True)])
        assert np.array_equal(m.labels, y[pool][m.labeled_mask])  # the bookkeeping holds
    assert len(m.labels) == 180
    assert accuracies[-1] > accuracies[0] and accuracies[-1] > 0.85
    m.close()


def test_resume_checks_the_features(tmp_path: Path) -> None:
    X = np.arange(40.0).reshape(20, 2)
    with ActiveLearningManager(X, labels_dtype="int64", path=tmp_path / "s") as m:
        m.add_labels([(0, 1)])
    with ActiveLearningManager(X.copy(), path=tmp_path / "s") as m:  # same data: resumes
        assert m.labels.tolist() == [1]
    for other, match in (
        (np.zeros((7, 2)), r"shape \(7, 2\)"),
        (X.astype(np.float32), "dtype float32"),
        (X + 1, "differ in content"),
    ):
        with pytest.raises(SourceChangedError, match=match):
            ActiveLearningManager(other, path=tmp_path / "s")


@pytest.mark.parametrize("dtype", [object, np.object_, "O", np.dtype(object)])
def test_object_labels_dtype_keeps_strings(dtype: object) -> None:
    with ActiveLearningManager(np.zeros((4, 1)), labels_dtype=dtype) as m:
        m.add_labels([(0, "cat"), (1, "dog")])
        assert m.labels.tolist() == ["cat", "dog"]
        with pytest.raises(InvalidInputError, match="must be strings"):
            m.add_labels([(0, 3)])
