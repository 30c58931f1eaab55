"""Commit layers for a store on object storage, measured on a local S3 server (moto), in one run.

    python tools/bench_commit_layers.py            # 4 writers x 15 commits each
    python tools/bench_commit_layers.py --commits 30

Needs ``obstore``, ``icechunk``, ``deltalake``, ``zarr``, ``pyarrow`` and ``moto[server]``
(none of them is a dependency of alma_store), besides alma_store itself for ``local``, today's
journal on a local disk, the baseline. Each S3 layer gets its own bucket on one moto
server (127.0.0.1, a free port); 4 writer processes with separate handles commit at once, each
commit a small batch of labels, and the run then checks what is present against what the
writers were told was committed ("acknowledged"):

- ``obstore create-if-absent``: one immutable object per version, ``put(mode="create")``
  (``If-None-Match: *``); a writer that loses a version's name re-reads and takes the next.
  The check: every acknowledged object is there, and the versions are gapless.
- ``icechunk``: a transactional Zarr repository; each commit writes one chunk of an array and
  commits with ``rebase_with=ConflictDetector()``, retrying on conflicts.
- ``deltalake``: appends of a 10-row table, with conditional put on the log (``etag``).

The figures go in ``docs/benchmarks.md`` (Commit layers on object storage).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_core import make_bucket, run_together, start_moto

TOOLS = str(Path(__file__).resolve().parent)


def s3_store(endpoint: str, bucket: str):
    """An obstore client of ``bucket`` on the moto server."""
    from obstore.store import S3Store

    return S3Store(
        bucket,
        endpoint=endpoint,
        access_key_id="testing",
        secret_access_key="testing",
        region="us-east-1",
        client_options={"allow_http": True},
    )


def icechunk_storage(endpoint: str, bucket: str):
    """Icechunk's storage of the repository in ``bucket`` on the moto server."""
    import icechunk

    return icechunk.s3_storage(
        bucket=bucket,
        prefix="repo",
        endpoint_url=endpoint,
        allow_http=True,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        force_path_style=True,
    )


def delta_options(endpoint: str) -> dict[str, str]:
    """deltalake's storage options for the moto server, with conditional put on the log."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        "conditional_put": "etag",
    }


CHILD = r"""
import json, sys, time
layer, endpoint, bucket, worker, commits, tools = sys.argv[1:7]
worker, commits = int(worker), int(commits)
sys.path.insert(0, tools)
from bench_commit_layers import delta_options, icechunk_storage, s3_store
lat, acked, retries = [], [], 0

if layer == "obstore":
    import obstore, obstore.exceptions
    store = s3_store(endpoint, bucket)
    def latest():
        names = [o["path"] for batch in obstore.list(store, prefix="commits/") for o in batch]
        return max((int(n.split("/")[-1]) for n in names), default=0)
    version = latest()
    print("ready", flush=True); sys.stdin.readline(); start = time.perf_counter()
    for c in range(commits):
        body = json.dumps({"worker": worker, "commit": c, "labels": list(range(10))}).encode()
        t = time.perf_counter()
        while True:
            try:
                obstore.put(store, f"commits/{version + 1:020d}", body, mode="create")
                version += 1
                break
            except obstore.exceptions.AlreadyExistsError:  # another writer took it: go past it
                retries += 1
                version += 1
        lat.append(time.perf_counter() - t)
        acked.append(version)

elif layer == "icechunk":
    import icechunk, zarr
    repo = icechunk.Repository.open(icechunk_storage(endpoint, bucket))
    print("ready", flush=True); sys.stdin.readline(); start = time.perf_counter()
    for c in range(commits):
        slot = worker * commits + c
        t = time.perf_counter()
        while True:
            session = repo.writable_session("main")
            arr = zarr.open_array(session.store, path="labels", mode="r+")
            arr[slot] = slot + 1
            try:
                session.commit(f"w{worker} c{c}", rebase_with=icechunk.ConflictDetector())
                break
            except (icechunk.ConflictError, icechunk.RebaseFailedError):
                retries += 1
        lat.append(time.perf_counter() - t)
        acked.append(slot)

elif layer == "deltalake":
    import pyarrow as pa
    from deltalake import write_deltalake
    opts = delta_options(endpoint)
    print("ready", flush=True); sys.stdin.readline(); start = time.perf_counter()
    for c in range(commits):
        rows = [worker * 100000 + c * 10 + k for k in range(10)]
        t = time.perf_counter()
        while True:
            try:
                write_deltalake(f"s3://{bucket}/table", pa.table({"item": rows}), mode="append",
                                storage_options=opts)
                break
            except Exception as exc:  # CommitFailedError: its own 15 retries ran out
                if "Failed to commit" not in str(exc):
                    raise
                retries += 1
        lat.append(time.perf_counter() - t)
        acked.extend(rows)

