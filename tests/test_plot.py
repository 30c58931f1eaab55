"""The campaign's pictures hold what they say: the learning curve, rounds in order."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import matplotlib.image
import numpy as np

import alma_store
from alma_store.campaign import progress_figure
from alma_store.cli import main


def _campaign(path: Path) -> alma_store.Store:
    """Three rounds labeled out of order of their tags, with metrics after each."""
    store = alma_store.create(path, n_items=50, classes=["cat", "dog"])
    for rnd, n, acc in ((10, 4, 0.5), (2, 6, 0.7), (None, 3, 0.8), (1, 2, 0.9)):
        store.add_labels(
            np.arange(n), ["cat", "dog"] * (n // 2) + ["cat"] * (n % 2), annotator="ann", round=rnd
        )
        store.log_metrics(round=rnd, accuracy=acc, f1=acc / 2)
    return store


def _pixels(png: Path | bytes, tmp_path: Path) -> np.ndarray:
    if isinstance(png, bytes):
        path = tmp_path / "decoded.png"
        path.write_bytes(png)
        png = path
    return matplotlib.image.imread(png)


def test_the_learning_curve_holds_every_metric_against_the_labels_then(tmp_path: Path) -> None:
    with _campaign(tmp_path / "s") as store:
        fig = progress_figure(store.history(), store.schema, store.metrics())
    curve = fig.axes[0]
    lines = {line.get_label(): line.get_xydata().tolist() for line in curve.get_lines()}
    assert lines == {
        "accuracy": [[4, 0.5], [10, 0.7], [13, 0.8], [15, 0.9]],
        "f1": [[4, 0.25], [10, 0.35], [13, 0.4], [15, 0.45]],
    }
    assert not [t for t in curve.texts if "no metrics" in t.get_text()]


def test_class_balance_rounds_are_numeric_with_no_round_last(tmp_path: Path) -> None:
    with _campaign(tmp_path / "s") as store:
        fig = progress_figure(store.history(), store.schema, store.metrics())
        rounds = [r.round for r in store.rounds()]
    bars = fig.axes[2]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["1", "2", "10", "None"]
    assert rounds == [10, 2, None, 1]  # rounds() keeps the order of first appearance


def test_plot_progress_plot_and_report_all_draw_the_curve(tmp_path: Path, capsys) -> None:
    store = _campaign(tmp_path / "s")
    try:
        store.plot_progress(tmp_path / "store.png")
        with_curve = progress_figure(store.history(), store.schema, store.metrics())
        with_curve.savefig(tmp_path / "with.png", dpi=100)
        progress_figure(store.history(), store.schema, []).savefig(
            tmp_path / "without.png", dpi=100
        )
    finally:
        store.close()
    drawn = _pixels(tmp_path / "store.png", tmp_path)
    assert np.array_equal(drawn, _pixels(tmp_path / "with.png", tmp_path))
    assert not np.array_equal(drawn, _pixels(tmp_path / "without.png", tmp_path))
    assert main(["plot", str(tmp_path / "s"), str(tmp_path / "cli.png")]) == 0
    assert np.array_equal(drawn, _pixels(tmp_path / "cli.png", tmp_path))
    assert main(["report", str(tmp_path / "s"), str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    embedded = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert embedded is not None
    assert np.array_equal(drawn, _pixels(base64.b64decode(embedded.group(1)), tmp_path))
    table = page[page.index("<h2>Rounds</h2>") : page.index("<h2>Model quality")]
    assert re.findall(r"<tr><td>(\w+)</td>", table) == ["1", "2", "10", "None"]
    capsys.readouterr()


def test_a_past_version_draws_the_metrics_logged_by_then(tmp_path: Path) -> None:
    with _campaign(tmp_path / "s") as store:
        past = store.at(round=2)
        assert [m["accuracy"] for m in past.metrics()] == [0.5, 0.7]  # at versions 1 and 2
        past.plot_progress(tmp_path / "past.png")
        fig = progress_figure(past.history(), past.schema, past.metrics())
        fig.savefig(tmp_path / "want.png", dpi=100)
    assert np.array_equal(
        _pixels(tmp_path / "past.png", tmp_path), _pixels(tmp_path / "want.png", tmp_path)
    )
