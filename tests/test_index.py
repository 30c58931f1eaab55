"""Pure index logic against flatnonzero, the seed's offset map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import alma_store
from alma_store.core import (
    Arena,
    BaseRanks,
    LabeledRows,
    Runs,
    chunk_members,
    chunk_sizes,
    distinct,
    locate_positions,
    merge_tail,
    parse_indices,
)
from alma_store.errors import InvalidIndexError, InvalidInputError

from .conftest import run_python


def runs_of(mask: np.ndarray, chunk_rows: int, chunks: np.ndarray) -> Runs:
    parts = [np.flatnonzero(mask[j * chunk_rows : (j + 1) * chunk_rows]) for j in chunks]
    lengths = np.array([len(p) for p in parts], np.int64)
    flat = np.concatenate(parts).astype(np.int32) if parts else np.empty(0, np.int32)
    return Runs(chunks, flat, np.cumsum(lengths) - lengths, lengths)


def map_like_snapshot(
    runs: Runs, mask: np.ndarray, chunk_rows: int, pos: np.ndarray, of_labeled: bool
) -> np.ndarray:
    """View positions -> dataset indices through locate + Runs.select, as Snapshot does."""
    sizes = chunk_sizes(len(mask), chunk_rows)
    member = mask if of_labeled else ~mask
    counts = np.add.reduceat(member, np.arange(0, len(mask), chunk_rows)) if len(mask) else sizes
    chunks, ranks = locate_positions(pos, counts.astype(np.int64))
    local = runs.select(runs.slot(chunks), ranks, of_labeled=of_labeled)
    return chunks * chunk_rows + local


@given(
    mask=hnp.arrays(bool, st.integers(0, 200)),
    chunk_rows=st.integers(1, 17),
    data=st.data(),
)
def test_runs_and_tail_merge_match_flatnonzero(
    mask: np.ndarray, chunk_rows: int, data: st.DataObject
) -> None:
    """The offset map, rank and chunk membership over a checkpoint plus a journal tail."""
    n = len(mask)
    sizes = chunk_sizes(n, chunk_rows)
    assert sizes.sum() == n
    chunks = np.arange(len(sizes), dtype=np.int64)
    # A journal tail flips some rows: the final state is `now`.
    flips = np.unique(np.array(data.draw(st.lists(st.integers(0, max(n - 1, 0)))), np.int64))
    flips = flips[flips < n]
    now = mask.copy()
    now[flips] = ~now[flips]
    merged = merge_tail(runs_of(mask, chunk_rows, chunks), chunk_rows, flips, now[flips])
    direct = runs_of(now, chunk_rows, chunks)
    for j in range(len(chunks)):
        assert np.array_equal(merged.run(j), direct.run(j))
        for of_labeled in (True, False):
            size = int(sizes[j])
            want = np.flatnonzero(
                (now if of_labeled else ~now)[j * chunk_rows : j * chunk_rows + size]
            )
            assert np.array_equal(chunk_members(merged.run(j), size, of_labeled=of_labeled), want)
    for of_labeled, member in ((True, now), (False, ~now)):  # the views partition range(n)
        want = np.flatnonzero(member)
        pos = np.array(
            data.draw(st.lists(st.integers(0, max(len(want) - 1, 0)), max_size=10))
            if len(want)
            else [],
            dtype=np.int64,
        )
        got = map_like_snapshot(merged, now, chunk_rows, pos, of_labeled)
        assert np.array_equal(got, want[pos])
    idx = np.arange(n, dtype=np.int64)
    slots = merged.slot(idx // chunk_rows) if n else idx
    before, labeled = merged.rank(slots, idx - (idx // chunk_rows) * chunk_rows)
    assert np.array_equal(labeled, now)
    starts = np.arange(0, n, chunk_rows)
    want_before = np.cumsum(now) - now - np.repeat(np.cumsum(now)[starts] - now[starts], sizes)
    assert np.array_equal(before, want_before)


def check_rank_and_select(rows: LabeledRows, now: np.ndarray, chunk_rows: int) -> None:
    """``rows`` answers rank, membership and select exactly as ``now``'s flatnonzero does."""
    n = len(now)
    idx = np.arange(n, dtype=np.int64)
    before, labeled = rows.rank(idx // chunk_rows, idx % chunk_rows)
    assert np.array_equal(labeled, now)
    assert np.array_equal(rows.contains(idx // chunk_rows, idx % chunk_rows), now)
    starts = np.arange(0, n, chunk_rows)
    sizes = chunk_sizes(n, chunk_rows)
    want_before = np.cumsum(now) - now - np.repeat(np.cumsum(now)[starts] - now[starts], sizes)
    assert np.array_equal(before, want_before)
    for of_labeled, member in ((True, now), (False, ~now)):  # every position of both views
        want = np.flatnonzero(member)
        counts = np.add.reduceat(member, starts).astype(np.int64) if n else sizes
        got_chunks, ranks = locate_positions(np.arange(len(want), dtype=np.int64), counts)
        local = rows.select(got_chunks, ranks, of_labeled=of_labeled)
        assert np.array_equal(got_chunks * chunk_rows + local, want)


@given(
    n=st.integers(0, 400),
    chunk_rows=st.integers(1, 64),
    density=st.sampled_from([0.0, 0.001, 0.1, 0.5, 0.9, 1.0]),
    touched=st.sampled_from([0.0, 0.01, 0.2, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_labeled_rows_rank_and_select_match_flatnonzero_at_every_density(
    n: int, chunk_rows: int, density: float, touched: float, seed: int
) -> None:
    """Rank and select over a checkpoint's runs and a tail, never merged, at 0 to 100 % labeled,
    at two versions of one checkpoint sharing its memo of base counts."""
    rng = np.random.default_rng(seed)
    base = rng.random(n) < density
    # The tail touched some rows: each is labeled or not now (possibly as it was at the base).
    tail = np.flatnonzero(rng.random(n) < touched).astype(np.int64)
    now = base.copy()
    now[tail] = rng.random(len(tail)) < rng.choice([0.0, density, 1.0])
    chunks = np.arange(len(chunk_sizes(n, chunk_rows)), dtype=np.int64)
    runs = runs_of(base, chunk_rows, chunks)
    memo = BaseRanks(bits_bytes=int(rng.choice([8, 1 << 20])))  # tiny: starts anew often
    earlier = tail[rng.random(len(tail)) < 0.5]  # an earlier version touched fewer rows
    then = base.copy()
    then[earlier] = now[earlier]
    rows = LabeledRows(runs.subset, chunk_rows, earlier, then[earlier], base[earlier], memo)
    check_rank_and_select(rows, then, chunk_rows)
    rows = LabeledRows(runs.subset, chunk_rows, tail, now[tail], base[tail], memo)
    check_rank_and_select(rows, now, chunk_rows)


@given(st.lists(st.integers(0, 49), max_size=20, unique=True))
def test_parse_indices_accepts_every_integer_form(values: list[int]) -> None:
    want = np.array(values, dtype=np.int64)
    for form in (
        values,
        tuple(values),
        np.array(values, dtype=np.int32),
        np.array(values, np.uint16),
    ):
        assert np.array_equal(parse_indices(form, name="p", upper=50), want)
    if values:
        assert parse_indices(np.int64(values[0]), name="p", upper=50).tolist() == values[:1]


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (True, InvalidInputError, "boolean"),
        (2.0, InvalidInputError, "got 2.0"),
        ([0.5], InvalidInputError, "dtype float64"),
        ("3", InvalidInputError, "string"),
        ([None], InvalidInputError, "got None"),
        ([[1, 2]], InvalidInputError, r"shape \(1, 2\)"),
        ([-2], InvalidIndexError, r"\[0, 5\), got \[-2\]"),
        ([5], InvalidIndexError, r"got \[5\]"),
        ([1, 2, 1], InvalidIndexError, r"repeats \[1\]"),
        (np.array([2**63], dtype=np.uint64), InvalidIndexError, "9223372036854775808"),
    ],
)
def test_parse_indices_rejects(value: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        parse_indices(value, name="p", upper=5)


def test_arena_appends_never_disturb_earlier_runs() -> None:
    """Runs unioned into a shared arena stay right while later unions grow it."""
    arena = Arena(capacity=4)
    one = Runs.empty().union(
        Runs(np.array([3]), np.array([1, 2]), np.array([0]), np.array([2])), arena
    )
    two = one.union(Runs(np.array([1]), np.array([5, 6, 7]), np.array([0]), np.array([3])), arena)
    branch = one.union(Runs(np.array([0]), np.array([9]), np.array([0]), np.array([1])), arena)
    assert one.run(0).tolist() == [1, 2]
    assert [two.run(i).tolist() for i in range(2)] == [[5, 6, 7], [1, 2]]
    assert [branch.run(i).tolist() for i in range(2)] == [[9], [1, 2]]
    assert two.without(np.array([3])).chunks.tolist() == [1]
    assert two.compact().flat.tolist() == [5, 6, 7, 1, 2]


@given(hnp.arrays(np.int64, st.integers(0, 60), elements=st.integers(-5, 40)))
def test_distinct_is_np_unique(values: np.ndarray) -> None:
    got = distinct(values)
    assert got.dtype == np.int64
    assert got.tolist() == np.unique(values).tolist()
    assert values.tolist() == values.tolist()  # the input is left as it was


def test_commits_and_maps_import_nothing_they_do_not_need(tmp_path: Path) -> None:
    """``np.unique`` imports ``numpy.ma`` on first use (10-50 ms): a fresh process's first
    commits, maps and checkpoint never pay it (an index-only store imports no Zarr either)."""
    alma_store.create(tmp_path / "s", n_items=100_000, chunk_rows=1000).close()
    code = """
import sys, alma_store
with alma_store.open(sys.argv[1], checkpoint_rows=50) as store:
    for k in range(40):
        store.add_labels([7 * k, 7 * k + 1], [1, 2], relative_to="dataset")
    store.add_labels([3, 4], [1, 1])
    store.unlabeled.to_dataset_index([0, 5, 90_000])
    store.labeled.to_dataset_index([0, 1])
    print(sorted(m for m in ("numpy.ma", "zarr") if m in sys.modules))
"""
    assert run_python(code, str(tmp_path / "s")).stdout.split() == ["[]"]
