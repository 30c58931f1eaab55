"""A real Label Studio server, started here on 127.0.0.1 with SQLite in a temp dir.

``tools/labelstudio_capture.py`` drives it as a campaign does (a project made with the
store's labeling config, tasks from ``export_tasks``, two annotators, a skip, an overlap,
an edited answer) and records every export format of two weeks, with what the server
holds read task by task through its API. Each export then imports into a store, which
must hold exactly what the server does. ``.ci/run`` installs Label Studio into a cache
outside the clone (``$ALMA_LABEL_STUDIO``); without it this module skips, which CI
counts as a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import alma_store

from .conftest import cached_tool, free_port

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["cat", "dog", "bird"]


class LabelStudio:
    """A running server: ``url``, the admin's ``token``, its command and data dir."""

    def __init__(self, command: Path, data: Path) -> None:
        self.command, self.data = command, data
        # a database migrated once per Label Studio install: a start then takes seconds
        # (with its admin, whose API token is kept beside it)
        template = command.parent.parent / "template.sqlite3"
        token = template.with_suffix(".token")
        if template.exists() and token.exists():
            with sqlite3.connect(template) as src, sqlite3.connect(data / "ls.sqlite3") as dst:
                src.backup(dst)
            self.token = token.read_text().strip()
        else:
            self.token = secrets.token_hex(20)
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": str(data),
            "LATEST_VERSION_CHECK": "false",  # no request to pypi.org at start
            "COLLECT_ANALYTICS": "false",
            # webhooks to a receiver on this machine (127.0.0.1): Label Studio refuses
            # loopback and private addresses by default
            "USE_DEFAULT_BANNED_SUBNETS": "false",
        }
        self.log = (data / "server.log").open("w")
        self.proc = subprocess.Popen(
            [
                str(command),
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "-p",
                self.url.rsplit(":", 1)[1],
                "--data-dir",
                str(data),
                "-db",
                str(data / "ls.sqlite3"),
                "--username",
                "admin@alma.test",
                "--password",
                "pw-alma-12345",
                "--user-token",
                self.token,
                "--enable-legacy-api-token",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 900  # a first start migrates the database: minutes
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (data / "server.log").read_text()[-3000:]
                pytest.fail(f"Label Studio did not start (exit {self.proc.returncode}):\n{log}")
            time.sleep(0.5)
        if not (template.exists() and token.exists()):
            part = template.with_suffix(".part")
            with sqlite3.connect(data / "ls.sqlite3") as src, sqlite3.connect(part) as dst:
                src.backup(dst)
            token.write_text(self.token)
            part.replace(template)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as reply:
                return reply.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudio]:
    command = cached_tool("ALMA_LABEL_STUDIO", "labelstudio-*/bin/label-studio")
    if command is None or not command.exists():
        pytest.skip("Label Studio is not installed (.ci/run installs it)")
    server = LabelStudio(command, tmp_path_factory.mktemp("label-studio"))
    yield server
    server.stop()


def held(store: alma_store.Store) -> list[list[object]]:
    items = store.annotations(range(len(store)))
    return sorted([i, a.annotator, a.label] for i, anns in enumerate(items) for a in anns)


def test_exports_of_a_real_server_import_as_the_server_holds_them(
    label_studio: LabelStudio, tmp_path: Path
) -> None:
    out = tmp_path / "exports"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "labelstudio_capture.py"),
            label_studio.url,
            label_studio.token,
            str(label_studio.command),
            str(label_studio.data),
            str(out),
        ],
        check=True,
        timeout=900,
    )
    users = json.loads((out / "users.json").read_text())
    for week in (1, 2):
        truth = json.loads((out / f"week{week}.truth.json").read_text())
        assert len(truth) == 7 + 2 * (week - 1)  # the skipped task is no annotation
        for export in ("json", "min.json", "csv", "snapshot.json"):
            store = alma_store.create(
                tmp_path / f"w{week}-{export}", n_items=12, classes=CLASSES, annotations_per_item=2
            )
            with store:
                path = out / f"week{week}.{export}"
                assert len(
                    store.import_labels(path, format="label-studio", annotators=users)
                ) == len(truth)
                assert held(store) == truth, (week, export)
                again = store.import_labels(path, format="label-studio", annotators=users)
                assert len(again) == 0 and again.skipped == len(truth)
    assert (out / "config.xml").read_text() == (
        REPO / "tests/data/labelstudio/config.xml"
    ).read_text()


