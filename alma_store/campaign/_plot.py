"""``Store.plot_progress``: a campaign's progress as a PNG (needs the ``plot`` extra).

:func:`progress_figure` draws the figure from the values it shows (the history,
the metrics records, the label schema); :func:`plot_progress` saves it. Rounds
are drawn in numeric order, commits without a round last.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..core import LabelEvent, LabelSchema, round_order
from ..errors import InvalidInputError, MissingExtraError
from ._metrics import METRIC_FIELDS
from ._replay import STRATEGY_FIELDS

__all__ = ["plot_progress", "progress_figure"]


def _contributions(event: LabelEvent) -> list[tuple[str | None, float, int]]:
    """``(annotator, time, net labels)`` of one commit, per annotator (annotations count as work)."""
    n = len(event.dataset_indices)
    if event.annotations is not None:
        rows = event.annotations
        return [(who, t, 1) for who, t in zip(rows.annotators, rows.times, strict=True)]
    if event.row_annotators is not None and event.row_times is not None:
        return [(who, t, 1) for who, t in zip(event.row_annotators, event.row_times, strict=True)]
    step = {"add": 1, "relabel": 0, "remove": -1}[event.kind]
    return [(event.annotator, event.time, step * n)]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("plot", "plotting (matplotlib)") from None
    return plt


def progress_figure(
    events: Iterable[LabelEvent],
    schema: LabelSchema,
    metrics: list[dict[str, Any]],
) -> Any:
    """The campaign at a glance: a matplotlib ``Figure`` of three panels.

    The learning curve (each numeric metric of ``metrics`` against the number
    of labels when it was logged), labels over calendar dates per annotator
    (annotations, on a store with several per item), and the class balance of
    the labels given in each round (numeric order, no round last).
    """
    plt = _pyplot()
    import matplotlib.dates as mdates
    from matplotlib.ticker import MaxNLocator

    work: dict[str | None, list[tuple[float, int]]] = defaultdict(list)
    per_round: dict[int | None, Counter[str]] = defaultdict(Counter)
    categorical = not schema.shape and schema.dtype.kind in "biuTU"
    for event in events:
        for who, t, step in _contributions(event):
            work[who].append((t, step))
        if categorical and event.kind != "remove":
            values = event.values
            names = schema.class_names(values) if schema.classes is not None else values
            per_round[event.round].update(str(v) for v in np.asarray(names).tolist())
    fig, (curve, left, right) = plt.subplots(1, 3, figsize=(17, 4.8))
    _learning_curve(curve, metrics)
    for who, steps in sorted(work.items(), key=lambda kv: str(kv[0])):
        steps.sort()
        ts = [t for t, _ in steps]
        totals = np.cumsum([n for _, n in steps])
        when = [datetime.fromtimestamp(t, tz=UTC) for t in [ts[0], *ts]]
        left.step(
            when,
            np.r_[0, totals],
            where="post",
            marker="o",
            markersize=3,
            label=str(who or "(none)"),
        )
    stamps = [t for steps in work.values() for t, _ in steps]
    if stamps and max(stamps) - min(stamps) < 120:  # a burst: show it as minutes, not fractions
        pad = timedelta(seconds=60)
        left.set_xlim(
            datetime.fromtimestamp(min(stamps), tz=UTC) - pad,
            datetime.fromtimestamp(max(stamps), tz=UTC) + pad,
        )
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    left.xaxis.set_major_locator(locator)
    left.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    left.set(xlabel="date (UTC)", ylabel="labels (net)", title="Labels per annotator")
    if work:
        left.legend(fontsize="small")
    if per_round:
        rounds = sorted(per_round, key=round_order)
        classes = sorted({c for counter in per_round.values() for c in counter})
        bottom = np.zeros(len(rounds))
        for c in classes:
            heights = np.array([per_round[r][c] for r in rounds], dtype=float)
            right.bar([str(r) for r in rounds], heights, bottom=bottom, label=c)
            bottom += heights
        right.legend(title="class", fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        right.text(0.5, 0.5, "no categorical labels", ha="center", va="center")
    right.set(xlabel="round", ylabel="labels given", title="Class balance per round")
    for axis in (left.yaxis, right.yaxis, curve.xaxis):  # counts of labels: whole numbers
        axis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def plot_progress(
    events: Iterable[LabelEvent],
    schema: LabelSchema,
    path: Path,
    metrics: list[dict[str, Any]],
) -> Path:
    """Save :func:`progress_figure` as a PNG at ``path``."""
    if path.suffix.lower() != ".png":
        raise InvalidInputError(f"the plot is written as PNG; {path} must end in .png")
    plt = _pyplot()
    fig = progress_figure(events, schema, metrics)
    try:
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def _learning_curve(ax: Any, metrics: list[dict[str, Any]]) -> None:
    """Each numeric metric against the number of labels at the time it was logged, and
    each simulated strategy's (:meth:`Store.simulate`) dashed against its own label count.

    A strategy record's parameters (``k``, ``largest``, ...) are no measurements."""
    skip = {*METRIC_FIELDS, *STRATEGY_FIELDS, "simulation", "simulated_labels"}
    curves: dict[tuple[str, str | None], list[tuple[float, float]]] = defaultdict(list)
    for m in metrics:
        sim = m.get("simulation")
        x = m.get("simulated_labels", m["num_labeled"]) if sim is not None else m["num_labeled"]
        for k, v in m.items():
            if k not in skip and isinstance(v, int | float) and not isinstance(v, bool):
                curves[(k, None if sim is None else str(sim))].append((x, v))
    names = sorted(curves, key=lambda key: (key[0], key[1] or ""))
    for name, sim in names:
        points = sorted(curves[(name, sim)])
        style = {"marker": "o"} if sim is None else {"marker": ".", "linestyle": "--"}
        label = name if sim is None else f"{name} ({sim}, simulated)"
        ax.plot(*zip(*points, strict=True), label=label, **style)
    if names:
        ax.legend(fontsize="small")
    else:
        ax.text(
            0.5,
            0.5,
            "no metrics logged\n(store.log_metrics)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.set(xlabel="labels", ylabel="metric", title="Learning curve")
