"""A store made by one Unix user, used by another: modes follow the umask, as ``mkdir`` and
``open`` make them, local and shared stores alike.

Two users of one group are created for the test (``useradd``; the suite runs as root in
CI). Each acts in a forked child that drops to its uid and gid and sets its umask; the
child runs code already imported by the parent (another user may not read the
interpreter's own directory).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import alma_store
from alma_store import ReadOnlyError


@pytest.fixture(scope="module")
def team() -> Iterator[tuple[int, int, int]]:
    """``(gid, uid_a, uid_b)``: two fresh users of one fresh group."""
    if os.geteuid() != 0:
        pytest.skip("acting as two other Unix users needs root (CI runs as root)")
    tag = uuid.uuid4().hex[:6]
    group, users = f"almag{tag}", [f"almaa{tag}", f"almab{tag}"]
    subprocess.run(["groupadd", group], check=True)
    for user in users:
        subprocess.run(["useradd", "-M", "-N", "-g", group, "-s", "/bin/false", user], check=True)
    import grp
    import pwd

    try:
        yield (
            grp.getgrnam(group).gr_gid,
            pwd.getpwnam(users[0]).pw_uid,
            pwd.getpwnam(users[1]).pw_uid,
        )
    finally:
        for user in users:
            subprocess.run(["userdel", user], check=False)
        subprocess.run(["groupdel", group], check=False)


def as_user(uid: int, gid: int, umask: int, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a forked child as ``uid``/``gid`` with ``umask``; its JSON result, or
    ``{"error": <type name>, "message": ...}`` if it raised."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(read)
            os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid)
            os.umask(umask)
            try:
                out = {"ok": fn()}
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                out = {"error": type(exc).__name__, "message": str(exc)}
            os.write(write, json.dumps(out).encode())
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(data)


@pytest.fixture
def place() -> Iterator[Path]:
    """A directory every user may use (sticky, like /tmp)."""
    base = Path(tempfile.mkdtemp(dir="/tmp", prefix="alma-team-"))
    base.chmod(0o1777)
    try:
        yield base
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def warm(tmp_path: Path) -> None:
    """Everything the children do, once as this user: every lazy import happens here."""
    for shared in (False, True):
        where = tmp_path / f"warm-{shared}"
        with alma_store.create(where, np.zeros((20, 2), np.float32), shared=shared) as store:
            store.add_labels([0], [1], relative_to="dataset")
        with alma_store.open(where) as store:
            store.add_labels([1], [1], relative_to="dataset")
            store.labels.tolist()
            store.verify()
        with alma_store.open(where, mode="r") as store:
            store.labels.tolist()


@pytest.mark.parametrize("shared", [False, True], ids=["local", "shared"])
def test_a_group_store_is_labeled_by_a_second_user(
    team: tuple[int, int, int], place: Path, tmp_path: Path, shared: bool
) -> None:
    gid, alice, bob = team
    warm(tmp_path)
    where = place / "store"

    def make() -> list[int]:
        with alma_store.create(where, np.zeros((20, 2), np.float32), shared=shared) as store:
            store.add_labels([0, 1], [1, 2], relative_to="dataset", annotator="alice")
            store.checkpoint()
            return store.labels.tolist()

    def label() -> list[int]:
        with alma_store.open(where) as store:
            store.add_labels([5], [3], relative_to="dataset", annotator="bob")
            return store.labels.tolist()

    def read() -> dict[str, Any]:
        with alma_store.open(where, mode="r") as store:
            return {"labels": store.labels.tolist(), "verify": store.verify()["num_labeled"]}

    assert as_user(alice, gid, 0o002, make) == {"ok": [1, 2]}
    assert as_user(bob, gid, 0o002, label) == {"ok": [1, 2, 3]}  # group write: bob labels
    assert as_user(alice, gid, 0o002, label) == {
        "error": "AlreadyLabeledError",
        "message": any_text(),
    }
    assert as_user(alice, gid, 0o002, read) == {"ok": {"labels": [1, 2, 3], "verify": 3}}
    modes = {p.stat().st_mode & 0o777 for p in where.rglob("*") if not p.is_symlink()}
    assert modes <= {0o664, 0o775}, sorted(oct(m) for m in modes)


def test_without_group_write_a_second_user_reads_and_is_told_why_not_more(
    team: tuple[int, int, int], place: Path, tmp_path: Path
) -> None:
    gid, alice, bob = team
    warm(tmp_path)
    where = place / "store"

    def make() -> int:
        with alma_store.create(where, np.zeros((20, 2), np.float32)) as store:
            store.add_labels([0], [1], relative_to="dataset")
            return store.version

    def read() -> list[int]:
        with alma_store.open(where, mode="r") as store:
            return store.labels.tolist()

    def write() -> int:
        with alma_store.open(where) as store:
            return store.version

    assert as_user(alice, gid, 0o022, make) == {"ok": 1}
    assert as_user(bob, gid, 0o022, read) == {"ok": [1]}  # 0o755 / 0o644: anyone reads
    refused = as_user(bob, gid, 0o022, write)
    assert refused["error"] == ReadOnlyError.__name__
    assert "mode='r'" in refused["message"]


class any_text:
    """Equal to any str (an error message whose wording is not the point)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str)

    def __hash__(self) -> int:
        return 0
