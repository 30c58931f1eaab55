"""Imports of real Label Studio 1.23.2 exports, and doccano's JSON Lines.

``tests/data/labelstudio/`` was recorded from a real server by
``tools/labelstudio_capture.py``: a project made with ``store.labelstudio_config()``
(``config.xml``, which the server accepted), tasks from ``export_tasks``, two users
(``users.json``: ids to emails), a skipped task (4), an overlap (item 0: cat by user
1, dog by user 2), then the JSON, JSON-MIN, CSV and snapshot (``only_id: false``)
exports of week 1; in week 2 two more annotations and user 1's answer on item 2
edited from bird to cat, and the same four (cumulative) exports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alma_store
from alma_store.cli import main

DATA = Path(__file__).parent / "data" / "labelstudio"
CLASSES = ["cat", "dog", "bird"]
USERS = json.loads((DATA / "users.json").read_text())
EXPORTS = ["json", "min.json", "csv", "snapshot.json"]
WEEK1 = [
    (0, "admin@alma.test", "cat"),
    (0, "bob@alma.test", "dog"),
    (1, "admin@alma.test", "dog"),
    (2, "admin@alma.test", "bird"),
    (3, "admin@alma.test", "cat"),
    (5, "bob@alma.test", "cat"),
    (6, "bob@alma.test", "dog"),
]


def campaign(tmp_path: Path, per_item: int = 2) -> alma_store.Store:
    return alma_store.create(
        tmp_path / "s", n_items=12, classes=CLASSES, annotations_per_item=per_item
    )


def annotations(store: alma_store.Store) -> list[tuple[int, str, str]]:
    held = store.annotations(range(len(store)))
    return sorted((i, a.annotator, a.label) for i, items in enumerate(held) for a in items)


@pytest.mark.parametrize("export", EXPORTS)
def test_every_export_format_gives_the_same_annotations(tmp_path: Path, export: str) -> None:
    with campaign(tmp_path) as store:
        added = store.import_labels(
            DATA / f"week1.{export}", format="label-studio", annotators=USERS
        )
        assert sorted(added.tolist()) == [0, 0, 1, 2, 3, 5, 6] and added.skipped == 0
        assert annotations(store) == WEEK1  # the skipped task 4 is no label
        assert store.num_labeled == 0  # two annotations make a label: none has two alike
        assert store.disputed().tolist() == [0]  # cat against dog
        version = store.version
        again = store.import_labels(
            DATA / f"week1.{export}", format="label-studio", annotators=USERS
        )
        assert len(again) == 0 and again.skipped == 7 and store.version == version


@pytest.mark.parametrize("export", EXPORTS)
def test_next_weeks_cumulative_export_names_the_edited_answer(tmp_path: Path, export: str) -> None:
    with campaign(tmp_path) as store:
        store.import_labels(DATA / f"week1.{export}", format="label-studio", annotators=USERS)
        version = store.version
        with pytest.raises(alma_store.InvalidInputError) as err:
            store.import_labels(DATA / f"week2.{export}", format="label-studio", annotators=USERS)
        message = str(err.value)
        assert "'bird' before and 'cat' in the export" in message
        assert "annotation 3" in message and "nothing was written" in message
        assert message.count(str(DATA / f"week2.{export}")) == 1
        assert store.version == version


def test_ids_stay_ids_without_a_map_and_the_snapshot_names_emails(tmp_path: Path) -> None:
    with campaign(tmp_path) as store:
        store.import_labels(DATA / "week1.csv", format="label-studio")
        assert {a for _, a, _ in annotations(store)} == {"1", "2"}
    with campaign(tmp_path / "b") as store:
        store.import_labels(DATA / "week1.snapshot.json", format="label-studio")
        assert annotations(store) == WEEK1


def test_an_overlap_into_a_one_label_store_says_what_to_do(tmp_path: Path) -> None:
    with campaign(tmp_path, per_item=1) as store:
        with pytest.raises(alma_store.InvalidInputError, match="annotations_per_item=k") as err:
            store.import_labels(DATA / "week1.min.json", format="label-studio")
        assert "'cat' by 1 and 'dog' by 2" in str(err.value) or "'dog' by 2" in str(err.value)
        assert store.version == 0


def test_the_recorded_config_is_the_one_the_store_writes(tmp_path: Path) -> None:
    with campaign(tmp_path) as store:
        assert (
            store.labelstudio_config(field="text", show="Text") == (DATA / "config.xml").read_text()
        )
        with pytest.raises(alma_store.InvalidInputError, match="show must be one of"):
            store.labelstudio_config(show="Script")
        with pytest.raises(alma_store.InvalidInputError, match="field must name"):
            store.labelstudio_config(field="a b")
    with alma_store.create(tmp_path / "n", n_items=3) as plain:
        with pytest.raises(alma_store.InvalidInputError, match="give classes"):
            plain.labelstudio_config()
        assert '<Choice value="1"/>' in plain.labelstudio_config(classes=[0, 1])


def test_csv_labels_take_the_stores_dtype_and_bad_files_are_named(tmp_path: Path) -> None:
    header = '"annotation_id","annotator","created_at","dataset_index","id","label","lead_time","text","updated_at"\n'
    row = '{a},"{who}","2026-12-02T22:11:07.302002Z",{i},13,"{label}","","t","2026-12-02T22:11:07.302034Z"\n'
    good = tmp_path / "numbers.csv"
    good.write_text(
        header + row.format(a=1, who=1, i=4, label=3) + row.format(a=2, who=1, i=5, label=-2)
    )
    with alma_store.create(tmp_path / "n", n_items=10, label_dtype="int64") as store:
        assert store.import_labels(good, format="label-studio").tolist() == [4, 5]
        assert store.labels.tolist() == [3, -2]
        bad = tmp_path / "bad.csv"
        bad.write_text(header + row.format(a=3, who=1, i=6, label="three"))
        with pytest.raises(alma_store.InvalidInputError, match=r"bad.csv line 2 .*'three' is not"):
            store.import_labels(bad, format="label-studio")
        other = tmp_path / "other.csv"
        other.write_text("a,b\n1,2\n")
        with pytest.raises(alma_store.InvalidInputError, match="dataset_index column"):
            store.import_labels(other, format="label-studio")
        unnamed = tmp_path / "unnamed.json"
        unnamed.write_text(
            json.dumps([{"dataset_index": 1, "sentiment": "x", "annotator": 1, "annotation_id": 1}])
        )
        with pytest.raises(alma_store.InvalidInputError, match=r"no 'label' field.*export as JSON"):
            store.import_labels(unnamed, format="label-studio")
        with pytest.raises(alma_store.InvalidInputError, match="annotator= is for doccano"):
            store.import_labels(good, format="label-studio", annotator="x")
        with pytest.raises(alma_store.InvalidInputError, match="a user id is an int or a str"):
            store.import_labels(good, format="label-studio", annotators={1.5: "x"})
        with pytest.raises(alma_store.InvalidInputError, match="give format="):
            store.import_labels(good, annotators={1: "x"})


def test_doccano_one_file_per_annotator(tmp_path: Path) -> None:
    with campaign(tmp_path) as store:
        store.export_tasks(
            tmp_path / "tasks.jsonl", [0, 1, 2], format="doccano", data=lambda i: {"text": f"t{i}"}
        )
        tasks = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()]
        assert tasks[1] == {"dataset_index": 1, "text": "t1"}
        for who, labels in (("ann", ["cat", "dog", None]), ("bo", ["cat", "bird", "dog"])):
            lines = [
                {"id": 10 + n, **task, "label": [] if label is None else [label], "Comments": []}
                for n, (task, label) in enumerate(zip(tasks, labels, strict=True))
            ]
            path = tmp_path / f"{who}.jsonl"
            path.write_text("".join(json.dumps(line) + "\n" for line in lines))
            store.import_labels(path, format="doccano", annotator=who)
        assert annotations(store) == [
            (0, "ann", "cat"),
            (0, "bo", "cat"),
            (1, "ann", "dog"),
            (1, "bo", "bird"),
            (2, "bo", "dog"),
        ]
        assert (
            len(store.import_labels(tmp_path / "ann.jsonl", format="doccano", annotator="ann")) == 0
        )
        with pytest.raises(alma_store.InvalidInputError, match="one annotator's"):
            store.import_labels(tmp_path / "ann.jsonl", format="doccano")
        two = tmp_path / "two.jsonl"
        two.write_text(json.dumps({"dataset_index": 3, "label": ["cat", "dog"]}) + "\n")
        with pytest.raises(
            alma_store.InvalidInputError, match=r"two.jsonl line 1: expected exactly one label"
        ):
            store.import_labels(two, format="doccano", annotator="ann")


def test_the_cli_imports_with_a_user_map_and_writes_the_config(tmp_path: Path, capsys) -> None:
    campaign(tmp_path).close()
    store = str(tmp_path / "s")
    assert (
        main(
            [
                "import",
                store,
                str(DATA / "week1.csv"),
                "--format",
                "label-studio",
                "--annotators",
                str(DATA / "users.json"),
            ]
        )
        == 0
    )
    assert "imported 7 annotations" in capsys.readouterr().out
    with alma_store.open(store, mode="r") as s:
        assert annotations(s) == WEEK1
    config = tmp_path / "config.xml"
    assert (
        main(
            [
                "export-tasks",
                store,
                str(tmp_path / "t.json"),
                "--format",
                "label-studio",
                "--items",
                "7,8",
                "--config",
                str(config),
            ]
        )
        == 0
    )
    assert config.read_text() == (DATA / "config.xml").read_text()


@settings(max_examples=60, deadline=None)
@given(
    tasks=st.lists(
        st.tuples(
            st.integers(0, 11),
            st.sampled_from(CLASSES),
            st.sampled_from([1, 2, "x@alma.test", "ü@alma.test"]),
            st.text(max_size=12),  # any text beside the label, brackets and quotes too
            st.sampled_from(["", "rating", "number"]),
        ),
        max_size=12,
    ),
    indent=st.sampled_from([None, 0, 2]),
    window=st.sampled_from([1, 2, 7, 64]),
)
def test_json_exports_read_the_same_through_any_window(
    tmp_path_factory: pytest.TempPathFactory, tasks: list, indent: int | None, window: int
) -> None:
    """The JSON export is decoded task by task from a window of the text; tasks cut by
    the window's end (in a string, a number, a key) read as the whole file reads."""
    from alma_store import exchange
    from alma_store.exchange import _tools

    body = []
    for n, (index, label, who, text, kind) in enumerate(tasks):
        value = {"choices": [label]} if not kind else {kind: 10 ** (n % 4) + 0.5 * (n % 2)}
        result = {"type": kind or "choices", "value": value}
        body.append(
            {
                "id": n + 1,
                "data": {"dataset_index": index, "text": text},
                "annotations": [
                    {
                        "id": n,
                        "completed_by": who,
                        "result": [result],
                        "created_at": "2026-12-02T10:00:00Z",
                    }
                ],
            }
        )
    path = tmp_path_factory.mktemp("w") / "export.json"
    path.write_text(json.dumps(body, indent=indent, ensure_ascii=False), encoding="utf-8")
    whole = exchange.read_tool_export(path, "label-studio")
    assert [(r.dataset_index, r.value) for r in whole] == [
        (t[0], t[1] if not t[4] else 10 ** (n % 4) + 0.5 * (n % 2)) for n, t in enumerate(tasks)
    ]
    before = _tools.READ_CHARS
    _tools.READ_CHARS = window
    try:
        assert exchange.read_tool_export(path, "label-studio") == whole
    finally:
        _tools.READ_CHARS = before
