"""Several annotations per item: the majority rule, resolve, agreement figures."""

from __future__ import annotations

import itertools
import json
import warnings
from collections import Counter
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

import alma_store
from alma_store.campaign._agreement import (
    cohen_kappa,
    disagreement,
    fleiss_kappa,
    gwet_ac,
    quadratic_weights,
)

from .conftest import start_together

CLASSES = ["cat", "dog", "fox"]


def _majority(values: list[str], k: int) -> str | None:
    if not values:
        return None
    top, count = Counter(values).most_common(1)[0]
    return top if len(values) == k and 2 * count > k else None


steps = st.lists(
    st.tuples(st.integers(0, 7), st.sampled_from("abcd"), st.sampled_from(CLASSES)), max_size=30
)


@settings(max_examples=40)
@given(st.integers(2, 3), steps)
def test_annotations_follow_the_model(
    tmp_path_factory: pytest.TempPathFactory, k: int, plan: list
) -> None:
    path = tmp_path_factory.mktemp("a") / "s"
    model: dict[int, dict[str, str]] = {}
    resolved: dict[int, str] = {}
    with alma_store.create(
        path, n_items=8, classes=CLASSES, annotations_per_item=k, chunk_rows=4
    ) as store:
        for item, who, value in plan:
            mine = model.setdefault(item, {})
            decided = resolved.get(item) or _majority(list(mine.values()), k)
            if decided is not None:
                with pytest.raises(alma_store.AlreadyLabeledError):
                    store.add_labels([item], [value], relative_to="dataset", annotator=who)
            elif who in mine or len(mine) == k:
                with pytest.raises(alma_store.InvalidInputError):
                    store.add_labels([item], [value], relative_to="dataset", annotator=who)
            else:
                store.add_labels([item], [value], relative_to="dataset", annotator=who)
                mine[who] = value
            disputed = sorted(
                i
                for i, anns in model.items()
                if len(anns) == k
                and i not in resolved
                and _majority(list(anns.values()), k) is None
            )
            assert store.disputed().tolist() == disputed
            if disputed and item == disputed[0]:
                store.resolve([item], ["fox"], annotator="rev")
                resolved[item] = "fox"
        expected = {
            i: resolved.get(i) or _majority(list(anns.values()), k) for i, anns in model.items()
        }
        expected = {i: v for i, v in expected.items() if v is not None}
        assert store.labeled.to_dataset_index(np.arange(store.num_labeled)).tolist() == sorted(
            expected
        )
        labels = store.class_names(store.labels).tolist()
        assert labels == [expected[i] for i in sorted(expected)]
        got = store.annotations(list(range(8)))
        for i in range(8):
            assert {a.annotator: CLASSES[a.value] for a in got[i]} == model.get(i, {})
        store.verify()
    with alma_store.open(path, mode="r") as again:  # replayed from the journal
        assert again.disputed().tolist() == store_disputed(model, resolved, k)


def store_disputed(model: dict[int, dict[str, str]], resolved: dict[int, str], k: int) -> list[int]:
    return sorted(
        i
        for i, anns in model.items()
        if len(anns) == k and i not in resolved and _majority(list(anns.values()), k) is None
    )


