"""Overlay.apply_all against a plain dict of item states."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alma_store.core import LabelEvent, Overlay

N, CHUNK = 40, 8


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
    st.lists(
        st.tuples(st.sampled_from(["add", "relabel", "remove"]), st.lists(st.integers(0, N - 1))),
        max_size=25,
    ),
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
