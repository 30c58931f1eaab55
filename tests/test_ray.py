"""Scoring as Ray tasks on a local Ray (2 CPUs, no dashboard, 127.0.0.1).

The scores equal a single process's, and a worker SIGKILLed in the middle of a task
(at a fixed point: the first batch the task scores, marked by a file) is replaced
and its task run again, with the same scores in the end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import alma_store
from alma_store.errors import InvalidInputError, ReadOnlyError

from .test_score_columns import proba
from .test_scoring import DiesOnce, make, norm_score

ray = pytest.importorskip("ray")
from alma_store import ray as alma_ray


@pytest.mark.slow
def test_ray_matches_a_single_process_and_survives_a_killed_worker(
    tmp_path: Path, local_ray: object
) -> None:
    store, _ = make(tmp_path, n=1200, chunk_rows=64)
    assert alma_ray.score(store, norm_score, "ray") == 19
    assert alma_ray.score(store, norm_score, "ray") == 0  # every chunk done: nothing to do
    marker = tmp_path / "died"
    assert alma_ray.score(store, DiesOnce(marker), "killed") == 19
    assert marker.exists()  # a worker did die, and its task ran again
    store.score(norm_score, "single")
    single = store.load_scores("single")
    assert np.array_equal(store.load_scores("ray"), single, equal_nan=True)
    assert np.array_equal(store.load_scores("killed"), single, equal_nan=True)
    assert (
        store.top_k("ray", 30).dataset_indices.tolist()
        == store.top_k("single", 30).dataset_indices.tolist()
    )
    assert alma_ray.score(store, proba, "proba", columns=4) == 19
    store.score(proba, "proba-single", columns=4)
    assert np.array_equal(
        store.load_scores("proba"), store.load_scores("proba-single"), equal_nan=True
    )
    with pytest.raises(InvalidInputError, match="max_retries"):
        alma_ray.score(store, norm_score, "x", max_retries=-1)
    store.close()
    with alma_store.open(tmp_path / "s", mode="r") as ro, pytest.raises(ReadOnlyError):
        alma_ray.score(ro, norm_score, "y")
