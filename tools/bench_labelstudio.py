"""The live sync against a running Label Studio server: tasks per second.

Side by side, in the same run, on projects of the same server:

- ``push``: ``labelstudio.push`` of ``n`` tasks with predictions (``chunk_size`` tasks per
  request, then the project's new tasks read back, so that nothing is ever made twice);
- ``LS import``: Label Studio's own import of the same tasks in one request (what its
  Import dialog does with the file ``store.export_tasks`` writes), the server's floor;
- ``pull``: ``labelstudio.pull`` of a project of ``n`` tasks annotated once each (the
  annotations imported with the tasks), into a fresh store;
- ``export+import``: the same labels the file way: the project's JSON export (one
  request) and ``store.import_labels(export, format="label-studio")``.

Start a server as ``tests/test_labelstudio_server.py`` does (or any Label Studio 1.23 with
a legacy token), then::

    python tools/bench_labelstudio.py URL TOKEN --n 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

import alma_store
from alma_store import labelstudio

CLASSES = ["cat", "dog", "bird"]


def call(url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("Authorization", f"Token {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=3600) as reply:
        raw = reply.read()
    return raw if "export?" in path else (json.loads(raw) if raw else None)


def project(url: str, token: str, config: str) -> int:
    body = {"title": f"bench {time.time_ns()}", "label_config": config}
    return int(call(url, token, "POST", "/api/projects/", body)["id"])


def tasks(n: int, annotated: bool) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        task: dict[str, Any] = {
            "data": {"dataset_index": i, "text": f"item {i}"},
            "predictions": [{"result": [], "score": 1 - i / n, "model_version": "bench"}],
        }
        if annotated:
            choice = {"choices": [CLASSES[i % 3]]}
            result = {"from_name": "label", "to_name": "item", "type": "choices", "value": choice}
            task["annotations"] = [{"result": [result], "completed_by": 1}]
        out.append(task)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    url, token, n = args.url.rstrip("/"), args.token, args.n
    rows: dict[str, list[float]] = {k: [] for k in ("push", "LS import", "pull", "export+import")}
    with tempfile.TemporaryDirectory() as tmp, labelstudio.connect(url, token) as server:
        root = Path(tmp)
        config = alma_store.create(root / "c", n_items=n, classes=CLASSES).labelstudio_config()
        for rep in range(args.repeat):
            store = alma_store.create(root / f"push{rep}", n_items=n, classes=CLASSES)
            p = project(url, token, config)
            scores = 1 - np.arange(n) / n
            t = time.perf_counter()
            out = labelstudio.push(
                store,
                server,
                p,
                np.arange(n),
                data=lambda i: {"text": f"item {i}"},
                scores=scores,
                chunk_size=args.chunk_size,
                state=root / f"push{rep}.json",
            )
            rows["push"].append(time.perf_counter() - t)
            assert len(out.created) == n

            p = project(url, token, config)
            body = tasks(n, annotated=False)
            t = time.perf_counter()
            call(url, token, "POST", f"/api/projects/{p}/import", body)
            rows["LS import"].append(time.perf_counter() - t)

            p = project(url, token, config)
            call(url, token, "POST", f"/api/projects/{p}/import", tasks(n, annotated=True))
            store = alma_store.create(root / f"pull{rep}", n_items=n, classes=CLASSES)
            t = time.perf_counter()
            got = labelstudio.pull(
                store, server, p, page_size=args.page_size, state=root / f"pull{rep}.json"
            )
            rows["pull"].append(time.perf_counter() - t)
            assert len(got.added) == n, len(got.added)

            store = alma_store.create(root / f"file{rep}", n_items=n, classes=CLASSES)
            t = time.perf_counter()
            raw = call(url, token, "GET", f"/api/projects/{p}/export?exportType=JSON")
            (root / "export.json").write_bytes(raw)
            assert len(store.import_labels(root / "export.json", format="label-studio")) == n
            rows["export+import"].append(time.perf_counter() - t)
    print(f"n = {n} tasks; min-max of {args.repeat} runs; tasks/s at the best run")
    floor = {"push": "LS import", "pull": "export+import"}
    for name, times in rows.items():
        ratio = ""
        if name in floor:
            lo = min(t / f for t, f in zip(times, rows[floor[name]], strict=True))
            hi = max(t / f for t, f in zip(times, rows[floor[name]], strict=True))
            ratio = f"  {lo:.2f}-{hi:.2f}x {floor[name]}"
        print(
            f"{name:>14}: {min(times):7.2f}-{max(times):7.2f} s  {n / min(times):8.0f} tasks/s{ratio}"
        )


if __name__ == "__main__":
    main()
