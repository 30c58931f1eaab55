"""The ``alma`` commands of a labeling campaign: claims, tasks, metrics, agreement."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import exchange
from .._entry import open_store
from ..campaign import METRIC_FIELDS, SIM_STRATEGIES, Claim
from ..errors import InvalidInputError
from ..store import Store
from ._common import click, import_function, reduce_option, when

__all__ = ["add_campaign_commands", "pick_items"]

FORMATS = list(exchange.FORMATS)


def _items(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise InvalidInputError(f"--items must be ints separated by commas, got {text!r}") from None


def pick_items(
    s: Store, claim_id: str | None, items: str | None, scores: str | None, k: int | None
) -> Any:
    """The items of ``--claim``, ``--items`` or ``--scores`` with ``--top-k`` (a TopK)."""
    picked = sum(x is not None for x in (claim_id, items, scores))
    if picked != 1 or (scores is None) != (k is None):
        raise InvalidInputError("give one of --claim, --items, or --scores with --top-k")
    if claim_id is not None:
        match = [c for c in s.claims() if c.id == claim_id]
        if not match:
            raise InvalidInputError(f"no live claim {claim_id!r} (see alma claims)")
        return match[0].dataset_indices
    if items is not None:
        return np.asarray(_items(items), dtype=np.int64)
    return s.top_k(str(scores), int(k or 0))


def _number(text: str) -> float | int | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _claim_row(c: Claim) -> dict[str, Any]:
    """A claim as the JSON the commands print."""
    return {
        "id": c.id,
        "annotator": c.annotator,
        "expires": when(c.expires, precise=True),
        "dataset_indices": c.dataset_indices.tolist(),
    }


def _nan_to_none(value: Any) -> Any:
    """``value`` with every NaN float replaced by None, in nested dicts and lists too."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def add_campaign_commands(
    cli: click.Group, store_arg: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> None:
    """Register the campaign commands on the ``alma`` group."""

    @cli.command()
    @store_arg
    @click.option("--annotator", required=True, help="Who the items are for.")
    @click.option("--ttl", type=float, default=3600.0, show_default=True, help="Seconds to hold.")
    @click.option("-k", "k", type=int, default=None, help="Claim the best K free items.")
    @click.option("--items", default=None, help="Claim these dataset indices (comma-separated).")
    @click.option("--scores", default=None, help="With -k: best by this scoring (default: order).")
    @click.option("--smallest", is_flag=True, help="With --scores: lowest scores first.")
    @click.option(
        "--tasks",
        type=click.Path(path_type=Path),
        default=None,
        help="Also write the claimed items as tasks to this file (with --format).",
    )
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="label-studio")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def claim(
        store: str,
        annotator: str,
        ttl: float,
        k: int | None,
        items: str | None,
        scores: str | None,
        smallest: bool,
        tasks: Path | None,
        fmt: str,
        as_json: bool,
    ) -> None:
        """Claim items of STORE for an annotator: the best -k free ones, or --items."""
        if (k is None) == (items is None):
            raise InvalidInputError("give exactly one of -k and --items")
        with open_store(store) as s:
            if items is not None:
                c = s.claim(_items(items), annotator=annotator, ttl=ttl)
            else:
                c = s.claim_next(
                    int(k or 0), annotator=annotator, ttl=ttl, scores=scores, largest=not smallest
                )
            if tasks is not None:
                s.export_tasks(tasks, c.dataset_indices, format=fmt)
        if as_json:
            click.echo(json.dumps(_claim_row(c)))
            return
        if not len(c.dataset_indices):
            click.echo("nothing left to claim")
            return
        shown = ", ".join(map(str, c.dataset_indices[:10].tolist()))
        more = f", ... ({len(c.dataset_indices)} in all)" if len(c.dataset_indices) > 10 else ""
        click.echo(f"claim {c.id} for {c.annotator} until {when(c.expires)}: {shown}{more}")
        if tasks is not None:
            click.echo(f"wrote {len(c.dataset_indices)} {fmt} tasks to {tasks}")

    @cli.command()
    @store_arg
    @click.argument("claim_id")
    def release(store: str, claim_id: str) -> None:
        """Release claim CLAIM_ID of STORE before it lapses."""
        with open_store(store) as s:
            live = s.release(claim_id)
        click.echo(f"released {claim_id}" if live else f"{claim_id} had ended already")

    @cli.command()
    @store_arg
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object per claim.")
    def claims(store: str, as_json: bool) -> None:
        """List the live claims of STORE, oldest first."""
        with open_store(store, mode="r") as s:
            live = s.claims()
            to = "annotate" if s.annotations_per_item > 1 else "label"
            for c in live:
                left = s.claim_left(c)
                if as_json:
                    click.echo(json.dumps(_claim_row(c) | {"unlabeled": left.tolist()}))
                else:
                    click.echo(
                        f"{c.id} {c.annotator} until {when(c.expires)}: "
                        f"{len(left)} of {len(c.dataset_indices)} items to {to}"
                    )
        if not live and not as_json:
            click.echo("no live claims")

    @cli.command("export-tasks")
    @store_arg
    @click.argument("out", type=click.Path(path_type=Path))
    @click.option("--format", "fmt", type=click.Choice(FORMATS), required=True)
    @click.option("--claim", "claim_id", default=None, help="The items of this live claim.")
    @click.option("--items", default=None, help="These dataset indices (comma-separated).")
    @click.option("--scores", default=None, help="The best --top-k of this scoring.")
    @click.option("--top-k", "k", type=int, default=None, help="With --scores: how many.")
    @click.option(
        "--data",
        "data_fn",
        default=None,
        help="module:function giving each item's display fields as a dict.",
    )
    @click.option(
        "--config",
        "config",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Also write a Label Studio labeling config for the store's classes here "
        "(shows the tasks' 'text' field).",
    )
    def export_tasks(
        store: str,
        out: Path,
        fmt: str,
        claim_id: str | None,
        items: str | None,
        scores: str | None,
        k: int | None,
        data_fn: str | None,
        config: Path | None,
    ) -> None:
        """Write tasks for Label Studio or Prodigy to OUT: a claim, --items or a top-k."""
        data = None if data_fn is None else import_function(data_fn)
        with open_store(store, mode="r") as s:
            indices = pick_items(s, claim_id, items, scores, k)
            n = s.export_tasks(
                out, getattr(indices, "dataset_indices", indices), format=fmt, data=data
            )
            if config is not None:
                config.write_text(s.labelstudio_config(), encoding="utf-8")
        click.echo(f"wrote {n} {fmt} tasks to {out}")
        if config is not None:
            click.echo(f"wrote the labeling config to {config}")

    @cli.command()
    @store_arg
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.option(
        "--disagreements",
        "k",
        type=int,
        default=0,
        help="Also list the K items whose annotators disagree most.",
    )
    def agreement(store: str, as_json: bool, k: int) -> None:
        """Inter-annotator agreement of STORE (kappas, Krippendorff's alpha, Gwet's AC1/AC2)."""
        with open_store(store, mode="r") as s:
            got = s.agreement()
            disputed = len(s.disputed())
            worst, shares = s.disagreements(k)
            annotations = s.annotations(worst) if k else []
        rows: list[dict[str, Any]] = [
            {
                "dataset_index": int(i),
                "disagreement": float(v),
                "labels": {a.annotator: a.label for a in anns},
            }
            for i, v, anns in zip(worst.tolist(), shares.tolist(), annotations, strict=True)
        ]
        if as_json:  # JSON has no NaN: undefined figures are null
            out = {**got, "disputed": disputed}
            if k:
                out["disagreements"] = rows
            click.echo(json.dumps(_nan_to_none(out), default=str))
            return

        def fmt(v: float) -> str:
            return "n/a" if math.isnan(v) else f"{v:.3f}"

        name = "Cohen's kappa" if got["method"] == "cohen" else "Fleiss' kappa"
        click.echo(f"{name:16} {fmt(got['kappa'])} over {got['items']} items")
        click.echo(f"{'Krippendorff':16} {fmt(got['alpha'])} (nominal)")
        click.echo(f"{'annotators':16} {', '.join(got['annotators'])}")
        click.echo(f"{'disputed':16} {disputed} items wait for resolve")
        for c, v in got["per_class"].items():
            click.echo(f"{'class ' + c:16} {fmt(v)}")
        click.echo(f"{'Gwet AC1':16} {fmt(got['ac1'])} (AC2, quadratic: {fmt(got['ac2'])})")
        for c, v in got["ac1_per_class"].items():
            click.echo(f"{'AC1 class ' + c:16} {fmt(v)}")
        for r, v in got["per_round"].items():
            click.echo(
                f"{'round ' + str(r):16} {fmt(v['kappa'])} over {v['items']} items, "
                f"AC1 {fmt(v['ac1'])}"
            )
        for row in rows:
            labels = ", ".join(f"{a}: {v}" for a, v in row["labels"].items())
            click.echo(
                f"disagreement {row['disagreement']:.2f}  item {row['dataset_index']}  {labels}"
            )

    @cli.command()
    @store_arg
    @click.argument("k", type=int)
    @click.option("--items", default=None, help="These dataset indices (comma-separated).")
    @click.option("--disputed", is_flag=True, help="The disputed items (send them back).")
    @click.option("--scores", default=None, help="With --top: the best items of this scoring.")
    @click.option("--top", type=int, default=None, help="With --scores: how many.")
    @click.option("--smallest", is_flag=True, help="With --scores: lowest scores first.")
    @reduce_option("With --scores of several values per row: rank by this reduction.")
    def require(
        store: str,
        k: int,
        items: str | None,
        disputed: bool,
        scores: str | None,
        top: int | None,
        smallest: bool,
        reduce: str | None,
    ) -> None:
        """Items of STORE need K annotations from now on (every item without its own
        requirement, if no items are given)."""
        if (scores is None) != (top is None) or sum(
            x for x in (items is not None, disputed, scores is not None)
        ) > 1:
            raise InvalidInputError(
                "give at most one of --items, --disputed, or --scores with --top"
            )
        with open_store(store) as s:
            if items is not None:
                chosen: Any = _items(items)
            elif disputed:
                chosen = s.disputed()
            elif scores is not None:
                chosen = s.top_k(
                    scores, int(top or 0), largest=not smallest, reduce=reduce
                ).dataset_indices
            else:
                chosen = None
            s.require_annotations(k, chosen)
        what = "every item without its own" if chosen is None else f"{len(chosen)} items"
        click.echo(f"{what}: {k} annotations from now on")

    @cli.command()
    @store_arg
    @click.option("--round", "round_", type=int, default=None, help="The round to replay.")
    @click.option(
        "--strategy",
        type=click.Choice(list(SIM_STRATEGIES)),
        default=None,
        help="Simulate this strategy on the campaign's labels instead (needs --fit, --evaluate).",
    )
    @click.option("--fit", "fit_path", default=None, help="module:function, fit(rows, labels).")
    @click.option(
        "--evaluate", "evaluate_path", default=None, help="module:function, evaluate(model)."
    )
    @click.option("--seed", type=int, default=0, show_default=True, help="For random.")
    @click.option("--log", is_flag=True, help="Record the simulated curve for the report.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def replay(
        store: str,
        round_: int | None,
        strategy: str | None,
        fit_path: str | None,
        evaluate_path: str | None,
        seed: int,
        log: bool,
        as_json: bool,
    ) -> None:
        """Check that a round labeled the picks of the strategy it recorded (exit 1 if not),
        or simulate another strategy on the labels the campaign collected."""
        if (round_ is None) == (strategy is None):
            raise InvalidInputError("give --round (replay a round) or --strategy (simulate one)")
        if strategy is not None:
            if fit_path is None or evaluate_path is None:
                raise InvalidInputError("--strategy needs --fit and --evaluate (module:function)")
            fit, evaluate = import_function(fit_path), import_function(evaluate_path)
            with open_store(store, mode="r+" if log else "r") as s:
                sim = s.simulate(strategy, fit=fit, evaluate=evaluate, seed=seed)
                if log:
                    s.log_simulation(sim)
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "strategy": sim.strategy,
                            "rounds": sim.rounds,
                            "labels": sim.labels,
                            "values": sim.values,
                        }
                    )
                )
                return
            for r, n, values in zip(sim.rounds, sim.labels, sim.values, strict=True):
                shown = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
                click.echo(f"round {r}: {n} labels  {shown}")
            return
        assert round_ is not None
        with open_store(store, mode="r") as s:
            got = s.replay(round_)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "round": got.round,
                        "matches": got.matches,
                        "strategy": got.strategy,
                        "expected": got.expected.tolist(),
                        "labeled": got.labeled.tolist(),
                        "missing": got.missing.tolist(),
                        "extra": got.extra.tolist(),
                    },
                    default=str,
                )
            )
        elif got.matches:
            click.echo(
                f"round {got.round}: its {len(got.labeled)} items are the "
                f"{got.strategy['strategy']} picks of {got.strategy['score_run']!r}"
            )
        else:
            click.echo(
                f"round {got.round} does not replay: {len(got.missing)} picks not labeled "
                f"{got.missing.tolist()[:10]}, {len(got.extra)} labeled items not picked "
                f"{got.extra.tolist()[:10]}"
            )
        if not got.matches:
            raise click.exceptions.Exit(1)

    @cli.command()
    @store_arg
    @click.argument("pairs", nargs=-1)
    @click.option("--round", "round_", type=int, default=None, help="Round the metrics are for.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object per record.")
    def metrics(store: str, pairs: tuple[str, ...], round_: int | None, as_json: bool) -> None:
        """Log NAME=VALUE metrics for --round, or without PAIRS list every record of STORE."""
        if pairs:
            values: dict[str, Any] = {}
            for pair in pairs:
                key, sep, text = pair.partition("=")
                if not sep or not key:
                    raise InvalidInputError(f"metrics are NAME=VALUE, got {pair!r}")
                values[key] = _number(text)
            with open_store(store) as s:
                record = s.log_metrics(round=round_, **values)
            click.echo(f"logged round {record['round']} at {record['num_labeled']} labels")
            return
        with open_store(store, mode="r") as s:
            records = s.metrics()
        for m in records:
            if as_json:
                click.echo(json.dumps({**m, "time": when(m["time"], precise=True)}))
            else:
                shown = " ".join(f"{k}={v}" for k, v in m.items() if k not in METRIC_FIELDS)
                click.echo(
                    f"round={m['round']} labels={m['num_labeled']} {when(m['time'])} {shown}"
                )
        if not records and not as_json:
            click.echo("no metrics logged")
