"""The campaign: claims, several annotations per item, agreement, metrics, the report.

:class:`Campaign` (:mod:`._campaign`) is one open store's campaign component,
built with the engine, the writer and the label schema it uses. Its pure
bookkeeping lives beside it: the claim book (:mod:`._claims`), the annotation
table and the majority rule (:mod:`._annotations`), metrics records
(:mod:`._metrics`), the agreement figures (:mod:`._agreement`) and the
consensus models (:mod:`._quality`). Files of
labels become one commit in :mod:`._imports`; :mod:`._plot` and :mod:`._report`
draw and summarise a campaign from the values they show.
"""

from __future__ import annotations

from ._annotations import Annotation, AnnotationTable
from ._campaign import Campaign
from ._claims import Claim
from ._imports import import_labels
from ._metrics import METRIC_FIELDS
from ._plot import plot_progress, progress_figure
from ._quality import Consensus
from ._replay import STRATEGY_FIELDS, Replay, strategy_of
from ._report import ReportData, report_data, write_report
from ._simulate import SIM_STRATEGIES, Simulation, simulate

__all__ = [
    "METRIC_FIELDS",
    "SIM_STRATEGIES",
    "STRATEGY_FIELDS",
    "Annotation",
    "AnnotationTable",
    "Campaign",
    "Claim",
    "Consensus",
    "Replay",
    "ReportData",
    "Simulation",
    "import_labels",
    "plot_progress",
    "progress_figure",
    "report_data",
    "simulate",
    "strategy_of",
    "write_report",
]
