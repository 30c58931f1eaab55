"""Benchmark: streaming and gathering rows from each kind of feature source, in one run.

    python tools/bench_sources.py                  # 1e7 x 32 float32 (1.28 GB) per source
    python tools/bench_sources.py --rows 1000000   # smaller
    python tools/bench_sources.py --dir /data/b    # keep (and reuse) the sources there

Every figure is set against the limit of this machine measured in the same run,
each in its own process (peak anonymous memory, RssAnon, is the growth over the
process's baseline, sampled every batch):

* ``.npy`` warm: ``store.unlabeled.batches(65536, reuse=True)`` (1% labeled)
  against one memcpy of the same bytes from the page cache into a buffer;
* ``.npy`` cold: the same stream after the file is dropped from the page cache,
  against a sequential ``read()`` of the file, also cold;
* Zarr (zstd): the stream against decoding every chunk file of the array on all
  cores (the machine's decode limit), and zarr-python's own range reads;
* Zarr (uncompressed): the stream against the ``.npy`` stream;
* 10,000 random rows (``store.unlabeled[positions]``) from uncompressed Zarr,
  zstd Zarr and zarr-python, against the same rows from ``.npy``;
* HDF5 (contiguous dataset): the stream against the ``.npy`` stream.
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

CHILD = r"""
import json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np
import alma_store

mode, root, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
def drop(path):
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
npy = os.path.join(root, "x.npy")
base = rss()
peak = [base]
def stream(store_name, passes=3):
    best, total = float("inf"), 0
    with alma_store.open(os.path.join(root, store_name), mode="r") as s:
        for _ in range(passes):
            t = time.perf_counter()
            total = 0
            for _, rows in s.unlabeled.batches(batch, reuse=True):
                total += rows.nbytes
                peak[0] = max(peak[0], rss())
            best = min(best, time.perf_counter() - t)
    return best, total
if mode == "memcpy":
    mm = np.load(npy, mmap_mode="r")
    buf = np.empty((batch, *mm.shape[1:]), mm.dtype)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for a in range(0, len(mm), batch):
            n = min(batch, len(mm) - a)
            np.copyto(buf[:n], mm[a : a + n])
        best = min(best, time.perf_counter() - t)
    seconds, total = best, mm.nbytes
