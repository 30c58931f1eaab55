"""Benchmark: features in S3 Zarr (a local moto server) and in Arrow files, in one run.

    python tools/bench_remote.py                   # 1e6 x 32 float32 (128 MB)
    python tools/bench_remote.py --rows 200000     # smaller

Side by side, each in its own process:

* S3 Zarr (chunks of 32,768 rows, zstd): ``store.unlabeled.batches(65536, reuse=True)``
  against zarr-python reading the same array directly in the same batches, and 10,000
  random rows gathered by view position against zarr-python's ``oindex`` of the same
  rows. The server is moto on 127.0.0.1 (a free port), so this measures the client
  path, not a network;
* an Arrow IPC file of the same rows (``fixed_size_list<float>`` column, memory-mapped)
  streamed through a store, against a store over a ``.npy`` of the same rows.

Stores are 1% labeled at random.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_core import make_bucket, moto_options, start_moto

CHILD = r"""
import json, sys, time
import numpy as np
import zarr
import alma_store
mode, root, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
batch = 65536
def best(fn, n=3):
    times = []
    for _ in range(n):
        t = time.perf_counter(); total = fn(); times.append(time.perf_counter() - t)
    return min(times), total
if mode in ("s3-store", "arrow-store", "npy-store"):
    kw = {"storage_options": options} if mode == "s3-store" else {}
    s = alma_store.open(f"{root}/{mode}", mode="r", **kw)
    def stream():
        return sum(r.nbytes for _, r in s.unlabeled.batches(batch, reuse=True))
    seconds, total = best(stream)
elif mode == "s3-zarr":
    arr = zarr.open_array("s3://bkt/x.zarr", mode="r", storage_options=options)
    def stream():
        return sum(arr[a : a + batch].nbytes for a in range(0, arr.shape[0], batch))
    seconds, total = best(stream)
elif mode == "s3-gather-store":
    s = alma_store.open(f"{root}/s3-store", mode="r", storage_options=options)
    pos = np.sort(np.random.default_rng(1).choice(len(s.unlabeled), 10000, replace=False))
    seconds, total = best(lambda: s.unlabeled[pos].nbytes)
elif mode == "s3-gather-zarr":
    s = alma_store.open(f"{root}/s3-store", mode="r", storage_options=options)
    pos = np.sort(np.random.default_rng(1).choice(len(s.unlabeled), 10000, replace=False))
    idx = s.unlabeled.to_dataset_index(pos)
    arr = zarr.open_array("s3://bkt/x.zarr", mode="r", storage_options=options)
    seconds, total = best(lambda: arr.oindex[idx].nbytes)
print(json.dumps({"mode": mode, "seconds": seconds, "gb": total / 1e9}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    import pyarrow as pa
    import zarr
    from zarr.codecs import ZstdCodec

    import alma_store

    root = Path(tempfile.mkdtemp(prefix="alma-bench-remote-"))
    server, endpoint = start_moto()
    options = moto_options(endpoint)
    make_bucket(endpoint, "bkt")
    x = np.round(np.random.default_rng(0).normal(size=(args.rows, 32)), 2).astype(np.float32)
    arr = zarr.create_array(
        "s3://bkt/x.zarr",
        shape=x.shape,
        chunks=(32768, 32),
        dtype=x.dtype,
        compressors=[ZstdCodec(level=1)],
        storage_options=options,
    )
    arr[:] = x
    np.save(root / "x.npy", x)
    column = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 32)
    table = pa.table({"embedding": column})
    with pa.OSFile(str(root / "x.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        for b in table.to_batches(max_chunksize=65536):
            w.write_batch(b)
    labeled = np.random.default_rng(3).choice(args.rows, args.rows // 100, replace=False)
    for name, features, kw in (
        ("s3-store", "s3://bkt/x.zarr", {"storage_options": options}),
        ("arrow-store", str(root / "x.arrow"), {"column": "embedding"}),
        ("npy-store", str(root / "x.npy"), {}),
    ):
        with alma_store.create(root / name, features, **kw) as store:
            store.add_labels(labeled, np.ones(len(labeled), np.int64), relative_to="dataset")
    r = {}
    for mode in (
        "s3-zarr",
        "s3-store",
        "s3-gather-zarr",
        "s3-gather-store",
        "npy-store",
        "arrow-store",
    ):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, mode, str(root), json.dumps(options)],
            capture_output=True,
            text=True,
            check=True,
        )
        r[mode] = json.loads(out.stdout)
    server.stop()

    def gbps(m: str) -> float:
        return float(r[m]["gb"] / r[m]["seconds"])

    print(f"# {args.rows:,} x 32 float32; {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| what | store | set against | baseline | ratio | target |")
    print("|---|---:|---|---:|---:|---|")
    print(
        f"| S3 Zarr stream (GB/s) | {gbps('s3-store'):.3f} | zarr-python range reads | "
        f"{gbps('s3-zarr'):.3f} | {gbps('s3-store') / gbps('s3-zarr'):.2f} | ≥ 1 |"
    )
    print(
        f"| S3 Zarr, 10K random rows (s) | {r['s3-gather-store']['seconds']:.3f} | zarr-python "
        f"`oindex` | {r['s3-gather-zarr']['seconds']:.3f} | "
        f"{r['s3-gather-zarr']['seconds'] / r['s3-gather-store']['seconds']:.2f} | ≥ 1 |"
    )
    print(
        f"| Arrow file stream (GB/s) | {gbps('arrow-store'):.2f} | `.npy` stream | "
        f"{gbps('npy-store'):.2f} | {gbps('arrow-store') / gbps('npy-store'):.2f} | ≥ 0.8 |"
    )


if __name__ == "__main__":
    main()
