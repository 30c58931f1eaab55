"""Pure index logic against flatnonzero, the seed's offset map."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from alma_store.errors import InvalidIndexError, InvalidInputError
from alma_store.index import (
    chunk_sizes,
    dataset_to_view_positions,
    parse_indices,
    view_to_dataset_indices,
)


@given(mask=hnp.arrays(bool, st.integers(0, 200)), chunk_rows=st.integers(1, 17), data=st.data())
def test_select_and_rank_match_flatnonzero(
    mask: np.ndarray, chunk_rows: int, data: st.DataObject
) -> None:
    n = len(mask)
    sizes = chunk_sizes(n, chunk_rows)
    assert sizes.sum() == n
    selector = lambda j: np.flatnonzero(mask[j * chunk_rows : (j + 1) * chunk_rows])
    for of_labeled, member in ((True, mask), (False, ~mask)):  # the views partition range(n)
        counts = np.array(
            [member[j * chunk_rows : (j + 1) * chunk_rows].sum() for j in range(len(sizes))],
            np.int64,
        )
        want = np.flatnonzero(member)
        pos = (
            data.draw(st.lists(st.integers(0, max(len(want) - 1, 0)), max_size=10))
            if len(want)
            else []
        )
        pos = np.array(pos, dtype=np.int64)
        got = view_to_dataset_indices(pos, counts, chunk_rows, selector, of_labeled=of_labeled)
        assert np.array_equal(got, want[pos])
        whole = counts == sizes
        got = view_to_dataset_indices(
            pos, counts, chunk_rows, selector, of_labeled=of_labeled, whole=whole
        )
        assert np.array_equal(got, want[pos])
        back, is_member = dataset_to_view_positions(
            got, counts, chunk_rows, selector, of_labeled=of_labeled
        )
        assert is_member.all() and np.array_equal(back, pos)
        all_idx = np.arange(n, dtype=np.int64)
        ranks, is_member = dataset_to_view_positions(
            all_idx, counts, chunk_rows, selector, of_labeled=of_labeled
        )
        assert np.array_equal(is_member, member)
        assert np.array_equal(ranks[member], np.arange(len(want)))


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
