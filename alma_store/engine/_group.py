"""Which offered batches a group commit takes (format 9): the rules, apart from the I/O.

A writer of a shared store that lost a version offers its batch to the others
(:meth:`~alma_store.storage.SharedLog.offer`); whoever creates the next commit
object puts the offered batches that may still land into it, after its own
(:func:`group_after`). The rules, argued in ``docs/format.md``, are those of
:mod:`alma_store.storage._shared` ("Group commit"): a batch lands within
:data:`~alma_store.storage.GROUP_WINDOW` versions of the version it was checked
against, and only while no record since touches one of its items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..core import LabelEvent
from ..storage import GROUP_MAX, GROUP_WINDOW, Pending

__all__ = ["group_after", "touches"]


def touches(events: Sequence[LabelEvent], event: LabelEvent) -> bool:
    """Whether any of ``events`` touches an item of ``event``."""
    if not events:
        return False
    mine = np.sort(event.dataset_indices)
    theirs = np.concatenate([other.dataset_indices for other in events])
    at = np.minimum(np.searchsorted(mine, theirs), len(mine) - 1)
    return bool((mine[at] == theirs).any())


def group_after(
    own: LabelEvent,
    offered: Sequence[tuple[Pending, LabelEvent]],
    since: Callable[[int], list[LabelEvent] | None],
    n_items: int,
) -> list[LabelEvent]:
    """The events of one commit object: ``own`` first, then the offered batches that may land.

    Parameters
    ----------
    own
        This writer's event, of the version after the newest it read.
    offered
        Other writers' pending batches and their decoded events (of version
        ``base + 1``), oldest ``base`` first.
    since
        ``since(base)``: the committed events after ``base`` up to the newest
        (None when they are not at hand: that batch is left out).
    n_items
        The store's size (an offered batch naming another index is left out).

    Returns
    -------
    list of LabelEvent
        ``own``, then each batch that lands, renumbered to its version in the
        object; at most :data:`~alma_store.storage.GROUP_MAX` events.
    """
    group = [own]
    for pending, event in offered:
        if len(group) >= GROUP_MAX:
            break
        at = own.version + len(group)
        if at - pending.base > GROUP_WINDOW or not _well_formed(pending, event, n_items):
            continue
        newer = since(pending.base)
        if newer is None or touches([*newer, *group], event):
            continue  # its checks no longer hold, or it landed already
        group.append(event.renumbered(at))
    return group


def _well_formed(pending: Pending, event: LabelEvent, n_items: int) -> bool:
    """Whether an offered event is what :meth:`Writer.commit` offers: a plain batch of
    items in range, of the version after its base, under its batch id."""
    idx = event.dataset_indices
    return (
        event.version == pending.base + 1
        and event.batch == pending.batch
        and event.annotations is None
        and not event.resolved
        and len(idx) > 0
        and int(idx.min()) >= 0
        and int(idx.max()) < n_items
    )
