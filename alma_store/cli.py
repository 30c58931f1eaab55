"""The ``alma`` command line (needs the ``cli`` extra: ``pip install 'alma_store[cli]'``)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

try:
    import click
except ImportError:  # pragma: no cover - exercised only without the extra
    click = None  # type: ignore[assignment]

from .errors import AlmaError
from .store import open_store


def _need_click() -> None:
    if click is None:  # pragma: no cover
        sys.exit("the alma command needs click: pip install 'alma_store[cli]'")


if click is not None:

    @click.group()
    @click.version_option(package_name="alma_store")
    def cli() -> None:
        """Persistent, crash-safe, out-of-core active-learning stores."""

    @cli.command()
    @click.argument("store", type=click.Path(path_type=Path))
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def info(store: Path, as_json: bool) -> None:
        """Show size, labeled and unlabeled counts and version of STORE."""
        with open_store(store, mode="r") as s:
            data = {
                "path": str(s.path),
                "n_items": len(s),
                "num_labeled": s.num_labeled,
                "num_unlabeled": s.num_unlabeled,
                "version": s.version,
                "label_dtype": s.meta["label_dtype"],
                "features": s.meta["features"],
            }
        if as_json:
            click.echo(json.dumps(data, indent=1))
        else:
            for key, value in data.items():
                click.echo(f"{key:14} {value}")

    @cli.command()
    @click.option(
        "--dir",
        "workdir",
        type=click.Path(path_type=Path),
        default=None,
        help="Where to put the dataset and the store (default: a temporary directory).",
    )
    @click.option("--rounds", default=6, show_default=True, help="Active-learning rounds.")
    def demo(workdir: Path | None, rounds: int) -> None:
        """Run margin sampling on scikit-learn's digits through a store, resuming every round."""
        try:
            from ._demo import run_demo
        except ImportError as exc:  # pragma: no cover
            raise click.ClickException(f"the demo needs scikit-learn: {exc}") from None
        if workdir is None:
            with tempfile.TemporaryDirectory(prefix="alma-demo-") as tmp:
                run_demo(Path(tmp), rounds=rounds, echo=click.echo)
        else:
            run_demo(workdir, rounds=rounds, echo=click.echo)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; library errors become one line on stderr and exit status 1."""
    _need_click()
    try:
        cli.main(args=argv, prog_name="alma", standalone_mode=False)
    except AlmaError as exc:
        click.echo(f"alma: error: {exc}", err=True)
        return 1
    except click.exceptions.Abort:
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
