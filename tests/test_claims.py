"""Claims and metrics: a plain model, an injected clock, real concurrent processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import alma_store

from .conftest import REPO, start_together

N = 24


class Clock:
    """A clock tests move by hand: claims expire by it, never by sleeping."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Model:
    """Claims as plain Python: the rules of ``alma_store.campaign._claims``."""

    def __init__(self) -> None:
        self.claims: dict[str, tuple[set[int], str, float]] = {}
        self.labeled: set[int] = set()

    def live(self, now: float) -> list[str]:
        return [
            cid
            for cid, (items, _, expires) in self.claims.items()
            if expires > now and items - self.labeled
        ]

    def close_done(self, now: float) -> None:
        """What a new claim records first: claims whose items are all labeled close for good."""
        for cid, (items, _, expires) in list(self.claims.items()):
            if expires > now and items <= self.labeled:
                del self.claims[cid]

    def held(self, now: float) -> dict[int, str]:
        return {
            i: self.claims[cid][1]
            for cid in self.live(now)
            for i in self.claims[cid][0] - self.labeled
        }


ops = st.lists(
    st.one_of(
        st.tuples(st.just("next"), st.integers(1, 6), st.sampled_from("ab"), st.integers(1, 30)),
        st.tuples(
            st.just("claim"),
            st.lists(st.integers(0, N - 1), min_size=1, max_size=4, unique=True),
            st.sampled_from("ab"),
            st.integers(1, 30),
        ),
        st.tuples(st.just("release"), st.integers(0, 10)),
        st.tuples(st.just("label"), st.lists(st.integers(0, N - 1), max_size=3, unique=True)),
        st.tuples(st.just("unlabel"), st.lists(st.integers(0, N - 1), max_size=3, unique=True)),
        st.tuples(st.just("tick"), st.integers(1, 20)),
    ),
    max_size=25,
)


@settings(max_examples=60)
@given(ops)
@example([("next", 1, "a", 1), ("label", [0]), ("release", 0), ("unlabel", [0])])
def test_claims_follow_the_model(tmp_path_factory: pytest.TempPathFactory, steps: list) -> None:
    path = tmp_path_factory.mktemp("c") / "s"
    clock, model, made = Clock(), Model(), []
    with alma_store.create(path, n_items=N) as store:
        store.clock = clock
        for step in steps:
            op = step[0]
            if op == "next":
                _, k, who, ttl = step
                held = model.held(clock.now)
                free = [i for i in range(N) if i not in model.labeled and i not in held]
                claim = store.claim_next(k, annotator=who, ttl=ttl)
                assert claim.dataset_indices.tolist() == free[:k]
                assert claim.expires == clock.now + ttl and claim.annotator == who
                if free[:k]:
                    model.close_done(clock.now)
                    model.claims[claim.id] = (set(free[:k]), who, clock.now + ttl)
                    made.append(claim.id)
            elif op == "claim":
                _, items, who, ttl = step
                held = model.held(clock.now)
                if set(items) & model.labeled:
                    with pytest.raises(alma_store.AlreadyLabeledError):
                        store.claim(items, annotator=who, ttl=ttl)
                elif set(items) & set(held):
                    with pytest.raises(alma_store.ClaimedError) as err:
                        store.claim(items, annotator=who, ttl=ttl)
                    assert err.value.holders == {i: held[i] for i in sorted(set(items) & set(held))}
                else:
                    claim = store.claim(items, annotator=who, ttl=ttl)
                    model.close_done(clock.now)
                    model.claims[claim.id] = (set(items), who, clock.now + ttl)
                    made.append(claim.id)
            elif op == "release" and made:
                cid = made[step[1] % len(made)]
                was_live = cid in model.live(clock.now)
                assert store.release(cid) is (cid in model.claims and was_live)
                model.claims.pop(cid, None)
            elif op == "label":
                items = [i for i in step[1] if i not in model.labeled]
                if items:
                    store.add_labels(items, [1] * len(items), relative_to="dataset")
                    model.labeled |= set(items)
            elif op == "unlabel":
                items = [i for i in step[1] if i in model.labeled]
                if items:
                    store.remove_labels(items)
                    model.labeled -= set(items)
            elif op == "tick":
                clock.now += step[1]
            if len(steps) % 2:  # sometimes no claims() between steps, to let dead claims linger
                live = store.claims()
                assert sorted(c.id for c in live) == sorted(model.live(clock.now))
                for c in live:  # what each still holds, in the claim's order
                    left = store.claim_left(c).tolist()
                    assert left == [
                        i
                        for i in c.dataset_indices.tolist()
                        if i in model.claims[c.id][0] - model.labeled
                    ]
        for cid in made:
            if cid not in model.live(clock.now):
                assert store.claim_left(cid).tolist() == []
        assert sorted(c.id for c in store.claims()) == sorted(model.live(clock.now))
        # Another handle replays the log and agrees.
        with alma_store.open(path, mode="r") as other:
            other.clock = clock
            assert sorted(c.id for c in other.claims()) == sorted(model.live(clock.now))


