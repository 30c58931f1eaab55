"""Every Python example in the README and the docs runs as written, page by page."""

from __future__ import annotations

import gc
import importlib.util
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "README.md",
    "docs/guide.md",
    "docs/scaling.md",
    "docs/campaigns.md",
    "docs/shared.md",
]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: str) -> list[str]:
    """The page's ```python blocks, in order."""
    return BLOCK.findall((ROOT / page).read_text())


def test_every_page_with_python_is_run() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    with_python = {
        str(p.relative_to(ROOT)) for p in pages if python_blocks(str(p.relative_to(ROOT)))
    }
    assert with_python == set(PAGES)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_examples_run_as_written(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the examples write their files where they run
    blocks = python_blocks(page)
    assert blocks
    if importlib.util.find_spec("torch") is None:  # an optional extra
        blocks = [b for b in blocks if "alma_store.torch" not in b]
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    for k, block in enumerate(blocks):
        try:
            exec(compile(block, f"{page}, python block {k + 1}", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # noqa: BLE001 - reported with the block that failed
            pytest.fail(f"{page}, python block {k + 1} fails: {type(exc).__name__}: {exc}")
    for value in namespace.values():  # release the stores the examples left open
        close = getattr(value, "close", None)
        if type(value).__module__.startswith("alma_store") and callable(close):
            close()
    namespace.clear()
    gc.collect()
    assert os.listdir(tmp_path)
