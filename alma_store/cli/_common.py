"""Helpers shared by the ``alma`` commands (:mod:`alma_store.cli`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from ..engine import StoreSpec
from ..errors import InvalidInputError

try:
    import click
    from tqdm import tqdm
except ImportError:  # pragma: no cover - exercised only without the extra
    click = None  # type: ignore[assignment]

__all__ = [
    "chunk_bar",
    "click",
    "dtype_name",
    "import_function",
    "need_click",
    "progress_bar",
    "spec_from_options",
    "spec_options",
    "when",
]


def need_click() -> None:
    if click is None:  # pragma: no cover
        sys.exit("the alma command needs click and tqdm: pip install 'alma_store[cli]'")


def dtype_name(dtype: Any) -> str:
    """A dtype as a person writes it: ``int8``, ``float32``, ``str``, ``U10``."""
    if dtype.kind == "T":
        return "str"
    if dtype.kind == "U":
        return f"U{dtype.itemsize // 4}"
    return str(dtype.name)


def when(t: float, *, precise: bool = False) -> str:
    """A Unix time as ISO 8601 UTC: to the second, or to the millisecond (``precise``,
    what ``--json`` prints, so that it loses nothing a person would use)."""
    if not precise:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    stamp = datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


@contextmanager
def progress_bar(total: int | None, desc: str) -> Iterator[Callable[[int], None]]:
    """A tqdm bar (shown on terminals only) as a ``progress(n)`` callback."""
    with tqdm(total=total, desc=desc, disable=None, file=sys.stderr) as bar:
        yield bar.update


def reduce_option(help: str) -> Callable[[Any], Any]:
    """``--reduce``: a named reduction of a scoring's rows of several values."""
    from ..scoring import REDUCTIONS

    return click.option("--reduce", type=click.Choice(sorted(REDUCTIONS)), default=None, help=help)


def import_function(spec: str) -> Callable[..., Any]:
    """``module:function`` -> the function (the current directory is importable)."""
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidInputError(f"--fn must be module:function, got {spec!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(f"cannot import {spec!r}: {exc}") from None
    if not callable(fn):
        raise InvalidInputError(f"{spec!r} is not callable")
    picked: Callable[..., Any] = fn
    return picked


@contextmanager
def chunk_bar(
    desc: str, *, disable: bool | None = None, file: Any = None
) -> Iterator[tuple[Callable[[int, int], None], Callable[[int], None]]]:
    """A tqdm bar of rows (with rows/s) showing chunks done of total, as ``(plan, progress)``.

    ``plan(chunks, rows)`` sets the totals; ``progress(rows)`` counts one chunk done. The bar
    shows on terminals only unless ``disable`` says otherwise; it writes to ``file`` (stderr).
    """
    with tqdm(
        total=None,
        desc=desc,
        unit="rows",
        unit_scale=True,
        disable=disable,
        file=file or sys.stderr,
        mininterval=0,
    ) as bar:
        state = {"done": 0, "chunks": 0}

        def plan(chunks: int, rows: int) -> None:
            state["chunks"] = chunks
            bar.total = rows
            bar.set_postfix_str(f"chunks 0/{chunks}")

        def progress(rows: int) -> None:
            state["done"] += 1
            bar.set_postfix_str(f"chunks {state['done']}/{state['chunks']}", refresh=False)
            bar.update(rows)

        yield plan, progress


def spec_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``alma init``'s options of the new store, one per field of :class:`StoreSpec`."""
    for name, default, text, kind, _ in reversed(StoreSpec.options()):
        f = click.option(
            f"--{name.replace('_', '-')}",
            name,
            type=kind,
            default="" if default == () else default,
            show_default=default not in (None, ()),
            help=text,
        )(f)
    return f


def spec_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :func:`alma_store.create` from :func:`spec_options`' values."""
    spec = {}
    for name, _, _, _, from_text in StoreSpec.options():
        value = options[name]
        spec[name] = from_text(value) if from_text is not None and value is not None else value
    return spec
