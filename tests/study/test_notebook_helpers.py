"""Helpers behind the notebooks: classification plans, result tables, the answer sentence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtbc.cache.store import EmbeddingStore, load_aligned, load_embeddings
from mtbc.evaluation import compare, evaluate_probe
from mtbc.reports.tables import (
    comparison_frame,
    extractor_table,
    results_table,
)
from mtbc.study.common import choose_by_validation, plan_classification
from mtbc.study.compare import answer_sentence


def _tracks(labels, split=None):
    n = len(labels)
    return pd.DataFrame({"track_id": [f"t{i}" for i in range(n)], "label": labels,
                         "group": [f"t{i}" for i in range(n)], "split": split or [None] * n,
                         "content_hash": [f"{i:02d}" + "a" * 62 for i in range(n)]})


def test_classification_plan_caps_folds_by_the_smallest_label():
    plan = plan_classification(_tracks(["a"] * 6 + ["b"] * 3), n_splits=5)
    assert (plan.n_folds, plan.why_not) == (3, None)


@pytest.mark.parametrize("labels,reason", [
    (["a", "a", None], "at least 2 labels"),
    (["a", "a", "b"], "single track"),
])
def test_classification_plan_says_why_not(labels, reason):
    plan = plan_classification(_tracks(labels))
    folds, why = plan.n_folds, plan.why_not
    assert folds == 0 and reason in why


def test_unlabelled_tracks_are_left_out_and_a_given_split_is_kept():
    labels = ["a", "b", None, "a", "b"]
    plan = plan_classification(
        _tracks(labels, split=["train", "train", "train", "test", "test"]), n_splits=5)
    tracks, folds, why = plan.tracks, plan.n_folds, plan.why_not
    assert len(tracks) == 4 and folds == 5 and why is None


@pytest.fixture(scope="module")
def two_results():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    tracks = _tracks(np.where(y == 1, "b", "a").tolist())
    good = rng.standard_normal((40, 1, 4)).astype(np.float32)
    good[:, 0, 0] += 4 * y
    noise = rng.standard_normal((40, 1, 4)).astype(np.float32)
    index = np.arange(40)
    kw = dict(seed=0, n_splits=4, n_boot=200)
    return [evaluate_probe(good, index, tracks, name="good", **kw),
            evaluate_probe(noise, index, tracks, name="noise", **kw)]


def test_results_table_shows_percent_with_ci(two_results):
    table = results_table(two_results)
    assert list(table.index) == ["good", "noise"]
    cell = table.loc["good", "accuracy % [95% CI]"]
    value, low, high = (float(x) for x in cell.replace("[", "").replace(",", "")
                        .replace("]", "").split())
    assert low <= value <= high and value > 90
    frame = comparison_frame(two_results)
    assert frame.loc[0, "accuracy"] == pytest.approx(value / 100)


def test_answer_leads_with_the_validation_choice_and_its_paired_tests(two_results):
    chosen = choose_by_validation(two_results)
    assert chosen.name == "good"  # chosen by validation accuracy, not by test accuracy
    text = answer_sentence(two_results, compare(two_results), chosen)
    assert text.startswith("**good**, the system chosen on validation data, reached")
    assert "n = 40 tracks" in text and "significantly better than noise" in text


def test_answer_says_plainly_when_nothing_is_significant(two_results):
    tests = compare(two_results).assign(p_holm=0.5)
    text = answer_sentence(two_results, tests, two_results[1])
    assert text.startswith("No system is significantly better than another")
    assert "**noise**, the system chosen on validation data" in text


def test_extractor_table_one_row_per_label():
    table = extractor_table({
        "mert": {"extractor": "mert", "model": "m-a-p/MERT-v1-95M", "commit": "a" * 40,
                 "weights_kind": "pretrained", "sample_rate": 24000, "fingerprint": "mert-1",
                 "licence": "cc-by-nc-4.0"},
        "mfcc": {"extractor": "mfcc", "weights_kind": "none", "sample_rate": 22050,
                 "fingerprint": "mfcc-2"}})
    assert table.loc["mert", "revision"] == "a" * 12
    assert table.loc["mfcc", "model"] == "mfcc" and table.loc["mfcc", "weights"] == "none"
    assert table.loc["mert", "licence"] == "cc-by-nc-4.0" and table.loc["mfcc", "licence"] == "-"


def test_load_aligned_keeps_tracks_every_extractor_has(tmp_path):
    store = EmbeddingStore(tmp_path)
    tracks = _tracks(["a", "b", "a"])
    h = list(tracks["content_hash"])
    for i in range(3):
        store.put(h[i], "fp1", np.full((2, 1, 3), i, np.float32))
    for i in (0, 2):
        store.put(h[i], "fp2", np.full((1, 2, 5), i, np.float32))
    common, blocks = load_aligned(tracks, store, {"one": "fp1", "two": "fp2"})
    assert list(common["track_id"]) == ["t0", "t2"]
    segs, index = blocks["one"]
    assert segs.shape == (4, 1, 3) and list(index) == [0, 0, 1, 1]
    assert segs[index == 1].max() == 2
    subset, X = load_embeddings(tracks, store, "fp2")
    assert list(subset["track_id"]) == ["t0", "t2"] and X.shape == (2, 2, 5)


def test_results_table_names_each_models_layer_for_late_fusion(two_results):
    from mtbc.evaluation import late_fusion

    fused = late_fusion(two_results, name="late(good + noise)")
    cell = results_table([fused]).loc["late(good + noise)", "layer(s) chosen"]
    assert "good 0 (x4)" in cell and "noise 0 (x4)" in cell


def test_a_split_without_test_tracks_falls_back_to_cross_validation():
    plan = plan_classification(
        _tracks(["a", "a", "b", "b"], split=["train"] * 4), n_splits=5)
    assert (plan.n_folds, plan.why_not) == (2, None)


def test_answer_never_calls_a_non_significant_difference_significant(two_results):
    good, noise = two_results
    tests = pd.DataFrame([
        {"system_a": "good", "system_b": "noise", "accuracy_a": 0.9, "accuracy_b": 0.5,
         "p_holm": 0.2},
        {"system_a": "noise", "system_b": "other", "accuracy_a": 0.5, "accuracy_b": 0.1,
         "p_holm": 0.01}])  # another pair differs, the chosen system differs from nobody
    text = answer_sentence([good, noise], tests, good)
    assert "it is not significantly different from noise (p ≥ 0.05)" in text
    assert "p < 0.05" not in text


def test_the_saved_probe_takes_the_layer_curve_s_best_validation_layer():
    from types import SimpleNamespace

    from mtbc.study.classify import final_layer

    curve = pd.DataFrame({"layer": [0, 1, 2, "mean"], "accuracy": [0.5, 0.8, 0.8, 0.7]})
    assert final_layer(SimpleNamespace(layer_scores=curve)) == 1  # ties: the earlier layer
    curve.loc[3, "accuracy"] = 0.9
    assert final_layer(SimpleNamespace(layer_scores=curve)) == "mean"
    assert final_layer(None) == "select"
    assert final_layer(SimpleNamespace(layer_scores=pd.DataFrame())) == "select"