elif layer == "local":
    import numpy as np
    import alma_store
    store = alma_store.open(bucket)  # a local directory: today's journal protocol
    print("ready", flush=True); sys.stdin.readline(); start = time.perf_counter()
    for c in range(commits):
        items = [(worker * commits + c) * 10 + k for k in range(10)]
        t = time.perf_counter()
        store.add_labels(items, np.ones(10, np.int64), relative_to="dataset")
        lat.append(time.perf_counter() - t)
        acked.extend(items)
    store.close(checkpoint=False)

end = time.perf_counter()
print(json.dumps({"lat": lat, "acked": acked, "retries": retries, "start": start, "end": end}))
"""


def setup(layer: str, endpoint: str, bucket: str, commits: int, writers: int) -> None:
    if layer == "local":
        import alma_store

        alma_store.create(bucket, n_items=commits * writers * 10, overwrite=True).close()
        return
    make_bucket(endpoint, bucket)
    if layer == "icechunk":
        import icechunk
        import zarr

        repo = icechunk.Repository.create(icechunk_storage(endpoint, bucket))
        session = repo.writable_session("main")
        zarr.create_array(
            session.store, name="labels", shape=(commits * writers,), chunks=(1,), dtype="i8"
        )
        session.commit("create")
    if layer == "deltalake":
        import pyarrow as pa
        from deltalake import write_deltalake

        write_deltalake(
            f"s3://{bucket}/table",
            pa.table({"item": pa.array([], pa.int64())}),
            storage_options=delta_options(endpoint),
        )


def present(layer: str, endpoint: str, bucket: str) -> list[int]:
    """What a fresh reader finds committed."""
    if layer == "local":
        import alma_store

        with alma_store.open(bucket, mode="r") as store:
            return np.flatnonzero(np.asarray(store.labeled_mask)).tolist()
    if layer == "obstore":
        import obstore

        return sorted(
            int(o["path"].split("/")[-1])
            for batch in obstore.list(s3_store(endpoint, bucket), prefix="commits/")
            for o in batch
        )
    if layer == "icechunk":
        import icechunk
        import zarr

        session = icechunk.Repository.open(icechunk_storage(endpoint, bucket)).readonly_session(
            "main"
        )
        values = zarr.open_array(session.store, path="labels", mode="r")[:]
        return sorted(int(v) - 1 for v in values if v)
    from deltalake import DeltaTable

    return sorted(
        DeltaTable(f"s3://{bucket}/table", storage_options=delta_options(endpoint))
        .to_pyarrow_table()["item"]
        .to_pylist()
    )


def run_layer(layer: str, endpoint: str, writers: int, commits: int, tmp: str) -> dict:
    bucket = f"{tmp}/local-store" if layer == "local" else f"b-{layer}"
    setup(layer, endpoint, bucket, commits, writers)
    out = run_together(
        CHILD, [[layer, endpoint, bucket, str(w), str(commits), TOOLS] for w in range(writers)]
    )
    span = max(o["end"] for o in out) - min(o["start"] for o in out)
    acked = sorted(a for o in out for a in o["acked"])
    found = present(layer, endpoint, bucket)
    lat = np.concatenate([o["lat"] for o in out]) * 1e3
    result = {
        "layer": layer,
        "acknowledged": len(acked),
        "present": len(set(acked) & set(found)),
        "duplicates": len(acked) - len(set(acked)),
        "commits_per_s": writers * commits / span,
        "median_ms": statistics.median(lat.tolist()),
        "p90_ms": float(np.percentile(lat, 90)),
        "retries": sum(o["retries"] for o in out),
    }
    if layer == "obstore":
        result["gapless"] = found == list(range(1, len(found) + 1))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--commits", type=int, default=15, help="commits per writer")
    ap.add_argument("--layers", default="local,obstore,icechunk,deltalake")
    args = ap.parse_args()
    server, endpoint = start_moto()
    rows = []
    tmp = tempfile.mkdtemp(prefix="alma-layers-")
    try:
        for layer in args.layers.split(","):
            rows.append(run_layer(layer, endpoint, args.writers, args.commits, tmp))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\n# commit layers on moto S3, {args.writers} writers x {args.commits} commits "
        f"({time.strftime('%Y-%m-%d')})\n"
    )
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print(
            "| "
            + " | ".join(
                f"{r.get(k, ''):.3g}" if isinstance(r.get(k), float) else str(r.get(k, ""))
                for k in keys
            )
            + " |"
        )


if __name__ == "__main__":
    main()
