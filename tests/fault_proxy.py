"""An HTTP proxy that injects faults between an S3 client and a local S3 server (tests only).

The proxy listens on 127.0.0.1 and a free port and forwards every request to
the server, one connection per client connection. A *plan* maps requests to
faults: each rule names an HTTP method, a substring of the path, and which
matching request it hits (the n-th, counted from 1), and one fault:

``"error-before"``
    Answer 503 without forwarding: the server never saw the request.
``"error-after"``
    Forward, then answer 500 instead of the server's reply: the server
    applied the request, the client is told it failed.
``"drop-after"``
    Forward, then close the connection without a reply: the server applied
    the request, the client's reply is lost.
``"stall-before"`` / ``"stall-after"``
    Hold the request (before forwarding it, or after the server applied
    it) until the client gives up on it and closes its connection (its
    timeout), then close ours. No ``sleep``: the proxy waits for the
    client's own timeout to fire.

``proxy.hits`` lists the faults injected, so a test can assert they happened.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

__all__ = ["FaultProxy", "Rule"]

FAULTS = ("error-before", "error-after", "drop-after", "stall-before", "stall-after")


@dataclass
class Rule:
    """Fault ``fault`` on the ``nth`` request of ``method`` whose path contains ``path``."""

    method: str
    path: str
    nth: int
    fault: str
    seen: int = field(default=0)

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}")


class FaultProxy:
    """A running proxy to ``upstream`` (``http://host:port``) with a fault plan."""

    def __init__(self, upstream: str, rules: list[Rule]) -> None:
        target = urlparse(upstream)
        self.rules = rules
        self.hits: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _fault(self) -> str | None:
                with proxy._lock:
                    for rule in proxy.rules:
                        if rule.method == self.command and rule.path in self.path:
                            rule.seen += 1
                            if rule.seen == rule.nth:
                                proxy.hits.append((self.command, self.path, rule.fault))
                                return rule.fault
                return None

            def _wait_for_client_to_give_up(self) -> None:
                while True:  # readable with no data: the client closed its end
                    ready, _, _ = select.select([self.connection], [], [], 60)
                    if not ready or not self.connection.recv(1, socket.MSG_PEEK):
                        return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = self._fault()
                if fault == "error-before":
                    self._reply(503, {"Content-Length": "0"}, b"")
                    return
                if fault == "stall-before":
                    self._wait_for_client_to_give_up()
                    self.close_connection = True
                    return
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    status, reply = response.status, dict(response.getheaders())
                finally:
                    upstream.close()
                if fault == "error-after":
                    self._reply(500, {"Content-Length": "0"}, b"")
                elif fault == "drop-after":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif fault == "stall-after":
                    self._wait_for_client_to_give_up()
                    self.close_connection = True
                else:
                    reply.pop("Transfer-Encoding", None)
                    reply["Content-Length"] = str(len(data))
                    self._reply(status, reply, data)

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("connection", "date", "server"):
                        self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
