"""``Store.report``: a one-page HTML summary of a campaign (needs the ``plot`` extra).

:func:`report_data` gathers the few values the page shows (:class:`ReportData`)
from a store at one version; :func:`write_report` renders them. The page stands
alone: the plot is embedded as a PNG data URL, and there is no script and no
external resource.
"""

from __future__ import annotations

import base64
import html
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core import round_order
from ..engine import RoundSummary, Snapshot, history, rounds
from ..errors import InvalidInputError
from ..storage import atomic_write
from ._campaign import Campaign
from ._metrics import METRIC_FIELDS
from ._plot import plot_progress

__all__ = ["ReportData", "report_data", "write_report"]


@dataclass(frozen=True, slots=True)
class ReportData:
    """What the report shows: counts, the progress plot, rounds, metrics, agreement."""

    where: str
    n_items: int
    num_labeled: int
    version: int
    live_claims: int
    per_class: dict[str, int] | None
    """Labels per class (None for labels that are not scalars)."""
    rounds: list[RoundSummary]
    metrics: list[dict[str, Any]]
    agreement: dict[str, Any] | str | None
    """The agreement figures, or why there are none (None: one label per item)."""
    disputed: int
    png: bytes
    """The progress plot (:func:`~alma_store.campaign._plot.progress_figure`)."""


def report_data(campaign: Campaign, snap: Snapshot, where: str) -> ReportData:
    """The values of the report of the store at ``snap``'s version (``where``: its location)."""
    engine, schema = campaign.engine, campaign.schema
    metrics = campaign.metrics(last=snap.version)
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_progress(
            history(engine, last=snap.version), schema, Path(tmp) / "plot.png", metrics
        )
        image = png.read_bytes()
    per_class = None
    if not schema.shape:
        chunks = np.flatnonzero(snap.labeled_counts).tolist()
        labels = [snap.labeled_labels(j) for j in chunks]
        flat = np.concatenate(labels) if labels else np.empty(0, schema.dtype)
        per_class = schema.counts(flat)
    found: dict[str, Any] | str | None = None
    disputed = 0
    if campaign.per_item > 1:
        try:
            found = campaign.agreement(snap)
        except InvalidInputError as exc:
            found = str(exc)
        disputed = len(campaign.disputed(snap))
    return ReportData(
        where=where,
        n_items=snap.n_items,
        num_labeled=snap.num_labeled,
        version=snap.version,
        live_claims=len(campaign.live(snap)),
        per_class=per_class,
        rounds=sorted(rounds(engine, last=snap.version), key=lambda r: round_order(r.round)),
        metrics=metrics,
        agreement=found,
        disputed=disputed,
        png=image,
    )


_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1280px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.1em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.4em 0; }
td, th { padding: 0.25em 0.9em; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.cards { display: flex; gap: 1em; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1.1em; min-width: 9em; }
.card b { display: block; font-size: 1.5em; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _agreement_section(data: ReportData) -> str:
    got = data.agreement
    if got is None:
        return "<p>One label per item: no agreement to measure.</p>"
    if isinstance(got, str):
        return f"<p>{html.escape(got)}</p>"
    name = "Cohen's kappa" if got["method"] == "cohen" else "Fleiss' kappa"
    parts = [
        _table(
            ["figure", "value"],
            [
                [name, got["kappa"]],
                ["Krippendorff's alpha (nominal)", got["alpha"]],
                ["items compared", got["items"]],
                ["annotators", ", ".join(got["annotators"])],
                ["disputed items waiting for resolve", data.disputed],
            ],
        ),
        "<h3>Per class</h3>",
        _table(["class", "kappa"], [[c, k] for c, k in got["per_class"].items()]),
        "<h3>Per round</h3>",
        _table(
            ["round", "kappa", "items"],
            [[r, v["kappa"], v["items"]] for r, v in got["per_round"].items()],
        ),
    ]
    return "".join(parts)


def write_report(path: Path, data: ReportData) -> Path:
    """Write the summary ``data`` to ``path`` (``.html``) and return it."""
    if path.suffix.lower() not in (".html", ".htm"):
        raise InvalidInputError(f"the report is HTML; {path} must end in .html")
    image = base64.b64encode(data.png).decode()
    per_class: list[list[object]] = [[name, n] for name, n in (data.per_class or {}).items()]
    metrics = data.metrics
    metric_names = sorted({k for m in metrics for k in m} - set(METRIC_FIELDS))
    round_rows: list[list[object]] = [
        [r.round, r.commits, r.added, r.relabeled, r.removed, ", ".join(map(str, r.annotators))]
        for r in data.rounds
    ]
    cards = [
        ("items", data.n_items),
        ("labeled", data.num_labeled),
        ("unlabeled", data.n_items - data.num_labeled),
        ("version", data.version),
        ("live claims", data.live_claims),
    ]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>alma_store report</title>
<style>{_STYLE}</style></head><body>
<h1>Labeling campaign</h1>
<p class="sub">{html.escape(data.where)} &middot; {
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    }</p>
<div class="cards">{"".join(f'<div class="card">{k}<b>{_fmt(v)}</b></div>' for k, v in cards)}</div>
<h2>Progress</h2>
<img alt="learning curve, labels per annotator, class balance per round" src="data:image/png;base64,{
        image
    }">
<h2>Labels per class</h2>
{_table(["class", "labels"], per_class) if per_class else "<p>No scalar labels.</p>"}
<h2>Rounds</h2>
{_table(["round", "commits", "added", "relabeled", "removed", "annotators"], round_rows)}
<h2>Model quality per round</h2>
{
        _table(
            ["round", "labels", *metric_names],
            [
                [m["round"], m["num_labeled"], *(m.get(n, "") for n in metric_names)]
                for m in metrics
            ],
        )
        if metrics
        else "<p>No metrics logged yet (store.log_metrics).</p>"
    }
<h2>Agreement</h2>
{_agreement_section(data)}
</body></html>
"""
    atomic_write(path, page.encode())
    return path
