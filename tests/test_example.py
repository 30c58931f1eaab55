"""The end-to-end example runs, resumes in a second process, and margin sampling helps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import alma_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_example_digits(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "example_digits.py"),
            "--dir",
            str(tmp_path),
            "--rounds",
            "6",
            "--out",
            str(tmp_path / "curve.png"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "margin: rounds 4-6 done" in out  # the second half ran in a new process
    curves = json.loads((tmp_path / "curves.json").read_text())
    assert [n for n, _ in curves["margin"]] == [20, 40, 60, 80, 100, 120]
    assert curves["margin"][-1][1] > curves["margin"][0][1]
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    with alma_store.open(tmp_path / "margin.alma", mode="r") as store:
        assert store.num_labeled == 140 and [r.round for r in store.rounds()] == list(range(7))
        for r in range(1, 7):  # every round labeled what its recorded strategy picks
            replay = store.replay(r)
            assert replay.matches and len(replay.expected) == 20, (r, replay)


def test_figure_select(tmp_path: Path) -> None:
    """The guide's picture of selection is drawn by tools/figure_select.py."""
    out = tmp_path / "select.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "figure_select.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
