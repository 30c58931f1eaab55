"""Round trips through Label Studio's and Prodigy's file formats.

The exports below have every field the tools write (Label Studio's "JSON"
export of a choices project, ``prodigy db-out`` of a ``textcat.manual``
session), built from the tasks the store wrote, as the tools build them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alma_store

CLASSES = ["cat", "dog"]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def label_studio_export(tasks_file: Path, answers: dict[int, list[tuple[int, str | None]]]) -> list:
    """What Label Studio exports ("JSON") after users annotate the imported tasks.

    ``answers[i]`` lists ``(user id, choice)`` per annotation of item ``i``;
    a ``None`` choice is a cancelled (skipped) annotation.
    """
    out = []
    for task_id, task in enumerate(json.loads(tasks_file.read_text()), 1):
        anns = []
        for k, (user, choice) in enumerate(answers.get(task["data"]["dataset_index"], [])):
            t = 1_780_000_000 + 3600 * task_id + 60 * k
            anns.append(
                {
                    "id": 100 * task_id + k,
                    "completed_by": user,
                    "result": []
                    if choice is None
                    else [
                        {
                            "value": {"choices": [choice]},
                            "id": f"r{task_id}{k}",
                            "from_name": "animal",
                            "to_name": "image",
                            "type": "choices",
                            "origin": "manual",
                        }
                    ],
                    "was_cancelled": choice is None,
                    "ground_truth": False,
                    "created_at": _iso(t),
                    "updated_at": _iso(t + 5),
                    "draft_created_at": None,
                    "lead_time": 4.2,
                    "prediction": {},
                    "result_count": 0,
                    "unique_id": f"u-{task_id}-{k}",
                    "import_id": None,
                    "last_action": None,
                    "task": task_id,
                    "project": 7,
                    "updated_by": user,
                    "parent_prediction": None,
                    "parent_annotation": None,
                    "last_created_by": None,
                }
            )
        out.append(
            {
                "id": task_id,
                "annotations": anns,
                "file_upload": "tasks.json",
                "drafts": [],
                "predictions": [],
                "data": task["data"],
                "meta": {},
                "created_at": _iso(1_779_990_000),
                "updated_at": _iso(1_780_090_000),
                "inner_id": task_id,
                "total_annotations": len(anns),
                "cancelled_annotations": sum(a["was_cancelled"] for a in anns),
                "total_predictions": 0,
                "comment_count": 0,
                "unresolved_comment_count": 0,
                "last_comment_updated_at": None,
                "project": 7,
                "updated_by": None,
                "comment_authors": [],
            }
        )
    return out


def prodigy_db_out(tasks_file: Path, answers: dict[int, list[tuple[str, str, str]]]) -> str:
    """What ``prodigy db-out`` writes: ``answers[i]`` lists ``(session, answer, option)``."""
    lines = []
    for n, line in enumerate(tasks_file.read_text().splitlines()):
        task = json.loads(line)
        for k, (session, answer, option) in enumerate(answers.get(task["dataset_index"], [])):
            lines.append(
                json.dumps(
                    {
                        **task,
                        "_input_hash": 1000 + n,
                        "_task_hash": 2000 + n,
                        "options": [{"id": c, "text": c} for c in CLASSES],
                        "_view_id": "choice",
                        "config": {"choice_style": "single"},
                        "accept": [option] if answer == "accept" else [],
                        "answer": answer,
                        "_timestamp": 1_780_000_000 + 60 * n + k,
                        "_annotator_id": f"animals-{session}",
                        "_session_id": f"animals-{session}",
                    }
                )
            )
    return "\n".join(lines) + "\n"


def test_label_studio_round_trip(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", np.zeros((10, 2)), classes=CLASSES) as store:
        claim = store.claim_next(4, annotator="ann", ttl=3600)
        n = store.export_tasks(
            tmp_path / "tasks.json",
            claim.dataset_indices,
            format="label-studio",
            data=lambda i: {"image": f"https://example.org/img/{i}.png"},
        )
        assert n == 4
        tasks = json.loads((tmp_path / "tasks.json").read_text())
        assert tasks[0] == {"data": {"dataset_index": 0, "image": "https://example.org/img/0.png"}}
        export = label_studio_export(
            tmp_path / "tasks.json",
            {0: [(3, "dog")], 1: [(4, None), (5, "cat")], 2: [(3, "cat")]},  # 3 not done yet
        )
        (tmp_path / "export.json").write_text(json.dumps(export))
        labeled = store.import_labels(tmp_path / "export.json", format="label-studio", round=2)
        assert labeled.tolist() == [0, 1, 2]
        assert store.class_names(store.labels).tolist() == ["dog", "cat", "cat"]
        (event,) = store.history()
        assert event.row_annotators == ("3", "5", "3") and event.round == 2
        assert store.rounds()[0].annotators == ("3", "5")
        (mine,) = store.history(annotator="3")  # the commit cut to that annotator's labels
        assert mine.dataset_indices.tolist() == [0, 2] and mine.row_annotators == ("3", "3")
        assert list(store.history(annotator="3", start=1, stop=2)) == []
        assert event.row_times[0] == pytest.approx(1_780_003_600)
        assert [c.dataset_indices.tolist() for c in store.claims()] == [[0, 1, 2, 3]]
        store.export_history(tmp_path / "h.csv")
    rows = (tmp_path / "h.csv").read_text().splitlines()
    assert rows[1].split(",")[5] == "3"  # each entry's own annotator


def test_prodigy_round_trip_with_several_annotations(tmp_path: Path) -> None:
    with alma_store.create(
        tmp_path / "s", n_items=6, classes=CLASSES, annotations_per_item=2
    ) as store:
        store.export_tasks(
            tmp_path / "tasks.jsonl", [4, 1, 2], format="prodigy", data=lambda i: {"text": f"t{i}"}
        )
        first = json.loads((tmp_path / "tasks.jsonl").read_text().splitlines()[0])
        assert first == {"dataset_index": 4, "text": "t4", "meta": {"dataset_index": 4}}
        out = prodigy_db_out(
            tmp_path / "tasks.jsonl",
            {
                4: [("alice", "accept", "cat"), ("bob", "accept", "cat")],
                1: [("alice", "accept", "dog"), ("bob", "reject", "cat")],
                2: [("alice", "accept", "dog"), ("bob", "accept", "cat"), ("cy", "ignore", "")],
            },
        )
        (tmp_path / "db-out.jsonl").write_text(out)
        got = store.import_labels(tmp_path / "db-out.jsonl", format="prodigy")
        assert sorted(got.tolist()) == [1, 2, 2, 4, 4]
        assert store.labeled.to_dataset_index([0]).tolist() == [4]
        assert store.disputed().tolist() == [2]
        (ann,) = store.annotations([1])
        assert [(a.annotator, a.value, a.time) for a in ann] == [
            ("animals-alice", 1, 1_780_000_060.0)
        ]
        assert store.version == 1  # one atomic commit
        assert store.rounds()[0].annotators == ("animals-alice", "animals-bob")
        assert len(list(store.history(annotator="animals-bob"))) == 1


def test_bad_exports_write_nothing(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", n_items=6, classes=CLASSES) as store:
        store.export_tasks(tmp_path / "t.json", [0, 1], format="label-studio")
        cases = {
            "unknown class": {0: [(1, "cat")], 1: [(1, "cow")]},
            "labeled again": {0: [(1, "cat"), (2, "dog")]},
        }
        for what, answers in cases.items():
            path = tmp_path / f"{what}.json"
            path.write_text(json.dumps(label_studio_export(tmp_path / "t.json", answers)))
            with pytest.raises(alma_store.InvalidInputError, match=r"task [01]"):
                store.import_labels(path, format="label-studio")
        store.export_tasks(tmp_path / "t.jsonl", [0, 1, 7 - 2], format="prodigy")
        broken = [
            '{"answer": "accept", "accept": ["cat"], "_timestamp": 1, "_annotator_id": "x"}',
            '{"dataset_index": 0, "answer": "maybe", "_timestamp": 1, "_annotator_id": "x"}',
            json.dumps(
                {"dataset_index": 0, "answer": "accept", "accept": ["cat", "dog"]}
                | {"_timestamp": 1, "_annotator_id": "x"}
            ),
            json.dumps(
                {"dataset_index": 99, "answer": "accept", "label": "cat"}
                | {"_timestamp": 1, "_annotator_id": "x"}
            ),
            "not json",
        ]
        for k, line in enumerate(broken):
            path = tmp_path / f"bad{k}.jsonl"
            path.write_text(
                '{"dataset_index": 1, "answer": "accept", "label": "dog", '
                '"_timestamp": 1, "_annotator_id": "x"}\n' + line + "\n"
            )
            with pytest.raises(alma_store.AlmaError, match=r"line 2|99"):
                store.import_labels(path, format="prodigy")
        with pytest.raises(alma_store.InvalidInputError, match="format"):
            store.import_labels(tmp_path / "t.json", format="cvat")
        with pytest.raises(alma_store.InvalidInputError, match="dataset_index"):
            store.export_tasks(
                tmp_path / "x.json", [0], format="prodigy", data=lambda i: {"dataset_index": 1}
            )
        store.add_labels([0], ["cat"], relative_to="dataset")
        path = tmp_path / "already.json"
        path.write_text(json.dumps(label_studio_export(tmp_path / "t.json", {0: [(1, "dog")]})))
        with pytest.raises(alma_store.AlreadyLabeledError, match="task 0"):
            store.import_labels(path, format="label-studio")
        assert store.version == 1


# -- cumulative exports -------------------------------------------------------------------


def test_cumulative_label_studio_exports_import_incrementally(tmp_path: Path) -> None:
    """Next week's export holds this week's annotations too: what the store holds is
    skipped, the new ones added, and the same export a second time writes nothing."""
    with alma_store.create(tmp_path / "s", n_items=10, classes=CLASSES) as store:
        store.export_tasks(tmp_path / "t.json", range(6), format="label-studio")
        week1 = {0: [(3, "dog")], 1: [(4, None), (5, "cat")]}
        week2 = {**week1, 2: [(3, "cat")], 3: [(5, "dog"), (6, "dog")]}  # 3: an agreeing overlap
        for name, answers in (("w1", week1), ("w2", week2)):
            (tmp_path / f"{name}.json").write_text(
                json.dumps(label_studio_export(tmp_path / "t.json", answers))
            )
        first = store.import_labels(tmp_path / "w1.json", format="label-studio")
        assert first.tolist() == [0, 1] and first.skipped == 0
        second = store.import_labels(tmp_path / "w2.json", format="label-studio")
        assert second.tolist() == [2, 3] and second.skipped == 2 and store.version == 2
        again = store.import_labels(tmp_path / "w2.json", format="label-studio")
        assert again.tolist() == [] and again.skipped == 4 and store.version == 2  # nothing
        assert store.class_names(store.labels).tolist() == ["dog", "cat", "cat", "dog"]


def test_a_changed_answer_is_refused_or_relabeled(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", n_items=10, classes=CLASSES) as store:
        store.export_tasks(tmp_path / "t.json", range(4), format="label-studio")
        for name, answers in (
            ("before", {0: [(3, "dog")], 1: [(3, "cat")]}),
            ("after", {0: [(3, "cat")], 1: [(3, "cat")], 2: [(3, "dog")]}),
            ("split", {2: [(3, "dog"), (4, "cat")]}),
        ):
            (tmp_path / f"{name}.json").write_text(
                json.dumps(label_studio_export(tmp_path / "t.json", answers))
            )
        store.import_labels(tmp_path / "before.json", format="label-studio")
        with pytest.raises(alma_store.AlreadyLabeledError, match=r"task 0.*'dog' in the store"):
            store.import_labels(tmp_path / "after.json", format="label-studio")
        assert store.version == 1  # nothing of it: not even item 2
        got = store.import_labels(
            tmp_path / "after.json", format="label-studio", on_change="relabel"
        )
        assert got.tolist() == [2] and got.relabeled.tolist() == [0] and got.skipped == 1
        assert store.class_names(store.labels).tolist() == ["cat", "cat", "dog"]
        assert [e.kind for e in store.history()] == ["add", "add", "relabel"]  # both kept
        with pytest.raises(alma_store.InvalidInputError, match="annotations_per_item"):
            store.import_labels(tmp_path / "split.json", format="label-studio")


def test_cumulative_prodigy_exports_into_several_annotations(tmp_path: Path) -> None:
    with alma_store.create(
        tmp_path / "s", n_items=6, classes=CLASSES, annotations_per_item=2
    ) as store:
        store.export_tasks(tmp_path / "t.jsonl", [0, 1], format="prodigy")
        day1 = {0: [("alice", "accept", "cat")]}
        day2 = {
            0: [("alice", "accept", "cat"), ("bob", "accept", "cat")],
            1: [("bob", "accept", "dog")],
        }
        changed = {0: [("alice", "accept", "dog")]}
        for name, answers in (("d1", day1), ("d2", day2), ("changed", changed)):
            (tmp_path / f"{name}.jsonl").write_text(prodigy_db_out(tmp_path / "t.jsonl", answers))
        assert store.import_labels(tmp_path / "d1.jsonl", format="prodigy").tolist() == [0]
        got = store.import_labels(tmp_path / "d2.jsonl", format="prodigy")
        assert sorted(got.tolist()) == [0, 1] and got.skipped == 1
        assert store.labeled.to_dataset_index([0]).tolist() == [0]  # two agree: decided
        assert store.import_labels(tmp_path / "d2.jsonl", format="prodigy").skipped == 3
        with pytest.raises(alma_store.InvalidInputError, match="annotated dataset index 0 as"):
            store.import_labels(tmp_path / "changed.jsonl", format="prodigy")
        assert store.version == 2


@settings(max_examples=25, deadline=None)
@given(
    weeks=st.lists(
        st.dictionaries(st.integers(0, 7), st.sampled_from(CLASSES), min_size=0, max_size=5),
        min_size=1,
        max_size=5,
    )
)
def test_cumulative_exports_against_a_model(
    tmp_path_factory: pytest.TempPathFactory, weeks: list[dict[int, str]]
) -> None:
    """Exports of a growing, sometimes edited answer set, imported with relabel: the store
    ends as the newest answers, and a commit is made only when something changed."""
    tmp = tmp_path_factory.mktemp("cumulative")
    answers: dict[int, str] = {}
    with alma_store.create(tmp / "s", n_items=8, classes=CLASSES) as store:
        store.export_tasks(tmp / "t.json", range(8), format="label-studio")
        for k, week in enumerate(weeks):
            before = dict(answers)
            answers.update(week)
            path = tmp / f"w{k}.json"
            export = {i: [(3, c)] for i, c in answers.items()}
            path.write_text(json.dumps(label_studio_export(tmp / "t.json", export)))
            version = store.version
            got = store.import_labels(path, format="label-studio", on_change="relabel")
            new = sorted(set(answers) - set(before))
            edited = sorted(i for i in before if before[i] != answers[i])
            assert sorted(got.tolist()) == new and sorted(got.relabeled.tolist()) == edited
            assert store.version == version + bool(new) + bool(edited)
            labeled = store.labeled.to_dataset_index(range(store.num_labeled)).tolist()
            assert (
                dict(zip(labeled, store.class_names(store.labels).tolist(), strict=True)) == answers
            )
