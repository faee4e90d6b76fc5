"""Folds side by side (mtbc.evaluation.parallel): the same numbers whatever the number of
workers, convergence warnings still counted per fold, other warnings still shown."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from mtbc.evaluation import (
    Classification,
    EvalOptions,
    FoldPrediction,
    Provenance,
    System,
    evaluate,
    evaluate_probe,
    evaluate_tagging,
)
from mtbc.evaluation.parallel import current_task, n_workers, parallel_map


def _data(n=45, k=3):
    rng = np.random.default_rng(3)
    tracks = pd.DataFrame({"track_id": [f"t{i:02d}" for i in range(n)],
                           "label": [f"c{i % k}" for i in range(n)],
                           "group": [f"g{i // 3}" for i in range(n)],
                           "tags": ["x" if i % 2 else "y" for i in range(n)],
                           "tags_negative": ["y" if i % 2 else "x" for i in range(n)]})
    index = np.repeat(np.arange(n), 3)
    X = rng.standard_normal((3 * n, 4, 5)).astype(np.float32)
    X[:, 2, 0] += index % k
    return tracks, X, index


@pytest.mark.parametrize("probe", ["linear", "mlp"])
def test_the_numbers_do_not_depend_on_the_number_of_workers(probe):
    tracks, X, index = _data()
    opts = {"n_splits": 3, "n_boot": 30, "probe": probe, "per_layer_test": probe == "linear",
            "probe_params": {"max_epochs": 6, "hidden": 8} if probe == "mlp" else None}
    one = evaluate_probe(X, index, tracks, n_jobs=1, **opts)
    two = evaluate_probe(X, index, tracks, n_jobs=2, **opts)
    pd.testing.assert_frame_equal(one.probabilities, two.probabilities)
    pd.testing.assert_frame_equal(one.folds, two.folds)
    pd.testing.assert_frame_equal(one.layer_scores, two.layer_scores)
    t1 = evaluate_tagging(X, index, tracks, n_splits=3, n_boot=0, n_jobs=1)
    t2 = evaluate_tagging(X, index, tracks, n_splits=3, n_boot=0, n_jobs=3)
    pd.testing.assert_frame_equal(t1.scores, t2.scores)


class Warner(System):
    """Fold k raises k convergence warnings and one other warning."""

    label = "warner"
    uses_validation = False

    def fold(self, task, data):
        k = int(data.fold.name.split()[-1])
        for _ in range(k):
            warnings.warn("not converged", ConvergenceWarning, stacklevel=1)
        warnings.warn(f"something else in fold {k}", UserWarning, stacklevel=1)
        return FoldPrediction(scores=np.full((len(data.fold.test), len(task.names)), 1.0))

    def provenance(self, task, split, options):
        return Provenance(name="warner", task=task.name, system="warner", probe="none",
                          layer="-", selection="none", scorer="none", split=split)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_convergence_warnings_are_counted_per_fold_and_others_shown(n_jobs):
    tracks, _, _ = _data()
    with pytest.warns(UserWarning, match="something else") as shown:
        r = evaluate(Classification(tracks), Warner(), EvalOptions(n_splits=3, n_boot=0,
                                                                    n_jobs=n_jobs))
    assert r.folds["convergence_warnings"].tolist() == [0, 1, 2]
    assert not any(issubclass(w.category, ConvergenceWarning) for w in shown)
    assert len([w for w in shown if issubclass(w.category, UserWarning)]) == 3


def test_parallel_map_keeps_order_nests_serially_and_raises():
    seen = []

    def inner(i, x):
        seen.append((current_task(), n_workers(None, 5)))
        return x * 10

    out = parallel_map(lambda i, x: parallel_map(inner, [x, x + 1]), [1, 2, 3], n_jobs=2)
    assert out == [[10, 20], [20, 30], [30, 40]]
    assert sorted(seen) == [(0, 1), (0, 1), (1, 1), (1, 1), (2, 1), (2, 1)]

    def fail(i, x):
        if x == 2:
            raise ValueError("bad item 2")
        return x

    with pytest.raises(ValueError, match="bad item 2"):
        parallel_map(fail, [1, 2, 3], n_jobs=2)
    with pytest.raises(ValueError, match="n_jobs"):
        n_workers(0, 3)
