"""Write docs/cli.md from the ``alma`` commands' own help (tests check it is current).

python tools/make_cli_docs.py
"""

from __future__ import annotations

from pathlib import Path

import click

from alma_store.cli import cli

OUT = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def render() -> str:
    """The CLI reference as Markdown."""
    parts = [
        "# `alma` command line reference\n",
        "Generated from the commands' `--help` by `tools/make_cli_docs.py`; do not edit by hand.",
        "Install with `pip install 'alma_store[cli]'` (`[plot]` for `alma plot`, `[demo]` for",
        "`alma demo`); `python -m alma_store` is the same program. Library errors print one line",
        "`alma: error: ...` on stderr and exit with status 1.\n",
    ]
    for name in ["", *sorted(cli.commands)]:
        command = cli if not name else cli.commands[name]
        title = f"alma {name}".strip()
        ctx = click.Context(command, info_name=title, terminal_width=88, max_content_width=88)
        parts += [f"## `{title}`", "", "```", command.get_help(ctx).rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
