"""Class schemas, and import/export of labels and history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store import AlreadyLabeledError, InvalidInputError


def test_class_schema(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", np.zeros((6, 1)), classes=["cat", "dog"]) as s:
        s.add_labels([(0, "dog"), (1, 0)])
        assert s.labels.tolist() == [1, 0]
        assert s.class_names(s.labels).tolist() == ["dog", "cat"]
        with pytest.raises(InvalidInputError, match="unknown class 'cow'; the store's classes"):
            s.add_labels([(0, "cow")])
        with pytest.raises(InvalidInputError, match="class code 2 is out of range for 2 classes"):
            s.add_labels([(0, 2)])
        s.relabel([0], ["cat"])
        assert s.version == 2
        # Codes are exact ints in range: floats, booleans and other codes are refused,
        # in add_labels, relabel and import alike, and nothing is written.
        for bad in (1.0, 7.0, True, False, 3, -1, np.float64(0.0), None):
            with pytest.raises(InvalidInputError, match="class"):
                s.add_labels([2], [bad], relative_to="dataset")
            with pytest.raises(InvalidInputError, match="class"):
                s.relabel([0], [bad])
        with pytest.raises(InvalidInputError, match="class"):
            s.add_labels([2], np.array([1.0]), relative_to="dataset")
        (tmp_path / "bad.jsonl").write_text('{"dataset_index": 3, "label": 1.0}\n')
        with pytest.raises(InvalidInputError, match="line 1: labels must be class names"):
            s.import_labels(tmp_path / "bad.jsonl")
        assert s.version == 2 and s.labels.tolist() == [0, 0]
    with alma_store.open(tmp_path / "s", "r") as s:
        assert s.classes == ("cat", "dog")
    for bad, match in [(["a", "a"], "repeats"), ("ab", "list of class names"), ([], "non-empty")]:
        with pytest.raises(InvalidInputError, match=match):
            alma_store.create(tmp_path / "t", np.zeros(3), classes=bad)
    with pytest.raises(InvalidInputError, match="integer dtype"):
        alma_store.create(tmp_path / "t", np.zeros(3), classes=["a"], label_dtype="float32")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize(
    ("label_dtype", "label_shape", "values"),
    [
        ("int64", (), [3, -1, 7]),
        ("str", (), ["a, b", 'q"uote', "é"]),
        ("float32", (2,), [[0.5, 1.0], [2.0, 3.0], [-1.0, 0.0]]),
    ],
)
def test_labels_round_trip(tmp_path: Path, suffix, label_dtype, label_shape, values) -> None:
    with alma_store.create(
        tmp_path / "a", np.zeros((10, 1)), label_dtype=label_dtype, label_shape=label_shape
    ) as a:
        a.add_labels([8, 2, 5], values, relative_to="dataset")
        assert a.export_labels(tmp_path / f"l{suffix}") == 3
    with alma_store.create(
        tmp_path / "b", np.zeros((10, 1)), label_dtype=label_dtype, label_shape=label_shape
    ) as b:
        assert b.import_labels(tmp_path / f"l{suffix}", annotator="imp").tolist() == [2, 5, 8]
        assert b.labels.tolist() == [values[1], values[2], values[0]]
        assert [e.annotator for e in b.history()] == ["imp"]


def test_history_export(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", np.zeros((10, 1)), classes=["x", "y"]) as s:
        s.add_labels([(0, "x"), (4, "y")], annotator="ann", round=1)
        s.relabel([4], ["x"], annotator="bob")
        s.remove_labels([0])
        assert s.export_history(tmp_path / "h.jsonl") == 4
        assert s.export_history(tmp_path / "h.parquet") == 4
    rows = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "h.parquet").to_pylist() == rows
    assert [
        (r["version"], r["kind"], r["dataset_index"], r["label"], r["previous"]) for r in rows
    ] == [
        (1, "add", 0, "x", None),
        (1, "add", 4, "y", None),
        (2, "relabel", 4, "x", "y"),
        (3, "remove", 0, "x", None),
    ]
    assert rows[0]["annotator"] == "ann" and rows[0]["round"] == 1


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("idx,label\n1,2\n", "line 1: the header must start with 'dataset_index,label'"),
        ("dataset_index,label\n1,2\nx,3\n", "line 3: dataset_index must be an integer, got 'x'"),
        ("dataset_index,label\n1,2\n99,3\n", r"line 3: dataset_index 99 is out of range \[0, 10\)"),
        ("dataset_index,label\n1,2\n1,3\n", "line 3: dataset_index 1 repeats line 2"),
        ("dataset_index,label\n1,2\n2,2.5\n", "line 3: label '2.5' is not a int64"),
        ("dataset_index,label\n1\n", "line 2: expected 2 fields"),
    ],
)
def test_bad_csv_rows_name_the_line_and_write_nothing(
    tmp_path: Path, text: str, match: str
) -> None:
    (tmp_path / "in.csv").write_text(text)
    with alma_store.create(tmp_path / "s", np.zeros((10, 1))) as s:
        with pytest.raises(InvalidInputError, match=match):
            s.import_labels(tmp_path / "in.csv")
        assert s.version == 0


def test_bad_jsonl_and_already_labeled(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", np.zeros((10, 1))) as s:
        s.add_labels([4], [1], relative_to="dataset")
        (tmp_path / "a.jsonl").write_text('{"dataset_index": 1, "label": 2}\n{oops\n')
        with pytest.raises(InvalidInputError, match="line 2: not JSON"):
            s.import_labels(tmp_path / "a.jsonl")
        (tmp_path / "b.jsonl").write_text(
            '{"dataset_index": 1, "label": 2}\n{"dataset_index": 1.5, "label": 2}\n'
        )
        with pytest.raises(InvalidInputError, match="line 2: dataset_index must be an integer"):
            s.import_labels(tmp_path / "b.jsonl")
        (tmp_path / "c.jsonl").write_text(
            '{"dataset_index": 1, "label": 2}\n\n{"dataset_index": 4, "label": 2}\n'
        )
        with pytest.raises(AlreadyLabeledError, match="line 3: dataset_index 4 is labeled already"):
            s.import_labels(tmp_path / "c.jsonl")
        with pytest.raises(InvalidInputError, match=r"must end in \.csv, \.jsonl or \.parquet"):
            s.export_labels(tmp_path / "x.txt")
        assert s.version == 1


def test_bad_parquet_rows(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"dataset_index": [1, 2], "label": ["a", "b"]}), tmp_path / "p.parquet")
    pq.write_table(pa.table({"index": [1]}), tmp_path / "q.parquet")
    with alma_store.create(tmp_path / "s", np.zeros((10, 1))) as s:
        with pytest.raises(
            InvalidInputError,
            match=r"p\.parquet: row 1: labels must be numbers for label dtype int64",
        ):
            s.import_labels(tmp_path / "p.parquet")
        with pytest.raises(
            InvalidInputError, match="must have columns 'dataset_index' and 'label'"
        ):
            s.import_labels(tmp_path / "q.parquet")
        assert s.version == 0


def test_csv_exports_escape_formulas_and_read_back_exactly(tmp_path: Path) -> None:
    """Cells a spreadsheet would run (=, +, -, @ first) get a leading ' (OWASP); numbers
    never; raw=True writes them as they are; an import reads either export back exactly."""
    import csv

    def read(name: str) -> list[list[str]]:
        with (tmp_path / name).open(newline="") as f:
            return list(csv.reader(f))

    classes = ['=HYPERLINK("http://x")', "+cmd", "@sum", "-2", "'quoted", "plain"]
    with alma_store.create(tmp_path / "s", n_items=10, classes=classes) as store:
        store.add_labels(list(range(6)), classes, relative_to="dataset", annotator="=evil()")
        store.export_labels(tmp_path / "labels.csv")
        store.export_labels(tmp_path / "raw.csv", raw=True)
        store.export_history(tmp_path / "history.csv")
        store.export_history(tmp_path / "history.jsonl")
    rows = read("labels.csv")[1:]
    assert [r[1] for r in rows] == [
        '\'=HYPERLINK("http://x")',
        "'+cmd",
        "'@sum",
        "'-2",
        "''quoted",
        "plain",
    ]
    raw = read("raw.csv")[1:]
    assert [r[1] for r in raw] == classes
    head, *history = read("history.csv")
    assert {h[head.index("annotator")] for h in history} == {"'=evil()"}
    assert all(not h[0].startswith("'") for h in history)
    lines = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert {x["annotator"] for x in lines} == {"=evil()"}  # JSON Lines: no spreadsheet, no escape
    with alma_store.create(tmp_path / "back", n_items=10, classes=classes) as back:
        back.import_labels(tmp_path / "labels.csv")
        assert back.class_names(back.labels).tolist() == classes
    with alma_store.create(tmp_path / "neg", n_items=3, label_dtype="int64") as numbers_store:
        numbers_store.add_labels([0, 1], [-5, 7], relative_to="dataset")
        numbers_store.export_labels(tmp_path / "neg.csv")
    assert [r[1] for r in read("neg.csv")][1:] == ["-5", "7"]
