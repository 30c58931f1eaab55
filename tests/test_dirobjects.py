"""Objects in a directory list as object storage does: by prefix, after a name, in order."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from alma_store.storage import DirObjects

FOLDERS = ["log", "pending", "segments"]
STEMS = ["0001", "0002", "0010", "01", "1", "a-b", "ab", ".tmp-1"]


@settings(max_examples=200, deadline=None)
@given(
    names=st.sets(st.tuples(st.sampled_from(FOLDERS), st.sampled_from(STEMS)), max_size=20),
    prefix=st.sampled_from(["log/", "log/0", "log/00", "pending/", "segments/0"]),
    after=st.sampled_from(["", "a", "log", "log/", "log/0001", "log/01", "m", "pending/x", "z"]),
    limit=st.none() | st.integers(0, 5),
)
def test_a_directory_lists_as_a_model_of_object_storage(
    names: set[tuple[str, str]], prefix: str, after: str, limit: int | None
) -> None:
    with tempfile.TemporaryDirectory() as root:
        for folder, stem in names:
            (Path(root) / folder).mkdir(exist_ok=True)
            (Path(root) / folder / stem).write_bytes(b"x")
        listed = DirObjects(Path(root)).list(prefix, after=after, limit=limit)
    keys = sorted(f"{folder}/{stem}" for folder, stem in names if not stem.startswith("."))
    model = [key for key in keys if key.startswith(prefix) and key > after][:limit]
    assert [item.name for item in listed] == model
    assert all(item.modified > 0 for item in listed)
