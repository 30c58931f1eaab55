"""The live sync (alma_store.labelstudio) against a stand-in of Label Studio's endpoints.

Random campaigns (annotations made, edited, skipped and deleted by two users) are
pulled through duplicate, reordered and lost deliveries, and sync processes are
SIGKILLed at fixed points: in the end the store holds what the server does, and
every annotation version is committed at most once (``(item, annotator,
updated_at)``, recorded in the commits, never twice). ``tests/test_labelstudio_server.py``
runs the sync against a real server.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import alma_store
from alma_store.errors import InvalidInputError, ToolServerError

from .labelstudio_stub import USERS, Faults, Model, serve

pytest.importorskip("httpx")
from alma_store import labelstudio

CLASSES = ["cat", "dog", "bird"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def connect() -> Iterator[object]:
    """``labelstudio.connect`` whose servers are closed after the test."""
    made: list[labelstudio.Server] = []

    def make(url: str) -> labelstudio.Server:
        made.append(labelstudio.connect(url, "token", retries=0))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture
def stub() -> Iterator[tuple[Model, Faults, str]]:
    model, faults = Model(), Faults()
    httpd, url = serve(model, faults)
    yield model, faults, url
    httpd.shutdown()
    httpd.server_close()


def make_store(path: Path, per_item: int = 1) -> alma_store.Store:
    return alma_store.create(
        path, np.zeros((40, 2)), classes=CLASSES, annotations_per_item=per_item
    )


def applied_keys(store: alma_store.Store) -> Counter[tuple[int, str, float]]:
    """How many commits recorded each (item, annotator, updated_at)."""
    keys: Counter[tuple[int, str, float]] = Counter()
    for e in store.history():
        if e.annotations is not None:
            rows = e.annotations
            keys.update(
                zip(rows.dataset_indices.tolist(), rows.annotators, rows.times, strict=True)
            )
        elif e.row_annotators is not None and e.row_times is not None:
            keys.update(zip(e.dataset_indices.tolist(), e.row_annotators, e.row_times, strict=True))
    return keys


def expected_labels(model: Model) -> dict[int, str]:
    """What a one-label store must hold: each task's one labeling annotation."""
    out = {}
    for task in model.tasks.values():
        live = [a for a in task["annotations"] if not a["was_cancelled"]]
        assert len(live) <= 1
        if live:
            out[task["data"]["dataset_index"]] = live[0]["result"][0]["value"]["choices"][0]
    return out


def held_labels(store: alma_store.Store) -> dict[int, str]:
    mask = store.labeled_mask
    idx = np.flatnonzero(np.asarray(mask[: len(store)]))
    names = store.class_names(store.labels) if len(idx) else []
    return {int(i): str(n) for i, n in zip(idx.tolist(), names, strict=True)}


def pull_until_done(store: alma_store.Store, url: str, state: Path, **kw: object) -> int:
    """Pull, starting again after each lost reply (as a cron job would)."""
    with labelstudio.connect(url, "token", retries=0) as server:
        for attempt in range(200):
            try:
                labelstudio.pull(store, server, 1, state=state, **kw)  # type: ignore[arg-type]
                return attempt
            except ToolServerError:
                continue
    raise AssertionError("the pull never got through")


def random_campaign(model: Model, rng: random.Random, tasks: list[int], steps: int) -> None:
    """Annotators at work: at most one live annotation per task (a one-label project)."""
    for _ in range(steps):
        tid = rng.choice(tasks)
        anns = model.tasks[tid]["annotations"]
        if not anns:
            model.annotate(tid, rng.choice(list(USERS)), rng.choice([*CLASSES, None]))
        else:
            ann = rng.choice(anns)
            if rng.random() < 0.6:
                model.update(tid, ann["id"], rng.choice([*CLASSES, None]))
            else:
                model.delete(tid, ann["id"])


