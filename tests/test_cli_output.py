"""What the command line prints reads well at scale."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store.cli import main
from alma_store.exchange import count_rows


def test_info_names_dtypes_as_people_write_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for dtype, shown in (("int8", "int8"), ("str", "str"), ("U10", "U10"), ("float32", "float32")):
        alma_store.create(tmp_path / dtype, n_items=5, label_dtype=dtype).close()
        assert main(["info", str(tmp_path / dtype)]) == 0
        assert f"label_dtype    {shown}\n" in capsys.readouterr().out


def test_history_shows_the_first_items_of_a_commit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with alma_store.create(tmp_path / "s", n_items=5000) as store:
        store.add_labels(np.arange(2500), np.ones(2500, np.int64), relative_to="dataset")
        store.add_labels([4000], [7], relative_to="dataset", annotator="ann")
    assert main(["history", str(tmp_path / "s")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and len(lines[0]) < 200
    assert lines[0].endswith(
        "2500 items: 0=1, 1=1, 2=1, 3=1, 4=1, 5=1, 6=1, 7=1, 8=1, 9=1, ... and 2490 more"
    )
    assert lines[1].endswith("ann round=None 1 item: 4000=7")
    assert main(["history", str(tmp_path / "s"), "--all"]) == 0
    assert "2499=1" in capsys.readouterr().out


def test_import_counts_its_rows_first(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("dataset_index,label\n1,2\n3,4\n5,6\n")
    (tmp_path / "a.jsonl").write_text(
        '{"dataset_index": 1, "label": 2}\n{"dataset_index": 3, "label": 4}\n'
    )
    assert count_rows(tmp_path / "a.csv") == 3
    assert count_rows(tmp_path / "a.jsonl") == 2
    assert count_rows(tmp_path / "missing.csv") is None
    assert count_rows(tmp_path / "a.txt") is None


def test_stale_dataset_indices_are_not_called_positions(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", n_items=10) as store:
        store.add_labels([1], [1], relative_to="dataset")
        with pytest.raises(alma_store.StaleIndexError) as err:
            store.add_labels([2], [1], relative_to="dataset", expected_version=0)
        assert "positions" not in str(err.value) and "other commits landed" in str(err.value)
        with pytest.raises(alma_store.StaleIndexError, match="positions taken from an older view"):
            store.add_labels([2], [1], expected_version=0)


def test_score_reports_progress_in_rows(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", np.zeros((1000, 2)), chunk_rows=64) as store:
        store.add_labels(np.arange(0, 1000, 10), np.ones(100, np.int64), relative_to="dataset")
        seen: list[int] = []
        planned: list[tuple[int, int]] = []
        store.score(
            lambda rows: rows[:, 0],
            "zero",
            progress=seen.append,
            plan=lambda c, r: planned.append((c, r)),
            shard=(1, 2),
        )
        assert planned == [(8, sum(seen))] and len(seen) == 8
        store.score(lambda rows: rows[:, 0], "zero", plan=lambda c, r: planned.append((c, r)))
        assert planned[1] == (8, store.num_unlabeled - sum(seen))


def test_score_bar_shows_chunks_and_rate(tmp_path: Path) -> None:
    from alma_store.cli._common import chunk_bar

    out = io.StringIO()
    with (
        alma_store.create(tmp_path / "s", np.zeros((1000, 2)), chunk_rows=64) as store,
        chunk_bar("score z", disable=False, file=out) as (plan, progress),
    ):
        store.score(lambda rows: rows[:, 0], "z", progress=progress, plan=plan)
    last = out.getvalue().split("\r")[-1]
    assert "1.00k/1.00k" in last and "rows/s" in last and "chunks 16/16" in last, last


def test_init_index_only_and_arrow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa

    assert main(["init", str(tmp_path / "i"), "--n-items", "12", "--label-dtype", "int8"]) == 0
    assert ": 12 items, labels int8" in capsys.readouterr().out
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    table = pa.table({"v": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 3)})
    with (
        pa.OSFile(str(tmp_path / "x.arrow"), "wb") as sink,
        pa.ipc.new_file(sink, table.schema) as w,
    ):
        w.write_table(table)
    assert main(["init", str(tmp_path / "a"), str(tmp_path / "x.arrow"), "--column", "v"]) == 0
    with alma_store.open(tmp_path / "a", mode="r") as store:
        assert np.array_equal(np.asarray(store.unlabeled), x)
    assert main(["init", str(tmp_path / "n")]) == 1  # neither features nor --n-items
    assert "n_items alone" in capsys.readouterr().err


def test_json_times_are_iso_8601_utc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every time in --json output is ISO 8601 UTC (to the millisecond), never a bare float."""
    import json
    import re

    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    with alma_store.create(tmp_path / "s", n_items=10) as store:
        store.add_labels([1], [1], relative_to="dataset", annotator="a")
        store.clock = lambda: 1_790_000_000.25
        claim = store.claim([2], annotator="a", ttl=60)
        store.log_metrics(round=0, acc=0.5)
    assert "expires=2026-09-21T" in repr(claim)
    assert claim.expires == 1_790_000_060.25  # the float stays the attribute
    assert main(["history", str(tmp_path / "s"), "--json"]) == 0
    (commit,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert iso.match(commit["time"])
    assert main(["metrics", str(tmp_path / "s"), "--json"]) == 0
    (metric,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert iso.match(metric["time"])


def test_the_command_line_starts_without_loading_zarr() -> None:
    """``alma --help`` and ``import alma_store`` load neither zarr nor numcodecs: they are
    imported by the first store opened or created (what keeps ``alma -h`` quick)."""
    import subprocess
    import sys

    code = (
        "import sys; import alma_store.cli; "
        "print(sorted(m for m in ('zarr', 'numcodecs') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
