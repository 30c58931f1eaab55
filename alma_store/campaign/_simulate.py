"""What another strategy would have given: a campaign replayed with its labels as the oracle (pure).

The items the campaign labeled are the pool, and their labels the answers. The
simulation starts from the campaign's first round (its seed set) and gives every
later round the same budget the campaign spent in it, picked by the strategy
from the pool items not picked yet; after each round a model is fitted on the
labels so far and evaluated. ``"campaign"`` takes the rounds' own labels instead,
so the real order is measured by the same model and evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import IndexArray, distinct
from ..errors import InvalidInputError
from ..scoring import reduce_rows

__all__ = ["SIM_STRATEGIES", "Simulation", "simulate"]

SIM_STRATEGIES = ("campaign", "random", "margin", "entropy", "least-confident")
"""``"campaign"``: the rounds' own labels; ``"random"``: uniformly, from ``seed``; the others by
the model's ``predict_proba`` on the rest of the pool: smallest margin between the two likeliest
classes, largest entropy, smallest top probability."""

PickFn = Callable[[Any, np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class Simulation:
    """A simulated learning curve.

    Attributes
    ----------
    strategy
        The strategy simulated (a name, or the callable's name).
    rounds
        The campaign's rounds, in order.
    labels
        How many labels the model of each round was fitted on.
    values
        What ``evaluate`` returned after each round, as ``{name: number}``.
    picks
        The dataset indices each round added (the first round: the seed set).
    """

    strategy: str
    rounds: list[int]
    labels: list[int]
    values: list[dict[str, float]]
    picks: list[IndexArray]


def _uncertain(model: Any, rows: np.ndarray, k: int, how: str) -> np.ndarray:
    proba = np.asarray(model.predict_proba(rows), np.float64)
    if proba.ndim != 2 or len(proba) != len(rows):
        raise InvalidInputError(
            f"the model's predict_proba returned shape {proba.shape} for {len(rows)} rows"
        )
    if how == "margin":
        key = reduce_rows(proba, "margin") if proba.shape[1] > 1 else proba[:, 0]
    elif how == "entropy":
        key = -reduce_rows(proba, "entropy")
    else:
        key = reduce_rows(proba, "max")
    return np.argsort(key, kind="stable")[:k]


def _values(result: object) -> dict[str, float]:
    """``evaluate``'s result as ``{name: number}``."""
    if isinstance(result, int | float | np.number) and not isinstance(result, bool):
        return {"score": float(result)}
    if isinstance(result, dict) and all(
        isinstance(k, str) and isinstance(v, int | float | np.number) and not isinstance(v, bool)
        for k, v in result.items()
    ):
        return {k: float(v) for k, v in result.items()}
    raise InvalidInputError(
        f"evaluate must return a number or a dict of names to numbers, got {result!r}"
    )


def simulate(
    strategy: str | PickFn,
    rounds: list[tuple[int, IndexArray]],
    pool: IndexArray,
    rows: np.ndarray,
    labels: np.ndarray,
    fit: Callable[[np.ndarray, np.ndarray], Any],
    evaluate: Callable[[Any], object],
    seed: int = 0,
) -> Simulation:
    """Simulate ``strategy`` over ``rounds`` (each round and the sorted dataset indices labeled
    at its end), on ``pool`` (sorted dataset indices with their ``rows`` and ``labels``).

    A callable strategy is ``pick(model, candidate_rows, k) -> positions`` among the rows.
    """
    if not callable(strategy) and strategy not in SIM_STRATEGIES:
        raise InvalidInputError(
            f"strategy must be one of {SIM_STRATEGIES} or a callable, got {strategy!r}"
        )
    if not callable(fit) or not callable(evaluate):
        raise InvalidInputError("fit and evaluate must be callable")
    if not rounds:
        raise InvalidInputError("the campaign has no rounds to simulate (label with round=)")
    name = strategy if isinstance(strategy, str) else getattr(strategy, "__name__", "custom")
    rng = np.random.default_rng(seed)
    real = [np.intersect1d(items, pool) for _, items in rounds]
    chosen = np.zeros(len(pool), bool)
    chosen[np.searchsorted(pool, real[0])] = True
    picks = [real[0]]
    counts, values = [], []
    model = None
    for r in range(len(rounds)):
        if r:
            if strategy == "campaign":
                new = np.setdiff1d(real[r], pool[chosen])
            else:
                budget = max(0, len(real[r]) - len(real[r - 1]))
                free = np.flatnonzero(~chosen)
                budget = min(budget, len(free))
                if strategy == "random":
                    at = rng.choice(len(free), budget, replace=False)
                elif isinstance(strategy, str):
                    at = _uncertain(model, rows[free], budget, strategy)
                else:
                    at = np.asarray(strategy(model, rows[free], budget), np.int64)
                    if (
                        at.ndim != 1
                        or len(distinct(at)) != len(at)
                        or len(at) > budget
                        or (len(at) and (at.min() < 0 or at.max() >= len(free)))
                    ):
                        raise InvalidInputError(
                            f"the strategy must return at most {budget} distinct positions "
                            f"among {len(free)} candidate rows, got {at!r}"
                        )
                new = pool[free[at]]
            chosen[np.searchsorted(pool, new)] = True
            picks.append(np.sort(new))
        taken = np.flatnonzero(chosen)
        model = fit(rows[taken], labels[taken])
        counts.append(len(taken))
        values.append(_values(evaluate(model)))
    return Simulation(name, [r for r, _ in rounds], counts, values, picks)
