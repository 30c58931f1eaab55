"""``alma labelstudio push|pull|sync``: the live sync with a Label Studio server.

Needs the ``labelstudio`` extra. The token comes from ``$LABEL_STUDIO_API_KEY``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._entry import open_store
from ..errors import InvalidInputError
from ._campaign import pick_items
from ._common import click, import_function

__all__ = ["add_labelstudio_commands"]


def _server_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--state",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="The sync state file (default: under ~/.cache/alma_store/labelstudio).",
    )(f)
    f = click.option("--project", type=int, required=True, help="The project's id.")(f)
    return click.option("--url", required=True, help="The server, e.g. http://127.0.0.1:8080.")(f)


def _fields(templates: tuple[str, ...]) -> Callable[[int], dict[str, Any]]:
    """``data(i)`` from ``NAME=TEMPLATE`` options (``{i}`` is the dataset index)."""
    pairs = []
    for t in templates:
        name, sep, template = t.partition("=")
        if not sep or not name.isidentifier():
            raise InvalidInputError(
                f"--field takes NAME=TEMPLATE (e.g. text=item {{i}}), got {t!r}"
            )
        pairs.append((name, template))
    return lambda i: {name: template.replace("{i}", str(i)) for name, template in pairs}


def _show(result: Any, as_json: bool) -> None:
    out = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in asdict(result).items()}
    if as_json:
        click.echo(json.dumps(out))
        return
    for key, value in out.items():
        shown = len(value) if isinstance(value, list | dict) else value
        click.echo(f"{key}: {shown}")
    for message in out.get("unapplied", []):
        click.echo(f"not applied: {message}", err=True)


def _summary(result: Any) -> str:
    """One pull's result in a line."""
    return (
        f"{len(result.added)} added, {len(result.relabeled)} relabeled, "
        f"{len(result.removed)} removed, {result.tasks} tasks read"
    )


def add_labelstudio_commands(
    cli: click.Group, store_arg: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> None:
    """Add the ``labelstudio`` group to ``cli``."""

    @cli.group()
    def labelstudio() -> None:
        """Push tasks to a Label Studio project and pull its annotations (exactly once)."""

    @labelstudio.command()
    @store_arg
    @_server_options
    @click.option("--claim", "claim_id", default=None, help="The items of this live claim.")
    @click.option("--items", default=None, help="These dataset indices (comma-separated).")
    @click.option("--scores", default=None, help="The best --top-k of this scoring.")
    @click.option("--top-k", "k", type=int, default=None, help="With --scores: how many.")
    @click.option("--data", "data_fn", default=None, help="module:function giving display fields.")
    @click.option(
        "--field",
        "fields",
        multiple=True,
        help="A display field as NAME=TEMPLATE, {i} the dataset index (repeatable).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def push(
        store: str,
        url: str,
        project: int,
        state: Path | None,
        claim_id: str | None,
        items: str | None,
        scores: str | None,
        k: int | None,
        data_fn: str | None,
        fields: tuple[str, ...],
        as_json: bool,
    ) -> None:
        """Make tasks for a claim, --items or a top-k (its scores as predictions)."""
        from .. import labelstudio as ls

        if data_fn is not None and fields:
            raise InvalidInputError("give --data or --field, not both")
        data = (
            import_function(data_fn) if data_fn is not None else _fields(fields) if fields else None
        )
        with open_store(store, mode="r") as s, ls.connect(url) as server:
            picked = pick_items(s, claim_id, items, scores, k)
            result = ls.push(
                s,
                server,
                project,
                picked,
                data=data,
                model_version=scores or "alma_store",
                state=state,
            )
        _show(result, as_json)

    @labelstudio.command()
    @store_arg
    @_server_options
    @click.option("--round", "round_", type=int, default=None, help="Round tag of the commits.")
    @click.option("--on-change", type=click.Choice(["relabel", "error"]), default="relabel")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def pull(
        store: str,
        url: str,
        project: int,
        state: Path | None,
        round_: int | None,
        on_change: str,
        as_json: bool,
    ) -> None:
        """Commit the annotations made, changed or deleted since the last pull."""
        from .. import labelstudio as ls

        with open_store(store) as s, ls.connect(url) as server:
            result = ls.pull(s, server, project, round=round_, on_change=on_change, state=state)
        _show(result, as_json)

    @labelstudio.command()
    @store_arg
    @_server_options
    @click.option("--round", "round_", type=int, default=None, help="Round tag of the commits.")
    @click.option("--every", type=float, default=30.0, help="Seconds between pulls.")
    @click.option("--times", type=int, default=None, help="Stop after this many pulls.")
    def sync(
        store: str,
        url: str,
        project: int,
        state: Path | None,
        round_: int | None,
        every: float,
        times: int | None,
    ) -> None:
        """Pull every --every seconds until stopped (Ctrl-C); each pull is exactly-once."""
        from .. import labelstudio as ls

        done = 0
        with open_store(store) as s, ls.connect(url) as server:
            while times is None or done < times:
                result = ls.pull(s, server, project, round=round_, state=state)
                done += 1
                click.echo(f"pull {done}: {_summary(result)}")
                if times is None or done < times:
                    time.sleep(every)

    @labelstudio.command()
    @store_arg
    @_server_options
    @click.option("--round", "round_", type=int, default=None, help="Round tag of the commits.")
    @click.option("--host", default="127.0.0.1", help="Address to listen on.")
    @click.option("--port", type=int, default=8765, help="Port to listen on (0: any free one).")
    @click.option("--every", type=float, default=300.0, help="Seconds between pulls anyway.")
    @click.option(
        "--register", is_flag=True, help="Add the webhook to the project through the API."
    )
    @click.option(
        "--secret-env",
        default=None,
        help="An environment variable holding a secret webhooks must carry (X-Alma-Token).",
    )
    def serve(
        store: str,
        url: str,
        project: int,
        state: Path | None,
        round_: int | None,
        host: str,
        port: int,
        every: float,
        register: bool,
        secret_env: str | None,
    ) -> None:
        """Receive the project's webhooks; each burst wakes an exactly-once pull (Ctrl-C stops)."""
        secret = None
        if secret_env is not None:
            secret = os.environ.get(secret_env)
            if not secret:
                raise InvalidInputError(f"--secret-env {secret_env}: that variable is not set")
        from .. import labelstudio as ls

        def shown(result: Any) -> None:
            click.echo(f"pull: {_summary(result)}")

        def failed(exc: BaseException) -> None:
            click.echo(
                f"alma: pull failed (the next one takes up from the cursor): {exc}", err=True
            )

        with open_store(store) as s, ls.connect(url) as server:
            hook = ls.receiver(
                s,
                server,
                project,
                host=host,
                port=port,
                every=every,
                register=register,
                round=round_,
                state=state,
                on_pull=shown,
                on_error=failed,
                secret=secret,
            )
            click.echo(f"webhooks of project {project}: {hook.url}")
            try:
                hook.run()
            except KeyboardInterrupt:
                hook.stop()
