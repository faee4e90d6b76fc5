"""Metrics, bootstrap CIs and McNemar's exact test against hand-computed values and sklearn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from mtbc.stats import (
    METRICS,
    bootstrap_ci,
    bootstrap_mean_ci,
    classification_metrics,
    confusion_frame,
    group_bootstrap,
    group_codes,
    holm,
    mcnemar_exact,
    metrics_table,
    multilabel_bootstrap_ci,
    multilabel_metrics,
    multilabel_paired_test,
    paired_test,
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


# -- groups: cluster bootstrap -------------------------------------------------------------------
def _noisy(rng, n, k=3, hit=0.7):
    t = rng.integers(0, k, n)
    return t, np.where(rng.random(n) < hit, t, rng.integers(0, k, n))


@pytest.mark.parametrize("groups", ["range", "unique strings"])
def test_one_track_per_group_is_the_track_bootstrap(groups):
    t, p = _noisy(np.random.default_rng(4), 50)
    g = np.arange(50) if groups == "range" else [f"trk{i}" for i in np.random.permutation(50)]
    assert bootstrap_ci(t, p, groups=g, n_boot=300, seed=2) == bootstrap_ci(t, p, n_boot=300,
                                                                             seed=2)


def test_group_bootstrap_equals_a_plain_loop_over_sklearn():
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 6, 15)
    groups = np.repeat(np.arange(15), sizes)  # codes in order of first appearance
    t, p = _noisy(rng, len(groups))
    members = [np.flatnonzero(groups == g) for g in range(15)]
    n_boot = 50
    ours = bootstrap_ci(t, p, groups=groups, n_boot=n_boot, seed=3, batch=7)
    draws = np.random.default_rng(3).integers(0, 15, size=(n_boot, 15))
    values = {m: [] for m in METRICS}
    for row in draws:
        idx = np.concatenate([members[g] for g in row])
        for m, v in _sklearn_metrics(t[idx], p[idx]).items():
            values[m].append(v)
    for m in METRICS:
        assert ours[m] == pytest.approx(tuple(np.percentile(values[m], [2.5, 97.5]))), m


def test_group_bootstrap_is_wider_when_groups_agree():
    # whole groups right or wrong: 6 effective cases instead of 60
    groups = np.repeat(np.arange(6), 10)
    t = np.zeros(60, dtype=int)
    p = np.where(np.isin(groups, [0, 1, 2]), 0, 1)
    track = bootstrap_ci(t, p, n_boot=2000)["accuracy"]
    grouped = bootstrap_ci(t, p, groups=groups, n_boot=2000)["accuracy"]
    assert grouped[1] - grouped[0] > 2 * (track[1] - track[0])


def test_groups_must_match_the_tracks():
    with pytest.raises(ValueError, match="one label per track: got shape \\(3,\\) for 4"):
        bootstrap_ci([0, 1, 0, 1], [0, 1, 1, 1], groups=[0, 0, 1])


def test_missing_group_labels_are_groups_of_their_own():
    codes, n_groups = group_codes(["a", None, "a", np.nan, "b"], 5)
    assert n_groups == 4 and codes[0] == codes[2] and len({codes[1], codes[3], codes[4]}) == 3


def test_metrics_table_counts_tracks_and_groups():
    table = metrics_table(list("abab"), list("abba"), groups=[1, 1, 2, 3], n_boot=50)
    assert (table["n_tracks"] == 4).all() and (table["n_groups"] == 3).all()
    assert (metrics_table(list("ab"), list("ab"), n_boot=0)["ci_low"].isna()).all()


def test_bootstrap_mean_ci_without_groups_is_the_plain_track_bootstrap():
    values = np.random.default_rng(6).random(37)
    rng = np.random.default_rng(4)  # the same draws, written out: 250 resamples per batch
    means = np.concatenate([values[rng.integers(0, 37, (min(250, 600 - s), 37))].mean(axis=1)
                            for s in range(0, 600, 250)])
    expected = np.percentile(means, [2.5, 97.5])
    assert bootstrap_mean_ci(values, n_boot=600, seed=4) == pytest.approx(expected, abs=1e-12)
    assert np.isnan(bootstrap_mean_ci(values, n_boot=0)).all()
    assert np.isnan(bootstrap_mean_ci([], n_boot=10)).all()


def test_bootstrap_mean_ci_with_groups_is_a_mean_over_tracks():
    values = np.array([1.0, 1.0, 1.0, 0.0])  # group 0 (3 tracks) all 1, group 1 one 0
    low, high = bootstrap_mean_ci(values, groups=[0, 0, 0, 1], n_boot=2000, seed=1)
    # resamples: {0,0}: 1, {1,1}: 0, {0,1}: 3/4 -> percentiles 0 and 1
    assert (low, high) == (0.0, 1.0)
    ci = group_bootstrap(lambda w: (w @ values) / w.sum(axis=1), 4, groups=[0, 0, 0, 1],
                         n_boot=2000, seed=1, level=0.4)
    assert ci == (0.75, 0.75)


# -- paired tests ---------------------------------------------------------------------------------
def test_paired_test_without_groups_is_mcnemar():
    t, a = _noisy(np.random.default_rng(7), 40, hit=0.8)
    b = np.where(np.random.default_rng(8).random(40) < 0.5, t, (t + 1) % 3)
    res = paired_test(t, a, b, n_boot=200)
    assert res.method == "mcnemar-exact" and res.n_groups == res.n_tracks == 40
    assert res.p_value == pytest.approx(mcnemar_exact(t, a, b)["p_value"])
    assert res.diff == pytest.approx(np.mean(a == t) - np.mean(b == t))
    assert res.ci_low <= res.diff <= res.ci_high
    d = (a == t).astype(float) - (b == t)
    assert (res.ci_low, res.ci_high) == pytest.approx(bootstrap_mean_ci(d, n_boot=200, seed=0))


def test_sign_flip_hand_computed():
    # per-group differences d = (2, 1, -1, 0): T = 2; of the 8 sign patterns of (2, 1, -1)
    # the sums are 4, 2, 2, 0, 0, -2, -2, -4 -> |T*| >= 2 in 6 of 8
    y = np.zeros(8, dtype=int)
    a = np.array([0, 0, 0, 1, 1, 0, 0, 0])
    b = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    groups = ["g1", "g1", "g2", "g2", "g3", "g3", "g4", "g4"]
    res = paired_test(y, a, b, groups=groups)
    assert res.method == "sign-flip permutation on per-group differences"
    assert (res.exact, res.n_permutations, res.n_groups) == (True, 8, 4)
    assert res.p_value == pytest.approx(6 / 8) and res.diff == pytest.approx(2 / 8)


def test_sign_flip_monte_carlo_approaches_the_exact_p():
    from mtbc.stats import flip_patterns

    # 18 groups of 2 tracks, all with d_g != 0 (more than 16: Monte Carlo)
    d_g = np.array([1, 1, 1, 2, -1, 1, 1, -1, 2, 1, 1, -1, 1, 1, 2, -1, 1, 1])
    groups = np.repeat(np.arange(18), 2)
    y = np.zeros(36, dtype=int)
    # track 0 of a group: a right, b wrong if d_g > 0 (reverse if < 0); track 1: both right,
    # unless d_g == 2 (a right, b wrong)
    a = np.stack([np.where(d_g > 0, 0, 1), np.zeros(18, dtype=int)], axis=1).ravel()
    b = np.stack([np.where(d_g > 0, 1, 0), np.where(d_g == 2, 1, 0)], axis=1).ravel()
    d = (a == 0).astype(float) - (b == 0)
    assert np.bincount(groups, weights=d).tolist() == d_g.tolist()
    patterns, _, _ = flip_patterns(len(d_g), n_perm=0, rng=None, exact_max=18)
    null = np.concatenate([(1 - 2 * s) @ d_g for s in patterns])
    exact = np.mean(np.abs(null) >= abs(d.sum()))
    res = paired_test(y, a, b, groups=groups, n_perm=20000, n_boot=0, seed=1)
    assert not res.exact and res.n_permutations == 20000
    assert res.p_value == pytest.approx(exact, abs=0.015)
    assert paired_test(y, a, b, groups=groups, n_perm=500, n_boot=0, seed=1).p_value == \
        paired_test(y, a, b, groups=groups, n_perm=500, n_boot=0, seed=1).p_value
    assert np.isnan(res.ci_low)


def test_paired_macro_f1_swaps_within_groups():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(10)
    groups = np.repeat(np.arange(5), 4)
    t, a = _noisy(rng, 20, hit=0.8)
    _, b = _noisy(rng, 20, hit=0.4)
    b = np.where(np.arange(20) < 4, a, b)  # group 0: same predictions
    res = paired_test(t, a, b, groups=groups, metric="macro_f1", n_boot=100)

    def f1(pred):
        return f1_score(t, pred, average="macro", zero_division=0)

    observed = f1(a) - f1(b)
    null = []
    for k in range(2 ** 5):
        swap = ((k >> groups) & 1).astype(bool)
        null.append(f1(np.where(swap, b, a)) - f1(np.where(swap, a, b)))
    assert res.method == "swap permutation within groups" and res.exact
    assert res.n_permutations == 16  # group 0 left out: swapping it changes nothing
    assert res.diff == pytest.approx(observed)
    assert res.p_value == pytest.approx(np.mean(np.abs(null) >= abs(observed) - 1e-12))


def test_identical_systems_are_not_different():
    t, a = _noisy(np.random.default_rng(11), 30)
    for metric in ("accuracy", "macro_f1"):
        res = paired_test(t, a, a, groups=np.arange(30) // 3, metric=metric, n_boot=50)
        assert (res.p_value, res.diff, res.ci_low, res.ci_high) == (1.0, 0.0, 0.0, 0.0)


def test_paired_test_rejects_bad_input():
    with pytest.raises(ValueError, match="metric must be one of"):
        paired_test([0], [0], [0], metric="auc")
    with pytest.raises(ValueError, match=r"equal length, got \(2,\), \(2,\) and \(3,\)"):
        paired_test([0, 1], [0, 1], [0, 1, 1])


def test_pairwise_tests_with_groups():
    ids = [f"t{i}" for i in range(12)]
    truth = pd.Series(np.zeros(12, dtype=int), index=ids)
    systems = {"A": pd.Series(np.r_[np.zeros(9), np.ones(3)].astype(int), index=ids),
               "B": pd.Series(np.r_[np.zeros(3), np.ones(9)].astype(int), index=ids),
               "C": pd.Series(np.zeros(12, dtype=int), index=ids[::-1])}
    groups = pd.Series(np.arange(12) // 3, index=ids[::-1])  # aligned by track id
    table = pairwise_tests(systems, truth, groups=groups, n_boot=100)
    assert len(table) == 3
    for col in ("system_a", "system_b", "n", "accuracy_a", "accuracy_b", "a_only_correct",
                "b_only_correct", "p_value", "p_holm", "diff", "ci_low", "ci_high", "n_tracks",
                "n_groups", "method"):
        assert col in table.columns, col
    ab = table.iloc[0]
    assert (ab["n_groups"], ab["n_tracks"], ab["diff"]) == (4, 12, pytest.approx(0.5))
    # groups (by id) 3: t9-t11, 2: t6-t8, 1: t3-t5, 0: t0-t2 -> A-B per group: 0, 3, 3, 0
    assert ab["p_value"] == pytest.approx(2 / 4)
    assert table["p_holm"].tolist() == pytest.approx(holm(table["p_value"]).tolist())
    assert (table["method"] == "sign-flip permutation on per-group differences").all()
    plain = pairwise_tests(systems, truth)
    assert (plain["method"] == "mcnemar-exact").all() and (plain["n_groups"] == 12).all()
    with pytest.raises(ValueError, match="groups lack 1 compared track"):
        pairwise_tests(systems, truth, groups=groups.iloc[1:])


# -- multi-label metrics --------------------------------------------------------------------------
def _tags(seed, n=120, n_tags=8, signal=1.0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, n_tags)) < 0.35).astype(int)
    return Y, rng.normal(size=Y.shape) + signal * Y


def test_multilabel_metrics_match_sklearn_without_a_mask():
    from sklearn.metrics import average_precision_score, roc_auc_score

    Y, S = _tags(12)
    m = multilabel_metrics(Y, S)
    assert m["roc_auc_macro"] == pytest.approx(roc_auc_score(Y, S, average="macro"))
    assert m["pr_auc_macro"] == pytest.approx(average_precision_score(Y, S, average="macro"))
    assert m["map"] == m["pr_auc_macro"]
    assert m["roc_auc_micro"] == pytest.approx(roc_auc_score(Y, S, average="micro"))
    assert m["per_tag_roc_auc"] == pytest.approx(roc_auc_score(Y, S, average=None))
    assert (m["n_tags_used"], m["n_tags_left_out"], m["n_tracks"]) == (8, 0, 120)


def test_multilabel_mask_is_respected():
    from sklearn.metrics import roc_auc_score

    Y, S = _tags(13)
    rng = np.random.default_rng(14)
    mask = rng.random(Y.shape) < 0.7
    m = multilabel_metrics(Y, S, mask=mask)
    Y_bad, S_bad = Y.astype(float), S.copy()
    Y_bad[~mask] = np.where(rng.random((~mask).sum()) < 0.5, np.nan, 1 - Y[~mask])
    S_bad[~mask] = np.where(Y[~mask] == 1, -50.0, 50.0)  # would wreck every metric
    bad = multilabel_metrics(Y_bad, S_bad, mask=mask)
    for key, value in m.items():
        np.testing.assert_allclose(bad[key], value, err_msg=key)
    j = 3
    assert m["per_tag_roc_auc"][j] == pytest.approx(roc_auc_score(Y[mask[:, j], j],
                                                                  S[mask[:, j], j]))
    assert m["roc_auc_micro"] == pytest.approx(roc_auc_score(Y[mask], S[mask]))


def test_degenerate_tags_are_left_out_and_counted():
    Y, S = _tags(15, n_tags=5)
    mask = np.ones(Y.shape, dtype=bool)
    Y[:, 1] = 0  # no positive
    Y[:, 3] = 1
    Y[:10, 3] = 0
    mask[:10, 3] = False  # no known negative
    m = multilabel_metrics(Y, S, mask=mask)
    assert (m["n_tags_used"], m["n_tags_left_out"]) == (3, 2)
    assert np.isnan(m["per_tag_roc_auc"][[1, 3]]).all()
    assert m["roc_auc_macro"] == pytest.approx(np.mean(m["per_tag_roc_auc"][[0, 2, 4]]))


def test_top_k_hand_computed():
    Y = np.array([[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]])
    S = np.array([[.9, .1, .2, .3],   # best tag true: top1, top3
                  [.9, .8, .7, .1],   # true tag ranked 4th: neither
                  [.9, .8, .1, .0],   # true tag 2nd: top3 only
                  [.9, .8, .7, .6],   # no positive: not ranked
                  [.9, .8, .1, .0]])  # tag 0 masked: true tag 2nd among the known
    mask = np.ones(Y.shape, dtype=bool)
    mask[4, 0] = False  # known tags of track 4 ranked .8 (1), .1 (2), .0 (3): true one 2nd
    m = multilabel_metrics(Y, S, mask=mask)
    assert m["n_tracks_ranked"] == 4
    assert m["top1"] == pytest.approx(1 / 4)
    assert m["top3"] == pytest.approx(3 / 4)


def test_multilabel_rejects_bad_input():
    with pytest.raises(ValueError, match=r"equal shape, got \(2, 2\) and \(2, 3\)"):
        multilabel_metrics(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="must be 0 or 1, found 2"):
        multilabel_metrics([[0, 2]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match="mask must be boolean"):
        multilabel_metrics([[0, 1]], [[0.1, 0.2]], mask=[[1, 1]])
    with pytest.raises(ValueError, match="NaN or infinite"):
        multilabel_metrics([[0, 1]], [[np.nan, 0.2]])


def test_weighted_rank_metrics_equal_sklearn_with_sample_weights():
    from sklearn.metrics import average_precision_score, roc_auc_score

    from mtbc.stats.multilabel import _rank_metrics

    rng = np.random.default_rng(16)
    y = rng.random(40) < 0.4
    s = np.round(rng.normal(size=40), 1)  # ties
    W = rng.integers(0, 3, (6, 40)).astype(float)
    auc, ap = _rank_metrics(s, y, W)
    for r in range(6):
        assert auc[r] == pytest.approx(roc_auc_score(y, s, sample_weight=W[r]))
        assert ap[r] == pytest.approx(average_precision_score(y, s, sample_weight=W[r]))
    rows = np.round(rng.normal(size=(3, 40)), 1)
    auc, ap = _rank_metrics(rows, y, None)
    for r in range(3):
        assert auc[r] == pytest.approx(roc_auc_score(y, rows[r]))
        assert ap[r] == pytest.approx(average_precision_score(y, rows[r]))


def test_multilabel_bootstrap_equals_a_plain_loop_over_groups():
    from sklearn.metrics import average_precision_score, roc_auc_score

    Y, S = _tags(17, n=60, n_tags=4)
    groups = np.repeat(np.arange(20), 3)
    n_boot = 40
    ours = multilabel_bootstrap_ci(Y, S, groups=groups, n_boot=n_boot, seed=5)
    draws = np.random.default_rng(5).integers(0, 20, size=(n_boot, 20))
    auc, ap = [], []
    for row in draws:
        idx = (row[:, None] * 3 + np.arange(3)).ravel()
        ok = [j for j in range(4) if 0 < Y[idx, j].sum() < len(idx)]
        auc.append(np.mean([roc_auc_score(Y[idx, j], S[idx, j]) for j in ok]))
        ap.append(np.mean([average_precision_score(Y[idx, j], S[idx, j]) for j in ok]))
    assert ours["roc_auc_macro"] == pytest.approx(tuple(np.percentile(auc, [2.5, 97.5])))
    assert ours["pr_auc_macro"] == pytest.approx(tuple(np.percentile(ap, [2.5, 97.5])))
    assert ours["map"] == ours["pr_auc_macro"]


def test_planted_signal_through_a_logistic_probe_is_found():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(18)
    n, n_tags = 400, 6
    X = rng.normal(size=(n, 10))
    Y = (X[:, :n_tags] + 0.2 * rng.normal(size=(n, n_tags)) > 0.5).astype(int)
    train, test = np.arange(n) < 300, np.arange(n) >= 300
    S = np.column_stack([LogisticRegression().fit(X[train], Y[train, j])
                         .predict_proba(X[test])[:, 1] for j in range(n_tags)])
    m = multilabel_metrics(Y[test], S)
    assert m["roc_auc_macro"] > 0.95 and m["pr_auc_macro"] > 0.85
    groups = np.arange(100) // 4
    ci = multilabel_bootstrap_ci(Y[test], S, groups=groups, n_boot=300)
    assert 0.9 < ci["roc_auc_macro"][0] <= m["roc_auc_macro"] <= ci["roc_auc_macro"][1]


def test_pure_noise_scores_have_intervals_covering_one_half():
    Y, S = _tags(19, n=150, n_tags=10, signal=0.0)
    ci = multilabel_bootstrap_ci(Y, S, groups=np.arange(150) // 5, n_boot=400)
    for key in ("roc_auc_macro", "roc_auc_micro"):
        assert ci[key][0] < 0.5 < ci[key][1], key


def test_multilabel_paired_test():
    Y, S = _tags(20, n=60, n_tags=5, signal=2.0)
    noise = S + 3 * np.random.default_rng(21).normal(size=S.shape)
    groups = np.repeat(np.arange(8), [10, 10, 8, 8, 6, 6, 6, 6])
    same = multilabel_paired_test(Y, S, S, groups=groups, n_boot=50)
    assert (same["p_value"], same["diff"], same["ci_low"], same["ci_high"]) == (1.0, 0, 0, 0)
    assert same["exact"] and same["n_permutations"] == 2 ** 8 and same["n_groups"] == 8
    res = multilabel_paired_test(Y, S, noise, groups=groups, n_boot=200)
    assert res["diff"] == pytest.approx(multilabel_metrics(Y, S)["roc_auc_macro"]
                                        - multilabel_metrics(Y, noise)["roc_auc_macro"])
    assert res["ci_low"] > 0 and res["p_value"] == pytest.approx(2 / 2 ** 8)
    mc = multilabel_paired_test(Y, S, noise, metric="map", n_perm=200, n_boot=0)
    assert mc["metric"] == "pr_auc_macro" and not mc["exact"]
    assert mc["p_value"] == pytest.approx(1 / 201)
    with pytest.raises(ValueError, match="metric must be one of"):
        multilabel_paired_test(Y, S, S, metric="f1")


def test_public_api_reexports_the_statistics():
    import mtbc.evaluation as api
    from mtbc.stats import multilabel, resampling

    assert api.multilabel_metrics is multilabel.multilabel_metrics
    assert api.bootstrap_mean_ci is resampling.bootstrap_mean_ci
    assert api.paired_test is paired_test
    for name in ("bootstrap_ci", "paired_test", "pairwise_tests", "multilabel_metrics",
                 "classification_metrics"):
        assert name in api.__all__ and callable(getattr(api, name))
