"""Overlay.apply_all against a plain dict of item states."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alma_store.core import LabelEvent, Overlay

N, CHUNK = 40, 8
PLANS = st.lists(
    st.tuples(st.sampled_from(["add", "relabel", "remove"]), st.lists(st.integers(0, N - 1))),
    max_size=25,
)
"""Plans of label writes: a kind and the items it names (those that do not fit are dropped)."""


def events_from(plan: list[tuple[str, list[int]]]) -> tuple[list[LabelEvent], dict[int, int]]:
    """Valid events from a plan (items that do not fit the kind are dropped), and the end state."""
    state: dict[int, int] = {}
    events = []
    for step, (kind, items) in enumerate(plan, start=1):
        items = sorted(set(items))
        if kind == "add":
            items = [i for i in items if i not in state]
        else:
            items = [i for i in items if i in state]
        if not items:
            continue
        idx = np.array(items, np.int64)
        values = np.array([i * 100 + step for i in items], np.int64)
        previous = np.array([state[i] for i in items], np.int64) if kind == "relabel" else None
        if kind == "remove":
            values = np.array([state[i] for i in items], np.int64)
        version = len(events) + 1
        events.append(
            LabelEvent(
                version,
                kind,
                idx,
                values,
                **({"previous": previous} if previous is not None else {}),
            )
        )
        for i, v in zip(items, values.tolist(), strict=True):
            if kind == "remove":
                del state[i]
            else:
                state[i] = v
    return events, state


@settings(max_examples=150, deadline=None)
@given(
    PLANS,
    st.lists(st.integers(1, 6), min_size=1, max_size=30),
)
def test_apply_all_in_any_grouping_matches_the_model(plan, groups) -> None:
    events, state = events_from(plan)
    overlay = Overlay.empty(0, np.zeros(N // CHUNK, np.int64), np.dtype(np.int64), ())
    at, g = 0, 0
    while at < len(events):  # the same events, applied in groups of varying size
        size = groups[g % len(groups)]
        overlay = overlay.apply_all(events[at : at + size], CHUNK)
        at, g = at + size, g + 1
    assert overlay.version == len(events)
    labeled = {
        int(i): int(v)
        for i, ok, v in zip(overlay.indices, overlay.labeled, overlay.values, strict=True)
        if ok
    }
    assert labeled == state
    assert np.all(np.diff(overlay.indices) > 0)
    want_counts = np.bincount([i // CHUNK for i in state], minlength=N // CHUNK)
    assert overlay.counts.tolist() == want_counts.tolist()


def states(events: list[LabelEvent]) -> list[dict[int, int]]:
    """The labeled items and their labels at every version ``0 .. len(events)``."""
    state: dict[int, int] = {}
    out = [dict(state)]
    for event in events:
        for i, v in zip(event.dataset_indices.tolist(), event.values.tolist(), strict=True):
            if event.kind == "remove":
                del state[i]
            else:
                state[i] = v
        out.append(dict(state))
    return out


def checkpoint_at(states_: list[dict[int, int]], version: int) -> Overlay:
    """The overlay of a checkpoint at ``version``: its per-chunk labeled counts only."""
    labeled = [i // CHUNK for i in states_[version]]
    counts = np.bincount(labeled, minlength=N // CHUNK).astype(np.int64)
    return Overlay.empty(version, counts, np.dtype(np.int64), ())


@settings(max_examples=150, deadline=None)
@given(PLANS, st.integers(0, 25))
def test_rewind_gives_the_state_at_an_older_version_and_at_the_checkpoint(plan, back) -> None:
    events, _ = events_from(plan)
    at = states(events)
    c0, v = len(events), max(0, len(events) - back)
    overlay = Overlay.rewind(checkpoint_at(at, c0), events[v:], CHUNK)
    assert overlay.version == v
    touched = sorted({i for e in events[v:] for i in e.dataset_indices.tolist()})
    assert overlay.indices.tolist() == touched
    assert overlay.labeled.tolist() == [i in at[v] for i in touched]  # at v
    assert overlay.base.tolist() == [i in at[c0] for i in touched]  # at the checkpoint
    held = zip(touched, overlay.labeled, overlay.values, strict=True)
    labels = {i: int(x) for i, ok, x in held if ok}
    assert labels == {i: at[v][i] for i in touched if i in at[v]}
    assert overlay.counts.tolist() == checkpoint_at(at, v).counts.tolist()


@settings(max_examples=100, deadline=None)
@given(PLANS, st.integers(0, 25))
def test_apply_all_after_a_checkpoint_keeps_the_checkpoint_state_as_base(plan, split) -> None:
    events, _ = events_from(plan)
    at = states(events)
    c0 = min(split, len(events))
    overlay = checkpoint_at(at, c0).apply_all(events[c0:], CHUNK)
    touched = sorted({i for e in events[c0:] for i in e.dataset_indices.tolist()})
    assert overlay.indices.tolist() == touched
    assert overlay.base.tolist() == [i in at[c0] for i in touched]
    assert overlay.labeled.tolist() == [i in at[-1] for i in touched]


def test_events_that_touch_no_item_only_move_the_version() -> None:
    """An annotation that labels nothing yet (its item still needs more answers) is such
    an event; alone or among others, replay and rewind keep every state as it was."""
    empty = np.empty(0, np.int64)
    touch = LabelEvent(2, "add", np.array([3, 12]), np.array([7, 8]))
    events = [LabelEvent(1, "add", empty, empty), touch, LabelEvent(3, "add", empty, empty)]
    start = Overlay.empty(0, np.zeros(N // CHUNK, np.int64), np.dtype(np.int64), ())
    alone = start.apply_all(events[:1], CHUNK)
    assert alone.version == 1 and alone.indices.tolist() == [] and not alone.counts.any()
    overlay = start.apply_all(events, CHUNK)
    assert overlay.version == 3 and overlay.indices.tolist() == [3, 12]
    assert overlay.values.tolist() == [7, 8] and overlay.counts.tolist() == [1, 1, 0, 0, 0]
    back = Overlay.rewind(
        Overlay.empty(3, overlay.counts, np.dtype(np.int64), ()), events[2:], CHUNK
    )
    assert (
        back.version == 2
        and back.indices.tolist() == []
        and back.counts.tolist() == [1, 1, 0, 0, 0]
    )
