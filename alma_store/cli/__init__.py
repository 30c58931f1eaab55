"""The ``alma`` command line (needs the ``cli`` extra: ``pip install 'alma_store[cli]'``).

Each command opens the store, calls one library method and prints the result.
Library errors become one line on stderr and exit status 1; anything else is
a bug and shows its traceback.
"""

from __future__ import annotations

import sys

from ..errors import AlmaError
from ._campaign import add_campaign_commands
from ._common import click, need_click
from ._labelstudio import add_labelstudio_commands
from ._store import add_store_commands

__all__ = ["cli", "main", "run"]

if click is not None:
    store_arg = click.argument("store")  # a directory, or the URL of a shared store

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="alma_store")
    def cli() -> None:
        """Persistent, crash-safe, out-of-core active-learning stores."""

    add_store_commands(cli, store_arg)
    add_campaign_commands(cli, store_arg)
    add_labelstudio_commands(cli, store_arg)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; library errors become one line on stderr and exit status 1."""
    need_click()
    try:
        code = cli.main(args=argv, prog_name="alma", standalone_mode=False)
    except AlmaError as exc:
        click.echo(f"alma: error: {exc}", err=True)
        return 1
    except OSError as exc:  # the system's word (a permission, a missing directory): one line
        click.echo(f"alma: error: {exc}", err=True)
        return 1
    except click.exceptions.Abort:
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return code if isinstance(code, int) else 0  # a command's own exit status


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
