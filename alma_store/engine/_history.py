"""Reading the past: the filtered history, round summaries, the version of a round."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from ..core import KINDS, LabelEvent
from ..errors import InvalidInputError
from ._engine import Engine


def check_filters(kinds: tuple[str, ...] | None, start: int | None, stop: int | None) -> None:
    """Raise :class:`InvalidInputError` for a bad history filter."""
    if kinds is not None and (isinstance(kinds, str) or not all(k in KINDS for k in kinds)):
        raise InvalidInputError(f"kinds must be a tuple of {tuple(KINDS)}, got {kinds!r}")
    for name, value in (("start", start), ("stop", stop)):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise InvalidInputError(f"{name} must be a non-negative int or None, got {value!r}")


def filter_event(
    event: LabelEvent,
    annotator: str | None,
    round: int | None,
    kinds: tuple[str, ...] | None,
    start: int | None,
    stop: int | None,
) -> LabelEvent | None:
    """``event`` if it passes the filters, cut to ``[start, stop)``; else None.

    An event whose items each name their annotator (an annotation tool's
    import) is cut to ``annotator``'s items; one recording annotations
    passes for each of its annotators.
    """
    if round is not None and event.round != round:
        return None
    if kinds is not None and event.kind not in kinds:
        return None
    idx = event.dataset_indices
    keep = np.ones(idx.shape, bool)
    if annotator is not None and event.annotator != annotator:
        if event.row_annotators is not None:
            keep &= np.array([a == annotator for a in event.row_annotators], bool)
        elif event.annotations is None or annotator not in event.annotations.annotators:
            return None
    if start is not None:
        keep &= idx >= start
    if stop is not None:
        keep &= idx < stop
    if keep.all():
        return event
    if not keep.any() and event.annotations is None:
        return None
    rows = np.flatnonzero(keep).tolist()
    return replace(
        event,
        dataset_indices=idx[keep],
        values=event.values[keep],
        previous=None if event.previous is None else event.previous[keep],
        row_annotators=None
        if event.row_annotators is None
        else tuple(event.row_annotators[r] for r in rows),
        row_times=None if event.row_times is None else tuple(event.row_times[r] for r in rows),
    )


@dataclass(frozen=True, slots=True)
class RoundSummary:
    """What happened in one round: commits, label counts by kind, who, when."""

    round: int | None
    commits: int
    added: int
    relabeled: int
    removed: int
    annotators: tuple[str | None, ...]
    first_time: float
    last_time: float
    first_version: int
    last_version: int

    @classmethod
    def extend(cls, summary: RoundSummary | None, event: LabelEvent) -> RoundSummary:
        """``summary`` with ``event`` counted in (a new summary when None)."""
        n = len(event.dataset_indices)
        counts = {"add": 0, "relabel": 0, "remove": 0}
        counts[event.kind] = n
        who: tuple[str | None, ...] = (event.annotator,)
        if event.row_annotators is not None:
            who = tuple(dict.fromkeys(event.row_annotators))
        elif event.annotations is not None:
            named = (event.annotator, *event.annotations.annotators)
            who = tuple(dict.fromkeys(a for a in named if a is not None))
        if summary is None:
            return cls(
                event.round,
                1,
                counts["add"],
                counts["relabel"],
                counts["remove"],
                who,
                event.time,
                event.time,
                event.version,
                event.version,
            )
        annotators = (*summary.annotators, *(a for a in who if a not in summary.annotators))
        return cls(
            summary.round,
            summary.commits + 1,
            summary.added + counts["add"],
            summary.relabeled + counts["relabel"],
            summary.removed + counts["remove"],
            annotators,
            min(summary.first_time, event.time),
            max(summary.last_time, event.time),
            summary.first_version,
            event.version,
        )


def history(
    engine: Engine,
    *,
    annotator: str | None = None,
    round: int | None = None,
    kinds: tuple[str, ...] | None = None,
    start: int | None = None,
    stop: int | None = None,
    after: int = 0,
    last: int | None = None,
) -> Iterator[LabelEvent]:
    """The committed events after version ``after`` and up to ``last`` (default: now)
    that pass the filters."""
    check_filters(kinds, start, stop)
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise InvalidInputError(f"after must be a version (an int >= 0), got {after!r}")
    for event in engine.iter_events(first=after + 1, last=last):
        picked = filter_event(event, annotator, round, kinds, start, stop)
        if picked is not None:
            yield picked


def rounds(engine: Engine, *, last: int | None = None) -> list[RoundSummary]:
    """One summary per round tag up to version ``last``, in order of first appearance."""
    summaries: dict[int | None, RoundSummary] = {}
    for event in engine.iter_events(last=last):
        summaries[event.round] = RoundSummary.extend(summaries.get(event.round), event)
    return list(summaries.values())


def version_of_round(engine: Engine, round: int) -> int:
    """The version right after the last commit tagged ``round``."""
    last = None
    for event in history(engine, round=round):
        last = event.version
    if last is None:
        raise InvalidInputError(f"no commit of the store has round {round!r}")
    return last