@pytest.mark.parametrize("seed", range(12))
def test_random_campaigns_through_faulty_deliveries_commit_each_annotation_once(
    stub: tuple[Model, Faults, str], tmp_path: Path, seed: int
) -> None:
    model, faults, url = stub
    rng = random.Random(seed)
    store = make_store(tmp_path / "s")
    state = tmp_path / "state.json"
    with labelstudio.connect(url, "token", retries=0) as server:
        pushed = labelstudio.push(
            store,
            server,
            1,
            rng.sample(range(40), 12),
            data=lambda i: {"text": f"i{i}"},
            state=state,
        )
    tasks = list(pushed.task_ids.values())
    faults.p.update(duplicate=0.3, stale=0.3, lose_read=0.2)
    for _ in range(6):
        random_campaign(model, rng, tasks, rng.randrange(1, 8))
        pull_until_done(store, url, state, page_size=rng.choice([1, 2, 5, 50]))
    faults.p.update(duplicate=0.0, stale=0.0, lose_read=0.0)
    pull_until_done(store, url, state)
    assert held_labels(store) == expected_labels(model)
    assert max(applied_keys(store).values(), default=1) == 1
    before = store.version
    pull_until_done(store, url, state)  # nothing new: nothing written
    assert store.version == before


def test_a_state_lost_or_behind_is_rebuilt_from_the_store(
    stub: tuple[Model, Faults, str], tmp_path: Path, connect: Any
) -> None:
    model, _, url = stub
    store = make_store(tmp_path / "s")
    server = connect(url)
    pushed = labelstudio.push(store, server, 1, [5, 6, 7], state=tmp_path / "a.json")
    model.annotate(pushed.task_ids[5], 1, "cat")
    model.annotate(pushed.task_ids[6], 2, "dog")
    first = labelstudio.pull(store, server, 1, state=tmp_path / "a.json", round=0)
    assert sorted(first.added) == [5, 6]
    # another state file (a lost one): the fold of the history says what is applied
    again = labelstudio.pull(store, server, 1, state=tmp_path / "b.json")
    assert again.added == [] and again.relabeled == [] and again.tasks == 3
    model.update(pushed.task_ids[5], 1, "bird")
    out = labelstudio.pull(store, server, 1, state=tmp_path / "a.json", round=1)
    assert out.relabeled == [5] and held_labels(store) == {5: "bird", 6: "dog"}
    relabel = next(e for e in store.history() if e.kind == "relabel")
    assert relabel.row_annotators == (USERS[1],) and relabel.round == 1


def test_push_is_idempotent_and_finds_tasks_whose_reply_was_lost(
    stub: tuple[Model, Faults, str], tmp_path: Path, connect: Any
) -> None:
    model, faults, url = stub
    store = make_store(tmp_path / "s")
    server = connect(url)
    faults.p["lose_import"] = 1.0  # every import makes its tasks and loses its reply
    top = [9, 3, 17, 4, 30]
    out = labelstudio.push(
        store, server, 1, top, scores=[0.9, 0.8, 0.7, 0.6, 0.5], chunk_size=2, state=tmp_path / "st"
    )
    assert faults.imports == 3  # one request per chunk, none made twice
    held = sorted(t["data"]["dataset_index"] for t in model.tasks.values())
    assert held == sorted(top) and sorted(out.created.tolist()) == sorted(top)
    faults.p["lose_import"] = 0.0
    again = labelstudio.push(store, server, 1, [*top, 11], state=tmp_path / "st")
    assert again.created.tolist() == [11] and sorted(again.existing.tolist()) == sorted(top)
    assert len(model.tasks) == 6 and faults.imports == 4
    # a fresh state finds the project's tasks instead of making them again
    third = labelstudio.push(store, server, 1, top, state=tmp_path / "other")
    assert third.created.tolist() == [] and len(model.tasks) == 6


def test_push_takes_a_claim_and_a_selection(
    stub: tuple[Model, Faults, str], tmp_path: Path, connect: Any
) -> None:
    model, _, url = stub
    rng = np.random.default_rng(0)
    store = alma_store.create(tmp_path / "s", rng.normal(size=(40, 2)), classes=CLASSES)
    server = connect(url)
    claim = store.claim_next(3, annotator="alice", ttl=3600)
    picks = store.select(4)
    assert not set(picks.dataset_indices.tolist()) & set(claim.dataset_indices.tolist())
    for items in (claim, picks):
        out = labelstudio.push(store, server, 1, items, state=tmp_path / "st")
        assert sorted(out.created.tolist()) == sorted(items.dataset_indices.tolist())
    by_id = [model.tasks[t]["data"]["dataset_index"] for t in sorted(model.tasks)]
    assert by_id == [*claim.dataset_indices.tolist(), *picks.dataset_indices.tolist()]


