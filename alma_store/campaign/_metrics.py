"""Metrics records: the model's quality after a round, as the campaign log keeps them (pure)."""

from __future__ import annotations

import math
import numbers
from typing import Any

from ..core import check_round, check_text
from ..errors import InvalidInputError

__all__ = ["METRIC_FIELDS", "parse_metrics", "shown"]

METRIC_FIELDS = ("round", "version", "num_labeled", "time")
"""Fields every metrics record has besides its metrics; no metric may take one of these names."""


def parse_metrics(round: object, metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics of a ``log_metrics`` call as JSON values, checked.

    Raises
    ------
    InvalidInputError
        A bad ``round``, no metric, a value that is not a finite number or a
        str, or a metric named like a recorded field.
    """
    round = check_round(round)
    if not metrics:
        raise InvalidInputError(
            "give at least one metric, e.g. log_metrics(round=3, accuracy=0.91)"
        )
    for name, value in metrics.items():
        check_text(name, "a metric name")
        if isinstance(value, str):
            check_text(value, f"metric {name!r}")
        if name in METRIC_FIELDS:
            raise InvalidInputError(f"{name!r} is recorded with every metric; choose another name")
        ok = isinstance(value, str) or (
            isinstance(value, numbers.Real) and math.isfinite(float(value))
        )
        if not ok:
            raise InvalidInputError(
                f"metric {name!r} must be a finite number or a str, got {value!r}"
            )
    return {
        k: (
            v
            if isinstance(v, str | bool)
            else int(v)
            if isinstance(v, numbers.Integral)
            else float(v)
        )
        for k, v in metrics.items()
    }


def shown(record: dict[str, Any]) -> dict[str, Any]:
    """A metrics record as :meth:`Store.metrics` shows it: the fields, then the metrics."""
    out: dict[str, Any] = {k: record[k] for k in METRIC_FIELDS}
    out.update(record["values"])
    return out
