"""The calls Linux has and macOS or Windows lack, removed before ``import alma_store``:
everything that can work there works, and what cannot says so.

- macOS: no ``os.fdatasync``, no ``posix_fadvise``; ``fcntl`` is there (``flock``,
  ``F_FULLFSYNC`` where the platform says darwin).
- Windows: no ``fcntl`` at all, no ``fdatasync``, ``posix_fadvise``, ``fchmod``, nor
  ``madvise``. A shared store (no lock) works; a local store's write names the fix.
"""

from __future__ import annotations

import json

import pytest

from .conftest import run_python

WORKFLOW = r"""
import json, os, sys, tempfile
platform = sys.argv[1]
for name in ("fdatasync", "posix_fadvise") + (("fchmod",) if platform == "windows" else ()):
    if hasattr(os, name):
        delattr(os, name)
if platform == "windows":
    sys.modules["fcntl"] = None  # import fcntl raises ImportError, as on Windows
    import mmap
    for flag in [name for name in dir(mmap) if name.startswith("MADV_")]:
        delattr(mmap, flag)
if platform == "macos":
    sys.platform = "darwin"
import numpy as np
import alma_store
out = {}
root = tempfile.mkdtemp()
np.save(root + "/x.npy", np.arange(40, dtype=np.float32).reshape(20, 2))
with alma_store.create(root + "/shared", root + "/x.npy", shared=True) as store:
    store.add_labels([0, 3], [1, 2], relative_to="dataset")
with alma_store.open(root + "/shared", mode="r") as store:
    out["shared"] = [store.labels.tolist(), float(np.asarray(store.unlabeled).sum())]
try:
    with alma_store.create(root + "/local", root + "/x.npy") as store:
        store.add_labels([1], [1], relative_to="dataset")
        store.checkpoint()
    with alma_store.open(root + "/local", mode="r") as store:
        out["local"] = [store.labels.tolist(), store.verify()["records"]]
except alma_store.AlmaError as exc:
    out["local"] = type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""


@pytest.mark.parametrize("platform", ["linux", "macos", "windows"])
def test_what_each_platform_lacks(platform: str) -> None:
    out = json.loads(run_python(WORKFLOW, platform).stdout.splitlines()[-1])
    assert out["shared"] == [[1, 2], 780.0 - 0 - 1 - 6 - 7]  # rows 0 and 3 are labeled
    if platform == "windows":  # no flock and no msvcrt here: the local store says why
        assert out["local"].startswith("UnsupportedPlatformError")
        assert "shared=True" in out["local"]
    else:
        assert out["local"] == [[1], 1]