def test_bad_input_sends_nothing(
    stub: tuple[Model, Faults, str], tmp_path: Path, connect: Any
) -> None:
    model, faults, url = stub
    store = make_store(tmp_path / "s")
    server = connect(url)
    with pytest.raises(InvalidInputError, match="dataset_index"):
        labelstudio.push(store, server, 1, [1, 2], data=lambda i: {"dataset_index": i})
    with pytest.raises(InvalidInputError, match="2 scores for 3 items"):
        labelstudio.push(store, server, 1, [1, 2, 3], scores=[0.1, 0.2])
    with pytest.raises(InvalidInputError, match="project"):
        labelstudio.pull(store, server, 0)
    with pytest.raises(InvalidInputError, match="url"):
        labelstudio.connect("127.0.0.1:8080", "token")
    with pytest.raises(InvalidInputError, match="token"):
        labelstudio.connect(url, "")
    assert model.tasks == {} and faults.imports == 0


def test_a_task_the_store_cannot_take_stops_the_pull_at_it(
    stub: tuple[Model, Faults, str], tmp_path: Path, connect: Any
) -> None:
    model, _, url = stub
    store = make_store(tmp_path / "s")
    server = connect(url)
    a = model.add_task({"dataset_index": 1})
    b = model.add_task({"dataset_index": 2})
    model.annotate(a, 1, "cat")
    model.annotate(b, 1, "cat")
    model.annotate(b, 2, "dog")  # an overlap that disagrees, in a one-label store
    with pytest.raises(InvalidInputError, match="annotations_per_item"):
        labelstudio.pull(store, server, 1, page_size=1, state=tmp_path / "st")
    assert held_labels(store) == {1: "cat"}  # the page before it is in
    cursor = json.loads((tmp_path / "st").read_text())["cursor"]
    assert cursor is not None


def test_several_annotations_per_item_report_what_they_cannot_record(
    stub: tuple[Model, Faults, str], tmp_path: Path, connect: Any
) -> None:
    model, _, url = stub
    store = make_store(tmp_path / "s", per_item=2)
    server = connect(url)
    t = model.add_task({"dataset_index": 4})
    first = model.annotate(t, 1, "cat")
    model.annotate(t, 2, "cat")
    out = labelstudio.pull(store, server, 1, state=tmp_path / "st")
    assert out.added == [4] and held_labels(store) == {4: "cat"}
    assert sorted(a.annotator for a in store.annotations([4])[0]) == sorted(USERS.values())
    model.update(t, first, "dog")
    out = labelstudio.pull(store, server, 1, state=tmp_path / "st")
    assert len(out.unapplied) == 1 and "records an annotation once" in out.unapplied[0]
    assert max(applied_keys(store).values()) == 1 and held_labels(store) == {4: "cat"}


SYNC = """
import sys
from alma_store import labelstudio
import alma_store
store = alma_store.open(sys.argv[1])
server = labelstudio.connect(sys.argv[2], "token", retries=0)
if sys.argv[4] == "push":
    labelstudio.push(store, server, 1, list(range(10)), chunk_size=3, state=sys.argv[3])
else:
    labelstudio.pull(store, server, 1, page_size=2, state=sys.argv[3])
print("done", flush=True)
"""


@pytest.mark.parametrize(
    "crash",
    ["labelstudio-pulled:1", "labelstudio-pulled:3", "append-done:2", "labelstudio-pushed:2"],
)
def test_sync_killed_at_a_fixed_point_and_run_again_commits_each_annotation_once(
    stub: tuple[Model, Faults, str], tmp_path: Path, crash: str
) -> None:
    model, _, url = stub
    make_store(tmp_path / "s").close()
    state = tmp_path / "state.json"

    def run(what: str, crash_at: str = "") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ALMA_STORE_CRASH": crash_at}
        args = [sys.executable, "-c", SYNC, str(tmp_path / "s"), url, str(state), what]
        return subprocess.run(
            args, check=False, env=env, capture_output=True, text=True, timeout=300
        )

    push_crash = crash if crash.startswith("labelstudio-pushed") else ""
    first = run("push", push_crash)
    if push_crash:
        assert first.returncode == -signal.SIGKILL
        assert run("push").returncode == 0
    assert sorted(t["data"]["dataset_index"] for t in model.tasks.values()) == list(range(10))
    rng = random.Random(3)
    for tid in list(model.tasks):
        model.annotate(tid, rng.choice(list(USERS)), rng.choice(CLASSES))
    pull_crash = "" if push_crash else crash
    killed = run("pull", pull_crash)
    if pull_crash:
        assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert run("pull").returncode == 0
    with alma_store.open(tmp_path / "s") as store:
        assert held_labels(store) == expected_labels(model)
        assert max(applied_keys(store).values()) == 1
        version = store.version
    assert run("pull").returncode == 0
    with alma_store.open(tmp_path / "s") as store:
        assert store.version == version


