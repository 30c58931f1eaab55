"""The ``alma`` command line, run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store.cli import cli, main


def test_info_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with alma_store.create(tmp_path / "s", np.zeros((9, 2))) as s:
        s.add_labels([(0, 1)])
    assert main(["info", str(tmp_path / "s"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["n_items"], out["num_labeled"], out["version"]) == (9, 1, 1)
    assert main(["info", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("alma: error: no alma_store at") and err.count("\n") == 1


def test_demo_runs_and_learns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dir", str(tmp_path), "--rounds", "3"]) == 0
    out = capsys.readouterr().out
    assert "round 3: trained on   60 labels" in out and "verified" in out
    with alma_store.open(tmp_path / "digits.alma", "r") as s:
        assert s.num_labeled == 80 and s.version == 4


def test_every_command_has_help() -> None:
    for name, command in cli.commands.items():
        assert command.help and command.help.strip(), name