def test_live_sync_with_a_real_server(label_studio: LabelStudio, tmp_path: Path) -> None:
    """push -> two users annotate through the API -> pull -> relabel and delete -> pull,
    as the admin's Personal Access Token."""
    pytest.importorskip("httpx")
    from alma_store import labelstudio

    sys.path.insert(0, str(REPO / "tools"))
    try:
        from labelstudio_capture import Server, annotate, second_user
    finally:
        sys.path.pop(0)
    api = Server(label_studio.url, label_studio.token)
    bob = second_user(str(label_studio.command), str(label_studio.data), "bob.sync@alma.test")
    store = alma_store.create(tmp_path / "s", n_items=30, classes=CLASSES)
    project = api.call(
        "POST", "/api/projects/", {"title": "live sync", "label_config": store.labelstudio_config()}
    )["id"]
    state = tmp_path / "state.json"
    texts = {i: f"item {i}" for i in range(30)}
    # a Personal Access Token (Label Studio 1.23's default), exchanged for access tokens
    pat = api.call("POST", "/api/token/")["token"]
    with labelstudio.connect(label_studio.url, pat) as server:
        picks = [7, 3, 21, 12, 5]
        pushed = labelstudio.push(
            store,
            server,
            project,
            picks,
            data=lambda i: {"text": texts[i]},
            scores=[0.9, 0.7, 0.5, 0.3, 0.1],
            model_version="margin-r0",
            chunk_size=2,
            state=state,
        )
        assert sorted(pushed.created.tolist()) == sorted(picks)
        again = labelstudio.push(
            store, server, project, picks, data=lambda i: {"text": texts[i]}, state=state
        )
        assert again.created.tolist() == [] and len(again.task_ids) == 5
        tasks = api.call("GET", f"/api/tasks/?project={project}&fields=all&page_size=100")["tasks"]
        assert sorted(t["data"]["dataset_index"] for t in tasks) == sorted(picks)
        scores = {t["data"]["dataset_index"]: t["predictions"][0]["score"] for t in tasks}
        assert scores[7] == pytest.approx(0.9) and scores[5] == pytest.approx(0.1)

        ids = pushed.task_ids
        first = annotate(api, ids[7], "cat", label_studio.token)
        annotate(api, ids[3], "dog", bob)
        annotate(api, ids[21], None, bob)  # a skip: no label
        gone = annotate(api, ids[12], "bird", label_studio.token)
        out = labelstudio.pull(store, server, project, round=0, state=state)
        assert sorted(out.added) == [3, 7, 12]
        assert store.class_names(store.labels).tolist() == ["dog", "cat", "bird"]  # 3, 7, 12

        annotation = api.call("GET", f"/api/annotations/{first}/")
        annotation["result"][0]["value"]["choices"] = ["bird"]
        api.call("PATCH", f"/api/annotations/{first}/", {"result": annotation["result"]})
        api.call("DELETE", f"/api/annotations/{gone}/")
        out = labelstudio.pull(store, server, project, round=1, state=state)
        assert out.relabeled == [7] and out.removed == [12] and out.added == []
        assert labelstudio.pull(store, server, project, state=state).tasks == 0

        # webhooks: Label Studio posts to a receiver here, which wakes a pull
        import threading

        pulled, results = threading.Event(), []
        hook = labelstudio.receiver(
            store,
            server,
            project,
            register=True,  # with the secret, which the server then sends in a header
            secret="webhook-secret",
            every=3600,
            state=state,
            on_pull=lambda r: (results.append(r), pulled.set()),
        )
        thread = threading.Thread(target=hook.run)
        thread.start()
        try:
            assert pulled.wait(120)  # the pull at the start: nothing new
            pulled.clear()
            annotate(api, ids[5], "cat", bob)
            assert pulled.wait(120), "no webhook came"
        finally:
            hook.stop()
            thread.join(120)
        assert hook.webhooks >= 1 and results[-1].added == [5]

    # the store holds what the server does, with who and when
    truth = {}
    for t in api.call("GET", f"/api/tasks/?project={project}&fields=all&page_size=100")["tasks"]:
        live = [a for a in t["annotations"] if not a["was_cancelled"]]
        if live:
            truth[t["data"]["dataset_index"]] = live[0]["result"][0]["value"]["choices"][0]
    idx = np.flatnonzero(np.asarray(store.labeled_mask[:30])).tolist()
    assert dict(zip(idx, store.class_names(store.labels).tolist(), strict=True)) == truth
    who = {
        int(e.dataset_indices[r]): e.row_annotators[r]
        for e in store.history()
        if e.row_annotators
        for r in range(len(e.dataset_indices))
    }
    assert who[3] == "bob.sync@alma.test" and who[7] == "admin@alma.test"
    store.close()
