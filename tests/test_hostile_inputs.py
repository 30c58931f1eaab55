"""Hostile input through the API, both tool formats and the CLI: always an AlmaError, never
another exception, a traceback or a half-applied batch; values that could not be exported
later are refused at commit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alma_store
from alma_store import AlmaError, InvalidInputError

from .conftest import REPO

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def good_ls_task(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "data": {"dataset_index": i},
        "annotations": [
            {
                "id": 10 + i,
                "completed_by": 1,
                "created_at": "2026-11-20T09:14:03.512345Z",
                "was_cancelled": False,
                "result": [{"type": "choices", "value": {"choices": ["cat"]}}],
            }
        ],
    }


LS_PLACES = [
    ("data",),
    ("data", "dataset_index"),
    ("annotations",),
    ("annotations", 0),
    ("annotations", 0, "result"),
    ("annotations", 0, "result", 0),
    ("annotations", 0, "result", 0, "value"),
    ("annotations", 0, "result", 0, "value", "choices"),
    ("annotations", 0, "completed_by"),
    ("annotations", 0, "created_at"),
    ("annotations", 0, "was_cancelled"),
]

PRODIGY_PLACES = [
    "answer",
    "dataset_index",
    "meta",
    "accept",
    "label",
    "_annotator_id",
    "_timestamp",
]


def put(obj: Any, place: tuple[Any, ...], value: Any) -> Any:
    *path, last = place
    at = obj
    for key in path:
        at = at[key]
    at[last] = value
    return obj


def store_with_classes(root: Path) -> alma_store.Store:
    return alma_store.create(root, n_items=50, classes=["cat", "dog"], overwrite=True)


def imports_cleanly_or_refuses(store: alma_store.Store, path: Path, fmt: str) -> None:
    before = (store.version, store.num_labeled)
    try:
        store.import_labels(path, format=fmt)
    except AlmaError:
        assert (store.version, store.num_labeled) == before  # nothing half-applied
        return
    assert store.version == before[0] + 1


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(place=st.sampled_from(LS_PLACES), value=JSON)
def test_hostile_label_studio_fields(tmp_path: Path, place: tuple[Any, ...], value: Any) -> None:
    store = store_with_classes(tmp_path / "s")
    tasks = [good_ls_task(1), put(good_ls_task(2), place, value)]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    imports_cleanly_or_refuses(store, path, "label-studio")
    store.close()


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(place=st.sampled_from(PRODIGY_PLACES), value=JSON)
def test_hostile_prodigy_fields(tmp_path: Path, place: str, value: Any) -> None:
    store = store_with_classes(tmp_path / "s")
    good = {"dataset_index": 3, "accept": ["dog"], "answer": "accept"}
    good |= {"_annotator_id": "ann", "_timestamp": 1_780_000_000}
    lines = [json.dumps(good), json.dumps({**good, "dataset_index": 4, place: value})]
    path = tmp_path / "db.jsonl"
    path.write_text("\n".join(lines) + "\n")
    imports_cleanly_or_refuses(store, path, "prodigy")
    store.close()


@pytest.mark.parametrize(
    ("content", "fmt", "says"),
    [
        (b"\xff\xfe not utf-8", "label-studio", "not UTF-8"),
        (b"[" * 100_000, "label-studio", "nested too deeply"),
        (b"[" * 100_000 + b"]" * 100_000, "label-studio", "nested too deeply"),
        (b'[{"data": {"dataset_index": 1}, "annotations": []}] [', "label-studio", "garbage"),
        (b'[{"data": {"dataset_index": 1}, "annotations": []},', "label-studio", "not JSON"),
        (b'[{"data": {"dataset_index": NaN}, "annotations": []}]', "label-studio", "NaN is not"),
        (b'[{"data": {"dataset_index": 1}, "annotations": []}] ]', "label-studio", "garbage"),
        (b'[{"data": {"dataset_index": 1}, "annotations": []}; 2]', "label-studio", "',' or ']'"),
        (b'{"answer": "ignore"}\n' + b"[" * 100_000, "prodigy", "line 2 is not JSON: nested"),
        (b'[{"data": {"dataset_index": 1}, "annotations": 5}]', "label-studio", "annotations"),
        (
            (
                b'{"answer": "accept", "meta": [1], "accept": ["cat"], "_annotator_id": "a", '
                b'"_timestamp": 1}'
            ),
            "prodigy",
            "meta",
        ),
        (
            (
                b'{"answer": "accept", "dataset_index": 1, "accept": ["cat"], "_annotator_id": "a", '
                b'"_timestamp": NaN}'
            ),
            "prodigy",
            "_timestamp",
        ),
        (
            (
                b'{"answer": "accept", "dataset_index": 1, "accept": ["cat"], "_annotator_id": "a", '
                b'"_timestamp": Infinity}'
            ),
            "prodigy",
            "_timestamp",
        ),
        (
            (
                b'{"answer": "accept", "dataset_index": 1, "accept": ["cat"], '
                b'"_annotator_id": "\\ud800", "_timestamp": 1}'
            ),
            "prodigy",
            "surrogate",
        ),
        (
            (
                b'[{"data": {"dataset_index": 1}, "annotations": [{"completed_by": 1, '
                b'"created_at": "2026-11-20T09:14:03Z", '
                b'"result": [{"type": "choices", "value": {}}]}]}]'
            ),
            "label-studio",
            "label",
        ),
    ],
)
def test_malformed_exports_are_named(tmp_path: Path, content: bytes, fmt: str, says: str) -> None:
    store = store_with_classes(tmp_path / "s")
    path = tmp_path / "export"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=says):
        store.import_labels(path, format=fmt)
    assert store.version == 0


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"round": -1}, "round must be from 0"),
        ({"round": 2**70}, "round must be from 0"),
        ({"round": True}, "round must be an int"),
        ({"annotator": "a\ud800"}, "surrogate"),
        ({"annotator": b"bytes"}, "annotator must be a str"),
    ],
)
def test_provenance_that_could_not_be_exported_is_refused(
    tmp_path: Path, kwargs: dict[str, Any], says: str
) -> None:
    with alma_store.create(tmp_path / "s", n_items=10) as store:
        with pytest.raises(InvalidInputError, match=says):
            store.add_labels([0], [1], relative_to="dataset", **kwargs)
        assert store.version == 0
        store.add_labels([0], [1], relative_to="dataset", round=2**31 - 1, annotator="ünï")
        store.export_history(tmp_path / "h.csv")  # what was accepted exports
        assert "ünï" in (tmp_path / "h.csv").read_text(encoding="utf-8")


def test_campaign_values_that_could_not_be_exported_are_refused(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", n_items=10) as store:
        for bad in ({"a\ud800": 1.0}, {"acc": "x\udfff"}):
            with pytest.raises(InvalidInputError, match="surrogate"):
                store.log_metrics(round=1, **bad)
        with pytest.raises(InvalidInputError, match="round must be from 0"):
            store.log_metrics(round=-3, acc=0.5)
        with pytest.raises(InvalidInputError, match="surrogate"):
            store.claim([1], annotator="x\ud800", ttl=10)
        with pytest.raises(InvalidInputError, match="surrogate"):
            alma_store.create(tmp_path / "t", n_items=3, classes=["ok", "b\ud800d"])
        assert store.metrics() == [] and store.claims() == []


def test_unsigned_labels_never_wrap(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", n_items=10, label_dtype="int8") as store:
        for bad in ([np.uint8(255)], [2**63], np.array([200], np.uint8)):
            with pytest.raises(InvalidInputError, match="without change"):
                store.add_labels([0], bad, relative_to="dataset")
        store.add_labels([0], [np.uint8(127)], relative_to="dataset")
        assert store.labels.tolist() == [127]
    with alma_store.create(tmp_path / "u", n_items=10, label_dtype="int64") as store:
        with pytest.raises(InvalidInputError, match="without change"):
            store.add_labels([0], [2**63], relative_to="dataset")
        with pytest.raises(InvalidInputError, match="without change"):
            store.add_labels([0], np.array([2**63], np.uint64), relative_to="dataset")


CLI_CASES = [
    ["info", "{missing}"],
    ["info", "{file}"],
    ["verify", "{missing}"],
    ["history", "{store}", "--json", "--last", "-3"],
    ["label", "{store}", "x=1"],
    ["label", "{store}", "1=notaclass"],
    ["label", "{store}", "999=cat"],
    ["label", "{store}", "=cat"],
    ["label", "{store}", "1=cat", "--round", "-1"],
    ["label", "{store}", "1=cat", "--round", "99999999999999999999"],
    ["import", "{store}", "{bad_json}"],
    ["import", "{store}", "{not_utf8}"],
    ["import", "{store}", "{missing}"],
    ["export", "{store}", "{tmp}/out.unknown"],
    ["export", "{store}", "/proc/nope/out.csv"],
    ["metrics", "{store}", "acc=nan", "--round", "1"],
    ["metrics", "{store}", "=1", "--round", "1"],
    ["claim", "{store}", "--annotator", "", "-k", "2", "--ttl", "60"],
    ["claim", "{store}", "--annotator", "a", "-k", "-2", "--ttl", "60"],
    ["release", "{store}", "nope"],
    ["query", "{store}", "nothere", "-k", "3"],
    ["score", "{store}", "--fn", "nomodule:fn", "--name", "s"],
    ["init", "{store}", "--n-items", "10"],
    ["init", "/proc/nope/s", "--n-items", "10"],
    ["init", "{tmp}/s2", "--n-items", "-5"],
    ["init", "{tmp}/s3", "{file}"],
    ["copy", "{store}", "{store}"],
    ["upgrade", "{missing}"],
    ["report", "{store}", "/proc/nope/r.html"],
    ["agreement", "{store}"],
    ["plot", "{store}", "/proc/nope/p.png"],
]


@pytest.fixture(scope="module")
def cli_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("cli")
    alma_store.create(tmp / "store", n_items=20, classes=["cat", "dog"]).close()
    (tmp / "file").write_text("not a store")
    (tmp / "bad.json").write_text("[{")
    (tmp / "bad.bin").write_bytes(b"\xff\xfe\x00")
    return {
        "store": str(tmp / "store"),
        "missing": str(tmp / "missing"),
        "file": str(tmp / "file"),
        "bad_json": str(tmp / "bad.json"),
        "not_utf8": str(tmp / "bad.bin"),
        "tmp": str(tmp),
    }


@pytest.mark.parametrize("args", CLI_CASES, ids=[" ".join(a) for a in CLI_CASES])
def test_bad_cli_input_is_one_line_not_a_traceback(
    cli_paths: dict[str, str], args: list[str]
) -> None:
    argv = [a.format(**cli_paths) for a in args]
    proc = subprocess.run(
        [sys.executable, "-c", "from alma_store.cli import run; run()", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    assert proc.stderr.strip(), "an error says something"


def _zarr_v2(
    root: Path, compressor: dict[str, Any] | None, dtype: str, filters: Any = None
) -> Path:
    """A hand-made Zarr v2 array whose one chunk would run code if unpickled."""
    import os
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {root / 'PWNED'}",))

    path = root / "hostile.zarr"
    path.mkdir()
    meta = {
        "zarr_format": 2,
        "shape": [4, 2],
        "chunks": [4, 2],
        "dtype": dtype,
        "compressor": compressor,
        "fill_value": None,
        "order": "C",
        "filters": filters,
        "dimension_separator": ".",
    }
    (path / ".zarray").write_text(json.dumps(meta))
    (path / "0.0").write_bytes(pickle.dumps(Evil()))
    return path


@pytest.mark.parametrize(
    ("compressor", "dtype", "filters"),
    [
        ({"id": "pickle", "protocol": 5}, "<f4", None),
        (None, "|O", [{"id": "pickle", "protocol": 5}]),
        (None, "<f4", [{"id": "msgpack2"}]),
    ],
)
def test_a_feature_array_that_would_unpickle_is_refused(
    tmp_path: Path, compressor: Any, dtype: str, filters: Any
) -> None:
    """No pickle, object dtype or codec outside the allow-list is ever decoded from a source."""
    path = _zarr_v2(tmp_path, compressor, dtype, filters)
    with pytest.raises(InvalidInputError):
        alma_store.create(tmp_path / "s", str(path))
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "s").exists()


def test_a_store_whose_features_were_swapped_for_pickle_is_refused(tmp_path: Path) -> None:
    """A store made over an in-memory array keeps a Zarr copy; swap it for a hostile one."""
    import shutil

    alma_store.create(tmp_path / "s", np.zeros((4, 2), np.float32)).close()
    hostile = _zarr_v2(tmp_path, {"id": "pickle", "protocol": 5}, "<f4")
    shutil.rmtree(tmp_path / "s" / "features")
    shutil.copytree(hostile, tmp_path / "s" / "features")
    with pytest.raises(AlmaError), alma_store.open(tmp_path / "s", mode="r") as store:
        np.asarray(store.unlabeled)
    assert not (tmp_path / "PWNED").exists()
