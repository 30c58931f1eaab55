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


def test_api_reference_lists_every_public_name() -> None:
    import re

    text = (ROOT / "docs" / "api.md").read_text()
    listed = set(re.findall(r"^   (\w+)$", text, re.MULTILINE))
    assert set(alma_store.__all__) - {"__version__"} <= listed
    assert {"torch", "dask"} <= listed  # the public submodules


def test_version_is_defined_once() -> None:
    from importlib.metadata import version

    assert version("alma_store") == alma_store.__version__
    assert 'version = "' not in (ROOT / "pyproject.toml").read_text().split("[tool")[0]