def test_removing_a_label_starts_the_item_over(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", n_items=4, annotations_per_item=2) as store:
        store.add_labels([0], [1], relative_to="dataset", annotator="a")
        store.add_labels([0], [1], relative_to="dataset", annotator="b")
        assert store.num_labeled == 1
        store.relabel([0], [2], annotator="rev")
        assert store.labels.tolist() == [2] and len(store.annotations([0])[0]) == 2
        store.remove_labels([0])
        assert store.annotations([0]) == [[]]
        store.add_labels([0], [3], relative_to="dataset", annotator="a")  # a may annotate again
        assert store.num_labeled == 0


def test_bad_annotations_write_nothing(tmp_path: Path) -> None:
    with alma_store.create(
        tmp_path / "s", n_items=6, classes=CLASSES, annotations_per_item=2
    ) as store:
        with pytest.raises(alma_store.InvalidInputError, match="annotator"):
            store.add_labels([0], ["cat"], relative_to="dataset")
        store.add_labels([0, 1], ["cat", "dog"], relative_to="dataset", annotator="a")
        with pytest.raises(alma_store.InvalidInputError, match="twice"):
            store.add_labels([2, 0], ["cat", "cat"], relative_to="dataset", annotator="a")
        with pytest.raises(alma_store.InvalidInputError, match="need no resolve"):
            store.resolve([0], ["cat"], annotator="rev")  # it needs a second annotation
        with pytest.raises(alma_store.InvalidInputError, match=r"unknown|class"):
            store.add_labels([3], ["cow"], relative_to="dataset", annotator="b")
        with pytest.raises(alma_store.InvalidInputError, match="reviewer"):
            store.resolve([0], ["cat"], annotator="")
        assert store.version == 1
        store.add_labels([0, 1], ["dog", "dog"], relative_to="dataset", annotator="b")
        assert store.disputed().tolist() == [0] and store.labeled.to_dataset_index(
            np.arange(store.num_labeled)
        ).tolist() == [1]
        with pytest.raises(alma_store.InvalidInputError, match="disputed"):
            store.add_labels([0], ["cat"], relative_to="dataset", annotator="c")
        with pytest.raises(alma_store.InvalidInputError, match="need no resolve"):
            store.resolve([0, 1], ["cat", "cat"], annotator="rev")  # 1 has its majority
        store.resolve([0], ["cat"], annotator="rev")
        assert store.labels.tolist() == [0, 1]
        events = list(store.history())
        assert events[-1].resolved and events[-1].annotator == "rev"
    with alma_store.create(tmp_path / "one", n_items=3) as single:
        for call in (single.disputed, single.agreement, lambda: single.annotations([0])):
            with pytest.raises(alma_store.InvalidInputError, match="one label per item"):
                call()
        with pytest.raises(alma_store.InvalidInputError):
            single.resolve([0], [1], annotator="rev")
    with pytest.raises(alma_store.InvalidInputError, match="scalar"):
        alma_store.create(tmp_path / "v", n_items=3, label_shape=(2,), annotations_per_item=2)


# Fleiss (1971) as retold on Wikipedia's "Fleiss' kappa": 10 items, 14 raters, 5 categories.
FLEISS_TABLE = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def test_fleiss_against_the_textbook_and_statsmodels() -> None:
    kappa, per = fleiss_kappa(FLEISS_TABLE)
    assert kappa == pytest.approx(0.20993, abs=5e-5)
    assert kappa == pytest.approx(sm_fleiss(FLEISS_TABLE, method="fleiss"))
    for j in range(5):  # a category's kappa is the kappa of "this category or not"
        collapsed = np.c_[FLEISS_TABLE[:, j], 14 - FLEISS_TABLE[:, j]]
        assert per[j] == pytest.approx(sm_fleiss(collapsed, method="fleiss"))
    rng = np.random.default_rng(0)
    for _ in range(20):
        table = rng.multinomial(5, rng.dirichlet(np.ones(4)), size=30)
        assert fleiss_kappa(table)[0] == pytest.approx(sm_fleiss(table, method="fleiss"))


def test_store_gives_fleiss_for_many_annotators(tmp_path: Path) -> None:
    classes = ["c1", "c2", "c3", "c4", "c5"]
    with alma_store.create(
        tmp_path / "s", n_items=10, classes=classes, annotations_per_item=14
    ) as store:
        columns: list[list[int]] = [[] for _ in range(14)]
        for counts in FLEISS_TABLE:
            values = np.repeat(np.arange(5), counts)
            for rater, v in enumerate(values):
                columns[rater].append(int(v))
        for rater, values in enumerate(columns):
            store.add_labels(list(range(10)), values, relative_to="dataset", annotator=f"r{rater}")
        got = store.agreement()
    assert got["method"] == "fleiss" and got["items"] == 10
    assert got["kappa"] == pytest.approx(0.20993, abs=5e-5)
    assert set(got["per_class"]) == set(classes)
    assert got["per_round"][None]["kappa"] == pytest.approx(got["kappa"])


def test_cohen_against_scikit_learn() -> None:
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(1)
    for _ in range(50):
        n, k = int(rng.integers(1, 40)), int(rng.integers(1, 5))
        a = rng.integers(0, k, n).astype(str).tolist()
        b = [x if rng.random() < 0.6 else str(rng.integers(0, k)) for x in a]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns where the kappa is undefined
            want = cohen_kappa_score(a, b)
        assert cohen_kappa(a, b) == pytest.approx(want, nan_ok=True)
    assert np.isnan(cohen_kappa(["x", "x"], ["x", "x"]))
    with pytest.raises(alma_store.InvalidInputError):
        cohen_kappa(["x"], [])


def test_store_gives_cohen_for_two(tmp_path: Path) -> None:
    # Wikipedia's "Cohen's kappa" example: 50 items, 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    with alma_store.create(
        tmp_path / "s", n_items=50, classes=["no", "yes"], annotations_per_item=2
    ) as store:
        store.add_labels(list(range(25)), a[:25], relative_to="dataset", annotator="a", round=0)
        store.add_labels(list(range(25)), b[:25], relative_to="dataset", annotator="b", round=0)
        store.add_labels(list(range(25, 50)), a[25:], relative_to="dataset", annotator="a", round=1)
        store.add_labels(list(range(25, 50)), b[25:], relative_to="dataset", annotator="b", round=1)
        got = store.agreement()
        assert store.num_labeled == 35 and len(store.disputed()) == 15
    assert got["method"] == "cohen" and got["items"] == 50
    assert got["kappa"] == pytest.approx(0.4)
    # Two categories: "yes or not" is the whole question, so both per-class kappas are the kappa.
    assert got["per_class"] == pytest.approx({"no": 0.4, "yes": 0.4})
    assert set(got["per_round"]) == {0, 1}


