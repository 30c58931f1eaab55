"""The public surface is documented."""

from __future__ import annotations

import inspect
from pathlib import Path

import alma_store

ROOT = Path(__file__).resolve().parents[1]


def test_every_export_resolves_and_is_documented() -> None:
    for name in alma_store.__all__:
        obj = getattr(alma_store, name)
        if name == "__version__":
            assert isinstance(obj, str)
            continue
        assert inspect.getdoc(obj), f"{name} has no docstring"
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and (callable(member) or isinstance(member, property)):
                    assert inspect.getdoc(member), f"{name}.{attr} has no docstring"


def test_readme_names_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "tools/demo" in text and ".ci/run" in text


def test_cli_reference_is_current() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_cli_docs", ROOT / "tools" / "make_cli_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "cli.md").read_text() == module.render(), (
        "docs/cli.md is stale: run python tools/make_cli_docs.py"
    )
