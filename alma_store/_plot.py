"""``Store.plot_progress``: labeling progress as a PNG (needs the ``plot`` extra)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ._labels import LabelSchema
from .errors import InvalidInputError
from .journal import LabelEvent


def plot_progress(events: Iterable[LabelEvent], schema: LabelSchema, path: Path) -> Path:
    """Labels over time per annotator, and the label distribution per round, to ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise InvalidInputError(
            "plotting needs matplotlib: pip install 'alma_store[plot]'"
        ) from None
    if path.suffix.lower() != ".png":
        raise InvalidInputError(f"the plot is written as PNG; {path} must end in .png")
    times: dict[str | None, list[float]] = defaultdict(list)
    totals: dict[str | None, list[int]] = defaultdict(list)
    per_round: dict[int | None, Counter[str]] = defaultdict(Counter)
    categorical = not schema.shape and schema.dtype.kind in "biuTU"
    for event in events:
        step = {"add": 1, "relabel": 0, "remove": -1}[event.kind] * len(event.dataset_indices)
        who = event.annotator
        times[who].append(event.time)
        totals[who].append((totals[who][-1] if totals[who] else 0) + step)
        if categorical and event.kind != "remove":
            values = event.values
            names = schema.class_names(values) if schema.classes is not None else values
            per_round[event.round].update(str(v) for v in np.asarray(names).tolist())
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for who, ts in times.items():
        when = [datetime.fromtimestamp(t, tz=UTC) for t in [ts[0], *ts]]
        left.step(
            when,
            np.r_[0, totals[who]],
            where="post",
            marker="o",
            markersize=3,
            label=str(who or "(none)"),
        )
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    left.xaxis.set_major_locator(locator)
    left.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    left.set(xlabel="time (UTC)", ylabel="labels (net)", title="Labels per annotator")
    if times:
        left.legend()
    if per_round:
        rounds = list(per_round)
        classes = sorted({c for counter in per_round.values() for c in counter})
        bottom = np.zeros(len(rounds))
        for c in classes:
            heights = np.array([per_round[r][c] for r in rounds], dtype=float)
            right.bar([str(r) for r in rounds], heights, bottom=bottom, label=c)
            bottom += heights
        right.legend(title="label", fontsize="small")
    else:
        right.text(0.5, 0.5, "no categorical labels", ha="center", va="center")
    right.set(xlabel="round", ylabel="labels given", title="Labels per round")
    for axis in (left.yaxis, right.yaxis):  # counts of labels: whole numbers
        axis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
