"""Record real Label Studio exports for the tests (``tests/data/labelstudio/``).

Drives a running Label Studio server the way a campaign does: a project made with
``store.labelstudio_config()``, tasks from ``store.export_tasks``, two annotators
(one created here through ``label-studio shell``), a skipped task, an overlap, an
edited answer; then every export format of week 1, more annotations, and the
cumulative exports of week 2; beside each week's exports, ``weekN.truth.json``: what the
server holds, read task by task through its API. ``tests/test_labelstudio_server.py`` runs
it against a server it starts; the files under ``tests/data/labelstudio/`` are one such run. Usage::

    python tools/labelstudio_capture.py URL TOKEN LABEL_STUDIO_BIN DATA_DIR OUT_DIR

``URL`` is the server (``http://127.0.0.1:PORT``), ``TOKEN`` the admin's legacy API
token, ``LABEL_STUDIO_BIN`` and ``DATA_DIR`` what the server was started with (for
the second user).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import alma_store

CLASSES = ["cat", "dog", "bird"]
TEXTS = [f"item {i}: a short text to label" for i in range(12)]


class Server:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Token {token or self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=120) as reply:
            raw = reply.read()
        if path.split("?")[0].endswith("/download") or "export?" in path:
            return raw
        return json.loads(raw) if raw else None


def second_user(ls_bin: str, data_dir: str, email: str) -> str:
    """Create an annotator in the admin's organization; return their API token."""
    code = f"""
from users.models import User
from organizations.models import Organization
from rest_framework.authtoken.models import Token
user = User.objects.filter(email={email!r}).first() or User.objects.create_user(email={email!r}, password="pw-alma-12345", username={email!r})
org = Organization.objects.first()
org.add_user(user)
user.active_organization = org
user.save()
print("TOKEN", Token.objects.get_or_create(user=user)[0].key)
"""
    out = subprocess.run(
        [ls_bin, "shell", "--data-dir", data_dir, "-db", f"{data_dir}/ls.sqlite3"],
        input=code,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # the shell echoes prompts (">>> ") before what the code prints
    return next(line.split("TOKEN ", 1)[1].strip() for line in out.splitlines() if "TOKEN " in line)


def annotate(server: Server, task: int, choice: str | None, token: str) -> int:
    result = (
        []
        if choice is None
        else [
            {
                "from_name": "label",
                "to_name": "item",
                "type": "choices",
                "value": {"choices": [choice]},
            }
        ]
    )
    body = {"result": result, "was_cancelled": choice is None}
    return int(server.call("POST", f"/api/tasks/{task}/annotations/", body, token=token)["id"])


def export(server: Server, project: int, out: Path, week: int) -> None:
    for kind, ext in (("JSON", "json"), ("JSON_MIN", "min.json"), ("CSV", "csv")):
        raw = server.call("GET", f"/api/projects/{project}/export?exportType={kind}")
        (out / f"week{week}.{ext}").write_bytes(raw)
    snapshot = server.call(
        "POST",
        f"/api/projects/{project}/exports/",
        {"serialization_options": {"annotations__completed_by": {"only_id": False}}},
    )
    raw = server.call(
        "GET", f"/api/projects/{project}/exports/{snapshot['id']}/download?exportType=JSON"
    )
    (out / f"week{week}.snapshot.json").write_bytes(raw)


def truth(server: Server, ids: dict[int, int], users: dict[int, str]) -> list[list[Any]]:
    """What the server holds, read task by task (not through an export): sorted
    ``[dataset_index, email, choice]`` of every annotation that is not skipped."""
    held = []
    for index, task in ids.items():
        for ann in server.call("GET", f"/api/tasks/{task}/annotations/"):
            if not ann["was_cancelled"]:
                choice = ann["result"][0]["value"]["choices"][0]
                held.append([index, users[int(ann["completed_by"])], choice])
    return sorted(held)


def main(url: str, token: str, ls_bin: str, data_dir: str, out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    server = Server(url, token)
    with tempfile.TemporaryDirectory() as tmp:
        store = alma_store.create(Path(tmp) / "s", n_items=len(TEXTS), classes=CLASSES)
        store.export_tasks(
            Path(tmp) / "tasks.json",
            range(len(TEXTS)),
            format="label-studio",
            data=lambda i: {"text": TEXTS[i]},
        )
        config = store.labelstudio_config(field="text", show="Text")
        tasks = json.loads((Path(tmp) / "tasks.json").read_text())
    (out / "config.xml").write_text(config)
    project = server.call("POST", "/api/projects/", {"title": "alma", "label_config": config})
    pid = int(project["id"])
    server.call("POST", f"/api/projects/{pid}/import", tasks)
    ids = {
        t["data"]["dataset_index"]: t["id"]
        for t in server.call("GET", f"/api/tasks/?project={pid}&page_size=100")["tasks"]
    }
    bob = second_user(ls_bin, data_dir, "bob@alma.test")
    # week 1: the admin labels 0-3, skips 4; bob labels 5, 6, and 0 again (an overlap)
    first = {i: annotate(server, ids[i], CLASSES[i % 3], token) for i in range(4)}
    annotate(server, ids[4], None, token)
    for i in (5, 6):
        annotate(server, ids[i], CLASSES[(i + 1) % 3], bob)
    annotate(server, ids[0], "dog", bob)
    export(server, pid, out, 1)
    users = {int(u["id"]): u["email"] for u in server.call("GET", "/api/users/")}
    (out / "week1.truth.json").write_text(json.dumps(truth(server, ids, users)) + "\n")
    # week 2: two more, and the admin edits their answer on item 2 (bird -> cat)
    annotate(server, ids[7], "cat", token)
    annotate(server, ids[8], "bird", bob)
    server.call(
        "PATCH",
        f"/api/annotations/{first[2]}/",
        {
            "result": [
                {
                    "from_name": "label",
                    "to_name": "item",
                    "type": "choices",
                    "value": {"choices": ["cat"]},
                }
            ]
        },
    )
    export(server, pid, out, 2)
    (out / "week2.truth.json").write_text(json.dumps(truth(server, ids, users)) + "\n")
    (out / "users.json").write_text(json.dumps(users, indent=1, sort_keys=True) + "\n")
    print("recorded", sorted(p.name for p in out.iterdir()))


if __name__ == "__main__":
    main(*sys.argv[1:6])
