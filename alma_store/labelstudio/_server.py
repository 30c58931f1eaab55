"""The Label Studio server, over its REST API with ``httpx`` (the ``labelstudio`` extra).

Only the calls a sync needs: the organization's users (``GET /api/users/``), one page
of a project's tasks by a filter (``GET /api/tasks/``) and an import of tasks
(``POST /api/projects/{id}/import``). Reads are retried on a dropped connection, a
5xx or a 429; an import never is (its reply may be lost after the tasks were
made): :func:`~alma_store.labelstudio.push` reads the project's new tasks to see
what landed first.

``label-studio-sdk`` 2.1 is not used: it pins ``opencv-python-headless`` 4.12,
which holds numpy below 2.3, and brings pandas and nltk, for three endpoints.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, Self

from ..errors import InvalidInputError, MissingExtraError, ToolServerError

__all__ = ["Server", "ls_time"]

_HINTS = {
    401: "; check the API token (Label Studio 1.23 has legacy tokens off by default: "
    "use a Personal Access Token)",
    403: "; the token's user may not do this",
    404: "; no such project (or page)",
}


_WITH_ANNOTATIONS = "id,data,updated_at,annotations,result,completed_by,was_cancelled,created_at"
"""The fields a pull reads (``include`` names nested fields too)."""


def ls_time(when: datetime) -> str:
    """A time as Label Studio's task filters take it."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Server:
    """A Label Studio server at ``url``, as the user of ``api_key``.

    ``api_key`` is a Personal Access Token (a JWT refresh token, Label Studio
    1.23's default: it is exchanged for short-lived access tokens, again when one
    expires) or a legacy token. Reads are retried ``retries`` times.
    """

    def __init__(self, url: str, api_key: str, *, timeout: float = 120.0, retries: int = 2) -> None:
        try:
            import httpx
        except ImportError:
            raise MissingExtraError("labelstudio", "syncing with Label Studio") from None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"url must be the server's http(s):// address, got {url!r}")
        if not isinstance(api_key, str) or not api_key:
            raise InvalidInputError(
                "an API token is needed (Account & Settings, Personal Access Token; "
                "LABEL_STUDIO_API_KEY for the CLI)"
            )
        self.url = url.rstrip("/")
        self.retries = retries
        self._key = api_key
        self._refresh = api_key.count(".") == 2  # a JWT: a Personal Access Token
        self._access: str | None = None
        self._http = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=True)

    def close(self) -> None:
        """Close the connections to the server."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _auth(self, renew: bool = False) -> str:
        if not self._refresh:
            return f"Token {self._key}"
        if self._access is None or renew:
            reply = self._send("POST", "/api/token/refresh", {"refresh": self._key}, auth=False)
            self._access = str(reply["access"])
        return f"Bearer {self._access}"

    def _send(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        """One request; reads retried, and a 401 with an expired access token renewed once."""
        import httpx

        what = f"{method} {path.split('?')[0]}"
        tries = self.retries + 1 if method == "GET" else 1
        renewed = False
        attempt = 0
        while True:
            headers = {"Authorization": self._auth()} if auth else {}
            try:
                reply = self._http.request(method, path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                attempt += 1
                if attempt < tries:
                    time.sleep(min(0.25 * 2**attempt, 4.0))
                    continue
                raise ToolServerError(
                    f"Label Studio at {self.url} did not answer {what}: {exc}", None
                ) from None
            status = reply.status_code
            if status == 401 and auth and self._refresh and not renewed:
                renewed = True
                self._auth(renew=True)
                continue
            if (status >= 500 or status == 429) and attempt + 1 < tries:
                attempt += 1
                time.sleep(min(0.25 * 2**attempt, 4.0))
                continue
            if status >= 400:
                raise ToolServerError(
                    f"Label Studio at {self.url} answered {status} to {what}: "
                    f"{reply.text[:500]}{_HINTS.get(status, '')}",
                    status,
                )
            try:
                return reply.json() if reply.content else None
            except ValueError:
                raise ToolServerError(
                    f"Label Studio at {self.url} answered {what} with no JSON", status
                ) from None

    def user_names(self) -> dict[object, str]:
        """Each user id of the organization to its email (or username)."""
        users = self._send("GET", "/api/users/")
        return {
            user["id"]: str(user.get("email") or user.get("username") or user["id"])
            for user in (users if isinstance(users, list) else [])
        }

    def tasks(
        self,
        project: int,
        *,
        filters: list[dict[str, Any]],
        ordering: str,
        page: int,
        page_size: int,
        annotations: bool,
    ) -> list[dict[str, Any]]:
        """One page of the project's tasks (as JSON objects); past the last page, none."""
        import httpx

        query = json.dumps(
            {"filters": {"conjunction": "and", "items": filters}, "ordering": [ordering]}
        )
        params = httpx.QueryParams(  # only the fields read: the Data Manager's others are slow
            project=project,
            query=query,
            page=page,
            page_size=page_size,
            fields="all" if annotations else "task_only",
            include=_WITH_ANNOTATIONS if annotations else "id,data,updated_at",
        )
        try:
            reply = self._send("GET", f"/api/tasks/?{params}")
        except ToolServerError as exc:
            if exc.status == 404 and page > 1:  # past the last page
                return []
            raise
        tasks = reply.get("tasks") if isinstance(reply, dict) else None
        if not isinstance(tasks, list):
            raise ToolServerError(f"Label Studio at {self.url} sent no task list", None)
        return tasks

    def import_tasks(self, project: int, tasks: list[dict[str, Any]]) -> None:
        """Make ``tasks`` in the project: one request, not retried."""
        self._send("POST", f"/api/projects/{project}/import", tasks)

    def add_webhook(
        self, project: int, url: str, actions: list[str], headers: dict[str, str] | None = None
    ) -> int:
        """Register ``url`` for the project's ``actions`` (sent with ``headers``); returns the
        webhook's id."""
        body = {
            "headers": headers or {},
            "project": project,
            "url": url,
            "send_payload": False,
            "send_for_all_actions": False,
            "actions": actions,
            "is_active": True,
        }
        return int(self._send("POST", "/api/webhooks/", body)["id"])
