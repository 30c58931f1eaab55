"""A webhook receiver: Label Studio tells of each annotation, and a pull commits it.

Label Studio posts ``ANNOTATION_CREATED``, ``ANNOTATIONS_CREATED``,
``ANNOTATION_UPDATED`` and ``ANNOTATIONS_DELETED`` to a project's webhooks. The
receiver does not apply the payload itself: it wakes a pull, which reads what
changed since its cursor, exactly once, however many webhooks arrive, late, twice
or never (a pull also runs on start and every ``every`` seconds, which catches any
webhook that was lost). Bursts coalesce into one pull. With a ``secret``, a webhook
must carry it in the ``X-Alma-Token`` header (Label Studio sends a webhook's custom
headers); others are refused with 403.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ACTIONS", "TOKEN_HEADER", "Receiver"]

TOKEN_HEADER = "X-Alma-Token"
"""The header a webhook carries the receiver's secret in."""

ACTIONS = frozenset(
    {"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"}
)


class Receiver:
    """Webhooks on ``host:port`` (``port=0``: any free one) wake ``pull``.

    ``pull()`` runs in one thread, never two at once: at :meth:`run`'s start,
    after each burst of webhooks, and every ``every`` seconds. ``on_pull`` gets
    each pull's result; an exception in a pull is given to ``on_error`` and the
    receiver goes on (the next pull takes up from the cursor).
    """

    def __init__(
        self,
        pull: Callable[[], Any],
        *,
        project: int,
        host: str = "127.0.0.1",
        port: int = 0,
        every: float = 300.0,
        on_pull: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        secret: str | None = None,
    ) -> None:
        self.pull, self.project, self.every = pull, project, every
        self.secret = secret
        self.on_pull, self.on_error = on_pull, on_error
        self.wake, self.stopped = threading.Event(), threading.Event()
        self.webhooks = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(size) or b"{}")
                except ValueError:
                    body = None
                status = 400 if not isinstance(body, dict) else 200
                given = self.headers.get(TOKEN_HEADER) or ""
                if receiver.secret is not None and not hmac.compare_digest(
                    given.encode(), receiver.secret.encode()
                ):
                    status = 403
                if status == 200 and receiver.wants(body):
                    receiver.webhooks += 1
                    receiver.wake.set()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}/"

    def wants(self, body: dict[str, Any]) -> bool:
        """Whether a webhook's payload tells of this project's annotations."""
        if body.get("action") not in ACTIONS:
            return False
        project = body.get("project")
        return not isinstance(project, dict) or project.get("id") in (None, self.project)

    def run(self) -> None:
        """Serve until :meth:`stop`: a pull at the start, then on webhooks and every ``every`` s."""
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        try:
            while not self.stopped.is_set():
                self.wake.clear()
                try:
                    result = self.pull()
                except Exception as exc:  # the next pull takes up from the cursor
                    if self.on_error is None:
                        raise
                    self.on_error(exc)
                else:
                    if self.on_pull is not None:
                        self.on_pull(result)
                self.wake.wait(self.every)
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()

    def stop(self) -> None:
        """End :meth:`run` after the pull under way."""
        self.stopped.set()
        self.wake.set()