elif mode == "read-cold":
    drop(npy)
    fd = os.open(npy, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    buf = memoryview(bytearray(batch * 128))
    t, total = time.perf_counter(), 0
    while (got := os.readv(fd, [buf])) > 0:
        total += got
    seconds = time.perf_counter() - t
    os.close(fd)
elif mode == "npy-cold":
    drop(npy)
    seconds, total = stream("store-npy", passes=1)
elif mode.startswith("decode-"):
    import numcodecs
    folder = os.path.join(root, f"x-{mode[7:]}.zarr", "c")
    files = sorted(os.listdir(folder), key=int)
    meta = json.load(open(os.path.join(root, f"x-{mode[7:]}.zarr", "zarr.json")))
    conf = meta["codecs"][1]["configuration"]
    codec = numcodecs.Zstd(level=conf.get("level", 0))
    def load(name):
        with open(os.path.join(folder, name, "0"), "rb") as f:
            return len(codec.decode(f.read()))
    best = float("inf")
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        for _ in range(3):
            t = time.perf_counter()
            total = sum(pool.map(load, files))
            best = min(best, time.perf_counter() - t)
    seconds = best
elif mode.startswith("zarrpy-"):
    import zarr
    arr = zarr.open_array(os.path.join(root, f"x-{mode[7:]}.zarr"), mode="r")
    t, total = time.perf_counter(), 0
    for a in range(0, arr.shape[0], batch):
        rows = arr[a : a + batch]
        total += rows.nbytes
        peak[0] = max(peak[0], rss())
    seconds = time.perf_counter() - t
elif mode.startswith("gather-"):
    kind = mode[7:]
    rng = np.random.default_rng(1)
    if kind.startswith("zarrpy-"):
        import zarr
        arr = zarr.open_array(os.path.join(root, f"x-{kind[7:]}.zarr"), mode="r")
        with alma_store.open(os.path.join(root, "store-npy"), mode="r") as s:
            idx = s.unlabeled.to_dataset_index(np.sort(rng.choice(len(s.unlabeled), 10000, replace=False)))
        t = time.perf_counter()
        rows = arr.oindex[idx]
        seconds, total = time.perf_counter() - t, rows.nbytes
    else:
        with alma_store.open(os.path.join(root, f"store-{kind}"), mode="r") as s:
            pos = np.sort(rng.choice(len(s.unlabeled), 10000, replace=False))
            s.unlabeled[pos[:10]]  # opened and warm; the timed read is a fresh set of rows
            t = time.perf_counter()
            rows = s.unlabeled[pos]
            seconds, total = time.perf_counter() - t, rows.nbytes
else:
    seconds, total = stream(f"store-{mode}")
print(json.dumps({"mode": mode, "seconds": seconds, "gb": total / 1e9, "peak_anon_mib": peak[0] - base}))
"""


def prepare(root: Path, rows: int, dim: int, chunk: int) -> None:
    """The same matrix as .npy, Zarr (zstd and uncompressed) and HDF5, and a store on each."""
    import h5py
    import zarr
    from zarr.codecs import ZstdCodec

    import alma_store

    npy = root / "x.npy"
    if not npy.exists():
        mm = np.lib.format.open_memmap(npy, mode="w+", dtype="float32", shape=(rows, dim))
        for a in range(0, rows, 1 << 20):
            rng = np.random.default_rng(a)
            block = rng.normal(size=(min(1 << 20, rows - a), dim)).astype(np.float32)
            mm[a : a + len(block)] = np.round(block, 2)  # two decimals: zstd finds something
        mm.flush()
        del mm
    src = np.load(npy, mmap_mode="r")
    for name, compressors in (("zstd", [ZstdCodec(level=1)]), ("raw", None)):
        path = root / f"x-{name}.zarr"
        if not path.exists():
            arr = zarr.create_array(
                path, shape=src.shape, chunks=(chunk, dim), dtype=src.dtype, compressors=compressors
            )
            for a in range(0, rows, 16 * chunk):
                arr[a : a + 16 * chunk] = src[a : a + 16 * chunk]
    h5 = root / "x.h5"
    if not h5.exists():
        with h5py.File(h5, "w") as f:
            ds = f.create_dataset("x", shape=src.shape, dtype=src.dtype)
            for a in range(0, rows, 1 << 20):
                ds[a : a + (1 << 20)] = src[a : a + (1 << 20)]
    labeled = np.random.default_rng(3).choice(rows, rows // 100, replace=False)
    for name, features in (
        ("npy", str(npy)),
        ("zarr-zstd", str(root / "x-zstd.zarr")),
        ("zarr-raw", str(root / "x-raw.zarr")),
        ("hdf5", f"{h5}:/x"),
    ):
        path = root / f"store-{name}"
        if not path.exists():
            with alma_store.create(path, features) as store:
                store.add_labels(labeled, np.ones(len(labeled), np.int64), relative_to="dataset")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--chunk", type=int, default=32768, help="Zarr chunk rows")
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="alma-bench-sources-"))
    root.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    prepare(root, args.rows, 32, args.chunk)
    print(f"# sources ready in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    modes = [
        "memcpy",
        "npy",
        "read-cold",
        "npy-cold",
        "decode-zstd",
        "zarr-zstd",
        "zarrpy-zstd",
        "zarr-raw",
        "hdf5",
        "gather-npy",
        "gather-zarr-raw",
        "gather-zarr-zstd",
        "gather-zarrpy-raw",
    ]
    r = {}
    for mode in modes:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, mode, str(root), str(args.batch)],
            capture_output=True,
            text=True,
            check=True,
        )
        r[mode] = json.loads(out.stdout)
        r[mode]["GBps"] = r[mode]["gb"] / r[mode]["seconds"]

    def gbps(m: str) -> str:
        return f"{r[m]['GBps']:.2f}"

    def mib(m: str) -> str:
        return f"{r[m]['peak_anon_mib']:.0f}"

    print(
        f"# {args.rows:,} x 32 float32 ({args.rows * 128 / 1e9:.2f} GB), Zarr chunks of "
        f"{args.chunk} rows, batches of {args.batch}, 1% labeled; {time.strftime('%Y-%m-%d %H:%M')}\n"
    )
    print(
        "| what | GB/s | limit it is set against | limit GB/s | ratio | target | peak RssAnon (MiB) |"
    )
    print("|---|---:|---|---:|---:|---|---:|")
    rows = [
        ("`.npy` stream, warm", "npy", "memcpy from the page cache", "memcpy", "≥ 0.7"),
        ("`.npy` stream, cold", "npy-cold", "sequential `read()`, cold", "read-cold", "≥ 0.9"),
        ("Zarr zstd stream", "zarr-zstd", "threaded decode of its chunks", "decode-zstd", "≥ 0.7"),
        ("zarr-python range reads (zstd)", "zarrpy-zstd", "threaded decode", "decode-zstd", ""),
        ("Zarr uncompressed stream", "zarr-raw", "`.npy` stream", "npy", "≥ 0.7"),
        ("HDF5 (contiguous) stream", "hdf5", "`.npy` stream", "npy", ""),
    ]
    for what, m, limit, lm, target in rows:
        print(
            f"| {what} | {gbps(m)} | {limit} | {gbps(lm)} | "
            f"{r[m]['GBps'] / r[lm]['GBps']:.2f} | {target} | {mib(m)} |"
        )
    print("\n| 10,000 random rows from | ms | x `.npy` | target |")
    print("|---|---:|---:|---|")
    base = r["gather-npy"]["seconds"]
    for what, m, target in (
        ("`.npy`", "gather-npy", ""),
        ("Zarr uncompressed", "gather-zarr-raw", "≤ 5x"),
        ("Zarr zstd", "gather-zarr-zstd", ""),
        ("zarr-python `oindex`, uncompressed", "gather-zarrpy-raw", ""),
    ):
        print(f"| {what} | {r[m]['seconds'] * 1e3:.1f} | {r[m]['seconds'] / base:.1f} | {target} |")


if __name__ == "__main__":
    main()
