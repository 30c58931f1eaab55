"""Errors chosen by what the caller does: a full disk, read-only writes, stale builds."""

from __future__ import annotations

import errno
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store.errors import ReadOnlyError, StorageFullError, StoreClosedError

from .conftest import REPO, run_python


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB filesystem (tmpfs), so the disk really fills up."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(where: Path) -> Path:
    """Write a file until the disk is full; return it (delete it to free the space)."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="No space left") as info:
            _write_until_full(fd)
    finally:
        os.close(fd)
    assert info.value.errno == errno.ENOSPC
    return filler


def _write_until_full(fd: int) -> None:
    block = b"\0" * 4096
    while os.write(fd, block):
        pass


def test_full_disk_writes_nothing_and_recovers(small_disk: Path) -> None:
    path = small_disk / "s"
    with alma_store.create(path, np.zeros((5000, 2), np.float32), chunk_rows=512) as s:
        s.add_labels([0, 1], [5, 6], relative_to="dataset")
        s.checkpoint()
        filler = fill(small_disk)
        big = np.arange(2, 5000)  # a record of about 80 KB: more than the slack of any page
        with pytest.raises(StorageFullError) as info:
            s.add_labels(big, big, relative_to="dataset")
        assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
        assert "no space left" in str(info.value)
        assert s.version == 1 and s.num_labeled == 2  # nothing half-written
        filler.unlink()
        s.add_labels(big[:100], big[:100], relative_to="dataset")  # space freed: works again
        filler = fill(small_disk)
        with pytest.raises(StorageFullError):
            s.checkpoint()  # chunk files and marks index cannot be written
        filler.unlink()
        s.checkpoint()
        assert s.verify()["num_labeled"] == 102
    with alma_store.open(path, mode="r") as s:
        assert s.labels.tolist() == [5, 6, *range(2, 102)]
        assert s.verify()["records"] == 2


def test_close_that_cannot_checkpoint_releases_everything(small_disk: Path) -> None:
    path = small_disk / "s"
    s = alma_store.create(path, np.zeros((5000, 2), np.float32), chunk_rows=512)
    s.add_labels(np.arange(200), np.arange(200), relative_to="dataset")
    filler = fill(small_disk)
    with pytest.raises(StorageFullError):
        s.close()  # says why the checkpoint failed ...
    with pytest.raises(StoreClosedError):
        s.version  # noqa: B018 - ... and is closed all the same
    filler.unlink()
    with alma_store.open(path, lock_timeout=1) as again:  # the lock was released
        assert again.num_labeled == 200
        again.add_labels([(0, 1)])


def test_every_write_through_mode_r_is_read_only(tmp_path: Path) -> None:
    alma_store.create(tmp_path / "s", np.zeros((10, 1))).close()
    with alma_store.open(tmp_path / "s", mode="r") as ro:
        for write in (
            lambda: ro.add_labels([(0, 1)]),
            lambda: ro.relabel([0], [1]),
            lambda: ro.remove_labels([0]),
            lambda: ro.checkpoint(),
            lambda: ro.score(np.sum, "s"),
            lambda: ro.import_labels(tmp_path / "x.csv"),
        ):
            with pytest.raises(ReadOnlyError, match="mode='r'"):
                write()
    assert not (tmp_path / "s" / "scores").exists()


KILLED_CREATE = r"""
import sys, numpy as np, alma_store
alma_store.create(sys.argv[1], np.zeros((100, 2)), chunk_rows=16)
"""


def test_killed_create_leaves_nothing_in_the_way(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ALMA_STORE_CRASH": "fsync:3"}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_CREATE, str(tmp_path / "s")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    stale = list(tmp_path.glob(".s.creating-*"))
    assert stale and not (tmp_path / "s").exists()  # killed midway: only the hidden build
    with alma_store.create(tmp_path / "s", np.zeros((100, 2)), chunk_rows=16) as s:
        assert s.num_unlabeled == 100
    assert not list(tmp_path.glob(".s.creating-*"))  # the dead build was removed
    shutil.rmtree(tmp_path / "s")


def test_close_releases_the_marks_mapping(tmp_path: Path) -> None:
    def mapped() -> list[str]:
        return [
            line for line in Path("/proc/self/maps").read_text().splitlines() if "marks-" in line
        ]

    with alma_store.create(tmp_path / "s", np.zeros((100, 1)), chunk_rows=8) as s:
        s.add_labels([(0, 1), (40, 2)])
        s.checkpoint()
        assert s.unlabeled.to_dataset_index([0]).tolist() == [1]
        assert any(str(tmp_path) in line for line in mapped())
    gc.collect()
    assert not [line for line in mapped() if str(tmp_path) in line]
    with pytest.raises(StoreClosedError):
        s.labels  # noqa: B018


def test_a_full_mirror_disk_after_a_durable_shared_commit_says_so(
    small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The private mirror (in the temp directory) fills up while the shared storage has room:
    the commit is in, the error says so (not "nothing was written"), the handle closes, and a
    reopen sees the commit."""
    import tempfile

    from alma_store import LocalCopyError

    monkeypatch.setattr(tempfile, "tempdir", str(small_disk))  # where mirrors are made
    shared = tmp_path / "shared"  # on the big disk
    with alma_store.create(shared, n_items=20_000, shared=True) as s:
        s.add_labels([0], [1], relative_to="dataset")
    s = alma_store.open(shared)
    filler = fill(small_disk)
    big = np.arange(1, 12_000)  # a record of ~190 KB: more than any slack left
    with pytest.raises(LocalCopyError) as info:
        s.add_labels(big, big, relative_to="dataset")
    assert isinstance(info.value, OSError) and not isinstance(info.value, StorageFullError)
    assert info.value.version == 2 and "version 2 was committed" in str(info.value)
    with pytest.raises(StoreClosedError):
        s.version  # noqa: B018 - the handle is closed, not wedged
    filler.unlink()
    with alma_store.open(shared, mode="r") as again:
        assert again.version == 2 and again.num_labeled == 12_000  # every reader sees it


MISSING = r"""
import json, sys, tempfile
for name in ("matplotlib", "pyarrow", "obstore", "sklearn", "krippendorff"):
    sys.modules[name] = None  # not installed
import alma_store
from alma_store import MissingExtraError
root = tempfile.mkdtemp()
out = {}
store = alma_store.create(root + "/s", n_items=10, classes=["a", "b"], annotations_per_item=2)
store.add_labels([0], ["a"], relative_to="dataset", annotator="x")
store.add_labels([0], ["a"], relative_to="dataset", annotator="y")
calls = {
    "plot": lambda: store.plot_progress(root + "/p.png"),
    "parquet": lambda: store.export_labels(root + "/l.parquet"),
    "agreement": lambda: store.agreement(),
    "s3": lambda: alma_store.open("s3://bkt/x", storage_options={"anon": True}),
}
for name, call in calls.items():
    try:
        call()
        out[name] = None
    except MissingExtraError as exc:
        out[name] = [exc.extra, isinstance(exc, ImportError), str(exc)]
print(json.dumps(out))
"""


def test_a_missing_extra_is_an_import_error_naming_it() -> None:
    out = json.loads(run_python(MISSING).stdout.splitlines()[-1])
    for extra in ("plot", "parquet", "agreement", "s3"):
        name, is_import_error, message = out[extra]
        assert (name, is_import_error) == (extra, True)
        assert f"pip install -e '.[{extra}]'" in message
