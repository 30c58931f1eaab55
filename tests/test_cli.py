"""The ``alma`` command line, run in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store.cli import cli, main
from alma_store.storage import FORMAT_VERSION


@pytest.fixture
def features(tmp_path: Path) -> str:
    np.save(tmp_path / "x.npy", np.arange(40.0).reshape(20, 2))
    return str(tmp_path / "x.npy")


def _first_column(rows: np.ndarray) -> np.ndarray:
    return rows[:, 0]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_campaign_through_the_cli(tmp_path: Path, features: str, capsys) -> None:
    s = str(tmp_path / "s")
    assert run(capsys, "init", s, features, "--classes", "cat,dog", "--chunk-rows", "8")[0] == 0
    code, out, _ = run(capsys, "label", s, "3=dog", "7=cat", "--annotator", "ann", "--round", "0")
    assert code == 0 and "(dataset indices [3, 7]); version 1" in out
    code, out, _ = run(capsys, "label", s, "0=cat", "--unlabeled", "--round", "1")
    assert "dataset indices [0]" in out
    (tmp_path / "in.csv").write_text("dataset_index,label\n10,dog\n11,dog\n")
    assert run(capsys, "import", s, str(tmp_path / "in.csv"), "--annotator", "imp")[0] == 0
    code, out, _ = run(capsys, "info", s, "--json")
    info = json.loads(out)
    assert (info["num_labeled"], info["version"], info["per_class"]) == (5, 3, {"cat": 2, "dog": 3})
    assert [r["round"] for r in info["rounds"]] == [0, 1, None]
    assert info["last_commit"]["annotator"] == "imp"
    code, out, _ = run(capsys, "info", s)
    assert "per class      cat: 2, dog: 3" in out
    code, out, _ = run(capsys, "history", s, "--json", "--annotator", "ann")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [
        {
            **rows[0],
            "version": 1,
            "kind": "add",
            "dataset_indices": [3, 7],
            "labels": ["dog", "cat"],
        }
    ]
    code, out, _ = run(capsys, "history", s, "--start", "5")
    assert out.count("\n") == 2 and "7=cat" in out and "10=dog, 11=dog" in out
    code, out, _ = run(capsys, "verify", s, "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    assert (
        run(capsys, "export", s, str(tmp_path / "l.jsonl"))[1]
        == f"wrote 5 rows to {tmp_path / 'l.jsonl'}\n"
    )
    assert run(capsys, "export", s, str(tmp_path / "h.csv"), "--history")[0] == 0
    assert (tmp_path / "h.csv").read_text().startswith("version,kind,dataset_index,label,previous")
    assert run(capsys, "plot", s, str(tmp_path / "p.png"))[0] == 0
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors_are_one_line(tmp_path: Path, features: str, capsys) -> None:
    s = str(tmp_path / "s")
    run(capsys, "init", s, features, "--classes", "cat,dog")
    for argv, message in [
        (("label", s, "3=cow"), "unknown class 'cow'"),
        (("label", s, "x=cat"), "argument 1: index 'x' is not an integer"),
        (("label", s, "3"), "argument 1 must be INDEX=LABEL"),
        (("info", str(tmp_path / "missing")), "no alma_store at"),
        (("init", s, features), "exists and is a store"),
        (
            ("init", str(tmp_path / "t"), features, "--label-shape", "a"),
            "--label-shape must be ints",
        ),
    ]:
        code, _, err = run(capsys, *argv)
        assert code == 1, argv
        assert err.startswith("alma: error: ") and message in err and err.count("\n") == 1, err


def test_verify_fails_on_damage(tmp_path: Path, features: str, capsys) -> None:
    s = tmp_path / "s"
    with alma_store.create(s, features, chunk_rows=4) as store:
        store.add_labels([(1, 1)])
        store.checkpoint()
    chunk = next((s / "state" / "mask" / "c").iterdir())
    chunk.write_bytes(b"garbage")
    code, _, err = run(capsys, "verify", str(s))
    assert code == 1 and "damaged" in err


def test_demo_runs_and_learns(tmp_path: Path, capsys) -> None:
    code, out, _ = run(capsys, "demo", "--dir", str(tmp_path), "--rounds", "3")
    assert code == 0
    assert "round 3: trained on   60 labels" in out and "verified" in out
    with alma_store.open(tmp_path / "digits.alma", "r") as s:
        assert s.num_labeled == 80 and s.version == 4


def test_every_command_has_help(capsys) -> None:
    assert set(cli.commands) == {
        "init",
        "copy",
        "info",
        "label",
        "import",
        "export",
        "history",
        "verify",
        "upgrade",
        "plot",
        "demo",
        "score",
        "query",
        "select",
        "report",
        "claim",
        "release",
        "claims",
        "export-tasks",
        "agreement",
        "metrics",
        "labelstudio",
        "replay",
        "require",
    }
    for name, command in cli.commands.items():
        assert command.help and command.help.strip(), name
        assert run(capsys, name, "--help")[0] == 0
    for name, command in cli.commands["labelstudio"].commands.items():
        assert command.help and command.help.strip(), name
        assert run(capsys, "labelstudio", name, "--help")[0] == 0


def test_python_dash_m(tmp_path: Path) -> None:
    from .conftest import run_python

    out = run_python(
        "import runpy, sys; sys.argv = ['alma', '--help']; runpy.run_module('alma_store', run_name='__main__')"
    )
    assert "Persistent, crash-safe" in out.stdout


def test_score_and_query(tmp_path: Path, features: str, capsys, monkeypatch) -> None:
    s = str(tmp_path / "s")
    run(capsys, "init", s, features, "--chunk-rows", "4")
    (tmp_path / "scoring_fn.py").write_text(
        "def first(rows):\n    return rows[:, 0]\n\ndef pair(rows):\n    return rows[:, :2]\n"
    )
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(
        capsys, "score", s, "--fn", "scoring_fn:first", "--name", "f", "--shard", "0/2"
    )
    assert code == 0 and "scored 3 chunks of 'f' (shard 0/2); 3 of 5 done" in out
    code, _, err = run(capsys, "query", s, "--name", "f", "--top-k", "2")
    assert code == 1 and "incomplete" in err
    run(capsys, "score", s, "--fn", "scoring_fn:first", "--name", "f", "--shard", "1/2")
    code, out, _ = run(capsys, "query", s, "--name", "f", "--top-k", "3", "--json")
    assert json.loads(out) == {
        "version": 0,
        "dataset_indices": [19, 18, 17],
        "scores": [38.0, 36.0, 34.0],
    }
    code, out, _ = run(capsys, "query", s, "--name", "f", "--top-k", "2", "--smallest")
    assert out.splitlines()[1:] == ["0\t0", "1\t2"]
    code, _, err = run(capsys, "score", s, "--fn", "nomodule:x", "--name", "g")
    assert code == 1 and "cannot import 'nomodule:x'" in err
    # A scoring of two values per row, ranked by a reduction.
    code, _, err = run(capsys, "score", s, "--fn", "scoring_fn:pair", "--name", "p")
    assert code == 1 and "score with columns=2" in err
    code, out, _ = run(
        capsys, "score", s, "--fn", "scoring_fn:pair", "--name", "p2", "--columns", "2"
    )
    assert code == 0 and "5 of 5 done" in out
    code, _, err = run(capsys, "query", s, "--name", "p2", "--top-k", "2")
    assert code == 1 and "pass reduce=" in err
    code, out, _ = run(
        capsys, "query", s, "--name", "p2", "--top-k", "2", "--reduce", "max", "--json"
    )
    assert json.loads(out)["dataset_indices"] == [19, 18]


def test_upgrade_of_a_v1_store(tmp_path: Path, capsys) -> None:
    shutil.copytree(Path(__file__).parent / "data" / "store-v1", tmp_path / "s")
    code, out, _ = run(capsys, "upgrade", str(tmp_path / "s"))
    assert code == 0 and f"from format version 1 to {FORMAT_VERSION}" in out
    code, out, _ = run(capsys, "upgrade", str(tmp_path / "s"))
    assert code == 0 and f"at format version {FORMAT_VERSION} already" in out
    code, out, _ = run(capsys, "verify", str(tmp_path / "s"))
    assert code == 0 and "version 3, 5 labeled" in out


def test_campaign_commands(tmp_path: Path, capsys) -> None:
    s = str(tmp_path / "s")
    assert (
        run(
            capsys,
            "init",
            s,
            "--n-items",
            "30",
            "--classes",
            "cat,dog",
            "--annotations-per-item",
            "2",
        )[0]
        == 0
    )
    code, out, _ = run(capsys, "claim", s, "--annotator", "ann", "-k", "4", "--json")
    claim = json.loads(out)
    assert code == 0 and claim["dataset_indices"] == [0, 1, 2, 3]
    # Two annotations per item: bob may hold 2 as well (its second annotation), cyd not.
    assert run(capsys, "claim", s, "--annotator", "bob", "--items", "2,9")[0] == 0
    code, _, err = run(capsys, "claim", s, "--annotator", "cyd", "--items", "2,10")
    assert code == 1 and "claimed by another annotator" in err and "2 (" in err
    code, out, _ = run(capsys, "claims", s)
    assert out.startswith(claim["id"]) and "4 of 4 items to annotate" in out
    tasks = tmp_path / "t.jsonl"
    code, out, _ = run(
        capsys, "export-tasks", s, str(tasks), "--format", "prodigy", "--claim", claim["id"]
    )
    assert code == 0 and len(tasks.read_text().splitlines()) == 4
    lines = []
    for k, (who, picks) in enumerate((("alice", "cat cat dog dog"), ("bob", "cat dog dog cat"))):
        for n, pick in enumerate(picks.split()):
            lines.append(
                json.dumps(
                    {
                        "dataset_index": n,
                        "answer": "accept",
                        "accept": [pick],
                        "_annotator_id": who,
                        "_timestamp": 1_780_000_000 + 10 * k,
                    }
                )
            )
    (tmp_path / "db.jsonl").write_text("\n".join(lines) + "\n")
    code, out, _ = run(capsys, "import", s, str(tmp_path / "db.jsonl"), "--format", "prodigy")
    assert code == 0 and "imported 8 annotations" in out
    code, out, _ = run(capsys, "claims", s)  # bob annotated 2 of his claim: 9 is left to do
    assert "bob" in out and "1 of 2 items to annotate" in out
    rows = [json.loads(line) for line in run(capsys, "claims", s, "--json")[1].splitlines()]
    assert [r["unlabeled"] for r in rows if r["annotator"] == "bob"] == [[9]]
    code, out, _ = run(capsys, "history", s)
    assert "annotate alice,bob round=None 8 annotations (2 decided): 0=cat, 1=cat" in out
    code, out, _ = run(capsys, "history", s, "--json")
    assert json.loads(out)["annotations"]["annotators"] == ["alice"] * 4 + ["bob"] * 4
    code, out, _ = run(capsys, "agreement", s)
    assert code == 0 and "Cohen's kappa" in out and "disputed         2 items" in out
    code, out, _ = run(capsys, "agreement", s, "--json")
    assert json.loads(out)["kappa"] == pytest.approx(0.0) and json.loads(out)["disputed"] == 2
    assert run(capsys, "metrics", s, "--round", "0", "accuracy=0.61", "model=lr")[0] == 0
    code, out, _ = run(capsys, "metrics", s)
    assert "round=0 labels=2" in out and "accuracy=0.61 model=lr" in out
    assert run(capsys, "release", s, claim["id"])[1].startswith("released")
    assert (
        run(capsys, "require", s, "3", "--items", "20,21")[1]
        == "2 items: 3 annotations from now on\n"
    )
    code, _, err = run(capsys, "require", s, "1")  # items with one annotation would be full
    assert code == 1 and "give it its own requirement first" in err
    assert run(capsys, "require", s, "3")[0] == 0
    assert run(capsys, "require", s, "2", "--disputed")[0] == 1  # disputed items have 2 already
    code, _, err = run(capsys, "require", s, "2", "--items", "1", "--disputed")
    assert code == 1 and "at most one of" in err
    with alma_store.open(s, mode="r") as store:
        assert store.required_annotations([2, 20, 22]).tolist() == [3, 3, 3]
    # bob annotated 2 (an import above), not 9: his claim holds 9 still.
    assert (
        "bob until" in run(capsys, "claims", s)[1] and "1 of 2 items" in run(capsys, "claims", s)[1]
    )
    code, out, _ = run(capsys, "report", s, str(tmp_path / "r.html"))
    page = (tmp_path / "r.html").read_text()
    assert code == 0 and "Cohen&#x27;s kappa" in page and "data:image/png;base64," in page


def test_agreement_json_has_null_for_undefined_figures(tmp_path: Path, capsys) -> None:
    s = str(tmp_path / "s")
    assert (
        run(
            capsys,
            "init",
            s,
            "--n-items",
            "4",
            "--classes",
            "NaN-ish,other",
            "--annotations-per-item",
            "2",
        )[0]
        == 0
    )
    for who in ("a", "b"):  # one class only: kappa and alpha are undefined
        assert run(capsys, "label", s, "0=NaN-ish", "1=NaN-ish", "--annotator", who)[0] == 0
    code, out, _ = run(capsys, "agreement", s, "--json")
    got = json.loads(out)
    assert code == 0 and got["kappa"] is None and got["alpha"] is None
    assert set(got["per_class"]) == {"NaN-ish"}  # a class name is not a number to rewrite


def test_agreement_lists_the_items_of_most_disagreement(tmp_path: Path, capsys) -> None:
    s = str(tmp_path / "s")
    init = ["init", s, "--n-items", "5", "--classes", "cat,dog", "--annotations-per-item", "2"]
    assert run(capsys, *init)[0] == 0
    assert run(capsys, "label", s, "0=cat", "1=cat", "2=dog", "--annotator", "a")[0] == 0
    assert run(capsys, "label", s, "0=cat", "1=dog", "2=dog", "--annotator", "b")[0] == 0
    code, out, _ = run(capsys, "agreement", s, "--disagreements", "1", "--json")
    got = json.loads(out)
    assert code == 0 and got["disagreements"] == [
        {"dataset_index": 1, "disagreement": 1.0, "labels": {"a": "cat", "b": "dog"}}
    ]
    code, out, _ = run(capsys, "agreement", s, "--disagreements", "1")
    assert code == 0 and "Gwet AC1" in out and "item 1  a: cat, b: dog" in out


def test_replay_checks_a_round_against_its_recorded_strategy(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(300, 2)))
    store = alma_store.create(tmp_path / "s", str(tmp_path / "x.npy"), chunk_rows=64)
    store.score(_first_column, "r1")
    picks = store.top_k("r1", 10)
    store.log_metrics(round=1, strategy="top_k", score_run="r1", k=10)
    store.add_labels(picks.dataset_indices, np.ones(10, np.int64), relative_to="dataset", round=1)
    store.score(_first_column, "r2")
    store.log_metrics(round=2, strategy="top_k", score_run="r2", k=10, largest=0)
    smallest = store.top_k("r2", 10, largest=False).dataset_indices
    taken = {*smallest.tolist(), *picks.dataset_indices.tolist()}
    others = [i for i in range(300) if i not in taken][:2]  # labeled, and no picks
    store.add_labels(
        [*smallest[:8].tolist(), *others], np.ones(10, np.int64), relative_to="dataset", round=2
    )
    assert store.replay(1).matches
    second = store.replay(2)
    assert not second.matches and sorted(second.missing.tolist()) == sorted(smallest[8:].tolist())
    assert second.extra.tolist() == sorted(others)
    with pytest.raises(alma_store.InvalidInputError, match="recorded no strategy"):
        store.replay(3)
    store.close()
    code, out, _ = run(capsys, "replay", str(tmp_path / "s"), "--round", "1")
    assert code == 0 and "are the top_k picks of 'r1'" in out
    code, out, _ = run(capsys, "replay", str(tmp_path / "s"), "--round", "2", "--json")
    assert code == 1 and json.loads(out)["missing"] == sorted(smallest[8:].tolist())
