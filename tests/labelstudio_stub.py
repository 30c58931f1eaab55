"""A stand-in for the handful of Label Studio endpoints a sync calls, for the fast tests.

A real HTTP server on 127.0.0.1 (port 0) that answers as Label Studio 1.23 does: ``GET /api/users/``, ``GET /api/tasks/`` (the filters on
``updated_at`` and ``id`` and the ordering a sync uses, pages), ``POST
/api/projects/{id}/import``. Annotators act on :class:`Model` directly. Faults are
drawn from a seeded ``random.Random``: a task given twice in a page, an old
snapshot of a task slipped into a page (a reordered delivery), a read answered 503
(a lost reply), an import whose tasks are made and whose reply is lost (502).
``tests/test_labelstudio_server.py`` runs the same sync against a real server.
"""

from __future__ import annotations

import copy
import json
import random
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

USERS = {1: "ann@lab.test", 2: "bob@lab.test"}
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Model:
    """One project's tasks and annotations, with a clock that ticks 1 ms per change."""

    def __init__(self, project: int = 1) -> None:
        self.project = project
        self.tasks: dict[int, dict[str, Any]] = {}
        self.snapshots: list[dict[str, Any]] = []  # every state a task was in
        self.next_task, self.next_ann = 1, 1
        self.now = T0
        self.lock = threading.Lock()

    def tick(self) -> str:
        self.now += timedelta(milliseconds=1)
        return stamp(self.now)

    def _touched(self, task: dict[str, Any]) -> None:
        task["updated_at"] = self.tick()
        self.snapshots.append(copy.deepcopy(task))

    def add_task(self, data: dict[str, Any]) -> int:
        with self.lock:
            tid = self.next_task
            self.next_task += 1
            task = {"id": tid, "data": data, "annotations": [], "project": self.project}
            self.tasks[tid] = task
            self._touched(task)
            return tid

    def annotate(self, tid: int, user: int, choice: str | None) -> int:
        """A new annotation (``choice=None``: a skip)."""
        with self.lock:
            aid = self.next_ann
            self.next_ann += 1
            when = self.tick()
            self.tasks[tid]["annotations"].append(
                {
                    "id": aid,
                    "completed_by": user,
                    "result": _result(choice),
                    "was_cancelled": choice is None,
                    "created_at": when,
                    "updated_at": when,
                    "task": tid,
                }
            )
            self._touched(self.tasks[tid])
            return aid

    def update(self, tid: int, aid: int, choice: str | None) -> None:
        with self.lock:
            ann = next(a for a in self.tasks[tid]["annotations"] if a["id"] == aid)
            ann.update(result=_result(choice), was_cancelled=choice is None, updated_at=self.tick())
            self._touched(self.tasks[tid])

    def delete(self, tid: int, aid: int) -> None:
        with self.lock:
            anns = self.tasks[tid]["annotations"]
            anns[:] = [a for a in anns if a["id"] != aid]
            self._touched(self.tasks[tid])


def _result(choice: str | None) -> list[dict[str, Any]]:
    if choice is None:
        return []
    return [
        {"from_name": "label", "to_name": "item", "type": "choices", "value": {"choices": [choice]}}
    ]


class Faults:
    """Probabilities of each fault, drawn from ``rng``; all 0 by default."""

    def __init__(self, rng: random.Random | None = None, **p: float) -> None:
        self.rng = rng or random.Random(0)
        self.p = {"duplicate": 0.0, "stale": 0.0, "lose_read": 0.0, "lose_import": 0.0, **p}
        self.imports = 0

    def hit(self, name: str) -> bool:
        return self.p[name] > 0 and self.rng.random() < self.p[name]


def _matches(task: dict[str, Any], flt: dict[str, Any]) -> bool:
    field = flt["filter"].rsplit(":", 1)[1]
    value, have = flt["value"], task[field]
    op = flt["operator"]
    return {"greater": have > value, "greater_or_equal": have >= value}[op]


def serve(model: Model, faults: Faults) -> tuple[ThreadingHTTPServer, str]:
    """Start the stand-in on 127.0.0.1; returns the server (shut it down) and its URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, status: int, body: object) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/api/users/":
                return self.reply(
                    200, [{"id": i, "email": e, "username": ""} for i, e in USERS.items()]
                )
            if url.path != "/api/tasks/":
                return self.reply(404, {"detail": "not here"})
            if faults.hit("lose_read"):
                return self.reply(503, {"detail": "lost"})
            q = json.loads(query.get("query", "{}"))
            flts = q.get("filters", {}).get("items", [])
            order = q.get("ordering", ["tasks:id"])[0].split(":")[1]
            with model.lock:
                tasks = [copy.deepcopy(t) for t in model.tasks.values()]
                old = list(model.snapshots)
            tasks = sorted(
                (t for t in tasks if all(_matches(t, f) for f in flts)), key=lambda t: t[order]
            )
            size, page = int(query.get("page_size", 100)), int(query.get("page", 1))
            if (page - 1) * size >= len(tasks) and page > 1:
                return self.reply(404, {"detail": "Invalid page."})
            out = tasks[(page - 1) * size : page * size]
            if out and faults.hit("duplicate"):
                out.insert(
                    faults.rng.randrange(len(out) + 1), copy.deepcopy(faults.rng.choice(out))
                )
            with model.lock:
                old = [s for s in old if s["updated_at"] < model.tasks[s["id"]]["updated_at"]]
            if old and faults.hit("stale"):  # an outdated state of some task, delivered late
                out.insert(
                    faults.rng.randrange(len(out) + 1), copy.deepcopy(faults.rng.choice(old))
                )
            if query.get("fields") != "all":
                for t in out:
                    t.pop("annotations", None)
            body = {
                "tasks": out,
                "total": len(tasks),
                "total_annotations": 0,
                "total_predictions": 0,
            }
            return self.reply(200, body)

        def do_POST(self) -> None:
            url = urlparse(self.path)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if url.path != f"/api/projects/{model.project}/import":
                return self.reply(404, {"detail": "no such project"})
            ids = [model.add_task(t["data"]) for t in body]
            faults.imports += 1
            if faults.hit("lose_import"):  # made, and the reply lost
                return self.reply(502, {"detail": "bad gateway"})
            return self.reply(201, {"task_count": len(ids), "task_ids": ids})

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