def test_the_cli_pushes_and_pulls(
    stub: tuple[Model, Faults, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from alma_store.cli import main

    model, _, url = stub
    make_store(tmp_path / "s").close()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "token")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    where = [str(tmp_path / "s"), "--url", url, "--project", "1"]
    push = ["labelstudio", "push", *where, "--items", "4,2", "--field", "text=item {i}", "--json"]
    assert main(push) == 0
    assert json.loads(capsys.readouterr().out)["created"] == [2, 4]
    assert sorted(t["data"]["text"] for t in model.tasks.values()) == ["item 2", "item 4"]
    assert list((tmp_path / "cache" / "alma_store" / "labelstudio").iterdir())
    tid = next(t["id"] for t in model.tasks.values() if t["data"]["dataset_index"] == 4)
    model.annotate(tid, 2, "bird")
    assert main(["labelstudio", "pull", *where, "--round", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == [4]
    assert main(["labelstudio", "sync", *where, "--times", "1"]) == 0
    assert "0 added" in capsys.readouterr().out
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    assert main(["labelstudio", "pull", *where]) == 1
    assert "token" in capsys.readouterr().err


def test_webhooks_wake_a_pull_and_bursts_coalesce(
    stub: tuple[Model, Faults, str], tmp_path: Path, connect: Any
) -> None:
    import threading

    import httpx

    model, _, url = stub
    store = make_store(tmp_path / "s")
    server = connect(url)
    pulls: list[labelstudio.PullResult] = []
    pulled = threading.Event()

    def on_pull(result: labelstudio.PullResult) -> None:
        pulls.append(result)
        pulled.set()

    hook = labelstudio.receiver(
        store, server, 1, every=3600, state=tmp_path / "st", on_pull=on_pull
    )
    assert hook.url.startswith("http://127.0.0.1:")
    thread = threading.Thread(target=hook.run)
    thread.start()
    try:
        assert pulled.wait(60)  # the pull at the start
        pulled.clear()
        tid = model.add_task({"dataset_index": 8})
        model.annotate(tid, 1, "dog")
        with httpx.Client() as client:
            assert client.post(hook.url, content=b"not json").status_code == 400
            other = {"action": "PROJECT_UPDATED", "project": {"id": 1}}
            assert client.post(hook.url, json=other).status_code == 200
            elsewhere = {"action": "ANNOTATION_CREATED", "project": {"id": 2}}
            assert client.post(hook.url, json=elsewhere).status_code == 200
            assert hook.webhooks == 0
            for _ in range(3):
                hook_body = {"action": "ANNOTATION_CREATED", "project": {"id": 1}}
                assert client.post(hook.url, json=hook_body).status_code == 200
        assert pulled.wait(60)
    finally:
        hook.stop()
        thread.join(60)
    assert hook.webhooks == 3 and not thread.is_alive()
    assert [r.added for r in pulls if r.added] == [[8]]
    assert len(pulls) <= 3  # three webhooks: one or two pulls after the first


def test_a_receiver_with_a_secret_refuses_webhooks_without_it(
    stub: tuple[Model, Faults, str], tmp_path: Path, connect: Any
) -> None:
    import threading

    import httpx

    _, _, url = stub
    store = make_store(tmp_path / "s")
    started = threading.Event()
    hook = labelstudio.receiver(
        store,
        connect(url),
        1,
        every=3600,
        state=tmp_path / "st",
        secret="s3cret",
        on_pull=lambda _: started.set(),
    )
    thread = threading.Thread(target=hook.run)
    thread.start()
    try:
        assert started.wait(60)
        body = {"action": "ANNOTATION_CREATED", "project": {"id": 1}}
        with httpx.Client() as client:
            assert client.post(hook.url, json=body).status_code == 403
            wrong = {"X-Alma-Token": "guess"}
            assert client.post(hook.url, json=body, headers=wrong).status_code == 403
            right = {"X-Alma-Token": "s3cret"}
            assert client.post(hook.url, json=body, headers=right).status_code == 200
    finally:
        hook.stop()
        thread.join(60)
    assert hook.webhooks == 1
