"""Simulating other strategies on a campaign's labels (history as the oracle)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store import InvalidInputError


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A digits campaign: a seed round of 30, then 4 rounds of 25 by margin, 800 held out."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    x, y = digits.data.astype(np.float32), digits.target
    root = tmp_path_factory.mktemp("sim")
    np.save(root / "x.npy", x[:997])
    store = alma_store.create(root / "s", str(root / "x.npy"), chunk_rows=128)
    seed = np.random.default_rng(0).choice(997, 30, replace=False)
    store.add_labels(seed, y[seed], relative_to="dataset", round=0)
    for r in range(1, 5):
        model = fit(np.asarray(store.labeled), store.labels)

        def margin(rows: np.ndarray, model: LogisticRegression = model) -> np.ndarray:
            p = np.sort(model.predict_proba(rows), axis=1)
            return p[:, -1] - p[:, -2]

        store.score(margin, f"m{r}")
        picks = store.top_k(f"m{r}", 25, largest=False).dataset_indices
        store.add_labels(picks, y[picks], relative_to="dataset", round=r)
    store.close()
    return root / "s", x[997:], y[997:]


def fit(rows: np.ndarray, labels: np.ndarray) -> object:
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence on tiny sets
        return LogisticRegression(max_iter=300).fit(rows, labels)


def test_simulations_of_a_campaign(
    campaign: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    import shutil

    source, x_test, y_test = campaign
    path = tmp_path / "s"
    shutil.copytree(source, path)  # the campaign stays as it was for the other tests

    def accuracy(model: object) -> float:
        return float((model.predict(x_test) == y_test).mean())  # type: ignore[attr-defined]

    with alma_store.open(path) as store:
        real = store.simulate("campaign", fit=fit, evaluate=accuracy)
        assert real.rounds == [0, 1, 2, 3, 4] and real.labels == [30, 55, 80, 105, 130]
        for r, picks in enumerate(real.picks):  # the rounds' own labels, in order
            added = np.concatenate([e.dataset_indices for e in store.history(round=r)])
            assert picks.tolist() == sorted(added.tolist())
        rand = store.simulate("random", fit=fit, evaluate=accuracy, seed=3)
        assert rand.labels == real.labels
        assert [p.tolist() for p in rand.picks] == [
            p.tolist() for p in store.simulate("random", fit=fit, evaluate=accuracy, seed=3).picks
        ]
        assert rand.picks[0].tolist() == real.picks[0].tolist()  # the same seed set
        together = np.concatenate(rand.picks)
        assert len(np.unique(together)) == 130 and store.labeled_mask[together].all()
        # Margin: round 1 takes the 25 pool items the seed model is least sure of.
        by_margin = store.simulate("margin", fit=fit, evaluate=accuracy)
        pool = np.flatnonzero(np.asarray(store.labeled_mask))
        rest = np.setdiff1d(pool, real.picks[0])
        model = fit(
            np.load(source.parent / "x.npy")[real.picks[0]], store.labeled.labels_at(real.picks[0])
        )
        p = np.sort(model.predict_proba(np.load(source.parent / "x.npy")[rest]), axis=1)  # type: ignore[attr-defined]
        want = rest[np.argsort(p[:, -1] - p[:, -2], kind="stable")[:25]]
        assert by_margin.picks[1].tolist() == sorted(want.tolist())
        assert by_margin.values[-1]["score"] == real.values[-1]["score"]  # same 130 labels

        # A callable strategy, and evaluate returning several values.
        def first(model: object, rows: np.ndarray, k: int) -> np.ndarray:
            return np.arange(k)

        two = store.simulate(first, fit=fit, evaluate=lambda m: {"accuracy": accuracy(m), "one": 1})
        assert two.strategy == "first" and two.values[0]["one"] == 1.0
        # Logged, the report draws them next to the real curve.
        store.log_metrics(round=4, accuracy=accuracy(fit(np.asarray(store.labeled), store.labels)))
        store.log_simulation(rand)
        sims = [m for m in store.metrics() if m.get("simulation") == "random"]
        assert [m["simulated_labels"] for m in sims] == rand.labels
        assert [m["score"] for m in sims] == [v["score"] for v in rand.values]
        store.plot_progress(tmp_path / "curve.png")
        assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
        with pytest.raises(InvalidInputError, match="strategy must be one of"):
            store.simulate("coreset", fit=fit, evaluate=accuracy)
        with pytest.raises(InvalidInputError, match="evaluate must return a number"):
            store.simulate("random", fit=fit, evaluate=lambda m: "good")
        with pytest.raises(InvalidInputError, match="at most 25 distinct positions"):
            store.simulate(lambda m, rows, k: np.zeros(k, np.int64), fit=fit, evaluate=accuracy)
        with pytest.raises(InvalidInputError, match="takes a Simulation"):
            store.log_simulation("random")  # type: ignore[arg-type]


def test_the_learning_curve_leaves_strategy_parameters_out(tmp_path: Path) -> None:
    """A strategy record's k and largest are no metrics; a simulation is drawn apart."""
    from alma_store.campaign import progress_figure
    from alma_store.core import LabelSchema

    records = [
        {"round": 1, "version": 1, "num_labeled": 10, "time": 0.0, "accuracy": 0.5},
        {
            "round": 1,
            "version": 1,
            "num_labeled": 10,
            "time": 0.0,
            "strategy": "top_k",
            "score_run": "m1",
            "k": 20,
            "largest": 1,
        },
        {
            "round": 1,
            "version": 1,
            "num_labeled": 10,
            "time": 0.0,
            "simulation": "random",
            "simulated_labels": 30,
            "accuracy": 0.4,
        },
    ]
    fig = progress_figure([], LabelSchema(np.dtype("int64"), (), None), records)
    lines = {line.get_label(): line.get_xydata().tolist() for line in fig.axes[0].get_lines()}
    assert lines == {"accuracy": [[10.0, 0.5]], "accuracy (random, simulated)": [[30.0, 0.4]]}


def test_cli_simulates(
    campaign: tuple[Path, np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json
    import shutil

    from alma_store.cli import main

    path, x_test, y_test = campaign
    shutil.copytree(path, tmp_path / "s")
    np.save(tmp_path / "x_test.npy", x_test)
    np.save(tmp_path / "y_test.npy", y_test)
    (tmp_path / "model.py").write_text(
        "import numpy as np\n"
        "from sklearn.tree import DecisionTreeClassifier\n"
        "def fit(rows, labels):\n"
        "    return DecisionTreeClassifier(random_state=0).fit(rows, labels)\n"
        "def evaluate(model):\n"
        "    x, y = np.load('x_test.npy'), np.load('y_test.npy')\n"
        "    return {'accuracy': float((model.predict(x) == y).mean())}\n"
    )
    monkeypatch.chdir(tmp_path)
    s = str(tmp_path / "s")
    args = [
        "replay",
        s,
        "--strategy",
        "random",
        "--fit",
        "model:fit",
        "--evaluate",
        "model:evaluate",
    ]
    assert main([*args, "--json", "--log"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["labels"] == [30, 55, 80, 105, 130] and len(out["values"]) == 5
    with alma_store.open(s, mode="r") as store:
        assert [m["accuracy"] for m in store.metrics() if m.get("simulation") == "random"] == [
            v["accuracy"] for v in out["values"]
        ]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("round 0: 30 labels  accuracy")
    assert main(["replay", s]) == 1
    assert "give --round" in capsys.readouterr().err
    assert main(["replay", s, "--strategy", "margin"]) == 1
    assert "needs --fit and --evaluate" in capsys.readouterr().err
