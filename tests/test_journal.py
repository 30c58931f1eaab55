"""Journal records round-trip; torn tails and damage are told apart."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alma_store import core
from alma_store.core import STR_DTYPE, LabelEvent
from alma_store.errors import CorruptStoreError
from alma_store.storage import FILE_HEADER_SIZE, Journal

DTYPES = [np.dtype("int64"), np.dtype("float32"), np.dtype("bool"), np.dtype("<U5"), STR_DTYPE]


@st.composite
def events(draw: st.DrawFn) -> tuple[LabelEvent, np.dtype, tuple[int, ...]]:
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.sampled_from([(), (2,)]))
    n = draw(st.integers(0, 6))
    idx = np.array(draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n)), np.int64)
    if dtype.kind in "TU":
        vals = draw(
            st.lists(
                st.text(max_size=5),
                min_size=n * max(1, int(np.prod(shape))),
                max_size=n * max(1, int(np.prod(shape))),
            )
        )
        values = np.array(vals, dtype=dtype).reshape((n, *shape))
    else:
        values = (
            (np.arange(n * int(np.prod(shape, dtype=int))) % 2).astype(dtype).reshape((n, *shape))
        )
    event = LabelEvent(
        version=draw(st.integers(1, 10**9)),
        kind="add",
        dataset_indices=idx,
        values=values,
        time=draw(st.floats(0, 2e9)),
        annotator=draw(st.none() | st.text(max_size=8)),
        round=draw(st.none() | st.integers(0, 10**6)),
    )
    return event, dtype, shape


@given(events())
def test_records_round_trip(item: tuple[LabelEvent, np.dtype, tuple[int, ...]]) -> None:
    event, dtype, shape = item
    raw = event.encode(dtype)
    back = LabelEvent.decode(raw[16:], dtype, shape)
    assert back.version == event.version and back.kind == event.kind
    assert (back.time, back.annotator, back.round) == (event.time, event.annotator, event.round)
    assert np.array_equal(back.dataset_indices, event.dataset_indices)
    assert back.values.shape == event.values.shape and back.values.tolist() == event.values.tolist()


def make_journal(tmp_path: Path, n_records: int) -> tuple[Journal, bytes]:
    uid = uuid.uuid4().bytes
    Journal.create(tmp_path / "j", uid)
    j = Journal(tmp_path / "j", uid, np.dtype("int64"), (), writable=True)
    for v in range(1, n_records + 1):
        j.append(LabelEvent(v, "add", np.array([v]), np.array([v * 2])).encode(np.dtype("int64")))
    return j, uid


def test_torn_tail_is_not_a_commit(tmp_path: Path) -> None:
    j, _ = make_journal(tmp_path, 3)
    full = j.size()
    partial = LabelEvent(4, "add", np.array([9]), np.array([9])).encode(np.dtype("int64"))
    for cut in (3, 16, len(partial) - 1):
        j.truncate(full)
        j.append(partial[:cut])
        records, end, torn = j.read(FILE_HEADER_SIZE, 1)
        assert [e.version for e, _ in records] == [1, 2, 3]
        assert torn and end == full
    j.truncate(end)
    assert j.read(FILE_HEADER_SIZE, 1)[2] is False


def test_damage_is_an_error(tmp_path: Path) -> None:
    j, _ = make_journal(tmp_path, 3)
    with pytest.raises(CorruptStoreError, match="version 1, expected 2"):
        j.read(FILE_HEADER_SIZE, 2)
    data = bytearray((tmp_path / "j").read_bytes())
    data[FILE_HEADER_SIZE + 1] ^= 1  # record magic
    (tmp_path / "j").write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match="damaged record header at byte 32"):
        j.read(FILE_HEADER_SIZE, 1)


def test_foreign_or_missing_journal(tmp_path: Path) -> None:
    make_journal(tmp_path, 1)
    with pytest.raises(CorruptStoreError, match="another store"):
        Journal(tmp_path / "j", uuid.uuid4().bytes, np.dtype("int64"), (), writable=False)
    with pytest.raises(CorruptStoreError, match="missing"):
        Journal(tmp_path / "nope", b"x" * 16, np.dtype("int64"), (), writable=False)


def test_unknown_event_kind_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kind a newer release added is refused by name, not guessed at."""
    j, _ = make_journal(tmp_path, 2)
    # A newer alma_store knows a kind "vote" (labeled before and after); it writes a record.
    monkeypatch.setitem(core.KINDS, "vote", (True, True))
    j.append(LabelEvent(3, "vote", np.array([1]), np.array([5])).encode(np.dtype("int64")))
    assert [e.kind for e, _ in j.read(FILE_HEADER_SIZE, 1)[0]] == ["add", "add", "vote"]
    monkeypatch.delitem(core.KINDS, "vote")  # this release does not know it
    with pytest.raises(CorruptStoreError, match=r"event kind 'vote'.*newer alma_store"):
        j.read(FILE_HEADER_SIZE, 1)
