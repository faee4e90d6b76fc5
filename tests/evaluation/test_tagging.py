"""Multi-label probes and the tagging protocol: planted signal, noise, masks, fusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mtbc.data.tags import tag_matrix
from mtbc.evaluation import (
    MultiLabelLinearProbe,
    Tagging,
    evaluate_tagging,
    evaluate_tagging_early_fusion,
    multilabel_metrics,
    tagging_late_fusion,
)
from mtbc.stats import macro_roc_auc

TAGS = ["a", "b", "c", "d"]


def _collection(n_tracks=48, n_seg=3, dim=6, *, seed=0, signal=True, layers=1, mask_p=0.0,
                split=False):
    """Tracks (two per group) with random tags; with ``signal`` dimension j carries tag j."""
    rng = np.random.default_rng(seed)
    Y = rng.random((n_tracks, len(TAGS))) < 0.4
    Y[np.arange(n_tracks), rng.integers(0, len(TAGS), n_tracks)] = True
    known = rng.random(Y.shape) >= mask_p
    tracks = pd.DataFrame({
        "track_id": [f"t{i}" for i in range(n_tracks)],
        "group": [f"g{i // 2}" for i in range(n_tracks)],
        "label": None,
        "tags": [tuple(t for t, y, k in zip(TAGS, row, kn, strict=True) if y and k)
                 for row, kn in zip(Y, known, strict=True)],
        "tags_negative": [tuple(t for t, y, k in zip(TAGS, row, kn, strict=True) if not y and k)
                          for row, kn in zip(Y, known, strict=True)]})
    if split:
        g = np.arange(n_tracks) // 2
        tracks["split"] = np.where(g % 4 == 0, "test", np.where(g % 4 == 1, "valid", "train"))
    index = np.repeat(np.arange(n_tracks), n_seg)
    X = rng.normal(size=(len(index), layers, dim)).astype(np.float32)
    if signal:
        X[:, -1 if layers == 1 else 1, : len(TAGS)] += 3.0 * Y[index]
    return X, index, tracks


# L-BFGS in the primal (80 x 5, 30 x 50) and Newton in the samples' span (20 x 50)
@pytest.mark.parametrize("n", [80, 30, 20])
def test_linear_probe_is_one_vs_rest_sklearn_logistic_regression(rng, n):
    X = rng.normal(size=(n, 5 if n == 80 else 50))
    Y = (X[:, :3] + rng.normal(size=(n, 3)) > 0).astype(float)
    probe = MultiLabelLinearProbe(C=0.3, tol=1e-8).fit(X, Y, np.ones_like(Y, bool))
    Z = StandardScaler().fit_transform(X)
    for j in range(3):
        ref = LogisticRegression(C=0.3, tol=1e-10, max_iter=5000).fit(Z, Y[:, j])
        np.testing.assert_allclose(probe.coef_[:, j], ref.coef_[0], atol=1e-3)
        np.testing.assert_allclose(probe.intercept_[j], ref.intercept_[0], atol=1e-3)


@pytest.mark.parametrize("C", [1e-3, 0.1, 10.0])
def test_newton_and_lbfgs_reach_the_same_minimum_with_masks(rng, C):
    Z = rng.normal(size=(40, 120))
    Y = (Z[:, :4] + rng.normal(size=(40, 4)) > 0).astype(float)
    M = rng.random((40, 4)) > 0.25
    M[:, 3] = Y[:, 3] == 1  # a tag with no known negative: the constant prior score
    newton = MultiLabelLinearProbe(C=C)._fit_newton(Z, Y, M)
    lbfgs = MultiLabelLinearProbe(C=C, tol=1e-10, max_iter=20000)._fit_lbfgs(Z, Y, M)

    def objective(p):
        z = Z @ p.coef_ + p.intercept_
        w = M & p.usable_
        return C * np.sum(w * (np.logaddexp(0, z) - Y * z)) + 0.5 * np.sum(p.coef_ ** 2)

    assert objective(newton) <= objective(lbfgs) + 1e-9 * max(1.0, objective(lbfgs))
    np.testing.assert_allclose(newton.coef_, lbfgs.coef_, atol=2e-3 * max(1.0, C))
    np.testing.assert_allclose(newton.intercept_, lbfgs.intercept_, atol=2e-3 * max(1.0, C))
    assert not newton.usable_[3] and np.all(newton.coef_[:, 3] == 0)
    assert newton.n_iter_ <= 30


def test_masked_entries_change_nothing(rng):
    X = rng.normal(size=(60, 4))
    Y = (rng.random((60, 2)) < 0.5).astype(float)
    mask = rng.random((60, 2)) < 0.7
    a = MultiLabelLinearProbe(C=1.0).fit(X, Y, mask).predict_proba(X)
    b = MultiLabelLinearProbe(C=1.0).fit(X, np.where(mask, Y, 1 - Y), mask).predict_proba(X)
    np.testing.assert_allclose(a, b)


def test_fast_macro_auc_equals_multilabel_metrics(rng):
    Y = (rng.random((50, 4)) < 0.4).astype(float)
    S = np.round(rng.random((50, 4)), 1)  # ties
    mask = rng.random((50, 4)) < 0.8
    assert macro_roc_auc(Y, S, mask) == pytest.approx(
        multilabel_metrics(Y, S, mask=mask)["roc_auc_macro"])


@pytest.mark.parametrize("probe", ["linear", "mlp"])
def test_planted_signal_gives_roc_auc_near_one(probe):
    X, index, tracks = _collection(mask_p=0.2)
    r = evaluate_tagging(X, index, tracks, probe=probe, seed=0, n_splits=4, n_boot=200,
                         probe_params={"max_epochs": 30, "hidden": 64} if probe == "mlp" else None)
    assert r.metric("roc_auc_macro") > 0.95, r
    assert r.per_tag["roc_auc"].min() > 0.9
    assert r.n_tracks == len(tracks) and list(r.tags) == TAGS
    assert r.validation_score() > 0.85
    m = r.metrics.set_index("metric")
    assert m.loc["roc_auc_macro", "n_groups"] == 24
    assert np.isnan(r.truth.to_numpy()).any()  # masked entries stay unknown


def test_noise_gives_an_interval_covering_one_half():
    X, index, tracks = _collection(signal=False, seed=3)
    r = evaluate_tagging(X, index, tracks, seed=0, n_splits=4, n_boot=300)
    m = r.metrics.set_index("metric").loc["roc_auc_macro"]
    assert m["ci_low"] < 0.5 < m["ci_high"], m


def test_layer_is_chosen_on_validation_and_predefined_split_is_used():
    X, index, tracks = _collection(layers=3, split=True)
    r = evaluate_tagging(X, index, tracks, seed=0, n_boot=0)
    assert r.split.startswith("predefined split") and len(r.folds) == 1
    assert r.folds["layer"].iloc[0] == 1
    assert set(r.scores.index) == set(tracks.loc[tracks["split"] == "test", "track_id"])
    assert r.layer_scores.set_index("layer")["val_roc_auc"].idxmax() == 1


def test_folds_keep_groups_apart():
    _, _, tracks = _collection()
    Y, mask, _ = tag_matrix(tracks)
    folds, desc = Tagging(tracks).folds(n_splits=4, seed=0)
    assert len(folds) == 4 and "stratified by most frequent tag" in desc
    for f in folds:
        assert not set(tracks["group"].iloc[f.train]) & set(tracks["group"].iloc[f.test])


def test_early_and_late_fusion():
    X, index, tracks = _collection()
    noise = np.random.default_rng(9).normal(size=X.shape).astype(np.float32)
    blocks = {"signal": (X, index), "noise": (noise, index)}
    early = evaluate_tagging_early_fusion(blocks, tracks, seed=0, n_splits=3, n_boot=0)
    assert early.metric("roc_auc_macro") > 0.9
    assert set(early.folds["layer"].iloc[0]) == {"signal", "noise"}
    singles = [evaluate_tagging(*blocks[m], tracks, seed=0, n_splits=3, n_boot=0, name=m)
               for m in blocks]
    late = tagging_late_fusion(singles)
    np.testing.assert_allclose(late.scores.to_numpy(),
                               (singles[0].scores + singles[1].scores).to_numpy() / 2)
    assert np.isnan(late.validation_score())
    same = tagging_late_fusion([singles[0], singles[0]])
    np.testing.assert_allclose(same.scores.to_numpy(), singles[0].scores.to_numpy())


def test_zero_shot_map_results_rows_and_per_tag_plot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from mtbc.reports.audit import RESULT_COLUMNS, audit_results, result_rows
    from mtbc.reports.plots import plot_tag_auc
    from mtbc.study.tagging import per_tag_frame, zero_shot_map

    mtt = ["guitar", "Piano", "choir", "choral", "synth"]
    assert zero_shot_map(["piano", "choir", "organ", "synthesizer", "GUITAR"], mtt) == {
        "piano": ["Piano"], "choir": ["choir", "choral"], "synthesizer": ["synth"],
        "GUITAR": ["guitar"]}
    X, index, tracks = _collection()
    r = evaluate_tagging(X, index, tracks, seed=0, n_splits=3, n_boot=50, name="m")
    rows = result_rows([r])
    assert list(rows.columns) == RESULT_COLUMNS and set(rows["task"]) == {"tagging"}
    assert "roc_auc_macro" in set(rows["metric"]) and rows["protocol"].iloc[0].startswith("linear; ")
    assert audit_results(None, [r]) is None  # no run: nothing written
    pd.DataFrame([{"system": "x", "task": "classification"}]).to_csv(tmp_path / "results.csv",
                                                                      index=False)
    path = audit_results(str(tmp_path / "run.json"), [r]) / "results.csv"
    assert len(pd.read_csv(path)) == 1 + len(rows)
    audit_results(str(tmp_path / "run.json"), [r])  # again: the system's rows replaced
    assert len(pd.read_csv(path)) == 1 + len(rows)
    assert not (tmp_path / "predictions.csv").exists()  # tagging has no per-track rows
    ax = plot_tag_auc(per_tag_frame([r]))
    assert ax.get_xlabel().startswith("ROC-AUC") and ax.get_title()
