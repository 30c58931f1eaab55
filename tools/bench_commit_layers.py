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
import subprocess
import sys
import tempfile
import time

import numpy as np

CREDS = {"key": "testing", "secret": "testing", "region": "us-east-1"}

CHILD = r"""
import json, sys, time
layer, endpoint, bucket, worker, commits = sys.argv[1:6]
worker, commits = int(worker), int(commits)
lat, acked, retries = [], [], 0

if layer == "obstore":
    import obstore, obstore.exceptions
    from obstore.store import S3Store
    store = S3Store(bucket, endpoint=endpoint, access_key_id="testing",
                    secret_access_key="testing", region="us-east-1",
                    client_options={"allow_http": True})
    def latest():
        names = [o["path"] for batch in obstore.list(store, prefix="commits/") for o in batch]
        return max((int(n.split("/")[-1]) for n in names), default=0)
    version = latest()
    print("ready", flush=True); sys.stdin.readline()
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
    storage = icechunk.s3_storage(bucket=bucket, prefix="repo", endpoint_url=endpoint,
                                  allow_http=True, region="us-east-1", access_key_id="testing",
                                  secret_access_key="testing", force_path_style=True)
    repo = icechunk.Repository.open(storage)
    print("ready", flush=True); sys.stdin.readline()
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
    opts = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true", "conditional_put": "etag"}
    print("ready", flush=True); sys.stdin.readline()
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
    print("ready", flush=True); sys.stdin.readline()
    for c in range(commits):
        items = [(worker * commits + c) * 10 + k for k in range(10)]
        t = time.perf_counter()
        store.add_labels(items, np.ones(10, np.int64), relative_to="dataset")
        lat.append(time.perf_counter() - t)
        acked.extend(items)
    store.close(checkpoint=False)

print(json.dumps({"lat": lat, "acked": acked, "retries": retries}))
"""


def setup(layer: str, endpoint: str, bucket: str, commits: int, writers: int) -> None:
    if layer == "local":
        import alma_store

        alma_store.create(bucket, n_items=commits * writers * 10, overwrite=True).close()
        return
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    if layer == "icechunk":
        import icechunk
        import zarr

        storage = icechunk.s3_storage(
            bucket=bucket,
            prefix="repo",
            endpoint_url=endpoint,
            allow_http=True,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing",
            force_path_style=True,
        )
        repo = icechunk.Repository.create(storage)
        session = repo.writable_session("main")
        zarr.create_array(
            session.store, name="labels", shape=(commits * writers,), chunks=(1,), dtype="i8"
        )
        session.commit("create")
    if layer == "deltalake":
        import pyarrow as pa
        from deltalake import write_deltalake

        opts = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
            "conditional_put": "etag",
        }
        write_deltalake(
            f"s3://{bucket}/table",
            pa.table({"item": pa.array([], pa.int64())}),
            storage_options=opts,
        )


def present(layer: str, endpoint: str, bucket: str) -> list[int]:
    """What a fresh reader finds committed."""
    if layer == "local":
        import alma_store

        with alma_store.open(bucket, mode="r") as store:
            return np.flatnonzero(np.asarray(store.labeled_mask)).tolist()
    if layer == "obstore":
        import obstore
        from obstore.store import S3Store

        store = S3Store(
            bucket,
            endpoint=endpoint,
            access_key_id="testing",
            secret_access_key="testing",
            region="us-east-1",
            client_options={"allow_http": True},
        )
        return sorted(
            int(o["path"].split("/")[-1])
            for batch in obstore.list(store, prefix="commits/")
            for o in batch
        )
    if layer == "icechunk":
        import icechunk
        import zarr

        storage = icechunk.s3_storage(
            bucket=bucket,
            prefix="repo",
            endpoint_url=endpoint,
            allow_http=True,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing",
            force_path_style=True,
        )
        session = icechunk.Repository.open(storage).readonly_session("main")
        values = zarr.open_array(session.store, path="labels", mode="r")[:]
        return sorted(int(v) - 1 for v in values if v)
    from deltalake import DeltaTable

    opts = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    return sorted(
        DeltaTable(f"s3://{bucket}/table", storage_options=opts)
        .to_pyarrow_table()["item"]
        .to_pylist()
    )


def run_layer(layer: str, endpoint: str, writers: int, commits: int, tmp: str) -> dict:
    bucket = f"{tmp}/local-store" if layer == "local" else f"b-{layer}"
    setup(layer, endpoint, bucket, commits, writers)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, layer, endpoint, bucket, str(w), str(commits)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    out = [json.loads(proc.communicate(timeout=1800)[0]) for proc in procs]
    span = time.perf_counter() - start
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
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
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