def test_krippendorff_alpha_textbook(tmp_path: Path) -> None:
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units,
    # nominal alpha = 0.743 (values 1..5, None = not coded).
    n = None
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    with alma_store.create(tmp_path / "s", n_items=12, annotations_per_item=4) as store:
        for coder, row in enumerate(data):
            items = [u for u, v in enumerate(row) if v is not None]
            store.add_labels(
                items, [row[u] for u in items], relative_to="dataset", annotator=f"c{coder}"
            )
        got = store.agreement()
    assert got["alpha"] == pytest.approx(0.743, abs=5e-4)
    matrix = np.array([[np.nan if v is None else v for v in row] for row in data], float)
    assert got["alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    )


ANNOTATOR = r"""
import json, sys
import numpy as np
import alma_store

path, who, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(seed)
done, refused = [], []
with alma_store.open(path) as store:
    print("ready", flush=True)
    sys.stdin.readline()
    for item in rng.permutation(30).tolist():
        try:
            store.add_labels([item], [item % 2], relative_to="dataset", annotator=who)
            done.append(item)
        except (alma_store.InvalidInputError, alma_store.AlreadyLabeledError):
            refused.append(item)
print(json.dumps({"done": done, "refused": refused}))
"""


@pytest.mark.slow
def test_concurrent_annotators_in_real_processes(tmp_path: Path) -> None:
    """Four processes, two of them as the same annotator: no annotation doubled or lost."""
    alma_store.create(tmp_path / "s", n_items=30, annotations_per_item=3).close()
    names = ["a", "b", "c", "c"]
    procs = start_together(
        ANNOTATOR, [[str(tmp_path / "s"), who, str(k)] for k, who in enumerate(names)]
    )
    out = [json.loads(p.communicate(timeout=300)[0].splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(out[0]["done"]) == sorted(out[1]["done"]) == list(range(30))
    assert sorted(out[2]["done"] + out[3]["done"]) == list(range(30))  # each item once as "c"
    with alma_store.open(tmp_path / "s", mode="r") as store:
        assert store.num_labeled == 30 and store.labels.tolist() == [i % 2 for i in range(30)]
        for anns in store.annotations(list(range(30))):
            assert sorted(a.annotator for a in anns) == ["a", "b", "c"]
        assert store.verify()["num_labeled"] == 30


def test_annotations_show_class_names_and_iso_times(tmp_path: Path) -> None:
    import alma_store

    with alma_store.create(
        tmp_path / "s", n_items=5, classes=["cat", "dog"], annotations_per_item=2
    ) as store:
        store.add_labels([1], ["dog"], relative_to="dataset", annotator="a")
        ((ann,),) = store.annotations([1])
    assert (ann.value, ann.label) == (1, "dog")  # the code stays the value
    assert "label='dog'" in repr(ann) and "time=20" in repr(ann) and "Z," in repr(ann)


def _items_of(table: np.ndarray) -> np.ndarray:
    """Two raters' contingency table as an (items, categories) table of rating counts."""
    q = len(table)
    rows = []
    for a, b in itertools.product(range(q), repeat=2):
        row = np.zeros(q)
        row[a] += 1
        row[b] += 1
        rows += [row] * int(table[a][b])
    return np.array(rows)


def test_gwet_against_the_published_figures_and_the_kappa_paradox() -> None:
    # irrCAC's cont3x3abstractors (Gwet 2014): AC1 0.8493305, Cohen's kappa 0.7964094
    table = np.array([[13, 0, 0], [0, 20, 7], [0, 4, 56]])
    assert gwet_ac(_items_of(table)) == pytest.approx(0.8493305, abs=5e-8)
    first = [a for a in range(3) for b in range(3) for _ in range(table[a][b])]
    second = [b for a in range(3) for b in range(3) for _ in range(table[a][b])]
    assert cohen_kappa(first, second) == pytest.approx(0.7964094, abs=5e-8)
    # one class dominates: 118 of 125 items agree, and kappa falls below 0; AC1 does not
    skewed = np.array([[118, 5], [2, 0]])
    x = [a for a in range(2) for b in range(2) for _ in range(skewed[a][b])]
    y = [b for a in range(2) for b in range(2) for _ in range(skewed[a][b])]
    assert cohen_kappa(x, y) < 0
    assert gwet_ac(_items_of(skewed)) > 0.9


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_gwet_ac2_and_ac1_against_their_two_rater_forms_and_pair_counting(data) -> None:
    q = data.draw(st.integers(2, 5))
    table = np.array(
        data.draw(
            st.lists(st.lists(st.integers(0, 6), min_size=q, max_size=q), min_size=q, max_size=q)
        )
    )
    if table.sum() == 0:
        table[0, 0] = 1
    p = table / table.sum()
    pi = (p.sum(axis=1) + p.sum(axis=0)) / 2
    for w in (np.eye(q), quadratic_weights(q)):
        p_a = (w * p).sum()
        p_e = w.sum() / (q * (q - 1)) * (pi * (1 - pi)).sum()
        want = (p_a - p_e) / (1 - p_e) if p_e < 1 else np.nan
        assert gwet_ac(_items_of(table), w) == pytest.approx(want, nan_ok=True)
    # several raters, some missing: p_a is the share of agreeing pairs, counted pair by pair
    ratings = data.draw(
        st.lists(st.lists(st.integers(0, q - 1), min_size=2, max_size=6), min_size=1, max_size=12)
    )
    counts = np.array([np.bincount(r, minlength=q) for r in ratings])
    agree = [np.mean([a == b for a, b in itertools.permutations(r, 2)]) for r in ratings]
    assert disagreement(counts) == pytest.approx(1 - np.array(agree))
    pi = np.mean([np.bincount(r, minlength=q) / len(r) for r in ratings], axis=0)
    p_e = (pi * (1 - pi)).sum() / (q - 1)
    want = (np.mean(agree) - p_e) / (1 - p_e) if p_e < 1 else np.nan
    assert gwet_ac(counts) == pytest.approx(want, nan_ok=True)


def test_store_gives_gwet_and_ranks_disagreements(tmp_path: Path) -> None:
    with alma_store.create(
        tmp_path / "s", n_items=40, classes=["ok", "bad", "worse"], annotations_per_item=3
    ) as store:
        for who in ("a", "b", "c"):
            labels = ["ok"] * 40
            if who == "b":
                labels[5] = "bad"
            if who == "c":
                labels[5], labels[9] = "worse", "bad"
            store.add_labels(range(40), labels, relative_to="dataset", annotator=who, round=1)
        got = store.agreement()
        idx, shares = store.disagreements(3)
    assert got["kappa"] < 0.5 and got["ac1"] > 0.9 and got["ac2"] > got["ac1"] - 0.1
    assert set(got["ac1_per_class"]) == {"ok", "bad", "worse"}
    assert got["per_round"][1]["ac1"] == pytest.approx(got["ac1"])
    assert idx.tolist()[:2] == [5, 9] and shares.tolist()[:2] == pytest.approx([1.0, 2 / 3])
    assert shares[2] == 0.0
