"""Damage to every kind of object of a shared store (format 8): named, never silent, bounded.

One store is built in a directory: six commits folded into a segment (their
commit objects deleted), a shared checkpoint at version 6, four commit objects
after it, two campaign objects. Each case copies it, damages one object (or
copies in another store's object of the same name), and reads everything a
user can: the open, labels, history, ``verify()``, claims and metrics. Where
the damage can be told, a :class:`~alma_store.CorruptStoreError` names the
object (or the missing version); where it cannot matter (a manifest the log
replaces), the store reads exactly as before. Every case must end within a
few seconds (``SIGALRM``): a damaged object never makes a reader loop.

The same holes are made on a local S3 server too, and a writer is shown never
to re-use the version of a hole.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import alma_store
from alma_store import CorruptStoreError
from alma_store.storage import DirObjects, read_shared_meta, shared_log

from .conftest import Where, labeled_of

pytest.importorskip("obstore")
pytest.importorskip("moto.server")


def build(root: Path, seed: int = 0) -> None:
    """The store every case starts from (``seed``: another store, same names)."""
    with alma_store.create(root, n_items=64, chunk_rows=8, shared=True) as store:
        for c in range(6):
            store.add_labels([c * 3 + seed], [c], relative_to="dataset")
        mirror = store._engine.mirror
        assert mirror is not None
        objects = DirObjects(root)
        fold = shared_log(objects, read_shared_meta(objects), grace=0.0)
        assert fold.compact(lambda a, b: [mirror.raw(a, b)], 6) == (6, 6)
        assert store._engine.publish_checkpoint() is not None
        for c in range(6, 10):
            store.add_labels([c * 3 + seed], [c], relative_to="dataset")
        store.clock = lambda: 1_790_000_000.0
        store.claim([40], annotator="ann", ttl=1e12)
        store.log_metrics(round=1, accuracy=0.5)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("damage")
    build(base / "store")
    build(base / "other", seed=1)
    return base / "store", base / "other"


def read_everything(root: Path) -> dict[str, Any]:
    with alma_store.open(root, mode="r") as store:
        store.clock = lambda: 1_790_000_000.0
        return {
            "labeled": labeled_of(store),
            "history": [(e.version, e.dataset_indices.tolist()) for e in store.history()],
            "verify": store.verify(),
            "claims": [c.dataset_indices.tolist() for c in store.claims()],
            "metrics": [m["accuracy"] for m in store.metrics()],
        }


@pytest.fixture
def alarm() -> Iterator[None]:
    """Fail a case that does not end within 30 s (a reader looping on damage)."""

    def stuck(*_: object) -> None:
        raise AssertionError("reading the damaged store did not end")

    old = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def log(v: int) -> str:
    return f"log/{v:020d}"


SEGMENT = f"segments/{6:020d}-{1:020d}"
CAMPAIGN = "campaign/" + f"{1:020d}"
MANIFEST = "checkpoints/" + f"{6:020d}"


def emptied(path: Path, other: Path) -> None:
    path.write_bytes(b"")


def truncated(path: Path, other: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def flipped(path: Path, other: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x20
    path.write_bytes(bytes(raw))


def foreign(path: Path, other: Path) -> None:
    shutil.copyfile(other, path)


def deleted(path: Path, other: Path) -> None:
    path.unlink()


Damage = Callable[[Path, Path], None]

# (object, damage, what the error names; None: nothing to tell, the store reads exactly)
CASES: list[tuple[str, Damage, str | None]] = [
    *((log(8), d, log(8)) for d in (emptied, truncated, flipped)),
    (log(8), foreign, "another store"),
    (log(8), deleted, "version 8"),  # log/9 and log/10 exist: a hole, not the end
    (log(7), deleted, "version 7"),  # the first after the checkpoint
    *((SEGMENT, d, SEGMENT) for d in (emptied, truncated, flipped)),
    (SEGMENT, foreign, "another store"),
    (SEGMENT, deleted, "version 1"),  # its commit objects are gone: history has a hole
    *((CAMPAIGN, d, CAMPAIGN) for d in (emptied, truncated, flipped)),
    (CAMPAIGN, foreign, "another store"),
    (CAMPAIGN, deleted, CAMPAIGN),  # campaign/2 exists: a hole
    (MANIFEST, flipped, MANIFEST),
    (MANIFEST, foreign, "another store"),
    (MANIFEST, deleted, None),  # the open reads the log from the segment instead
    ("meta.json", flipped, "meta.json"),
]


@pytest.mark.parametrize(
    ("name", "damage", "named"),
    CASES,
    ids=[f"{name}-{damage.__name__}" for name, damage, _ in CASES],
)
def test_damage_to_a_shared_object_is_named(
    built: tuple[Path, Path],
    tmp_path: Path,
    alarm: None,
    name: str,
    damage: Damage,
    named: str | None,
) -> None:
    store, other = built
    want = read_everything(store)
    assert want["history"][-1][0] == 10 and want["claims"] == [[40]]
    copy = tmp_path / "s"
    shutil.copytree(store, copy)
    damage(copy / name, other / name)
    if named is None:
        assert read_everything(copy) == want
        return
    with pytest.raises(CorruptStoreError, match=named.replace("/", ".")):
        read_everything(copy)


def test_a_chunk_object_damaged_is_named(built: tuple[Path, Path], tmp_path: Path) -> None:
    store, _ = built
    copy = tmp_path / "s"
    shutil.copytree(store, copy)
    chunk = min((copy / "chunks" / "labels").rglob("*-*"))
    flipped(chunk, chunk)
    with alma_store.open(copy, mode="r") as opened, pytest.raises(CorruptStoreError):
        opened.labels  # noqa: B018 (reading the labels fetches the chunk)


def test_a_filled_hole_is_told_by_the_chain(built: tuple[Path, Path], tmp_path: Path) -> None:
    """Version 8 written twice (a writer that did not see 9 and 10 re-used it): readers that
    cross it stop, naming it, instead of reading two histories as one."""
    store, _ = built
    copy = tmp_path / "s"
    shutil.copytree(store, copy)
    (copy / log(8)).unlink()
    (copy / log(9)).rename(tmp_path / "nine")
    (copy / log(10)).rename(tmp_path / "ten")
    with alma_store.open(copy) as writer:  # 8, 9, 10 are gone: the end is 7
        assert writer.version == 7
        writer.add_labels([63], [1], relative_to="dataset")  # a new version 8
    (tmp_path / "nine").rename(copy / log(9))  # the old 9 and 10 come back (a late sync)
    (tmp_path / "ten").rename(copy / log(10))
    with pytest.raises(CorruptStoreError, match="version 8 was written twice"):
        read_everything(copy)


def test_a_hole_on_s3_is_named_and_never_re_used(where: Where) -> None:
    with where.create(64) as store:
        for c in range(5):
            store.add_labels([c], [c], relative_to="dataset")
    objects = where.log().objects
    objects.delete(log(3))
    with pytest.raises(CorruptStoreError, match="version 3"):
        where.open()
    assert where.names("log/") == [log(1), log(2), log(4), log(5)]  # nothing created


def test_a_store_in_envelopes_reads_as_before_after_a_clean_history(
    built: tuple[Path, Path],
) -> None:
    store, _ = built
    got = read_everything(store)
    assert got["history"] == [(v, [(v - 1) * 3]) for v in range(1, 11)]
    assert got["labeled"] == {c * 3: c for c in range(10)}
    assert np.isclose(got["metrics"][0], 0.5)
