"""``Store.report``: a one-page HTML summary of a campaign (needs the ``plot`` extra).

The page stands alone: the plot is embedded as a PNG data URL, and there is
no script and no external resource.
"""

from __future__ import annotations

import base64
import html
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from ._fs import atomic_write
from ._records import METRIC_FIELDS
from .errors import InvalidInputError

Store = Any  # alma_store.Store (not imported: the store imports this module)

__all__ = ["write_report"]

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


def _agreement_section(store: Store) -> str:
    if store.annotations_per_item == 1:
        return "<p>One label per item: no agreement to measure.</p>"
    try:
        got: dict[str, Any] = store.agreement()
    except InvalidInputError as exc:
        return f"<p>{html.escape(str(exc))}</p>"
    name = "Cohen's kappa" if got["method"] == "cohen" else "Fleiss' kappa"
    parts = [
        _table(
            ["figure", "value"],
            [
                [name, got["kappa"]],
                ["Krippendorff's alpha (nominal)", got["alpha"]],
                ["items compared", got["items"]],
                ["annotators", ", ".join(got["annotators"])],
                ["disputed items waiting for resolve", len(store.disputed())],
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


def write_report(store: Store, path: Path) -> Path:
    """Write the summary of ``store`` to ``path`` (``.html``) and return it."""
    if path.suffix.lower() not in (".html", ".htm"):
        raise InvalidInputError(f"the report is HTML; {path} must end in .html")
    with tempfile.TemporaryDirectory() as tmp:
        png = store.plot_progress(Path(tmp) / "plot.png")
        image = base64.b64encode(png.read_bytes()).decode()
    counts = {} if store.label_shape else store.schema.counts(store.labels)
    per_class: list[list[object]] = [[name, n] for name, n in counts.items()]
    metrics = store.metrics()
    metric_names = sorted({k for m in metrics for k in m} - set(METRIC_FIELDS))
    rounds = [
        [r.round, r.commits, r.added, r.relabeled, r.removed, ", ".join(map(str, r.annotators))]
        for r in store.rounds()
    ]
    cards = [
        ("items", len(store)),
        ("labeled", store.num_labeled),
        ("unlabeled", store.num_unlabeled),
        ("version", store.version),
        ("live claims", len(store.claims())),
    ]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>alma_store report</title>
<style>{_STYLE}</style></head><body>
<h1>Labeling campaign</h1>
<p class="sub">{html.escape(str(store.path))} &middot; {
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
{_table(["round", "commits", "added", "relabeled", "removed", "annotators"], rounds)}
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
{_agreement_section(store)}
</body></html>
"""
    atomic_write(path, page.encode())
    return path
