"""Importing a Label Studio export: time and peak anonymous memory (RssAnon).

Side by side, each in a fresh process on the same labels (one annotation per task, in the
shape of the real exports under ``tests/data/labelstudio/``):

- ``label-studio``: ``store.import_labels(export.json, format="label-studio")``, one commit;
- ``csv``: the store's plain import of the same labels (``dataset_index,label`` rows);
- ``json.loads``: parsing the export alone, the floor of any import that loads it whole;
- ``read``: reading the file's bytes (the disk's limit).

Peak RssAnon is the growth over the process's baseline, sampled every 10 ms. Usage::

    python tools/bench_imports.py --n 100000 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CLASSES = ["cat", "dog", "bird"]
TOOLS = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time
mode, path, store_dir, n, tools = sys.argv[1:6]
sys.path.insert(0, tools)
import alma_store  # imported before the baseline: its own memory is not the import's
from bench_core import PeakRssAnon

store = None
if mode in ("label-studio", "csv"):
    store = alma_store.create(store_dir, n_items=int(n), classes=["cat", "dog", "bird"])
memory = PeakRssAnon()
t = time.perf_counter()
if mode == "label-studio":
    got = len(store.import_labels(path, format="label-studio"))
elif mode == "csv":
    got = len(store.import_labels(path, annotator="a"))
elif mode == "json.loads":
    got = len(json.loads(open(path, encoding="utf-8").read()))
else:
    got = len(open(path, "rb").read())
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_mib": memory.stop(), "got": got}))
"""


def write_exports(directory: Path, n: int) -> tuple[Path, Path]:
    """A Label Studio JSON export of ``n`` tasks, one annotation each, and the same as CSV."""
    export, plain = directory / f"ls-{n}.json", directory / f"plain-{n}.csv"
    with export.open("w", encoding="utf-8") as out, plain.open("w", encoding="utf-8") as csv:
        csv.write("dataset_index,label\n")
        out.write("[")
        for i in range(n):
            label = CLASSES[i % 3]
            task = {
                "id": i + 1,
                "annotations": [
                    {
                        "id": i + 1,
                        "completed_by": 1 + i % 4,
                        "result": [
                            {
                                "from_name": "label",
                                "to_name": "item",
                                "type": "choices",
                                "value": {"choices": [label]},
                            }
                        ],
                        "was_cancelled": False,
                        "ground_truth": False,
                        "created_at": "2026-12-02T22:11:05.389381Z",
                        "updated_at": "2026-12-02T22:11:05.389412Z",
                        "lead_time": 3.2,
                        "task": i + 1,
                        "project": 2,
                    }
                ],
                "data": {"dataset_index": i, "text": f"item {i}: a short text to label"},
                "meta": {},
                "created_at": "2026-12-02T22:10:24.391122Z",
                "project": 2,
            }
            out.write(("," if i else "") + json.dumps(task))
            csv.write(f"{i},{label}\n")
        out.write("]")
    return export, plain


def run(mode: str, path: Path, store: Path, n: int) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(store), str(n), str(TOOLS)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n:
            export, plain = write_exports(Path(tmp), n)
            mib = export.stat().st_size / 2**20
            results: dict[str, list[dict[str, float]]] = {}
            for r in range(args.repeat):  # contenders interleaved in each repetition
                for mode, path in (
                    ("label-studio", export),
                    ("csv", plain),
                    ("json.loads", export),
                    ("read", export),
                ):
                    got = run(mode, path, Path(tmp) / f"s-{mode}-{n}-{r}", n)
                    results.setdefault(mode, []).append(got)
            print(f"n = {n:,} annotations, export {mib:.0f} MiB")
            ls = results["label-studio"]
            for mode, rows in results.items():
                s = [x["seconds"] for x in rows]
                m = [x["peak_mib"] for x in rows]
                ratio = [a["seconds"] / b["seconds"] for a, b in zip(ls, rows, strict=True)]
                print(
                    f"  {mode:13s} {min(s):7.2f}-{max(s):7.2f} s  peak RssAnon "
                    f"{min(m):7.0f}-{max(m):7.0f} MiB  label-studio/this {min(ratio):.2f}-"
                    f"{max(ratio):.2f}x"
                )


if __name__ == "__main__":
    main()
