"""The ``alma`` commands of a store: create, label, import and export, history, checks, scores."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import exchange
from .._entry import copy, create, open_store
from ..core import n_chunks
from ..errors import InvalidInputError
from ..exchange import count_rows, parse_label_text
from ..scoring import BACKENDS, METHODS
from ._common import (
    chunk_bar,
    click,
    dtype_name,
    import_function,
    progress_bar,
    reduce_option,
    spec_from_options,
    spec_options,
    when,
)

__all__ = ["add_store_commands"]


def add_store_commands(
    cli: click.Group, store_arg: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> None:
    """Register the store commands on the ``alma`` group."""

    @cli.command()
    @store_arg
    @click.argument("features", required=False)
    @spec_options
    @click.option("--overwrite", is_flag=True, help="Replace an existing store.")
    @click.option(
        "--shared",
        is_flag=True,
        help="A shared store (no lock: for network filesystems); URLs are always shared.",
    )
    def init(
        store: str, features: str | None, overwrite: bool, shared: bool, **options: Any
    ) -> None:
        """Create STORE over FEATURES (.npy, Zarr directory, file.h5:/dataset, or an Arrow
        file with --column), or an index-only STORE with --n-items and no FEATURES."""
        spec = spec_from_options(options)
        with create(store, features, overwrite=overwrite, shared=shared, **spec) as s:
            click.echo(f"created {s.path}: {len(s)} items, labels {dtype_name(s.label_dtype)}")

    @cli.command("copy")
    @click.argument("src")
    @click.argument("dst")
    @click.option(
        "--shared", is_flag=True, help="Make a directory DST a shared store (URLs always are)."
    )
    def copy_command(src: str, dst: str, shared: bool) -> None:
        """Copy the store SRC to DST with its whole history (a directory or an s3://, gs://,
        az:// URL each; credentials and endpoints from the usual environment variables)."""
        done = copy(src, dst, shared=shared)
        click.echo(
            f"copied {src} to {dst}: {done['version']} versions, "
            f"{done['campaign_records']} campaign records"
        )

    @cli.command()
    @store_arg
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def info(store: str, as_json: bool) -> None:
        """Show size, labeled/unlabeled counts, classes, rounds and last commit of STORE."""
        with open_store(store, mode="r") as s:
            per_class = {} if s.label_shape else s.schema.counts(s.labels)
            rounds = s.rounds()
            last = None
            for event in s.history():
                last = event
            data: dict[str, Any] = {
                "path": str(s.path),
                "n_items": len(s),
                "num_labeled": s.num_labeled,
                "num_unlabeled": s.num_unlabeled,
                "version": s.version,
                "label_dtype": s.meta["label_dtype"],
                "classes": None if s.classes is None else list(s.classes),
                "per_class": per_class,
                "rounds": [
                    {
                        "round": r.round,
                        "commits": r.commits,
                        "added": r.added,
                        "relabeled": r.relabeled,
                        "removed": r.removed,
                        "annotators": list(r.annotators),
                    }
                    for r in rounds
                ],
                "last_commit": None
                if last is None
                else {
                    "version": last.version,
                    "kind": last.kind,
                    "time": when(last.time, precise=True),
                    "annotator": last.annotator,
                    "round": last.round,
                    "n": len(last.dataset_indices),
                },
                "features": s.meta["features"],
            }
        if as_json:
            click.echo(json.dumps(data, indent=1))
            return
        for key in ("path", "n_items", "num_labeled", "num_unlabeled", "version"):
            click.echo(f"{key:14} {data[key]}")
        click.echo(f"{'label_dtype':14} {dtype_name(s.label_dtype)}")
        if data["classes"]:
            click.echo(f"{'classes':14} {', '.join(data['classes'])}")
        if per_class:
            click.echo(f"{'per class':14} " + ", ".join(f"{k}: {v}" for k, v in per_class.items()))
        for r in data["rounds"]:
            click.echo(
                f"{'round':14} {r['round']}: {r['commits']} commits, +{r['added']} "
                f"~{r['relabeled']} -{r['removed']} by {', '.join(map(str, r['annotators']))}"
            )
        if last is not None:
            c = data["last_commit"]
            click.echo(
                f"{'last commit':14} v{c['version']} {c['kind']} of {c['n']} at {c['time']}"
                f" by {c['annotator']}"
            )
        feats = data["features"]
        where = feats.get("path", "(index-only: no features)")
        click.echo(f"{'features':14} {feats['kind']} {where}")

    @cli.command()
    @store_arg
    @click.argument("pairs", nargs=-1, required=True)
    @click.option(
        "--unlabeled",
        "relative",
        flag_value="unlabeled",
        help="INDEX is a position in the Unlabeled view.",
    )
    @click.option(
        "--dataset",
        "relative",
        flag_value="dataset",
        default=True,
        help="INDEX is a dataset index (the default).",
    )
    @click.option("--annotator", default=None, help="Who labeled.")
    @click.option("--round", "round_", type=int, default=None, help="Round tag.")
    @click.option(
        "--expected-version",
        type=int,
        default=None,
        help="Refuse (and write nothing) if other commits landed since this version.",
    )
    def label(
        store: str,
        pairs: tuple[str, ...],
        relative: Literal["unlabeled", "dataset"],
        annotator: str | None,
        round_: int | None,
        expected_version: int | None,
    ) -> None:
        """Add labels given as INDEX=LABEL pairs, as one atomic commit."""
        with open_store(store) as s:
            indices, values = [], []
            for k, pair in enumerate(pairs, start=1):
                key, sep, text = pair.partition("=")
                if not sep:
                    raise InvalidInputError(f"argument {k} must be INDEX=LABEL, got {pair!r}")
                try:
                    indices.append(int(key))
                except ValueError:
                    raise InvalidInputError(
                        f"argument {k}: index {key!r} is not an integer"
                    ) from None
                values.append(parse_label_text(text, s.schema, "<arguments>", k))
            done = s.add_labels(
                indices,
                values,
                relative_to=relative,
                annotator=annotator,
                round=round_,
                expected_version=expected_version,
            )
            click.echo(
                f"labeled {len(done)} items (dataset indices {done.tolist()}); version {s.version}"
            )

    @cli.command("import")
    @store_arg
    @click.argument("file", type=click.Path(path_type=Path))
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(list(exchange.FORMATS)),
        default=None,
        help="FILE is an annotation tool's export (Label Studio JSON, JSON-MIN or CSV; "
        "prodigy db-out; doccano JSONL).",
    )
    @click.option("--annotator", default=None, help="Who labeled (plain files, doccano).")
    @click.option(
        "--annotators",
        "users",
        type=click.Path(path_type=Path, exists=True, dir_okay=False),
        default=None,
        help='A JSON object naming the tool\'s user ids: {"1": "alice@lab.org", ...}.',
    )
    @click.option("--round", "round_", type=int, default=None, help="Round tag.")
    @click.option(
        "--on-change",
        type=click.Choice(["error", "relabel"]),
        default="error",
        show_default=True,
        help="A tool export naming a labeled item with another value: refuse, or relabel it.",
    )
    def import_(
        store: str,
        file: Path,
        fmt: str | None,
        annotator: str | None,
        users: Path | None,
        round_: int | None,
        on_change: str,
    ) -> None:
        """Add the labels of FILE in one commit.

        FILE is .csv, .jsonl or .parquet of dataset_index,label rows, or with
        --format the export of Label Studio or Prodigy (each label keeps its
        annotator and time). Tool exports are cumulative: what the store holds
        already is skipped, so the same export imports once."""
        names = None if users is None else _user_names(users)
        with open_store(store) as s:
            if fmt is not None:
                done = s.import_labels(
                    file,
                    format=fmt,  # type: ignore[arg-type]
                    annotator=annotator,
                    round=round_,
                    on_change=on_change,  # type: ignore[arg-type]
                    annotators=names,
                )
            else:
                with progress_bar(count_rows(file), "import") as progress:
                    done = s.import_labels(
                        file, annotator=annotator, round=round_, progress=progress
                    )
            version = s.version
        what = "annotations" if s.annotations_per_item > 1 else "labels"
        extra = ""
        if fmt is not None:
            relabeled, skipped = getattr(done, "relabeled", ()), getattr(done, "skipped", 0)
            extra = f", relabeled {len(relabeled)}, skipped {skipped} already in the store"
        click.echo(f"imported {len(done)} {what} from {file}{extra}; version {version}")

    @cli.command()
    @store_arg
    @click.argument("file", type=click.Path(path_type=Path))
    @click.option("--history", is_flag=True, help="Export every label entry of every commit.")
    @click.option(
        "--raw",
        is_flag=True,
        help="CSV: write text starting with = + - @ as it is (default: a leading ').",
    )
    def export(store: str, file: Path, history: bool, raw: bool) -> None:
        """Write the labels (or the history) of STORE to FILE (.csv, .jsonl or .parquet)."""
        with open_store(store, mode="r") as s:
            if history:
                with progress_bar(None, "export history") as progress:
                    n = s.export_history(file, progress=progress, raw=raw)
            else:
                with progress_bar(s.num_labeled, "export labels") as progress:
                    n = s.export_labels(file, progress=progress, raw=raw)
        click.echo(f"wrote {n} rows to {file}")

    @cli.command()
    @store_arg
    @click.option("--annotator", default=None, help="Only this annotator's commits.")
    @click.option("--round", "round_", type=int, default=None, help="Only this round.")
    @click.option(
        "--kind",
        "kinds",
        multiple=True,
        type=click.Choice(["add", "relabel", "remove"]),
        help="Only these kinds (repeatable).",
    )
    @click.option("--start", type=int, default=None, help="Only dataset indices >= START.")
    @click.option("--stop", type=int, default=None, help="Only dataset indices < STOP.")
    @click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON object per commit, every item."
    )
    @click.option(
        "--entries",
        "--all",
        "show_all",
        is_flag=True,
        help="List every label of a commit, not the first 10.",
    )
    def history(
        store: str,
        annotator: str | None,
        round_: int | None,
        kinds: tuple[str, ...],
        start: int | None,
        stop: int | None,
        as_json: bool,
        show_all: bool,
    ) -> None:
        """List the commits of STORE, oldest first: one line each, with its first items."""
        limit = None if show_all else 10
        with open_store(store, mode="r") as s:
            for e in s.history(
                annotator=annotator, round=round_, kinds=kinds or None, start=start, stop=stop
            ):
                values = e.values.tolist()
                if s.classes is not None and not s.label_shape:
                    values = s.class_names(e.values).tolist()
                kind = "resolve" if e.resolved else e.kind
                who = e.annotator or "-"
                if e.row_annotators is not None:
                    who = ",".join(sorted({str(a) for a in e.row_annotators}))
                row = {
                    "version": e.version,
                    "kind": kind,
                    "time": when(e.time, precise=as_json),
                    "annotator": e.annotator,
                    "round": e.round,
                    "dataset_indices": e.dataset_indices.tolist(),
                    "labels": values,
                }
                if e.row_annotators is not None:
                    row["row_annotators"] = list(e.row_annotators)
                    row["row_times"] = [when(t, precise=True) for t in e.row_times or ()]
                ann = e.annotations
                if ann is not None:
                    ann_values = ann.values.tolist()
                    if s.classes is not None:
                        ann_values = s.class_names(ann.values).tolist()
                    row["annotations"] = {
                        "dataset_indices": ann.dataset_indices.tolist(),
                        "labels": ann_values,
                        "annotators": list(ann.annotators),
                        "times": [when(t, precise=True) for t in ann.times],
                    }
                    who = ",".join(sorted(set(ann.annotators)))
                if as_json:
                    click.echo(json.dumps(row))
                    continue
                n = len(e.dataset_indices)
                if ann is not None:
                    kind, n_shown = "annotate", len(ann.dataset_indices)
                    pairs = zip(row["annotations"]["dataset_indices"], ann_values, strict=True)
                    what = f"{n_shown} annotation{'s' if n_shown != 1 else ''} ({n} decided)"
                else:
                    n_shown = n
                    pairs = zip(row["dataset_indices"], values, strict=True)
                    what = f"{n} item{'s' if n != 1 else ''}"
                shown = ", ".join(f"{i}={v}" for i, v in list(pairs)[:limit])
                more = (
                    f", ... and {n_shown - limit} more"
                    if limit is not None and n_shown > limit
                    else ""
                )
                click.echo(
                    f"v{e.version} {row['time']} {kind:8} {who} round={e.round} {what}: {shown}{more}"
                )

    @cli.command()
    @store_arg
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def verify(store: str, as_json: bool) -> None:
        """Check that journal, mask, labels and counts of STORE agree (exit 1 if not)."""
        with (
            open_store(store, mode="r") as s,
            progress_bar(n_chunks(len(s), s.chunk_rows), "verify") as bar,
        ):
            summary = s.verify(progress=bar)
        if as_json:
            click.echo(json.dumps({"ok": True, **summary}))
        else:
            click.echo(
                f"ok: version {summary['version']}, {summary['num_labeled']} labeled, "
                f"{summary['records']} journal records, {summary['chunks_checked']} chunks checked"
            )

    @cli.command()
    @store_arg
    def upgrade(store: str) -> None:
        """Rewrite STORE in the current format version (also done by its first write)."""
        with open_store(store) as s:
            before = s.meta["format_version"]
            s.upgrade()
            after = s.meta["format_version"]
        if before == after:
            click.echo(f"{store} is at format version {after} already")
        else:
            click.echo(f"upgraded {store} from format version {before} to {after}")

    @cli.command()
    @store_arg
    @click.option(
        "--fn",
        "fn_path",
        required=True,
        help="Scoring function as module:function; called with a batch of rows.",
    )
    @click.option("--name", required=True, help="Name of the scoring.")
    @click.option(
        "--shard",
        default="0/1",
        show_default=True,
        help="i/n: score the chunks j with j % n == i (e.g. a Slurm array task).",
    )
    @click.option(
        "--batch-rows",
        type=int,
        default=4096,
        show_default=True,
        help="Rows per call of the function.",
    )
    @click.option(
        "--columns",
        type=int,
        default=None,
        help="The function gives this many values per row (class probabilities, an embedding).",
    )
    def score(
        store: str, fn_path: str, name: str, shard: str, batch_rows: int, columns: int | None
    ) -> None:
        """Score the unlabeled rows of STORE; a rerun redoes only unfinished chunks."""
        fn = import_function(fn_path)
        with open_store(store) as s, chunk_bar(f"score {name}") as (plan, progress):
            n = s.score(
                fn,
                name,
                batch_rows=batch_rows,
                shard=shard,
                progress=progress,
                plan=plan,
                columns=columns,
            )
            done, total = s.scoring_progress(name)
        click.echo(f"scored {n} chunks of {name!r} (shard {shard}); {done} of {total} done")

    @cli.command()
    @store_arg
    @click.option("--name", required=True, help="Name of the scoring.")
    @click.option("--top-k", "k", type=int, required=True, help="How many items.")
    @click.option("--smallest", is_flag=True, help="Take the lowest scores instead.")
    @click.option("--allow-partial", is_flag=True, help="Use the chunks scored so far.")
    @reduce_option("Rank a scoring of several values per row by this reduction of each row.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def query(
        store: str,
        name: str,
        k: int,
        smallest: bool,
        allow_partial: bool,
        reduce: str | None,
        as_json: bool,
    ) -> None:
        """Print the best still-unlabeled items of a scoring of STORE."""
        with open_store(store, mode="r") as s:
            q = s.top_k(name, k, largest=not smallest, allow_partial=allow_partial, reduce=reduce)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "version": q.version,
                        "dataset_indices": q.dataset_indices.tolist(),
                        "scores": q.scores.tolist(),
                    }
                )
            )
            return
        _echo_picks(q.version, q.dataset_indices, q.scores)

    @cli.command()
    @store_arg
    @click.option("--k", "k", type=int, required=True, help="How many items.")
    @click.option(
        "--method",
        type=click.Choice(list(METHODS)),
        default="kcenter",
        show_default=True,
        help="The farthest item (k-center greedy), or k-means++ seeding.",
    )
    @click.option(
        "--embeddings",
        default=None,
        help="A scoring of several values per row (with the labeled rows); default: the features.",
    )
    @click.option(
        "--scores", default=None, help="Pick among the best --candidates of this scoring."
    )
    @click.option(
        "--candidates", type=int, default=None, help="How many of --scores to pick among."
    )
    @click.option("--smallest", is_flag=True, help="The best --scores are the lowest.")
    @reduce_option("Rank --scores of several values per row by this reduction.")
    @click.option("--name", default=None, help="Make the selection durable; a rerun resumes it.")
    @click.option("--seed", type=int, default=0, show_default=True, help="For k-means++.")
    @click.option(
        "--nn",
        type=click.Choice(list(BACKENDS)),
        default="numpy",
        show_default=True,
        help="The nearest labeled item by numpy (float64) or faiss (float32, the faiss extra).",
    )
    @click.option(
        "--claim",
        "claim_for",
        default=None,
        metavar="ANNOTATOR",
        help="Claim the picks for ANNOTATOR (other annotators' claims are never picked).",
    )
    @click.option("--ttl", type=float, default=3600.0, show_default=True, help="With --claim.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def select(
        store: str,
        k: int,
        method: str,
        embeddings: str | None,
        scores: str | None,
        candidates: int | None,
        smallest: bool,
        reduce: str | None,
        name: str | None,
        seed: int,
        nn: str,
        claim_for: str | None,
        ttl: float,
        as_json: bool,
    ) -> None:
        """Print K unlabeled items of STORE far from the labeled ones and each other
        (and claim them with --claim)."""
        with (
            open_store(store, mode="r+" if name or claim_for else "r") as s,
            progress_bar(k, "select") as bar,
        ):
            picked = {"n": 0}

            def progress(n: int, total: int) -> None:
                bar(n - picked["n"])
                picked["n"] = n

            sel = s.select(
                k,
                method=method,
                embeddings=embeddings,
                scores=scores,
                candidates=candidates,
                reduce=reduce,
                largest=not smallest,
                name=name,
                seed=seed,
                nn=nn,
                annotator=claim_for,
                progress=progress,
            )
            claim = (
                s.claim(sel.dataset_indices, annotator=claim_for, ttl=ttl)
                if claim_for is not None and len(sel.dataset_indices)
                else None
            )
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "version": sel.version,
                        "dataset_indices": sel.dataset_indices.tolist(),
                        # JSON has no infinity: None for picks made without any center.
                        "radii": [r if np.isfinite(r) else None for r in sel.radii.tolist()],
                        "claim": None if claim is None else claim.id,
                    }
                )
            )
            return
        if claim is not None:
            click.echo(f"# claim {claim.id} for {claim.annotator} until {when(claim.expires)}")
        _echo_picks(sel.version, sel.dataset_indices, sel.radii)

    @cli.command()
    @store_arg
    @click.argument("png", type=click.Path(path_type=Path))
    def plot(store: str, png: Path) -> None:
        """Plot the learning curve, labels per annotator over dates and the class
        balance per round of STORE to PNG."""
        with open_store(store, mode="r") as s:
            s.plot_progress(png)
        click.echo(f"wrote {png}")

    @cli.command()
    @store_arg
    @click.argument("html", type=click.Path(path_type=Path))
    def report(store: str, html: Path) -> None:
        """Write a one-page HTML summary of STORE: counts, plots, metrics, agreement."""
        with open_store(store, mode="r") as s:
            s.report(html)
        click.echo(f"wrote {html}")

    @cli.command()
    @click.option(
        "--dir",
        "workdir",
        type=click.Path(path_type=Path),
        default=None,
        help="Where to put the dataset and the store (default: a new alma-demo-* directory).",
    )
    @click.option("--rounds", default=6, show_default=True, help="Active-learning rounds.")
    def demo(workdir: Path | None, rounds: int) -> None:
        """Run margin sampling on scikit-learn's digits through a store, resuming every round."""
        try:
            from ._demo import run_demo
        except ImportError as exc:  # pragma: no cover
            raise click.ClickException(f"the demo needs scikit-learn: {exc}") from None
        if workdir is None:  # kept, so that the store it names can be looked at afterwards
            workdir = Path(tempfile.mkdtemp(prefix="alma-demo-"))
        run_demo(workdir, rounds=rounds, echo=click.echo)
        click.echo(f"kept in {workdir}: try `alma info {workdir / 'digits.alma'}`")


def _echo_picks(version: int, dataset_indices: np.ndarray, values: np.ndarray) -> None:
    """Picks as the shell reads them: the version to label at, then index and value per line."""
    click.echo(f"# store version {version}; label with --expected-version {version}")
    for i, v in zip(dataset_indices.tolist(), values.tolist(), strict=True):
        click.echo(f"{i}\t{v:.6g}")


def _user_names(path: Path) -> dict[object, str]:
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"--annotators {path} is not JSON: {exc}") from None
    if not isinstance(names, dict):
        raise InvalidInputError(f"--annotators {path} must hold a JSON object of id: name")
    return names
