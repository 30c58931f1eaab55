"""Annotator skill and consensus models on simulated annotators of known skill.

scikit-learn's digits are the truth; five annotators flip 2 %, 5 %, 10 %, 20 % and 30 %
of their labels to another digit, three of them on each item. Dawid-Skene (crowd-kit)
must rank them as injected and agree with the truth at least as often as the majority
vote; its proposals for the disputed items go in through resolve, under the reviewer.
"""

from __future__ import annotations

import numpy as np
import pytest

import alma_store
from alma_store.errors import InvalidInputError

pytest.importorskip("crowdkit")
from sklearn.datasets import load_digits

FLIPS = {"ann": 0.02, "bob": 0.05, "cat": 0.10, "dan": 0.20, "eve": 0.30}
CLASSES = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> tuple[alma_store.Store, np.ndarray]:
    truth = load_digits().target
    rng = np.random.default_rng(7)
    store = alma_store.create(
        tmp_path_factory.mktemp("q") / "s",
        n_items=len(truth),
        classes=CLASSES,
        annotations_per_item=3,
    )
    who = {a: [] for a in FLIPS}
    for i in range(len(truth)):
        for a in rng.choice(list(FLIPS), size=3, replace=False):
            who[a].append(i)
    for a, items in who.items():
        labels = truth[items].copy()
        flip = rng.random(len(items)) < FLIPS[a]
        labels[flip] = (labels[flip] + rng.integers(1, 10, flip.sum())) % 10
        store.add_labels(items, [CLASSES[v] for v in labels], relative_to="dataset", annotator=a)
    return store, truth


@pytest.mark.parametrize("method", ["dawid-skene", "one-coin"])
def test_the_models_rank_annotators_as_injected(campaign, method: str) -> None:
    store, _ = campaign
    quality = store.annotator_quality(method)
    assert set(quality) == set(FLIPS)
    by_skill = sorted(quality, key=lambda a: -quality[a]["accuracy"])
    assert by_skill == sorted(FLIPS, key=FLIPS.get)
    for a, q in quality.items():
        assert q["accuracy"] == pytest.approx(1 - FLIPS[a], abs=0.04)
        assert 0 < q["agreement"] <= 1 and q["items"] > 900
    majority = store.annotator_quality("majority")
    assert majority["ann"]["accuracy"] == majority["ann"]["agreement"]


@pytest.mark.parametrize("method", ["dawid-skene", "one-coin"])
def test_the_models_are_at_least_as_accurate_as_the_majority(campaign, method: str) -> None:
    store, truth = campaign
    model = store.consensus(method, which="all")
    vote = store.consensus("majority", which="all")
    assert len(model.dataset_indices) == len(truth) == len(vote.dataset_indices)

    def accuracy(c) -> float:
        return float(np.mean(c.labels == np.array(CLASSES)[truth[c.dataset_indices]]))

    assert accuracy(model) >= accuracy(vote) > 0.9
    assert ((model.confidence > 0) & (model.confidence <= 1)).all()


def test_proposals_for_disputed_items_are_committed_by_a_reviewer(campaign) -> None:
    store, truth = campaign
    disputed = store.disputed()
    assert len(disputed) > 0
    proposal = store.consensus("one-coin")
    assert proposal.dataset_indices.tolist() == disputed.tolist()
    again = store.at(version=store.version).consensus("one-coin")
    assert again.labels.tolist() == proposal.labels.tolist()
    store.resolve(proposal.dataset_indices, proposal.labels, annotator="rev (dawid-skene)", round=9)
    assert len(store.disputed()) == 0
    last = list(store.history(round=9))
    assert len(last) == 1 and last[0].annotator == "rev (dawid-skene)"
    right = proposal.labels == np.array(CLASSES)[truth[proposal.dataset_indices]]
    first = [store.annotations([i])[0][0].label for i in proposal.dataset_indices.tolist()]
    by_first = np.array(first) == np.array(CLASSES)[truth[proposal.dataset_indices]]
    assert right.sum() >= by_first.sum()  # better than taking any one annotator's word
    with pytest.raises(InvalidInputError, match="method"):
        store.consensus("vote")
    with pytest.raises(InvalidInputError, match="which"):
        store.consensus(which="some")
