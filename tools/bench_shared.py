"""Commits to shared stores (format 5) against today's local stores (format 4), in one run.

    python tools/bench_shared.py                       # 200 commits per writer locally, 40 on S3
    python tools/bench_shared.py --commits 400 --s3-commits 60

Every row runs 1 and then 4 writer processes with separate handles, released at
once; each commit labels 10 items by dataset index (``add_labels``), and the
run checks that the store holds every acknowledged label at a gapless version.

- ``local, format 4``: today's protocol on a local disk (journal, ``flock``,
  group commit): the baseline.
- ``local dir, shared``: a shared store in a local directory: one
  create-if-absent commit object per version (temp file, ``fsync``, ``link``,
  ``fsync`` of the directory), no lock; what a network filesystem gets.
- ``moto S3, shared``: a shared store on a local S3 server (moto, 127.0.0.1,
  a free port): a conditional put per version, through obstore.

Limits, in the same run, one process: a 200-byte append with ``fdatasync``
(the local journal's floor), a bare create-if-absent object of 200 bytes in a
directory, and a bare conditional put of 200 bytes on the S3 server. The
figures go in ``docs/benchmarks.md`` (Shared stores).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from bench_core import make_bucket, moto_options, start_moto, writers_released

import alma_store
from alma_store.storage import Location, open_objects

PER = 10


def summary(lat_ms: np.ndarray, commits: int, span: float) -> dict[str, float]:
    return {
        "median_ms": float(np.median(lat_ms)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "commits_per_s": commits / span,
    }


def writers_row(
    location: str, options: dict | None, writers: int, commits: int, *, prelude: str = ""
) -> dict:
    """``writers`` processes, ``commits`` each (``prelude``: code each runs first)."""
    got = writers_released(
        [
            [location, str(w), str(writers), str(commits), str(PER), json.dumps(options)]
            for w in range(writers)
        ],
        prelude,
    )
    with alma_store.open(location, mode="r", storage_options=options) as store:
        assert store.version == writers * commits  # gapless, one version per commit
        assert store.num_labeled == writers * commits * PER  # every acknowledged label
    return got


def apart_row(
    locations: list[str], options: dict | None, commits: int, *, prelude: str = ""
) -> dict:
    """One writer process per store of ``locations``, ``commits`` each, released at once:
    what so many processes can commit on this machine (and server) when they share
    nothing, the ceiling for as many writers of one store."""
    got = writers_released(
        [[where, "0", "1", str(commits), str(PER), json.dumps(options)] for where in locations],
        prelude,
    )
    for where in locations:
        with alma_store.open(where, mode="r", storage_options=options) as store:
            assert store.version == commits  # gapless
            assert store.num_labeled == commits * PER  # every acknowledged label
    return got


def limit(op, n: int) -> dict[str, float]:
    lat = []
    start = time.perf_counter()
    for k in range(n):
        t = time.perf_counter()
        op(k)
        lat.append(time.perf_counter() - t)
    return summary(np.array(lat) * 1e3, n, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=200, help="commits per local writer")
    parser.add_argument("--s3-commits", type=int, default=40, help="commits per S3 writer")
    args = parser.parse_args()
    server, endpoint = start_moto()
    options = moto_options(endpoint)
    make_bucket(endpoint, "bkt")
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        n = 4 * max(args.commits, args.s3_commits) * PER
        for writers in (1, 4):
            old = str(root / f"old-{writers}")
            alma_store.create(old, n_items=n).close()
            rows[f"local, format 4, {writers} writer(s)"] = writers_row(
                old, None, writers, args.commits
            )
            new = str(root / f"shared-{writers}")
            alma_store.create(new, n_items=n, shared=True).close()
            rows[f"local dir, shared, {writers} writer(s)"] = writers_row(
                new, None, writers, args.commits
            )
            url = f"s3://bkt/{uuid.uuid4().hex}"
            alma_store.create(url, n_items=n, storage_options=options).close()
            rows[f"moto S3, shared, {writers} writer(s)"] = writers_row(
                url, options, writers, args.s3_commits
            )
        record = os.urandom(200)
        fd = os.open(root / "append.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        rows["limit: 200 B append + fdatasync"] = limit(
            lambda k: (os.write(fd, record), os.fdatasync(fd)), args.commits
        )
        os.close(fd)
        local = open_objects(Location.parse(root / "bare"))
        rows["limit: bare create-if-absent, local dir"] = limit(
            lambda k: local.create(f"log/{k:020d}", record), args.commits
        )
        remote = open_objects(Location.parse(f"s3://bkt/bare-{uuid.uuid4().hex}", options))
        rows["limit: bare conditional put, moto S3"] = limit(
            lambda k: remote.create(f"log/{k:020d}", record), args.s3_commits
        )
    server.stop()
    print(
        f"\n# commits of {PER} labels, {args.commits} per local writer, "
        f"{args.s3_commits} per S3 writer ({time.strftime('%Y-%m-%d')})"
    )
    print(f"{'':45s} {'median ms':>10s} {'p99 ms':>10s} {'commits/s':>10s}")
    for name, row in rows.items():
        print(
            f"{name:45s} {row['median_ms']:10.2f} {row['p99_ms']:10.2f} "
            f"{row['commits_per_s']:10.0f}"
        )
    for writers in (1, 4):
        old = rows[f"local, format 4, {writers} writer(s)"]
        new = rows[f"local dir, shared, {writers} writer(s)"]
        s3 = rows[f"moto S3, shared, {writers} writer(s)"]
        print(
            f"{writers} writer(s): shared / format 4 on local disk: median "
            f"{new['median_ms'] / old['median_ms']:.2f}x, commits/s "
            f"{new['commits_per_s'] / old['commits_per_s']:.2f}x; moto S3 median / bare put "
            f"{s3['median_ms'] / rows['limit: bare conditional put, moto S3']['median_ms']:.2f}x"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