def test_top_k_passes_over_others_claims(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", np.arange(40.0).reshape(40, 1), chunk_rows=8) as store:
        store.score(lambda rows: rows[:, 0], "x")
        mine = store.claim_next(3, annotator="ann", ttl=60, scores="x")
        assert mine.dataset_indices.tolist() == [39, 38, 37]
        theirs = store.claim([30, 20], annotator="bob", ttl=60)
        assert store.top_k("x", 3).dataset_indices.tolist() == [36, 35, 34]
        assert store.top_k("x", 3, annotator="ann").dataset_indices.tolist() == [39, 38, 37]
        assert store.top_k("x", 2, skip_claimed=False).dataset_indices.tolist() == [39, 38]
        assert store.claim_next(7, annotator="cy", ttl=60, scores="x").dataset_indices.tolist() == [
            36,
            35,
            34,
            33,
            32,
            31,
            29,
        ]
        store.release(theirs)
        assert 30 in store.top_k("x", 12).dataset_indices


def test_labels_close_claims_and_lapsed_claims_still_take_labels(tmp_path: Path) -> None:
    clock = Clock()
    with alma_store.create(tmp_path / "s", n_items=10) as store:
        store.clock = clock
        claim = store.claim_next(2, annotator="ann", ttl=5)
        store.add_labels(claim.dataset_indices, [1, 1], relative_to="dataset", annotator="ann")
        assert store.claims() == [] and store.release(claim) is False
        late = store.claim_next(2, annotator="ann", ttl=5)
        clock.now += 5  # lapsed: its items are free for others ...
        assert store.claims() == []
        other = store.claim_next(1, annotator="bob", ttl=5)
        assert other.dataset_indices.tolist() == late.dataset_indices[:1].tolist()
        store.add_labels(other.dataset_indices, [0], relative_to="dataset", annotator="bob")
        # ... and the late annotator's labels count where nobody labeled first (documented rule).
        with pytest.raises(alma_store.AlreadyLabeledError):
            store.add_labels(late.dataset_indices, [1, 1], relative_to="dataset", annotator="ann")
        store.add_labels(late.dataset_indices[1:], [1], relative_to="dataset", annotator="ann")
        assert store.num_labeled == 4


def test_release_says_whether_the_claim_was_live(tmp_path: Path) -> None:
    clock = Clock()
    with alma_store.create(tmp_path / "s", n_items=10) as store:
        store.clock = clock
        lapsed = store.claim_next(2, annotator="a", ttl=5)
        clock.now += 5
        assert store.release(lapsed) is False
        done = store.claim_next(2, annotator="a", ttl=5)
        store.add_labels(done.dataset_indices, [1, 1], relative_to="dataset")
        assert store.release(done.id) is False
        live = store.claim_next(2, annotator="a", ttl=5)
        assert store.release(live) is True and store.release(live) is False
        assert store.claims() == []


def test_bad_claims_write_nothing(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", n_items=10) as store:
        for kwargs in (
            {"annotator": "", "ttl": 5},
            {"annotator": "a", "ttl": 0},
            {"annotator": "a", "ttl": float("inf")},
            {"annotator": None, "ttl": 5},
        ):
            with pytest.raises(alma_store.InvalidInputError):
                store.claim_next(2, **kwargs)
        with pytest.raises(alma_store.InvalidInputError):
            store.claim_next(0, annotator="a", ttl=5)
        with pytest.raises(alma_store.InvalidIndexError):
            store.claim([10], annotator="a", ttl=5)
        with pytest.raises(alma_store.InvalidInputError, match="was ever made"):
            store.release("nope")
        with pytest.raises(alma_store.InvalidInputError, match="a Claim or its id"):
            store.claim_left(3)  # type: ignore[arg-type]
        with pytest.raises(alma_store.InvalidInputError, match=r"scor"):
            store.claim_next(2, annotator="a", ttl=5, scores="missing")
        assert not (tmp_path / "s" / "campaign.bin").exists()
    with (
        alma_store.open(tmp_path / "s", mode="r") as store,
        pytest.raises(alma_store.ReadOnlyError),
    ):
        store.claim_next(1, annotator="a", ttl=5)


def test_metrics_are_durable_and_checked(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", n_items=10) as store:
        store.add_labels([0, 1], [1, 0], relative_to="dataset")
        first = store.log_metrics(round=0, accuracy=0.5, model="logreg")
        store.add_labels([2], [1], relative_to="dataset")
        store.log_metrics(round=1, accuracy=0.75)
        for bad in ({"accuracy": float("nan")}, {"version": 1}, {"acc": [1]}, {}):
            with pytest.raises(alma_store.InvalidInputError):
                store.log_metrics(round=2, **bad)
        with pytest.raises(alma_store.InvalidInputError):
            store.log_metrics(round="2", accuracy=1.0)
    with alma_store.open(tmp_path / "s", mode="r") as store:
        got = store.metrics()
    assert got[0] == first
    assert [(m["round"], m["num_labeled"], m["version"], m["accuracy"]) for m in got] == [
        (0, 2, 1, 0.5),
        (1, 3, 2, 0.75),
    ]
    assert got[0]["model"] == "logreg"


CLAIMER = r"""
import json, sys
import alma_store

path, worker = sys.argv[1], sys.argv[2]
got = []
with alma_store.open(path) as store:
    print("ready", flush=True)
    sys.stdin.readline()  # all start together
    while True:
        claim = store.claim_next(3, annotator=worker, ttl=3600)
        if not len(claim.dataset_indices):
            break
        got.append(claim.dataset_indices.tolist())
print(json.dumps(got))
"""


@pytest.mark.slow
def test_concurrent_claimers_never_overlap(tmp_path: Path) -> None:
    n = 240
    alma_store.create(tmp_path / "s", n_items=n).close()
    procs = start_together(CLAIMER, [[str(tmp_path / "s"), f"w{k}"] for k in range(4)])
    results = [json.loads(p.communicate(timeout=300)[0].splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    items = [i for got in results for claim in got for i in claim]
    assert sorted(items) == list(range(n))  # each item claimed once, none lost
    with alma_store.open(tmp_path / "s", mode="r") as store:
        live = store.claims()
        assert len(live) == sum(len(got) for got in results)
        reported = {(f"w{k}", tuple(c)) for k, got in enumerate(results) for c in got}
        assert {(c.annotator, tuple(c.dataset_indices.tolist())) for c in live} == reported


def test_killed_claimer_leaves_nothing_half_made(tmp_path: Path) -> None:
    alma_store.create(tmp_path / "s", n_items=20).close()
    env = {**os.environ, "PYTHONPATH": str(REPO), "ALMA_STORE_CRASH": "campaign-torn:2"}
    script = (
        "import alma_store, sys\n"
        "s = alma_store.open(sys.argv[1])\n"
        "print(s.claim_next(3, annotator='a', ttl=3600).id, flush=True)\n"
        "s.claim_next(3, annotator='a', ttl=3600)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "s")],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9
    acknowledged = proc.stdout.split()[0]
    with alma_store.open(tmp_path / "s") as store:
        assert [c.id for c in store.claims()] == [acknowledged]  # the torn one never counts
        nxt = store.claim_next(3, annotator="b", ttl=60)  # cuts the torn tail, goes on
        assert nxt.dataset_indices.tolist() == [3, 4, 5]
    with alma_store.open(tmp_path / "s", mode="r") as store:
        assert len(store.claims()) == 2


def test_damaged_campaign_log_is_named(tmp_path: Path) -> None:
    with alma_store.create(tmp_path / "s", n_items=20) as store:
        store.claim_next(3, annotator="a", ttl=3600)
        store.claim_next(3, annotator="a", ttl=3600)
    log = tmp_path / "s" / "campaign.bin"
    raw = bytearray(log.read_bytes())
    raw[60] ^= 0xFF
    log.write_bytes(bytes(raw))
    with (
        alma_store.open(tmp_path / "s") as store,
        pytest.raises(alma_store.CorruptStoreError, match=r"campaign\.bin"),
    ):
        store.claims()
    with (
        alma_store.open(tmp_path / "s", mode="r") as store,
        pytest.raises(alma_store.CorruptStoreError, match=r"campaign\.bin is damaged at byte 32"),
    ):
        store.verify()
