"""Replaying a round: do the items it labeled follow from the strategy it recorded? (pure)

A round records its strategy with :meth:`alma_store.Store.log_metrics` before its
picks are labeled: ``strategy="top_k"``, ``score_run`` (the scoring the picks came
from), ``k``, ``largest`` (1 or 0, default 1) and, for a run of several values per
row, ``reduce`` (a named reduction: ``"margin"``, ``"entropy"``, ``"max"``). The replay takes the store as it
was at that record's version, asks ``top_k`` again, and compares with what the
round labeled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import IndexArray
from ..errors import InvalidInputError
from ..scoring import REDUCTIONS

__all__ = ["STRATEGIES", "STRATEGY_FIELDS", "Replay", "strategy_of"]

STRATEGIES = ("top_k",)

STRATEGY_FIELDS = ("strategy", "score_run", "k", "largest", "reduce")
"""The fields of a strategy record: its parameters, not measurements to plot."""


@dataclass(frozen=True)
class Replay:
    """What a round's replay found.

    Attributes
    ----------
    round
        The round.
    strategy
        The strategy record (``strategy``, ``score_run``, ``k``, ``version``, ...).
    expected
        The picks the strategy gives at the recorded version, best first.
    labeled
        The dataset indices the round labeled, in the order committed.
    missing, extra
        Picks the round did not label, and items it labeled that are no picks.
    """

    round: int
    strategy: dict[str, Any]
    expected: IndexArray
    labeled: IndexArray
    missing: IndexArray
    extra: IndexArray

    @property
    def matches(self) -> bool:
        """Whether the round labeled exactly the strategy's picks."""
        return not len(self.missing) and not len(self.extra)

    @classmethod
    def compare(
        cls, round: int, strategy: dict[str, Any], expected: IndexArray, labeled: IndexArray
    ) -> Replay:
        return cls(
            round,
            strategy,
            expected,
            labeled,
            np.setdiff1d(expected, labeled),
            np.setdiff1d(labeled, expected),
        )


def strategy_of(records: list[dict[str, Any]], round: int) -> dict[str, Any]:
    """The newest metrics record of ``round`` that names a strategy, checked."""
    found = [r for r in records if r["round"] == round and "strategy" in r]
    if not found:
        raise InvalidInputError(
            f"round {round} recorded no strategy: log it before labeling the picks, e.g. "
            "store.log_metrics(round=r, strategy='top_k', score_run='margin-r3', k=50)"
        )
    record = found[-1]
    if record["strategy"] not in STRATEGIES:
        raise InvalidInputError(
            f"round {round} recorded strategy {record['strategy']!r}; replay knows {STRATEGIES}"
        )
    reduce = record.get("reduce")
    if reduce is not None and reduce not in REDUCTIONS:
        raise InvalidInputError(
            f"round {round}'s strategy record names reduce {reduce!r}; replay knows "
            f"{sorted(REDUCTIONS)}"
        )
    k, run = record.get("k"), record.get("score_run")
    if not isinstance(k, int) or k < 1 or not isinstance(run, str):
        raise InvalidInputError(
            f"round {round}'s strategy record needs score_run (a str) and k (an int >= 1), "
            f"got {record}"
        )
    return record
