"""A shared store's private mirror starts from this host's template of its empty state.

Making the mirror's Zarr arrays was most of what an open of a shared store in a
directory cost; the template (three small metadata files per geometry, per user)
is copied instead. It must give exactly zarr's arrays, and a template that is not
this user's own, or is damaged, is never used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store.storage._chunkfiles import STATE_FILES, _state_template, create_arrays


def _mirror_state(store: alma_store.Store) -> Path:
    mirror = store._engine.mirror
    assert mirror is not None
    return mirror.path.parent / "state"


@pytest.mark.parametrize(("dtype", "shape"), [("int64", ()), ("str", ()), ("float32", (3,))])
def test_the_mirror_state_is_zarrs_own(tmp_path: Path, dtype: str, shape: tuple[int, ...]) -> None:
    kwargs = {"label_dtype": dtype, "label_shape": shape, "chunk_rows": 16}
    alma_store.create(tmp_path / "s", n_items=100 + len(shape), shared=True, **kwargs).close()
    create_arrays(tmp_path / "zarr", 100 + len(shape), 16, _label_dtype(dtype), shape)
    want = {name: (tmp_path / "zarr" / "state" / name).read_bytes() for name in STATE_FILES}
    for item in range(2):  # the first makes the template, the second copies it
        with alma_store.open(tmp_path / "s") as store:
            state = _mirror_state(store)
            assert {name: (state / name).read_bytes() for name in STATE_FILES} == want
            value = "a" if dtype == "str" else np.ones(shape, dtype)
            store.add_labels([item], [value], relative_to="dataset")
    with alma_store.open(tmp_path / "s", mode="r") as store:
        assert store.num_labeled == 2 and store.verify()["records"] == 2


def _label_dtype(name: str) -> np.dtype:
    return np.dtypes.StringDType() if name == "str" else np.dtype(name)


def test_a_template_others_may_write_is_not_used(tmp_path: Path) -> None:
    alma_store.create(tmp_path / "s", n_items=53, shared=True, chunk_rows=7).close()
    with alma_store.open(tmp_path / "s") as store:
        store.add_labels([1], [7], relative_to="dataset")
    template = _state_template(53, 7, np.dtype(np.int64), ())
    assert (template / "state" / "labels" / "zarr.json").exists()
    damaged = b'{"codecs": [], "shape": [1]}'
    (template / "state" / "labels" / "zarr.json").write_bytes(damaged)
    os.chmod(template, 0o777)
    try:
        with alma_store.open(tmp_path / "s") as store:  # zarr makes the arrays again
            assert (_mirror_state(store) / "labels" / "zarr.json").read_bytes() != damaged
            assert store.labels.tolist() == [7]
            store.add_labels([2], [8], relative_to="dataset")
    finally:
        os.chmod(template, 0o700)
    for damage in (b'{"shape": [99]}', b"not json", None):  # damaged: made again
        path = template / "state" / "labels" / "zarr.json"
        if damage is None:
            path.unlink()
        else:
            path.write_bytes(damage)
        with alma_store.open(tmp_path / "s") as store:
            assert store.labels.tolist() == [7, 8]
        assert json.loads(path.read_bytes())["shape"] == [53]
