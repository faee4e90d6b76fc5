"""Metrics, bootstrap CIs and McNemar's exact test against hand-computed values and sklearn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from mtbc.analysis.evaluation import (
    METRICS,
    bootstrap_ci,
    classification_metrics,
    confusion_frame,
    holm,
    mcnemar_exact,
    metrics_table,
    pairwise_tests,
)


def _sklearn_metrics(t, p):
    prec, rec, f1, _ = precision_recall_fscore_support(t, p, average="macro", zero_division=0)
    return {"accuracy": accuracy_score(t, p), "precision_macro": prec, "recall_macro": rec,
            "f1_macro": f1}


def test_metrics_match_hand_computed_values():
    m = classification_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["precision_macro"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["recall_macro"] == pytest.approx((0.5 + 1) / 2)
    assert m["f1_macro"] == pytest.approx((2 / 3 + 0.8) / 2)


@pytest.mark.parametrize("case", ["random", "class never predicted", "class only predicted"])
def test_metrics_match_sklearn(case):
    rng = np.random.default_rng(1)
    t = rng.integers(0, 4, 60)
    p = np.where(rng.random(60) < 0.6, t, rng.integers(0, 4, 60))
    if case == "class never predicted":
        p[p == 3] = 0
    if case == "class only predicted":
        t[t == 2] = 1
    ours = classification_metrics(t, p)
    for name, value in _sklearn_metrics(t, p).items():
        assert ours[name] == pytest.approx(value), name


def test_confusion_frame_rows_are_true_labels():
    cm = confusion_frame(["a", "a", "b"], ["b", "a", "b"], labels=["a", "b"])
    assert cm.loc["a"].tolist() == [1, 1]
    assert cm.loc["b"].tolist() == [0, 1]


def test_bootstrap_ci_of_two_tracks_spans_zero_to_one():
    # resampled accuracy is 0, 1/2 or 1 with probability 1/4, 1/2, 1/4
    ci = bootstrap_ci(["a", "a"], ["a", "b"], n_boot=4000, seed=0)
    assert ci["accuracy"] == (0.0, 1.0)


def test_bootstrap_ci_equals_a_plain_loop_over_sklearn():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 3, 40)
    p = np.where(rng.random(40) < 0.7, t, rng.integers(0, 3, 40))
    n_boot = 60
    ours = bootstrap_ci(t, p, n_boot=n_boot, seed=7, batch=16)
    idx = np.random.default_rng(7).integers(0, len(t), size=(n_boot, len(t)))
    values = {m: [] for m in METRICS}
    for row in idx:
        for m, v in _sklearn_metrics(t[row], p[row]).items():
            values[m].append(v)
    for m in METRICS:
        expected = np.percentile(values[m], [2.5, 97.5])
        assert ours[m] == pytest.approx(tuple(expected)), m


def test_bootstrap_is_seeded():
    t, p = [0, 1, 1, 0, 1, 0, 0, 1], [0, 1, 0, 0, 1, 1, 0, 1]
    assert bootstrap_ci(t, p, seed=5) == bootstrap_ci(t, p, seed=5)
    assert bootstrap_ci(t, p, seed=5) != bootstrap_ci(t, p, seed=6)


def test_perfect_predictions_have_a_degenerate_interval():
    table = metrics_table(list("abcabc"), list("abcabc"), n_boot=200)
    assert list(table.columns) == ["metric", "value", "ci_low", "ci_high", "n_tracks", "n_groups"]
    assert (table["n_tracks"] == 6).all() and (table["n_groups"] == 6).all()
    assert (table[["value", "ci_low", "ci_high"]] == 1.0).all().all()


def test_mcnemar_exact_hand_computed():
    y = np.zeros(10, dtype=int)
    a = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])  # right on 4
    b = np.array([0, 0, 0, 1, 0, 0, 0, 0, 0, 1])  # right on 8
    res = mcnemar_exact(y, a, b)
    # discordant: A-only 1 (index 3), B-only 5 (4..8); p = 2 * (C(6,0) + C(6,1)) / 2**6 = 14/64
    assert (res["a_only_correct"], res["b_only_correct"]) == (1, 5)
    assert res["p_value"] == pytest.approx(14 / 64)
    assert mcnemar_exact(y, b, a)["p_value"] == pytest.approx(14 / 64)


def test_mcnemar_extremes():
    y = np.zeros(6, dtype=int)
    assert mcnemar_exact(y, y, y)["p_value"] == 1.0  # no discordant pairs
    assert mcnemar_exact(y, y, y + 1)["p_value"] == pytest.approx(2 / 64)


def test_holm_hand_computed():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_pairwise_tests_align_on_track_ids():
    truth = pd.Series(["a", "b", "a", "b"], index=["t1", "t2", "t3", "t4"])
    sys_a = pd.Series(["a", "b", "a", "a"], index=["t1", "t2", "t3", "t4"])
    sys_b = pd.Series(["a", "b", "a", "b", "a"], index=["t4", "t3", "t2", "t1", "t9"])
    table = pairwise_tests({"A": sys_a, "B": sys_b}, truth)
    row = table.iloc[0]
    assert (row["system_a"], row["system_b"], row["n"]) == ("A", "B", 4)
    assert row["accuracy_a"] == pytest.approx(0.75)
    assert row["accuracy_b"] == pytest.approx(0.0)
    assert (row["a_only_correct"], row["b_only_correct"]) == (3, 0)
    assert row["p_value"] == pytest.approx(2 / 8)
